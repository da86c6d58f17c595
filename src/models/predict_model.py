"""predict: a model and a DataFrame in, the DataFrame with predictions out. No I/O, no tracking.

The model is the one holding the gate's alias (the champion) unless catalog.model.uri (--model-uri) names
another; the data is catalog.predict_input (--input), else the test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from src.lib.refs import LoadedModel, ModelRef
from src.lib.step import Step, StepContext, StepOutput
from src.models.input_checks import Schema, check_frame

PREDICTION = "prediction"
PROBABILITY = "probability"


class Classifier(Protocol):
    def predict(self, X: Any) -> Any: ...


def predict_frame(
    model: Classifier,
    batch: pd.DataFrame,
    input_schema: Schema,
    model_ref: ModelRef,
    scored_at: datetime,
    positive_class: str | None = None,
) -> pd.DataFrame:
    """Score ``batch`` and return it with the prediction (in the labels of the data), the probability of each
    class for a classifier (``probability_<label>``; with ``positive_class``, its own as ``probability`` too),
    and the model's identity appended. Every input column is kept, the target's own name included.

    The batch is checked against the model's input schema first (src/models/input_checks.py): a missing
    column or a value of the wrong type stops it with the row and column named; columns the model does not
    take (an id, say) are kept next to the predictions."""
    batch = check_frame(batch, input_schema)
    X = batch.loc[:, list(input_schema)]
    predictions = model.predict(X)
    extra: dict[str, Any] = {PREDICTION: predictions}
    if hasattr(model, "predict_proba"):
        # float64 whatever the model's matrix type (train_model.matrix_dtype): one column type for every model.
        probabilities = np.asarray(model.predict_proba(X), dtype="float64")
        classes = [str(c) for c in getattr(model, "classes_", range(probabilities.shape[1]))]
        extra |= {f"{PROBABILITY}_{c}": probabilities[:, i] for i, c in enumerate(classes)}
        if positive_class in classes:
            extra[PROBABILITY] = probabilities[:, classes.index(positive_class)]
    extra.update(
        model_uri=model_ref.uri,
        model_name=model_ref.name,
        model_version=model_ref.version,
        model_run_id=model_ref.run_id,
        scored_at=pd.Timestamp(scored_at),
    )
    return batch.assign(**extra)


def run_predict(ctx: StepContext[Any], inputs: Mapping[str, Any]) -> StepOutput:
    loaded: LoadedModel = inputs["model"]
    schema = ctx.settings.dataset_schema
    scored = predict_frame(
        loaded.model, inputs["predict_input"], loaded.input_schema, loaded.ref, datetime.now(UTC), schema.positive_class
    )
    metrics = {"rows_scored": float(len(scored))}
    if schema.task == "binary":
        metrics["positive_rate"] = float((scored[PREDICTION] == schema.positive_class).mean())
    elif schema.task == "regression":
        metrics["prediction_mean"] = float(scored[PREDICTION].mean())
    return StepOutput(
        outputs={"predictions": scored},
        metrics=metrics,
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
    resources={"cpu": "2", "memory": "8Gi"},
)
