"""MLflow runs: the parent run, nested step runs, their status on every path, lookups, orphaned runs.

Step transforms never import mlflow; the pipeline calls this module.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlsteps.config import Settings
from mlsteps.errors import StepError, StorageUnreachable, TrackingError, UsageError
from mlsteps.hints import command
from mlsteps.store import TAG_PID, TAG_PROCESS, connect, is_missing, owner_is_gone, owner_tags

if TYPE_CHECKING:
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

TAG_STEP = "pipeline.step"
TAG_ENVIRONMENT = "pipeline.environment"
TAG_KIND = "pipeline.kind"  # "pipeline" on parent runs, "step" on step runs
TAG_ERROR = "pipeline.error"
TAG_OUTPUT_PREFIX = "pipeline.output."
TAG_DIGEST_PREFIX = "pipeline.digest."
TAG_INPUT_PREFIX = "pipeline.input."  # what a step run read: "<uri> <digest>" (a model's digest names its version)
TAG_REUSED_FROM = "pipeline.reused_from"
TAG_NOTES = "pipeline.notes"
TAG_CACHE_KEY = "pipeline.cache.key"


class Runs:
    """The runs of one environment's experiment."""

    def __init__(self, settings: Settings, parent_run_id: str | None = None) -> None:
        self.settings = settings
        self.experiment_id: str | None = None
        # Set when the steps of one pipeline run are run as separate processes (a scheduler's tasks): each
        # attaches its step run to this parent instead of opening a parent of its own.
        self.parent_run_id = parent_run_id

    def connect(self, create: bool = True) -> str | None:
        """Connect to the tracking store; without ``create``, nothing is written (a missing experiment is None)."""
        self.experiment_id = connect(self.settings, create=create)
        return self.experiment_id

    @functools.cached_property
    def _parent_experiment_id(self) -> str | None:
        return self._external_parent(self.parent_run_id).info.experiment_id if self.parent_run_id else None

    # -- parent and step runs ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def pipeline_run(self, params: Mapping[str, Any]) -> Iterator[Run]:
        """The parent run. Attaches to the run MLflow started when launched by ``mlflow run`` (MLFLOW_RUN_ID)."""
        import mlflow

        if self.parent_run_id:
            yield self._external_parent(self.parent_run_id)
            return
        # Consumed here: MLflow would otherwise resume this run for every nested start_run() too.
        existing = os.environ.pop("MLFLOW_RUN_ID", None)
        if existing:
            try:
                run = mlflow.start_run(run_id=existing)
            except Exception as exc:
                error = UsageError if is_missing(exc) else TrackingError
                raise error(
                    f"MLFLOW_RUN_ID={existing} is not a run in '{self.settings.tracking.uri}': {exc}; "
                    "unset MLFLOW_RUN_ID or point the tracking URI at the store that holds it"
                ) from exc
        else:
            run = mlflow.start_run(experiment_id=self.experiment_id, run_name=f"pipeline-{self.settings.environment}")
        with ending(run):
            mlflow.set_tags(self._tags("pipeline"))
            mlflow.log_params(dict(params))
            mlflow.log_dict(self.settings.to_dict(), "config/resolved.yaml")
            yield run

    def start_parent(self, params: Mapping[str, Any]) -> str:
        """Open a parent run for steps that will attach to it from other processes; return its id."""
        from mlflow import MlflowClient

        # No pid tag: the process that opens it ends at once, and the run must not look orphaned.
        tags = {k: v for k, v in self._tags("pipeline").items() if k not in (TAG_PID, TAG_PROCESS)}
        client = MlflowClient()
        if self.experiment_id is None:
            raise RuntimeError("start_parent() before connect(): the experiment is not known yet")
        run = client.create_run(self.experiment_id, run_name=f"pipeline-{self.settings.environment}", tags=tags)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.log_dict(run.info.run_id, self.settings.to_dict(), "config/resolved.yaml")
        return str(run.info.run_id)

    def end_parent(self, run_id: str) -> str:
        """Close a parent opened by start_parent: FAILED if any step under it failed or was killed."""
        from mlflow import MlflowClient

        client = MlflowClient()
        parent = self._external_parent(run_id)
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
        )
        bad = [c.data.tags.get(TAG_STEP, c.info.run_id) for c in children if c.info.status != "FINISHED"]
        status = "FAILED" if bad or not children else "FINISHED"
        if bad:
            client.set_tag(run_id, TAG_ERROR, f"step(s) not finished: {', '.join(bad)}")
        client.set_terminated(run_id, status)
        return status

    def _external_parent(self, run_id: str) -> Run:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            run = MlflowClient().get_run(run_id)
        except MlflowException as exc:
            if not is_missing(exc):
                raise TrackingError(
                    f"cannot look up parent run '{run_id}' in '{self.settings.tracking.uri}': "
                    f"{exc.message.splitlines()[0]}"
                ) from exc
            raise UsageError(f"parent run '{run_id}' does not exist in '{self.settings.tracking.uri}'") from exc
        if run.info.status != "RUNNING":
            raise UsageError(
                f"parent run '{run_id}' is {run.info.status}, not RUNNING: start a new one ({command('parent-start')})"
            )
        return run

    @contextlib.contextmanager
    def step_run(self, step: str) -> Iterator[Run]:
        """A nested child run of the parent run, tagged with step, environment and git state."""
        import mlflow

        if self.parent_run_id:
            run = mlflow.start_run(
                experiment_id=self._parent_experiment_id, run_name=step, parent_run_id=self.parent_run_id
            )
        else:
            parent = mlflow.active_run()
            experiment_id = parent.info.experiment_id if parent else self.experiment_id
            run = mlflow.start_run(experiment_id=experiment_id, run_name=step, nested=parent is not None)
        with ending(run):
            mlflow.set_tags({**self._tags("step"), TAG_STEP: step})
            yield run

    def _tags(self, kind: str) -> dict[str, str]:
        return run_tags(kind, self.settings.environment)

    # -- what a step run records -----------------------------------------------------------------------------
    @staticmethod
    def log_lineage(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
        """Record what a step run read and wrote (each an ``Input``: URI and digest), for the next step and people."""
        import mlflow

        tags = {TAG_INPUT_PREFIX + name: f"{i.uri} {i.digest}" for name, i in inputs.items()}
        tags |= {TAG_OUTPUT_PREFIX + name: o.uri for name, o in outputs.items()}
        tags |= {TAG_DIGEST_PREFIX + name: o.digest for name, o in outputs.items()}
        mlflow.set_tags(tags)

    @staticmethod
    def log(
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        texts: Mapping[str, str] | None = None,
    ) -> None:
        """Log on the active run."""
        import mlflow

        if params:
            mlflow.log_params(dict(params))
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        if tags:
            mlflow.set_tags(dict(tags))
        for path, text in (texts or {}).items():
            mlflow.log_text(text, path)

    @staticmethod
    def log_parent_metrics(parent_run_id: str, step: str, metrics: Mapping[str, float]) -> None:
        """Copy a step's headline metrics onto the parent run as ``<step>/<metric>``."""
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(f"{step}/{k}", float(v), now, 0) for k, v in metrics.items()]
        if batch:
            MlflowClient().log_batch(parent_run_id, metrics=batch)

    # -- lookups -------------------------------------------------------------------------------------------
    def latest_step_run(self, step: str) -> Run | None:
        """The newest FINISHED run of ``step`` in this environment (resolved through MLflow, not storage)."""
        # Steps attached to one parent (a scheduler's run) take their inputs from that parent's steps only.
        scope = f" and tags.mlflow.parentRunId = '{self.parent_run_id}'" if self.parent_run_id else ""
        runs = self._search(
            f"tags.`{TAG_STEP}` = '{step}' and tags.`{TAG_ENVIRONMENT}` = "
            f"'{self.settings.environment}' and attributes.status = 'FINISHED'" + scope,
            1,
        )
        return runs[0] if runs else None

    def find_cached_runs(self, key: str) -> list[Run]:
        """FINISHED runs with this cache key, newest first."""
        return self._search(f"tags.`{TAG_CACHE_KEY}` = '{key}' and attributes.status = 'FINISHED'", 5)

    @staticmethod
    def get_run(run_id: str) -> Run:
        from mlflow import MlflowClient

        return MlflowClient().get_run(run_id)

    def _search(self, filter_string: str, max_results: int) -> list[Run]:
        import mlflow

        if not self._search_experiments():
            return []  # no experiment yet (a dry run before the first run): nothing to find
        return mlflow.search_runs(
            experiment_ids=self._search_experiments(),
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
            output_format="list",
        )

    def close_orphaned_runs(self) -> list[str]:
        """End as KILLED the RUNNING runs of this environment whose owning process is gone (kill -9).

        A run whose owner this process cannot see (another machine, boot or PID namespace) is left alone.
        """
        from mlflow import MlflowClient

        client = MlflowClient()
        runs = client.search_runs(
            self._search_experiments(),
            filter_string=(
                f"attributes.status = 'RUNNING' and tags.`{TAG_ENVIRONMENT}` = '{self.settings.environment}'"
            ),
            max_results=200,
        )
        closed = []
        for run in runs:
            if owner_is_gone(run.data.tags.get(TAG_PROCESS, "")):
                pid = run.data.tags.get(TAG_PID, "?")
                client.set_tag(run.info.run_id, TAG_ERROR, f"process {pid} ended without closing the run")
                client.set_terminated(run.info.run_id, "KILLED")
                closed.append(run.info.run_id)
        if closed:
            logger.warning("closed %d run(s) left RUNNING by a process that no longer exists: %s", len(closed), closed)
        return closed

    def _search_experiments(self) -> list[str]:
        import mlflow

        active = mlflow.active_run()
        experiments = {self.experiment_id, active.info.experiment_id if active else None, self._parent_experiment_id}
        return sorted(e for e in experiments if e)


