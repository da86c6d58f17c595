"""train_model transforms on tiny inline frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.data.make_dataset import clean_data
from src.features.build_features import LABEL, build_features
from src.lib.config import SchemaConfig, TrainModelParams
from src.lib.errors import ConfigError, DataValidationError
from src.models.train_model import build_model, feature_frame, train_model


@pytest.fixture
def train(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> pd.DataFrame:
    return build_features(clean_data(dummy_raw, schema, make_params)[0], schema)


def _params(estimator: str = "logistic_regression", **hyperparameters) -> TrainModelParams:
    return TrainModelParams(
        estimator=estimator, hyperparameters={estimator: hyperparameters}, seed=1, registered_model_name="m"
    )


@pytest.mark.parametrize(
    ("estimator", "hyperparameters"),
    [
        ("logistic_regression", {"C": 0.5, "max_iter": 500}),
        ("random_forest", {"n_estimators": 10}),
        ("gradient_boosting", {"max_iter": 10, "min_samples_leaf": 2}),
    ],
)
def test_each_estimator_fits_raw_columns(train, schema, estimator: str, hyperparameters: dict) -> None:
    model = train_model(train, _params(estimator, **hyperparameters), schema)

    probabilities = model.predict_proba(feature_frame(train, schema))
    assert probabilities.shape == (12, 2)
    assert set(model.predict(feature_frame(train, schema))) <= {0, 1}


def test_model_handles_missing_values_and_unseen_categories(train, schema) -> None:
    model = train_model(train, _params(), schema)
    batch = feature_frame(train, schema).head(2).copy()
    batch.loc[0, "age"] = np.nan
    batch.loc[1, "plan"] = "enterprise"

    assert len(model.predict(batch)) == 2


def test_same_seed_same_model(train, schema) -> None:
    first = train_model(train, _params("random_forest", n_estimators=5), schema)
    second = train_model(train, _params("random_forest", n_estimators=5), schema)

    X = feature_frame(train, schema)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_seed_is_passed_to_the_estimator(schema) -> None:
    model = build_model(_params("random_forest"), schema)

    assert model.named_steps["estimator"].random_state == 1


def test_unknown_hyperparameter_names_the_valid_ones(schema) -> None:
    with pytest.raises(ConfigError) as caught:
        build_model(_params(Cee=1.0), schema)

    message = str(caught.value)
    assert "['Cee']" in message
    assert "LogisticRegression" in message
    assert "max_iter" in message


def test_invalid_hyperparameter_value_is_a_config_error(train, schema) -> None:
    with pytest.raises((ConfigError, DataValidationError)) as caught:
        train_model(train, _params(C=-1.0), schema)

    assert "C" in str(caught.value)


def test_training_data_without_label_is_rejected(train, schema) -> None:
    with pytest.raises(DataValidationError) as caught:
        train_model(train.drop(columns=[LABEL]), _params(), schema)

    assert "lacks columns ['label']" in str(caught.value)


def test_feature_frame_keeps_only_features_in_schema_order(train, schema) -> None:
    X = feature_frame(train[["plan", LABEL, "visits", "id", "age"]], schema)

    assert list(X.columns) == ["age", "visits", "plan"]
    assert X["visits"].dtype == "float64"


def test_feature_frame_turns_nullable_ints_and_bools_into_floats(schema) -> None:
    df = pd.DataFrame({"age": [1.0, None], "visits": pd.array([3, None], dtype="Int64"), "plan": ["pro", None]})

    X = feature_frame(df.astype({"plan": "category"}), schema)

    assert X["visits"].dtype == "float64"
    assert np.isnan(X.loc[1, "visits"])
    assert X["plan"].tolist() == ["pro", None]
