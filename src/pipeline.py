"""Step runners and the pipeline that chains them as nested MLflow runs under one parent run.

A runner reads its inputs through ``src.lib.storage``, calls its step's pure transforms, writes its outputs to a
folder scoped to its own run, and returns the URIs it wrote. The next step receives them; a step run on its own
finds them on the newest finished run of the step before it, through MLflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from src.lib.config import Settings, join_uri
from src.lib.errors import DataValidationError, PipelineError, StepError, TrackingError
from src.lib.storage import Storage
from src.lib.tracking import Tracker

if TYPE_CHECKING:
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

STEPS = ("make_data", "feat_data", "train_model", "predict")


@dataclass
class StepResult:
    """What one step did: its run, the URIs it wrote, its headline metrics, how long it took."""

    step: str
    run_id: str
    outputs: dict[str, str]
    metrics: dict[str, float]
    seconds: float


@dataclass
class PipelineResult:
    environment: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0


class Reporter(Protocol):
    """Receives progress events (the CLI prints them)."""

    def step_started(self, step: str, index: int, total: int) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def step_failed(self, step: str, error: BaseException) -> None: ...


class _SilentReporter:
    def step_started(self, step: str, index: int, total: int) -> None:
        logger.info("step %d/%d: %s", index, total, step)

    def step_finished(self, result: StepResult) -> None:
        logger.info("step %s finished in %.1fs", result.step, result.seconds)

    def step_failed(self, step: str, error: BaseException) -> None:
        logger.info("step %s failed: %s", step, error)


@dataclass
class StepContext:
    """What a runner gets: the config, storage, tracking and the results of earlier steps in this pipeline."""

    settings: Settings
    storage: Storage
    tracker: Tracker
    results: dict[str, StepResult]

    def upstream_output(self, step: str, name: str) -> str:
        """The URI ``step`` wrote as ``name``: from this pipeline run, else from the step's newest finished run."""
        if step in self.results:
            return self.results[step].outputs[name]
        run = self.tracker.latest_step_run(step)
        if run is None:
            raise PipelineError(
                f"no finished '{step}' run in environment '{self.settings.environment}' to take '{name}' from: "
                f"run it first (python src/main.py --step {step} --environment {self.settings.environment})"
            )
        outputs = self.tracker.step_outputs(run)
        if name not in outputs:
            raise PipelineError(f"run {run.info.run_id} of '{step}' recorded no output '{name}': re-run '{step}'")
        logger.info("using %s from %s run %s", name, step, run.info.run_id)
        return outputs[name]

    def run_folder(self, dataset: str, run_id: str) -> str:
        """The folder a step's run writes into, ``<dataset folder>/<run id>``: runs never overwrite each other."""
        return join_uri(self.settings.data.uri(dataset), run_id)  # type: ignore[arg-type]


Runner = Callable[[StepContext, "Run"], tuple[dict[str, str], dict[str, float]]]


# -- runners -----------------------------------------------------------------------------------------------------
def run_make_data(ctx: StepContext, run: Run) -> tuple[dict[str, str], dict[str, float]]:
    import mlflow

    from src.data.make_dataset import clean_data

    settings = ctx.settings
    raw_uri = settings.data.uri("raw")
    raw = ctx.storage.read_table(raw_uri)
    mlflow.log_params({"raw_uri": raw_uri, **settings.make_data.model_dump()})
    try:
        clean, report = clean_data(raw, settings.dataset_schema, settings.make_data)
    except DataValidationError as exc:
        mlflow.log_text(exc.report or str(exc), "validation/report.txt")
        raise
    written = ctx.storage.write_table(clean, join_uri(ctx.run_folder("interim", run.info.run_id), "clean.parquet"))
    metrics = {k: float(v) for k, v in vars(report).items()}
    mlflow.log_metrics(metrics)
    return {"clean": written.uri}, metrics


