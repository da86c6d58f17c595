"""Everything MLflow, in one place: the parent run, nested step runs, tags, lookups and failure status.

Step transforms never import mlflow; runners call this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import socket
import subprocess
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from src.lib.config import REPO_ROOT, Settings
from src.lib.errors import TrackingError
from src.lib.refs import ModelRef

if TYPE_CHECKING:
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

TAG_STEP = "pipeline.step"
TAG_ENVIRONMENT = "pipeline.environment"
TAG_KIND = "pipeline.kind"  # "pipeline" on parent runs, "step" on step runs
TAG_ERROR = "pipeline.error"
TAG_OUTPUT_PREFIX = "pipeline.output."
TAG_DIGEST_PREFIX = "pipeline.digest."
TAG_REUSED_FROM = "pipeline.reused_from"
TAG_NOTES = "pipeline.notes"
TAG_HOST = "pipeline.host"
TAG_PID = "pipeline.pid"
SNAPSHOT_MANIFEST = "snapshot/manifest.json"
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
        # No git (a container image): the commit the image was built from, if the build recorded it.
        baked = os.environ.get("PIPELINE_GIT_COMMIT")
        return (baked, None) if baked else ("unknown", None)
    return commit, bool(status.strip())


class Tracker:
    """MLflow access for one environment's tracking server and experiment."""

    def __init__(self, settings: Settings, parent_run_id: str | None = None) -> None:
        self.settings = settings
        self.experiment_id: str | None = None
        # Set when the steps of one pipeline run are run as separate processes (a scheduler's tasks): each
        # attaches its step run to this parent instead of opening a parent of its own.
        self.parent_run_id = parent_run_id

    @functools.cached_property
    def _parent_experiment_id(self) -> str | None:
        """The experiment of the external parent run (looked up once)."""
        if not self.parent_run_id:
            return None
        return self._external_parent(self.parent_run_id).info.experiment_id

    # -- connection --------------------------------------------------------------------------------------------
    def connect(self) -> str:
        """Point MLflow at the environment's tracking server and make sure the experiment exists."""
        import mlflow

        tracking = self.settings.tracking
        probe_server(tracking.uri)
        mlflow.set_tracking_uri(tracking.uri)
        try:
            with _sqlite_setup_lock(tracking.uri):
                experiment = mlflow.get_experiment_by_name(tracking.experiment)
                if experiment is None:
                    experiment_id = mlflow.create_experiment(
                        tracking.experiment, artifact_location=tracking.artifact_location
                    )
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
        if self.parent_run_id:
            yield self._external_parent(self.parent_run_id)
            return
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

    def start_parent(self, params: Mapping[str, Any]) -> str:
        """Open a parent run for steps that will attach to it from other processes; return its id."""
        from mlflow import MlflowClient

        # No pid tag: the process that opens it ends at once, and the run must not look orphaned.
        tags = {k: v for k, v in self._git_tags().items() if k != TAG_PID}
        client = MlflowClient()
        run = client.create_run(
            self.experiment_id, run_name=f"pipeline-{self.settings.environment}",
            tags={TAG_KIND: "pipeline", TAG_ENVIRONMENT: self.settings.environment, **tags},
        )
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.log_dict(run.info.run_id, self.settings.to_dict(), "config/resolved.yaml")
        return run.info.run_id

    def end_parent(self, run_id: str) -> str:
        """Close a parent opened by start_parent: FAILED if any step under it failed or was killed."""
        from mlflow import MlflowClient

        client = MlflowClient()
        parent = self._external_parent(run_id)
        children = client.search_runs([parent.info.experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
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
            raise TrackingError(f"parent run '{run_id}' does not exist in '{self.settings.tracking.uri}'") from exc
        if run.info.status != "RUNNING":
            raise TrackingError(f"parent run '{run_id}' is {run.info.status}, not RUNNING: start a new one "
                                "(python src/main.py parent-start)")
        return run

    @contextlib.contextmanager
    def step_run(self, step: str) -> Iterator[Run]:
        """A nested child run of the parent run, tagged with step, environment and git state."""
        import mlflow

        if self.parent_run_id:
            run = mlflow.start_run(experiment_id=self._parent_experiment_id, run_name=step,
                                   parent_run_id=self.parent_run_id)
        else:
            parent = mlflow.active_run()
            experiment_id = parent.info.experiment_id if parent else self.experiment_id
            run = mlflow.start_run(experiment_id=experiment_id, run_name=step, nested=parent is not None)
        with _ending(run):
            mlflow.set_tags(
                {TAG_KIND: "step", TAG_STEP: step, TAG_ENVIRONMENT: self.settings.environment, **self._git_tags()}
            )
            yield run

    def log_outputs(self, outputs: Mapping[str, str], digests: Mapping[str, str]) -> None:
        """Record a step's output URIs and their digests on its run, for the next step (and people) to find."""
        import mlflow

        tags = {TAG_OUTPUT_PREFIX + name: uri for name, uri in outputs.items()}
        tags |= {TAG_DIGEST_PREFIX + name: digest for name, digest in digests.items()}
        mlflow.set_tags(tags)

    # -- what runners log --------------------------------------------------------------------------------------
    @staticmethod
    def log_params(params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params(dict(params))

    @staticmethod
    def log_metrics(metrics: Mapping[str, float]) -> None:
        import mlflow

        if metrics:
            mlflow.log_metrics(dict(metrics))

    @staticmethod
    def log_text(text: str, artifact_file: str) -> None:
        import mlflow

        mlflow.log_text(text, artifact_file)

    @staticmethod
    def set_tags(tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def log_and_register_model(self, model: Any, example: Any, registered_name: str, evaluation_data: Any
                               ) -> tuple[str, str, Any]:
        """Log a scikit-learn model with signature and example, evaluate it, then register it.

        Returns the logged model URI, the registered version URI and the evaluation result. The model is
        registered only after its evaluation succeeded, so a failure leaves no new version behind.
        """
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        signature = infer_signature(example, model.predict(example))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=_model_requirements(),
            # skops (MLflow's safe default format) loads only the types listed here: the ones this model holds.
            skops_trusted_types=_skops_types(model),
        )
        evaluation = _evaluate(info.model_uri, evaluation_data)
        version = mlflow.register_model(info.model_uri, registered_name).version
        return info.model_uri, f"models:/{registered_name}/{version}", evaluation

    # -- the quality gate and the alias ------------------------------------------------------------------------
    def gate_candidate(self, name: str, version: str, evaluation: Any, evaluation_data: Any,
                       gate: Any) -> GateDecision:
        """Compare the candidate just evaluated with the thresholds and with the current alias holder (evaluated
        on the same holdout, in a nested run); promote it only if it passes. The decision is logged on the run."""
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from mlflow.models import MetricThreshold
        from mlflow.models.evaluation.validation import ModelValidationFailedException

        from src.lib.config import GATE_METRICS

        client = MlflowClient()
        champion = self.alias_version(name, gate.alias)
        baseline = None
        if champion is not None:
            active = mlflow.active_run()
            with mlflow.start_run(run_name=f"{gate.alias}_baseline", nested=True,
                                  experiment_id=active.info.experiment_id if active else self.experiment_id):
                mlflow.set_tags({TAG_KIND: "baseline", "gate.baseline_version": champion})
                baseline = _evaluate(f"models:/{name}/{champion}", evaluation_data)
        thresholds = {
            metric: MetricThreshold(
                threshold=value,
                min_absolute_change=gate.min_improvement if baseline is not None else None,
                greater_is_better=GATE_METRICS[metric],
            )
            for metric, value in gate.thresholds.items()
        }
        try:
            mlflow.validate_evaluation_results(thresholds, evaluation, baseline)
            passed, reasons = True, [f"passed: {_describe_thresholds(gate, champion)}"]
        except ModelValidationFailedException as exc:
            passed, reasons = False, [line.strip() for line in exc.message.splitlines() if line.strip()]
        except MlflowException as exc:
            raise TrackingError(f"the quality gate could not run: {exc.message}") from exc

        decision = GateDecision(
            promoted=passed, name=name, version=version, alias=gate.alias, previous=champion, reasons=reasons,
            candidate={m: evaluation.metrics.get(m) for m in gate.thresholds},
            baseline={m: baseline.metrics.get(m) for m in gate.thresholds} if baseline else None,
        )
        if passed:
            run = mlflow.active_run()
            self.set_alias(name, version, gate.alias, by=f"pipeline run {run.info.run_id}" if run else "pipeline",
                           reason="; ".join(reasons))
        mlflow.set_tags({"gate.decision": "promoted" if passed else "rejected",
                         "gate.reasons": "; ".join(reasons)[:4000]})
        mlflow.log_dict(decision.to_dict(), "gate/decision.json")
        client.set_model_version_tag(name, version, "gate.decision", "promoted" if passed else "rejected")
        return decision

    @staticmethod
    def alias_version(name: str, alias: str) -> str | None:
        """The version holding ``alias``, or None."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            return str(MlflowClient().get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def set_alias(self, name: str, version: str, alias: str, by: str, reason: str) -> str | None:
        """Move ``alias`` to ``version``, recording on both versions who held it before and why it moved."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient()
        try:
            client.get_model_version(name, version)
        except MlflowException as exc:
            raise TrackingError(f"model '{name}' has no version {version}: see the registered versions in mlflow ui")\
                from exc
        previous = self.alias_version(name, alias)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        client.set_registered_model_alias(name, alias, version)
        for key, value in {
            f"{alias}.previous_version": previous or "none",
            f"{alias}.promoted_at": now,
            f"{alias}.promoted_by": by,
            f"{alias}.reason": reason[:4000],
        }.items():
            client.set_model_version_tag(name, version, key, value)
        if previous and previous != version:
            client.set_model_version_tag(name, previous, f"{alias}.replaced_by", f"{version} at {now}")
        return previous

    @staticmethod
    def dataset(df: Any, name: str, source: str, sha256: str, targets: str) -> Any:
        """An MLflow dataset for ``df``, with its content digest and where its bytes are.

        MLflow infers a dataset's schema by visiting every value in Python, which takes seconds per million
        rows; here the types come from a sample and only the "has no nulls" flags from the whole frame.
        """
        import mlflow.data
        from mlflow.models import infer_signature
        from mlflow.types import ColSpec, Schema

        # MLflow caps a dataset digest at 36 characters: the full SHA-256 is in the (content-addressed) source URI
        # and in the run's pipeline.data.<name>.sha256 tag.
        dataset = mlflow.data.from_pandas(df, source=source, name=name, targets=targets, digest=sha256[:36])
        sample = infer_signature(df.head(10_000)).inputs
        complete = df.notna().all()
        schema = Schema([ColSpec(spec.type, spec.name, required=bool(complete[spec.name])) for spec in sample.inputs])
        dataset.__dict__["schema"] = schema  # fills PandasDataset.schema, a functools.cached_property
        return dataset

    @staticmethod
    def log_dataset(dataset: Any, context: str) -> None:
        """Record a dataset as an input of the active run."""
        import mlflow

        mlflow.log_input(dataset, context=context)

    @staticmethod
    def load_snapshot_manifest(run_id: str) -> dict[str, Any]:
        """The training-data manifest of a train_model run (``snapshot/manifest.json``)."""
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            mlflow.MlflowClient().get_run(run_id)
        except MlflowException as exc:
            raise TrackingError(f"run '{run_id}' does not exist in '{mlflow.get_tracking_uri()}': check the run id "
                                "(mlflow ui shows it on the train_model run)") from exc
        try:
            return mlflow.artifacts.load_dict(f"runs:/{run_id}/{SNAPSHOT_MANIFEST}")
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(
                f"run '{run_id}' has no training-data manifest ({SNAPSHOT_MANIFEST}): give the id of a train_model "
                "run (not the pipeline run or another step)"
            ) from exc

    @staticmethod
    def log_dict(data: dict[str, Any], artifact_file: str) -> None:
        import mlflow

        mlflow.log_dict(data, artifact_file)

    @staticmethod
    def load_model(model_uri: str) -> tuple[Any, list[str]]:
        """The scikit-learn model behind a URI and the input columns of its signature."""
        import mlflow
        import mlflow.sklearn

        try:
            model = mlflow.sklearn.load_model(model_uri)
            columns = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
        except Exception as exc:  # noqa: BLE001
            raise TrackingError(f"cannot load model '{model_uri}': {exc}") from exc
        return model, columns

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

        # Steps attached to one parent (a scheduler's run) take their inputs from that parent's steps only.
        scope = f" and tags.mlflow.parentRunId = '{self.parent_run_id}'" if self.parent_run_id else ""
        runs = mlflow.search_runs(
            experiment_ids=self._search_experiments(),
            filter_string=(
                f"tags.`{TAG_STEP}` = '{step}' and tags.`{TAG_ENVIRONMENT}` = '{self.settings.environment}' "
                "and attributes.status = 'FINISHED'" + scope
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        return runs[0] if runs else None

    def find_cached_run(self, key: str) -> list[Run]:
        """FINISHED runs with this cache key, newest first."""
        import mlflow

        from src.lib.cache import TAG_KEY

        return mlflow.search_runs(
            experiment_ids=self._search_experiments(),
            filter_string=f"tags.`{TAG_KEY}` = '{key}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=5,
            output_format="list",
        )

    @staticmethod
    def step_outputs(run: Run) -> dict[str, str]:
        return _tags_with_prefix(run, TAG_OUTPUT_PREFIX)

    @staticmethod
    def step_digests(run: Run) -> dict[str, str]:
        return _tags_with_prefix(run, TAG_DIGEST_PREFIX)

    def close_orphaned_runs(self) -> list[str]:
        """End as KILLED the RUNNING runs of this environment whose process on this host is gone (kill -9)."""
        from mlflow import MlflowClient

        client = MlflowClient()
        host = socket.gethostname()
        runs = client.search_runs(
            self._search_experiments(),
            filter_string=(
                f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{host}' "
                f"and tags.`{TAG_ENVIRONMENT}` = '{self.settings.environment}'"
            ),
            max_results=200,
        )
        closed = []
        for run in runs:
            pid = run.data.tags.get(TAG_PID, "")
            if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
                client.set_tag(run.info.run_id, TAG_ERROR, f"process {pid} ended without closing the run")
                client.set_terminated(run.info.run_id, "KILLED")
                closed.append(run.info.run_id)
        if closed:
            logger.warning("closed %d run(s) left RUNNING by a process that no longer exists: %s", len(closed), closed)
        return closed

    def _search_experiments(self) -> list[str]:
        experiments = {self.experiment_id, _active_experiment_id(), self._parent_experiment_id}
        return sorted(e for e in experiments if e)

    # -- models ------------------------------------------------------------------------------------------------
    @staticmethod
    def newest_registered_version(name: str) -> str:
        """``models:/<name>/<newest version>``, or a TrackingError saying how to get one."""
        from mlflow import MlflowClient

        versions = MlflowClient().search_model_versions(f"name = '{name}'")
        if not versions:
            raise TrackingError(
                f"no registered model '{name}' in this tracking store: run train_model first, or pass --model-uri"
            )
        newest = max(versions, key=lambda v: int(v.version))
        return f"models:/{name}/{newest.version}"

    def describe_model(self, model_uri: str) -> ModelRef:
        """Resolve a model URI to its registered name, version and source run; a clear error if it does not exist."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient()
        try:
            if model_uri.startswith("models:/"):
                ref = model_uri[len("models:/") :]
                if "@" in ref:
                    name, alias = ref.split("@", 1)
                    mv = client.get_model_version_by_alias(name, alias)
                    return ModelRef(model_uri, name, str(mv.version), mv.run_id)
                if "/" in ref:
                    name, version = ref.split("/", 1)
                    if version == "latest":
                        return self.describe_model(self.newest_registered_version(name))
                    mv = client.get_model_version(name, version)
                    return ModelRef(model_uri, name, str(mv.version), mv.run_id)
                logged = client.get_logged_model(ref)
                return ModelRef(model_uri, None, None, logged.source_run_id)
            if model_uri.startswith("runs:/"):
                run_id = model_uri[len("runs:/") :].split("/", 1)[0]
                client.get_run(run_id)
                return ModelRef(model_uri, None, None, run_id)
        except MlflowException as exc:
            raise TrackingError(
                f"model '{model_uri}' does not exist in this tracking store ({exc.message.splitlines()[0]}); "
                "check the name, version or alias (mlflow ui lists registered models)"
            ) from exc
        raise TrackingError(
            f"model URI '{model_uri}' is not understood: use runs:/<run_id>/model, models:/<name>/<version> "
            "or models:/<name>@<alias>"
        )

    @staticmethod
    def _git_tags() -> dict[str, str]:
        commit, dirty = git_state()
        return {
            TAG_GIT_COMMIT: commit,
            TAG_GIT_DIRTY: "unknown" if dirty is None else str(dirty).lower(),
            # Which process owns the run: lets a later pipeline close runs left RUNNING by a killed one.
            TAG_HOST: socket.gethostname(),
            TAG_PID: str(os.getpid()),
        }


def probe_server(uri: str, timeout: float = 5.0) -> None:
    """For an HTTP tracking server: fail in seconds, with the reason, if it does not answer its /health."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as exc:
        raise TrackingError(
            f"the MLflow tracking server at {uri} does not answer ({type(exc).__name__}): start it (deploy/README.md), "
            "or point PIPELINE_TRACKING_URI at a running one"
        ) from exc
    if response.status_code != 200:
        raise TrackingError(
            f"the MLflow tracking server at {uri} answered /health with HTTP {response.status_code}: "
            "check that the URI is an MLflow server and that it is healthy"
        )


@contextlib.contextmanager
def _sqlite_setup_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a SQLite store: two processes creating its tables at once break its migration."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        fcntl = None  # type: ignore[assignment]
    if fcntl is None or not uri.startswith("sqlite:///"):
        yield
        return

    db_path = uri[len("sqlite:///") :]
    os.makedirs(os.path.dirname(db_path) or ".", exist_ok=True)
    with open(db_path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """Whether a candidate got the alias, and why."""

    promoted: bool
    name: str
    version: str
    alias: str
    previous: str | None
    reasons: list[str]
    candidate: dict[str, Any]
    baseline: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        if self.promoted:
            before = f" (was version {self.previous})" if self.previous else ""
            return f"promoted version {self.version} to @{self.alias}{before}"
        kept = f"; @{self.alias} stays version {self.previous}" if self.previous else f"; no model has @{self.alias}"
        return f"version {self.version} not promoted: {'; '.join(self.reasons)}{kept}"


def _describe_thresholds(gate: Any, champion: str | None) -> str:
    from src.lib.config import GATE_METRICS

    parts = [f"{m} {'>=' if GATE_METRICS[m] else '<='} {v}" for m, v in gate.thresholds.items()]
    against = f", and better than version {champion}" if champion else ""
    return ", ".join(parts) + against


def _evaluate(model_uri: str, data: Any) -> Any:
    """mlflow.models.evaluate of a classifier on a dataset: metrics and plots logged on the active run."""
    import mlflow

    return mlflow.models.evaluate(
        model=model_uri,
        data=data,
        model_type="classifier",
        evaluators=["default"],
        # SHAP explanations are slow and need the optional shap package; metrics and plots are enough here.
        evaluator_config={"default": {"log_model_explainability": False}},
    )


def evaluation_metrics(evaluation: Any) -> dict[str, float]:
    """The numeric metrics of an mlflow.models.evaluate result."""
    return {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, int | float)}


def _tags_with_prefix(run: Run, prefix: str) -> dict[str, str]:
    return {key[len(prefix) :]: value for key, value in run.data.tags.items() if key.startswith(prefix)}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _skops_types(model: Any) -> list[str]:
    """The non-default types skops would refuse to load in a model this pipeline itself just trained."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def _model_requirements() -> list[str]:
    """Pin the logged model's environment to what trained it (skips MLflow's slow requirement inference)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")]


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
