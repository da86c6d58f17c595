"""predict transforms: a fitted model and a DataFrame in, the DataFrame with predictions out. No I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from src.lib.errors import DataValidationError
from src.lib.refs import ModelRef

PREDICTION = "prediction"
PROBABILITY = "probability"


class Classifier(Protocol):
    def predict(self, X: Any) -> Any: ...


def predict_frame(
    model: Classifier,
    batch: pd.DataFrame,
    input_columns: list[str],
    model_ref: ModelRef,
    scored_at: datetime,
) -> pd.DataFrame:
    """Score ``batch`` and return it with prediction, probability and model columns appended."""
    missing = [c for c in input_columns if c not in batch.columns]
    if missing:
        raise DataValidationError(
            f"the input to score lacks {len(missing)} column(s) the model needs: {missing}; "
            "score data with the same columns the model was trained on"
        )
    if batch.empty:
        raise DataValidationError("the input to score has no rows")
    X = batch.loc[:, input_columns]
    predictions = model.predict(X)
    extra: dict[str, Any] = {PREDICTION: predictions}
    if hasattr(model, "predict_proba"):
        extra[PROBABILITY] = model.predict_proba(X)[:, 1]
    extra.update(
        model_uri=model_ref.uri,
        model_name=model_ref.name,
        model_version=model_ref.version,
        model_run_id=model_ref.run_id,
        scored_at=pd.Timestamp(scored_at),
    )
    return batch.assign(**extra)
