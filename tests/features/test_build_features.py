"""feat_data transforms on tiny inline frames."""

from __future__ import annotations

import pandas as pd
import pytest

from src.data.make_dataset import clean_data
from src.features.build_features import LABEL, build_features, split_data
from src.features.build_features import FeatDataParams
from src.lib.schema import SchemaConfig
from src.lib.errors import DataValidationError


@pytest.fixture
def clean(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> pd.DataFrame:
    return clean_data(dummy_raw, schema, make_params)[0]


def test_build_features_encodes_the_positive_class(clean: pd.DataFrame, schema: SchemaConfig) -> None:
    features = build_features(clean, schema)

    assert list(features.columns) == ["id", "age", "visits", "plan", LABEL]
    assert features[LABEL].tolist() == [1, 0] * 6
    assert "outcome" not in features.columns


def test_numeric_positive_class_matches_numeric_targets(clean: pd.DataFrame, schema: SchemaConfig) -> None:
    numeric = clean.assign(outcome=clean["outcome"].map({"yes": 1, "no": 0}))
    numeric_schema = schema.model_copy(update={"positive_class": 1})

    assert build_features(numeric, numeric_schema)[LABEL].sum() == 6


@pytest.mark.parametrize("positive_class", ["YES", "maybe"])
def test_one_class_label_is_an_error(clean: pd.DataFrame, schema: SchemaConfig, positive_class: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        build_features(clean, schema.model_copy(update={"positive_class": positive_class}))

    assert "one class only" in str(caught.value)
    assert "positive_class" in str(caught.value)


def test_split_is_stratified_and_reproducible(clean: pd.DataFrame, schema: SchemaConfig) -> None:
    features = build_features(clean, schema)
    params = FeatDataParams(test_size=0.5, seed=3, stratify=True)

    train, test = split_data(features, params)
    train_again, _ = split_data(features, params)

    assert len(train) == len(test) == 6
    assert train[LABEL].mean() == test[LABEL].mean() == 0.5
    assert set(train["id"]).isdisjoint(test["id"])
    pd.testing.assert_frame_equal(train, train_again)


@pytest.mark.parametrize("rows", [0, 2, 3])
def test_too_few_rows_to_split(clean: pd.DataFrame, schema: SchemaConfig, rows: int) -> None:
    features = build_features(clean, schema).head(rows) if rows else build_features(clean, schema).iloc[0:0]

    with pytest.raises(DataValidationError) as caught:
        split_data(features, FeatDataParams(test_size=0.2))

    assert "too few rows to split" in str(caught.value)