def run_tags(kind: str, environment: str) -> dict[str, str]:
    """What every run the pipeline opens carries: its kind, environment, git state and owning process."""
    return {TAG_KIND: kind, TAG_ENVIRONMENT: environment, **owner_tags()}


@contextlib.contextmanager
def nested_run(name: str, kind: str, environment: str, tags: Mapping[str, str]) -> Iterator[Run]:
    """A run nested in the active one (the gate's baseline, say), tagged like every pipeline run so that a later
    pipeline can close it if this process is killed, and ended on every path."""
    import mlflow

    active = mlflow.active_run()
    run = mlflow.start_run(run_name=name, nested=True, experiment_id=active.info.experiment_id if active else None)
    with ending(run):
        mlflow.set_tags({**run_tags(kind, environment), **tags})
        yield run


def step_outputs(run: Run) -> dict[str, str]:
    return _tags_with_prefix(run, TAG_OUTPUT_PREFIX)


def step_digests(run: Run) -> dict[str, str]:
    return _tags_with_prefix(run, TAG_DIGEST_PREFIX)


def _tags_with_prefix(run: Run, prefix: str) -> dict[str, str]:
    return {key[len(prefix) :]: value for key, value in run.data.tags.items() if key.startswith(prefix)}


@contextlib.contextmanager
def ending(run: Run) -> Iterator[None]:
    """End ``run`` as FINISHED, FAILED (with the traceback as an artifact) or KILLED (Ctrl-C, SIGTERM)."""
    import mlflow

    try:
        yield
    except (KeyboardInterrupt, SystemExit) as exc:
        _release_interrupted_statement(exc)
        _record_error(exc)
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        _record_error(exc)
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


def _release_interrupted_statement(exc: BaseException) -> None:
    """Let go of what the interrupted code held before writing again. A signal that lands inside a SQLite write
    leaves its cursor referenced by the traceback's frames; SQLite keeps a connection with an unfinalized
    statement open, with its lock, so the KILLED status written next would wait out the busy timeout ("database is
    locked"). Clearing the frames' locals (the formatted traceback keeps every line) finalizes the statement."""
    import gc

    traceback.clear_frames(exc.__traceback__)
    gc.collect()


def _record_error(exc: BaseException) -> None:
    import mlflow

    from mlsteps.storage_errors import artifact_store_error

    with contextlib.suppress(Exception):  # never let a logging failure hide the real error
        mlflow.set_tag(TAG_ERROR, (f"{type(exc).__name__}: {exc}")[:4000])
        cause = exc.cause if isinstance(exc, StepError) else exc
        # An artifact store that failed would fail this upload too, after its retries: the tag says it all.
        if not (isinstance(cause, StorageUnreachable) or artifact_store_error(cause)):
            mlflow.log_text("".join(traceback.format_exception(exc)), "error/traceback.txt")
