"""predict transforms, with a stub classifier (the real model is exercised by the pipeline tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from mlsteps.errors import DataValidationError
from mlsteps.refs import ModelRef
from mlsteps.scoring import predict_frame

SCHEMA = {"x": "double"}
REF = ModelRef(uri="models:/m/3", name="m", version="3", run_id="abc")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Threshold:
    """Predicts "high" when x > 0.5; its probability is x."""

    classes_ = np.array(["low", "high"])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.where(X["x"] > 0.5, "high", "low")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([1 - X["x"], X["x"]])


def test_predictions_sit_next_to_the_input_columns() -> None:
    batch = pd.DataFrame({"id": [1, 2], "x": [0.2, 0.9]})

    scored = predict_frame(Threshold(), batch, SCHEMA, REF, WHEN, positive_class="high")

    assert list(scored.columns[:2]) == ["id", "x"]
    assert scored["prediction"].tolist() == ["low", "high"]
    assert scored["probability"].tolist() == [0.2, 0.9]
    assert scored["probability_low"].tolist() == pytest.approx([0.8, 0.1])
    assert scored["probability_high"].tolist() == [0.2, 0.9]
    assert set(scored["model_version"]) == {"3"}
    assert set(scored["model_name"]) == {"m"}
    assert set(scored["model_run_id"]) == {"abc"}
    assert scored["scored_at"].iloc[0] == pd.Timestamp(WHEN)
    assert list(batch.columns) == ["id", "x"]


def test_probabilities_are_float64_whatever_the_model_computes_in() -> None:
    class Narrow(Threshold):
        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            return super().predict_proba(X).astype("float32")

    scored = predict_frame(Narrow(), pd.DataFrame({"x": [0.2, 0.9]}), SCHEMA, REF, WHEN, positive_class="high")

    assert {scored[c].dtype for c in ("probability", "probability_low", "probability_high")} == {np.dtype("float64")}


def test_missing_model_columns_are_named() -> None:
    with pytest.raises(DataValidationError) as caught:
        predict_frame(Threshold(), pd.DataFrame({"id": [1]}), {"x": "double", "y": "double"}, REF, WHEN)

    assert "column 'x' is missing; column 'y' is missing" in str(caught.value)


def test_empty_batch_is_refused() -> None:
    with pytest.raises(DataValidationError) as caught:
        predict_frame(Threshold(), pd.DataFrame({"x": []}), SCHEMA, REF, WHEN)

    assert "no rows" in str(caught.value)


def test_a_value_of_the_wrong_type_is_named_and_nothing_is_scored() -> None:
    batch = pd.DataFrame({"id": [1, 2, 3], "x": ["0.2", "high", "0.9"]})

    with pytest.raises(DataValidationError) as caught:
        predict_frame(Threshold(), batch, SCHEMA, REF, WHEN)

    assert "row 2, column 'x': expected a number (double), got 'high'" in str(caught.value)


def test_numbers_read_as_text_are_scored_as_numbers() -> None:
    scored = predict_frame(Threshold(), pd.DataFrame({"x": ["0.2", "0.9"]}), SCHEMA, REF, WHEN)

    assert scored["prediction"].tolist() == ["low", "high"]
    assert scored["x"].dtype == "float64"
