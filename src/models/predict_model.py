"""predict: a model and a DataFrame in, the DataFrame with predictions out. No I/O, no tracking.

The model is the one holding the gate's alias (the champion) unless catalog.model.uri (--model-uri) names
another; the data is catalog.predict_input (--input), else the test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlsteps import partitions
from mlsteps.dask_scoring import predict_partitions
from mlsteps.engine import is_dask
from mlsteps.refs import LoadedModel
from mlsteps.scoring import PREDICTION, predict_frame
from mlsteps.step import Step, StepContext, StepOutput

if TYPE_CHECKING:
    import pandas as pd
    from mlsteps.schema import SchemaConfig


def prediction_counts(scored: pd.DataFrame, schema: SchemaConfig) -> dict[str, float]:
    """Sums over scored rows (a whole frame or one partition): rows, positive predictions, the predictions' sum."""
    counts = {"rows": float(len(scored))}
    if schema.task == "binary":
        counts["positives"] = float((scored[PREDICTION] == schema.positive_class).sum())
    elif schema.task == "regression":
        counts["sum"] = float(scored[PREDICTION].sum())
    return counts


def prediction_metrics(counts: list[dict[str, float]], schema: SchemaConfig) -> dict[str, float]:
    """rows_scored, and the positive rate (binary) or the mean prediction (regression), from the sums of parts."""
    total = {key: sum(c[key] for c in counts) for key in counts[0]} if counts else {"rows": 0.0}
    metrics = {"rows_scored": total["rows"]}
    if schema.task == "binary":
        metrics["positive_rate"] = total["positives"] / total["rows"] if total["rows"] else float("nan")
    elif schema.task == "regression":
        metrics["prediction_mean"] = total["sum"] / total["rows"] if total["rows"] else float("nan")
    return metrics


def run_predict(ctx: StepContext[Any], inputs: Mapping[str, Any]) -> StepOutput:
    loaded: LoadedModel = inputs["model"]
    schema = ctx.settings.dataset_schema
    data, scored_at = inputs["predict_input"], datetime.now(UTC)
    if is_dask(data):  # partitions scored on the workers, the model loaded once per worker; written as they come
        scored = predict_partitions(data, loaded, scored_at, schema.positive_class)
    else:
        scored = predict_frame(loaded.model, data, loaded.input_schema, loaded.ref, scored_at, schema.positive_class)
    lazy, metrics = None, {}
    if is_dask(scored):
        import dask

        # Counted as the partitions are written: the same tasks, one pass, never every scored row held at once.
        counts = [dask.delayed(prediction_counts)(part, schema) for part in partitions.parts(scored)]
        lazy = dask.delayed(prediction_metrics)(counts, schema)
    else:
        metrics = prediction_metrics([prediction_counts(scored, schema)], schema)
    return StepOutput(
        outputs={"predictions": scored},
        metrics=metrics,
        lazy_metrics=lazy,
        params={
            "model_uri": loaded.ref.uri,
            "model_version": loaded.ref.version,
            "input_uri": ctx.input_uris.get("predict_input", ""),
        },
    )


STEP = Step(
    name="predict",
    reads=("model", "predict_input"),
    writes=("predictions",),
    run=run_predict,
    fallbacks={"predict_input": "test"},
    headline=("rows_scored", "positive_rate", "prediction_mean"),
    options={
        "--model-uri": {
            "key": "catalog.model.uri",
            "help": "runs:/<id>/model, models:/<name>/<version> or models:/<name>@<alias>.",
        },
        "--input": {"key": "catalog.predict_input.path", "help": "dataset to score (path or s3:// URI)."},
        "--model-from-other-environment": {
            "key": "catalog.model.other_environment",
            "type": "flag",
            "help": "let --model-uri name another environment's model (a dev model scoring prd data).",
        },
    },
    resources={"cpu": "2", "memory": "8Gi"},
)
