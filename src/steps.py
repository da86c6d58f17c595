"""The four steps: for each, what it reads (with digests, for the cache), its parameters, and its runner.

A runner reads its inputs through ``src.lib.storage``, calls its step's pure transforms, writes its outputs into a
folder of its own run, logs through ``src.lib.tracking``, and returns what it wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from src.lib.config import Settings, join_uri
from src.lib.errors import DataValidationError, PipelineError
from src.lib.storage import Storage
from src.lib.tracking import SNAPSHOT_MANIFEST, Tracker, evaluation_metrics

if TYPE_CHECKING:
    from mlflow.entities import Run

# Code common to every step: a change here changes every step's cache key.
COMMON_CODE = ("src/steps.py", "src/lib/storage.py", "src/lib/config.py")


@dataclass(frozen=True)
class Input:
    """A dataset or model a step reads, and a digest of its content."""

    uri: str
    digest: str


@dataclass
class StepOutput:
    outputs: dict[str, str]
    digests: dict[str, str]
    metrics: dict[str, float]
    # One-line facts for the summary (the gate's decision, say).
    notes: list[str] = field(default_factory=list)


@dataclass
class StepContext:
    """What a step gets: config, storage, tracking, and the outputs of the steps before it in this pipeline."""

    settings: Settings
    storage: Storage
    tracker: Tracker
    # Outputs and digests of steps already done in this pipeline run: {step: {name: Input}}.
    done: dict[str, dict[str, Input]] = field(default_factory=dict)

    def upstream(self, step: str, name: str) -> Input:
        """What ``step`` wrote as ``name``: from this pipeline run, else from the step's newest finished run."""
        if step in self.done:
            return self.done[step][name]
        run = self.tracker.latest_step_run(step)
        if run is None:
            env = self.settings.environment
            raise PipelineError(
                f"no finished '{step}' run in environment '{env}' to take '{name}' from: "
                f"run it first (python src/main.py --step {step} --environment {env})"
            )
        outputs, digests = self.tracker.step_outputs(run), self.tracker.step_digests(run)
        if name not in outputs:
            raise PipelineError(f"run {run.info.run_id} of '{step}' recorded no output '{name}': re-run '{step}'")
        return Input(outputs[name], digests.get(name, f"run:{run.info.run_id}"))

    def run_folder(self, dataset: str, run_id: str) -> str:
        """The folder a step's run writes into, ``<dataset folder>/<run id>``: runs never overwrite each other."""
        return join_uri(self.settings.data.uri(dataset), run_id)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Step:
    name: str
    # Source files (or folders) whose change must re-run the step.
    code: tuple[str, ...]
    # Folders the step writes into (checked writable before anything runs).
    writes: tuple[str, ...]
    # Steps whose outputs it reads when they ran in the same pipeline.
    reads_from: frozenset[str]
    inputs: Callable[[StepContext], dict[str, Input]]
    params: Callable[[Settings], dict[str, Any]]
    run: Callable[[StepContext, Run, dict[str, Input]], StepOutput]


# -- make_data -----------------------------------------------------------------------------------------------------
def _make_data_inputs(ctx: StepContext) -> dict[str, Input]:
    uri = ctx.settings.data.uri("raw")
    return {"raw": Input(uri, ctx.storage.fingerprint(uri))}


def _make_data_params(settings: Settings) -> dict[str, Any]:
    return {"schema": settings.dataset_schema.model_dump(mode="json"), **settings.make_data.model_dump()}


def run_make_data(ctx: StepContext, run: Run, inputs: dict[str, Input]) -> StepOutput:
    from src.data.make_dataset import clean_data

    settings = ctx.settings
    raw = ctx.storage.read_table(inputs["raw"].uri)
    ctx.tracker.log_params({"raw_uri": inputs["raw"].uri, **settings.make_data.model_dump()})
    try:
        clean, report = clean_data(raw, settings.dataset_schema, settings.make_data)
    except DataValidationError as exc:
        ctx.tracker.log_text(exc.report or str(exc), "validation/report.txt")
        raise
    written = ctx.storage.write_table(clean, join_uri(ctx.run_folder("interim", run.info.run_id), "clean.parquet"))
    metrics = {k: float(v) for k, v in vars(report).items()}
    ctx.tracker.log_metrics(metrics)
    return StepOutput({"clean": written.uri}, {"clean": written.sha256}, metrics)


# -- feat_data -----------------------------------------------------------------------------------------------------
def _feat_data_inputs(ctx: StepContext) -> dict[str, Input]:
    return {"clean": ctx.upstream("make_data", "clean")}


