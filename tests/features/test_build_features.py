"""feat_data transforms on tiny inline frames."""

from __future__ import annotations

import pandas as pd
import pytest
from mlsteps.errors import DataValidationError
from mlsteps.schema import SchemaConfig
from mlsteps.split_metrics import target_metrics

from src.data.make_dataset import clean_data
from src.features.build_features import FeatDataParams, build_features, split_data


@pytest.fixture
def clean(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> pd.DataFrame:
    return clean_data(dummy_raw, schema, make_params)[0]


def test_build_features_keeps_the_id_the_features_and_the_target_by_its_own_name(clean, schema) -> None:
    features = build_features(clean, schema)

    assert list(features.columns) == ["id", "age", "visits", "plan", "outcome"]
    assert features["outcome"].tolist() == ["yes", "no"] * 6


def test_a_binary_target_needs_both_labels_in_the_data(clean, schema) -> None:
    with pytest.raises(DataValidationError) as caught:
        build_features(clean.assign(outcome="yes"), schema)

    assert "holds one class only (['yes']" in str(caught.value)


def test_split_is_stratified_and_reproducible(clean: pd.DataFrame, schema: SchemaConfig) -> None:
    features = build_features(clean, schema)
    params = FeatDataParams(test_size=0.5, seed=3, stratify=True)

    train, test, metrics = split_data(features, params, schema)
    train_again, _, _ = split_data(features, params, schema)

    assert len(train) == len(test) == 6
    assert target_metrics(train, schema, "train") == {"positive_rate_train": 0.5}
    assert target_metrics(test, schema, "test") == {"positive_rate_test": 0.5}
    assert metrics == {"train_rows": 6, "test_rows": 6, "positive_rate_train": 0.5, "positive_rate_test": 0.5}
    assert set(train["id"]).isdisjoint(test["id"])
    pd.testing.assert_frame_equal(train, train_again)


def test_a_row_falls_on_the_same_side_whatever_the_order_of_the_rows_and_the_other_rows(
    clean: pd.DataFrame, schema: SchemaConfig
) -> None:
    features = build_features(clean, schema)
    params = FeatDataParams(test_size=0.5, seed=3, stratify=False)
    _, test, _ = split_data(features, params, schema)

    _, shuffled_test, _ = split_data(features.sample(frac=1, random_state=1), params, schema)
    _, other_seed, _ = split_data(features, FeatDataParams(test_size=0.5, seed=4, stratify=False), schema)

    assert set(shuffled_test["id"]) == set(test["id"])
    assert set(other_seed["id"]) != set(test["id"])  # the seed decides which rows


def test_a_regression_target_is_split_without_stratifying(clean: pd.DataFrame, schema: SchemaConfig) -> None:
    regression = schema.model_copy(update={"task": "regression", "labels": None, "positive_class": None})
    numeric = clean.assign(outcome=[float(i) for i in range(len(clean))])

    train, test, metrics = split_data(build_features(numeric, regression), FeatDataParams(test_size=0.25), regression)

    assert (len(train), len(test)) == (9, 3)
    assert target_metrics(test, regression, "test") == {"target_mean_test": test["outcome"].mean()}
    assert metrics["target_mean_test"] == test["outcome"].mean()


@pytest.mark.parametrize("rows", [0, 2, 3])
def test_too_few_rows_to_split(clean: pd.DataFrame, schema: SchemaConfig, rows: int) -> None:
    features = build_features(clean, schema).head(rows) if rows else build_features(clean, schema).iloc[0:0]

    with pytest.raises(DataValidationError) as caught:
        split_data(features, FeatDataParams(test_size=0.2), schema)

    assert "too few rows to split" in str(caught.value)
