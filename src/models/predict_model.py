"""predict: a model and a DataFrame in, the DataFrame with predictions out. No I/O, no tracking.

The model is the one holding the gate's alias (the champion) unless catalog.model.uri (--model-uri) names
another; the data is catalog.predict_input (--input), else the test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mlsteps.dask_scoring import predict_partitions, prediction_metrics
from mlsteps.engine import is_dask
from mlsteps.refs import LoadedModel
from mlsteps.scoring import predict_frame
from mlsteps.step import Step, StepContext, StepOutput


def run_predict(ctx: StepContext[Any], inputs: Mapping[str, Any]) -> StepOutput:
    loaded: LoadedModel = inputs["model"]
    schema = ctx.settings.dataset_schema
    data, scored_at = inputs["predict_input"], datetime.now(UTC)
    if is_dask(data):  # partitions scored on the workers (the model sent once to each), written as they come
        scored = predict_partitions(data, loaded, scored_at, schema.positive_class)
    else:
        scored = predict_frame(loaded.model, data, loaded.input_schema, loaded.ref, scored_at, schema.positive_class)
    # On dask, counted as the partitions are written (lazy): one pass, never every scored row held at once.
    metrics, lazy = prediction_metrics(scored, schema)
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