def _feat_data_params(settings: Settings) -> dict[str, Any]:
    schema = settings.dataset_schema
    return {
        "id": schema.id_column, "target": schema.target, "positive_class": schema.positive_class,
        "features": schema.features, **settings.feat_data.model_dump(),
    }


def run_feat_data(ctx: StepContext, run: Run, inputs: dict[str, Input]) -> StepOutput:
    from src.features.build_features import LABEL, build_features, split_data

    settings = ctx.settings
    clean = ctx.storage.read_table(inputs["clean"].uri)
    ctx.tracker.log_params(settings.feat_data.model_dump())
    train, test = split_data(build_features(clean, settings.dataset_schema), settings.feat_data)
    folder = ctx.run_folder("processed", run.info.run_id)
    train_file = ctx.storage.write_table(train, join_uri(folder, "train.parquet"))
    test_file = ctx.storage.write_table(test, join_uri(folder, "test.parquet"))
    metrics = {
        "train_rows": float(len(train)),
        "test_rows": float(len(test)),
        "positive_rate_train": float(train[LABEL].mean()),
        "positive_rate_test": float(test[LABEL].mean()),
    }
    ctx.tracker.log_metrics(metrics)
    return StepOutput(
        {"train": train_file.uri, "test": test_file.uri},
        {"train": train_file.sha256, "test": test_file.sha256},
        metrics,
    )


# -- train_model ---------------------------------------------------------------------------------------------------
def _train_model_inputs(ctx: StepContext) -> dict[str, Input]:
    from_run = ctx.settings.train_model.from_run
    if from_run:
        files = ctx.tracker.load_snapshot_manifest(from_run)["files"]
        return {name: Input(files[name]["uri"], files[name]["sha256"]) for name in ("train", "test")}
    return {"train": ctx.upstream("feat_data", "train"), "test": ctx.upstream("feat_data", "test")}


def _train_model_params(settings: Settings) -> dict[str, Any]:
    p = settings.train_model
    return {
        "estimator": p.estimator, "hyperparameters": p.estimator_params, "seed": p.seed,
        "registered_model_name": p.registered_model_name,
        "features": settings.dataset_schema.model_dump(mode="json")["columns"],
        "gate": settings.gate.model_dump(),
    }


def _read_exact(ctx: StepContext, name: str, source: Input) -> tuple[bytes, Any]:
    """The bytes of a training input and the frame parsed from those very bytes (what is trained on is what
    is snapshotted). Bytes that no longer match the digest recorded when they were written are refused."""
    import io

    import pandas as pd

    data = ctx.storage.read_bytes(source.uri)
    expected = source.digest.removeprefix("sha256:")
    if len(expected) == 64 and hashlib.sha256(data).hexdigest() != expected:
        raise DataValidationError(
            f"the {name} data at '{source.uri}' changed after it was written (its SHA-256 no longer matches "
            f"{expected}): re-run feat_data, or retrain from an intact snapshot"
        )
    return data, pd.read_parquet(io.BytesIO(data))


def run_train_model(ctx: StepContext, run: Run, inputs: dict[str, Input]) -> StepOutput:
    from src.features.build_features import LABEL
    from src.models.train_model import feature_frame, train_model

    settings = ctx.settings
    params = settings.train_model
    schema = settings.dataset_schema
    (train_bytes, train), (test_bytes, test) = (_read_exact(ctx, n, inputs[n]) for n in ("train", "test"))

    # The exact bytes trained and evaluated on, stored once per content in the environment's storage.
    folder = settings.data.uri("snapshots")
    snapshots = {name: ctx.storage.snapshot(data, folder) for name, data in (("train", train_bytes),
                                                                              ("test", test_bytes))}
    frames = {"train": train, "test": test}
    manifest = {
        "run_id": run.info.run_id,
        "from_run": params.from_run,
        "files": {
            name: {
                "uri": snap.uri,
                "sha256": snap.sha256,
                "bytes": snap.size,
                "rows": len(frames[name]),
                "columns": len(frames[name].columns),
                "schema": {c: str(t) for c, t in frames[name].dtypes.items()},
                "source": inputs[name].uri,
            }
            for name, snap in snapshots.items()
        },
    }
    ctx.tracker.log_dict(manifest, SNAPSHOT_MANIFEST)
    ctx.tracker.set_tags({f"pipeline.data.{name}.sha256": snap.sha256 for name, snap in snapshots.items()})
    ctx.tracker.log_dataset(
        ctx.tracker.dataset(train, "train", snapshots["train"].uri, snapshots["train"].sha256, LABEL), "training"
    )

    ctx.tracker.log_params(
        {
            "train_uri": snapshots["train"].uri,
            "test_uri": snapshots["test"].uri,
            "from_run": params.from_run or "",
            "estimator": params.estimator,
            "seed": params.seed,
            **{f"hp.{k}": v for k, v in params.estimator_params.items()},
            "train_rows": len(train),
            "test_rows": len(test),
        }
    )
    model = train_model(train, params, schema)
    # The holdout as the model sees it (feature columns + label), recorded as the "evaluation" input by evaluate.
    evaluation_data = ctx.tracker.dataset(
        feature_frame(test, schema).assign(**{LABEL: test[LABEL].to_numpy()}),
        "test", snapshots["test"].uri, snapshots["test"].sha256, LABEL,
    )
    model_uri, version_uri, evaluation = ctx.tracker.log_and_register_model(
        model,
        example=feature_frame(train, schema).head(5),
        registered_name=params.registered_model_name,
        evaluation_data=evaluation_data,
    )
    decision = ctx.tracker.gate_candidate(
        params.registered_model_name, version_uri.rsplit("/", 1)[1], evaluation, evaluation_data, settings.gate,
    )
    # Digests of a model: its URI (a logged model and a registered version never change).
    outputs = {"model": model_uri, "registered_model": version_uri}
    return StepOutput(outputs, dict(outputs), evaluation_metrics(evaluation), notes=[decision.summary()])