def run_feat_data(ctx: StepContext, run: Run) -> tuple[dict[str, str], dict[str, float]]:
    import mlflow

    from src.features.build_features import LABEL, build_features, split_data

    settings = ctx.settings
    clean = ctx.storage.read_table(ctx.upstream_output("make_data", "clean"))
    mlflow.log_params(settings.feat_data.model_dump())
    features = build_features(clean, settings.dataset_schema)
    train, test = split_data(features, settings.feat_data)
    folder = ctx.run_folder("processed", run.info.run_id)
    train_file = ctx.storage.write_table(train, join_uri(folder, "train.parquet"))
    test_file = ctx.storage.write_table(test, join_uri(folder, "test.parquet"))
    metrics = {
        "train_rows": float(len(train)),
        "test_rows": float(len(test)),
        "positive_rate_train": float(train[LABEL].mean()),
        "positive_rate_test": float(test[LABEL].mean()),
    }
    mlflow.log_metrics(metrics)
    return {"train": train_file.uri, "test": test_file.uri}, metrics


def run_train_model(ctx: StepContext, run: Run) -> tuple[dict[str, str], dict[str, float]]:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from src.features.build_features import LABEL
    from src.models.train_model import feature_frame, train_model

    settings = ctx.settings
    params = settings.train_model
    schema = settings.dataset_schema
    train_uri = ctx.upstream_output("feat_data", "train")
    test_uri = ctx.upstream_output("feat_data", "test")
    train = ctx.storage.read_table(train_uri)
    test = ctx.storage.read_table(test_uri)
    mlflow.log_params(
        {
            "train_uri": train_uri,
            "test_uri": test_uri,
            "estimator": params.estimator,
            "seed": params.seed,
            **{f"hp.{k}": v for k, v in params.estimator_params.items()},
            "train_rows": len(train),
            "test_rows": len(test),
        }
    )
    model = train_model(train, params, schema)

    example = feature_frame(train, schema).head(5)
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
    evaluation = mlflow.models.evaluate(
        model=info.model_uri,
        data=feature_frame(test, schema).assign(**{LABEL: test[LABEL].to_numpy()}),
        targets=LABEL,
        model_type="classifier",
        evaluators=["default"],
        # SHAP explanations are slow and need the optional shap package; the metrics and plots are enough here.
        evaluator_config={"default": {"log_model_explainability": False}},
    )
    # Registered only once it has been evaluated: a failed evaluation leaves no new version behind.
    version = mlflow.register_model(info.model_uri, params.registered_model_name).version
    outputs = {
        "model": info.model_uri,
        "registered_model": f"models:/{params.registered_model_name}/{version}",
    }
    # mlflow.models.evaluate has logged these metrics (and its plots) on this run already.
    metrics = {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, int | float)}
    return outputs, metrics


def run_predict(ctx: StepContext, run: Run) -> tuple[dict[str, str], dict[str, float]]:
    import mlflow
    import mlflow.sklearn

    from src.models.predict_model import PREDICTION, predict_frame

    settings = ctx.settings
    model_uri = settings.predict.model_uri
    if not model_uri:
        if "train_model" in ctx.results:
            model_uri = ctx.results["train_model"].outputs["registered_model"]
        else:
            model_uri = newest_registered_version(settings.train_model.registered_model_name)
    model_ref = describe_model(model_uri)
    input_uri = settings.data.predict_input and settings.data.uri("predict_input")
    input_uri = input_uri or ctx.upstream_output("feat_data", "test")
    mlflow.log_params({"model_uri": model_uri, "model_version": model_ref.version, "input_uri": input_uri})

    try:
        model = mlflow.sklearn.load_model(model_uri)
        input_columns = mlflow.models.get_model_info(model_uri).signature.inputs.input_names()
    except Exception as exc:  # noqa: BLE001
        raise TrackingError(f"cannot load model '{model_uri}': {exc}") from exc
    batch = ctx.storage.read_table(input_uri)
    scored = predict_frame(model, batch, input_columns, model_ref, datetime.now(UTC))
    written = ctx.storage.write_table(
        scored, join_uri(ctx.run_folder("predictions", run.info.run_id), "predictions.parquet")
    )
    metrics = {"rows_scored": float(len(scored)), "positive_rate": float(scored[PREDICTION].mean())}
    mlflow.log_metrics(metrics)
    return {"predictions": written.uri}, metrics


