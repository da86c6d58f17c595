"""One exception family. Every message says what is wrong, where, and how to fix it."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: the CLI turns any of these into one clear message and a non-zero exit.

    Exit 1: the pipeline failed while running (data that fails its checks, a storage or tracking server that cannot
    be reached or fails, a step's error). A mistake in what the user named or set is a ``UsageError``, exit 2."""

    exit_code = 1


class UsageError(PipelineError):
    """Something named or set on the command line or in a config file is invalid or does not exist (a run, a model
    version, a file typed on the command line): fix the command or the config and run it again."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file, key, value or environment variable is invalid."""


class DataValidationError(PipelineError):
    """A dataset does not match its schema, or cannot be used by a step."""

    def __init__(self, message: str, report: str | None = None) -> None:
        super().__init__(message)
        self.report = report


class StorageError(PipelineError):
    """A dataset cannot be read or written where the config says it lives."""


class StorageUnreachable(StorageError):
    """The storage itself cannot be used (endpoint down, no credentials): nothing can run, so it stops at once."""


class StorageTransient(StorageError):
    """The storage answered with a failure that may pass (5xx, throttling, a timeout) after its own retries: the
    data is not at fault, and the same request may succeed later."""


class TrackingError(PipelineError):
    """The MLflow tracking server, a run or a model cannot be reached or found."""


class StepError(PipelineError):
    """A step failed; wraps the step name around the underlying error, whose exit code it keeps (a model URI
    that does not exist is a usage error, exit 2, also when the step resolves it)."""

    def __init__(self, step: str, cause: BaseException, run_started: bool = True) -> None:
        super().__init__(f"step '{step}' failed: {cause}")
        self.step = step
        self.cause = cause
        self.exit_code = cause.exit_code if isinstance(cause, PipelineError) else PipelineError.exit_code
        # False when it failed before its run was opened (an input that cannot be found, say).
        self.run_started = run_started


class DeployError(PipelineError):
    """A deployment to SageMaker failed: a call SageMaker refused, an endpoint that did not reach InService in
    time, or an endpoint whose answers disagree with the model's own (the smoke test)."""
