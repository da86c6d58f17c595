"""Scoring a frame with a loaded model: the one code path of the predict step and the S3 batch handler."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlsteps.input_checks import Schema, check_frame
from mlsteps.refs import ModelRef

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

    The batch is checked against the model's input schema first (mlsteps.input_checks): a missing
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
    return with_predictions(batch, extra, model_ref, scored_at)


def with_predictions(
    batch: pd.DataFrame, outputs: dict[str, Any], model_ref: ModelRef, scored_at: datetime
) -> pd.DataFrame:
    """``batch`` (checked) with its ``outputs`` (the prediction, probabilities) and the model's identity appended:
    the one layout of scored rows, from ``predict`` and from ``invoke`` (an endpoint's answers)."""
    return batch.assign(
        **outputs,
        model_uri=model_ref.uri,
        model_name=model_ref.name,
        model_version=model_ref.version,
        model_run_id=model_ref.run_id,
        scored_at=pd.Timestamp(scored_at),
    )