RUNNERS: dict[str, Runner] = {
    "make_data": run_make_data,
    "feat_data": run_feat_data,
    "train_model": run_train_model,
    "predict": run_predict,
}


# -- models ------------------------------------------------------------------------------------------------------
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


def describe_model(model_uri: str):  # -> ModelRef
    """Resolve a model URI to its registered name, version and source run; a clear error if it does not exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from src.models.predict_model import ModelRef

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
                    return describe_model(newest_registered_version(name))
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


def _skops_types(model: Any) -> list[str]:
    """The non-default types skops would refuse to load in a model this pipeline itself just trained."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def _model_requirements() -> list[str]:
    """Pin the logged model's environment to what trained it (skips MLflow's slow requirement inference)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")]


# -- the pipeline --------------------------------------------------------------------------------------------------
def parse_steps(text: str) -> list[str]:
    """``all``, one step, or a comma list; returned in pipeline order."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or names == ["all"]:
        return list(STEPS)
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise PipelineError(f"unknown step(s) {unknown}: choose 'all' or from {', '.join(STEPS)} (comma-separated)")
    return [s for s in STEPS if s in names]


def preflight(settings: Settings, steps: list[str]) -> None:
    """Checks that need no data, made before any run starts: a bad setting fails in a second, not mid-pipeline."""
    if "train_model" in steps:
        from src.models.train_model import build_model

        build_model(settings.train_model, settings.dataset_schema)  # raises ConfigError on a bad hyperparameter


def run_pipeline(
    settings: Settings,
    steps: list[str],
    reporter: Reporter | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> PipelineResult:
    """Run ``steps`` in order, each as a nested run under one parent run.

    Raises:
        StepError: wrapping the first step's failure; its run and the parent run end FAILED.
    """
    reporter = reporter or _SilentReporter()
    preflight(settings, steps)
    storage = Storage(profile=settings.aws.profile, region=settings.aws.region)
    tracker = Tracker(settings)
    experiment_id = tracker.connect()
    started = time.perf_counter()
    # Named after their config keys, so they never clash with the parameters `mlflow run` logs on the same run.
    params = {
        "pipeline.environment": settings.environment,
        "pipeline.steps": ",".join(steps),
        "feat_data.test_size": settings.feat_data.test_size,
        "feat_data.seed": settings.feat_data.seed,
        "train_model.estimator": settings.train_model.estimator,
        "train_model.seed": settings.train_model.seed,
        **{f"train_model.hyperparameters.{k}": v for k, v in settings.train_model.estimator_params.items()},
        **(extra_params or {}),
    }
    ctx = StepContext(settings=settings, storage=storage, tracker=tracker, results={})
    with tracker.pipeline_run(params) as parent:
        result = PipelineResult(
            environment=settings.environment,
            tracking_uri=settings.tracking.uri,
            experiment_id=parent.info.experiment_id or experiment_id,
            parent_run_id=parent.info.run_id,
        )
        for index, step in enumerate(steps, start=1):
            reporter.step_started(step, index, len(steps))
            step_started = time.perf_counter()
            try:
                with tracker.step_run(step) as run:
                    outputs, metrics = RUNNERS[step](ctx, run)
                    tracker.log_outputs(outputs)
            except Exception as exc:
                reporter.step_failed(step, exc)
                raise StepError(step, exc) from exc
            step_result = StepResult(step, run.info.run_id, outputs, metrics, time.perf_counter() - step_started)
            tracker.log_parent_metrics(parent.info.run_id, step, metrics)
            ctx.results[step] = step_result
            result.steps.append(step_result)
            reporter.step_finished(step_result)
        result.seconds = time.perf_counter() - started
    return result