# -- predict -------------------------------------------------------------------------------------------------------
def _predict_inputs(ctx: StepContext) -> dict[str, Input]:
    settings = ctx.settings
    model_uri = settings.predict.model_uri or champion_uri(settings, ctx.tracker)
    # An alias or "latest" is resolved now: the key changes when the alias moves.
    model = Input(model_uri, ctx.tracker.describe_model(model_uri).identity)
    if settings.data.predict_input:
        uri = settings.data.uri("predict_input")
        batch = Input(uri, ctx.storage.fingerprint(uri))
    else:
        batch = ctx.upstream("feat_data", "test")
    return {"model": model, "batch": batch}


def champion_uri(settings: Settings, tracker: Tracker) -> str:
    """``models:/<name>@<alias>``, or an error that says why no model holds the alias yet."""
    name, alias = settings.train_model.registered_model_name, settings.gate.alias
    if tracker.alias_version(name, alias) is None:
        raise PipelineError(
            f"no version of '{name}' holds the alias @{alias} yet, so there is no model to score with: every "
            "candidate so far failed the quality gate (its train_model run says why, tag gate.reasons), or none "
            f"was trained. Promote one by hand (python src/main.py promote --version N) or pass --model-uri"
        )
    return f"models:/{name}@{alias}"


def _predict_params(settings: Settings) -> dict[str, Any]:
    return {}


def run_predict(ctx: StepContext, run: Run, inputs: dict[str, Input]) -> StepOutput:
    from src.models.predict_model import PREDICTION, predict_frame

    model_ref = ctx.tracker.describe_model(inputs["model"].uri)
    ctx.tracker.log_params(
        {"model_uri": model_ref.uri, "model_version": model_ref.version, "input_uri": inputs["batch"].uri}
    )
    model, input_columns = ctx.tracker.load_model(model_ref.uri)
    batch = ctx.storage.read_table(inputs["batch"].uri)
    scored = predict_frame(model, batch, input_columns, model_ref, datetime.now(UTC))
    written = ctx.storage.write_table(
        scored, join_uri(ctx.run_folder("predictions", run.info.run_id), "predictions.parquet")
    )
    metrics = {"rows_scored": float(len(scored)), "positive_rate": float(scored[PREDICTION].mean())}
    ctx.tracker.log_metrics(metrics)
    return StepOutput({"predictions": written.uri}, {"predictions": written.sha256}, metrics)


STEPS: dict[str, Step] = {
    "make_data": Step(
        "make_data", ("src/data",), ("interim",), frozenset(), _make_data_inputs, _make_data_params, run_make_data
    ),
    "feat_data": Step(
        "feat_data", ("src/features",), ("processed",), frozenset({"make_data"}), _feat_data_inputs,
        _feat_data_params, run_feat_data,
    ),
    "train_model": Step(
        "train_model",
        ("src/models/train_model.py", "src/features/build_features.py", "src/lib/tracking.py"),
        ("snapshots",),
        frozenset({"feat_data"}),
        _train_model_inputs,
        _train_model_params,
        run_train_model,
    ),
    "predict": Step(
        "predict",
        ("src/models/predict_model.py", "src/lib/refs.py"),
        ("predictions",),
        frozenset({"feat_data", "train_model"}),
        _predict_inputs,
        _predict_params,
        run_predict,
    ),
}
