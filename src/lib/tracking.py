"""Everything MLflow, in one place: the parent run, nested step runs, tags, lookups and failure status.

Step transforms never import mlflow; runners call this module.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from src.lib.config import REPO_ROOT, Settings
from src.lib.errors import TrackingError

if TYPE_CHECKING:
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

TAG_STEP = "pipeline.step"
TAG_ENVIRONMENT = "pipeline.environment"
TAG_KIND = "pipeline.kind"  # "pipeline" on parent runs, "step" on step runs
TAG_ERROR = "pipeline.error"
TAG_OUTPUT_PREFIX = "pipeline.output."
TAG_GIT_COMMIT = "git.commit"
TAG_GIT_DIRTY = "git.dirty"


@functools.cache
def git_state() -> tuple[str, bool | None]:
    """The repo's current commit and whether the work tree differs from it ("unknown", None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status.strip())


class Tracker:
    """MLflow access for one environment's tracking server and experiment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.experiment_id: str | None = None

    # -- connection --------------------------------------------------------------------------------------------
    def connect(self) -> str:
        """Point MLflow at the environment's tracking server and make sure the experiment exists."""
        import mlflow

        tracking = self.settings.tracking
        mlflow.set_tracking_uri(tracking.uri)
        try:
            experiment = mlflow.get_experiment_by_name(tracking.experiment)
            if experiment is None:
                experiment_id = mlflow.create_experiment(tracking.experiment, artifact_location=tracking.artifact_location)
            else:
                experiment_id = experiment.experiment_id
        except Exception as exc:  # noqa: BLE001 - any failure to talk to the store is a TrackingError
            raise TrackingError(
                f"cannot use the MLflow tracking store '{tracking.uri}': {type(exc).__name__}: {exc}; "
                "check tracking.uri (or PIPELINE_TRACKING_URI / MLFLOW_TRACKING_URI) and that the server is up"
            ) from exc
        self.experiment_id = experiment_id
        return experiment_id

    # -- runs --------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def pipeline_run(self, params: Mapping[str, Any]) -> Iterator[Run]:
        """The parent run. Attaches to the run MLflow started when launched by ``mlflow run`` (MLFLOW_RUN_ID)."""
        import mlflow

        env = self.settings.environment
        # Consumed here: MLflow would otherwise resume this run for every nested start_run() too.
        existing = os.environ.pop("MLFLOW_RUN_ID", None)
        tags = {TAG_KIND: "pipeline", TAG_ENVIRONMENT: env, **self._git_tags()}
        if existing:
            try:
                run = mlflow.start_run(run_id=existing)
            except Exception as exc:  # noqa: BLE001
                raise TrackingError(
                    f"MLFLOW_RUN_ID={existing} is not a run in '{self.settings.tracking.uri}': {exc}; "
                    "unset MLFLOW_RUN_ID or point the tracking URI at the store that holds it"
                ) from exc
        else:
            run = mlflow.start_run(experiment_id=self.experiment_id, run_name=f"pipeline-{env}")
        with _ending(run):
            mlflow.set_tags(tags)
            mlflow.log_params(dict(params))
            mlflow.log_dict(self.settings.to_dict(), "config/resolved.yaml")
            yield run

    @contextlib.contextmanager
    def step_run(self, step: str) -> Iterator[Run]:
        """A nested child run of the active parent run, tagged with step, environment and git state."""
        import mlflow

        parent = mlflow.active_run()
        experiment_id = parent.info.experiment_id if parent else self.experiment_id
        run = mlflow.start_run(experiment_id=experiment_id, run_name=step, nested=parent is not None)
        with _ending(run):
            mlflow.set_tags(
                {TAG_KIND: "step", TAG_STEP: step, TAG_ENVIRONMENT: self.settings.environment, **self._git_tags()}
            )
            yield run

    def log_outputs(self, outputs: Mapping[str, str]) -> None:
        """Record a step's output URIs on its run, for the next step (and people) to find."""
        import mlflow

        mlflow.set_tags({TAG_OUTPUT_PREFIX + name: uri for name, uri in outputs.items()})

    def log_parent_metrics(self, parent_run_id: str, step: str, metrics: Mapping[str, float]) -> None:
        """Copy a step's headline metrics onto the parent run as ``<step>/<metric>``."""
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(f"{step}/{k}", float(v), now, 0) for k, v in metrics.items()]
        if batch:
            MlflowClient().log_batch(parent_run_id, metrics=batch)

    # -- lookups -----------------------------------------------------------------------------------------------
    def latest_step_run(self, step: str) -> Run | None:
        """The newest FINISHED run of ``step`` in this environment (resolved through MLflow, not storage)."""
        import mlflow

        experiments = [e for e in {self.experiment_id, _active_experiment_id()} if e]
        runs = mlflow.search_runs(
            experiment_ids=experiments,
            filter_string=(
                f"tags.`{TAG_STEP}` = '{step}' and tags.`{TAG_ENVIRONMENT}` = '{self.settings.environment}' "
                "and attributes.status = 'FINISHED'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        return runs[0] if runs else None

    def step_outputs(self, run: Run) -> dict[str, str]:
        return {
            key[len(TAG_OUTPUT_PREFIX) :]: value
            for key, value in run.data.tags.items()
            if key.startswith(TAG_OUTPUT_PREFIX)
        }

    @staticmethod
    def _git_tags() -> dict[str, str]:
        commit, dirty = git_state()
        return {TAG_GIT_COMMIT: commit, TAG_GIT_DIRTY: "unknown" if dirty is None else str(dirty).lower()}


def _active_experiment_id() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.experiment_id if run else None


@contextlib.contextmanager
def _ending(run: Run) -> Iterator[None]:
    """End ``run`` as FINISHED, FAILED (with the traceback as an artifact) or KILLED (Ctrl-C, SIGTERM)."""
    import mlflow

    try:
        yield
    except (KeyboardInterrupt, SystemExit) as exc:
        _record_error(exc)
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        _record_error(exc)
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


def _record_error(exc: BaseException) -> None:
    import mlflow

    with contextlib.suppress(Exception):  # never let a logging failure hide the real error
        mlflow.set_tag(TAG_ERROR, (f"{type(exc).__name__}: {exc}")[:4000])
        mlflow.log_text("".join(traceback.format_exception(exc)), "error/traceback.txt")
