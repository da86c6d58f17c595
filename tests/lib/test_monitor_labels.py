"""Labels joined to logged predictions, and the live metrics computed on them."""

from __future__ import annotations

import pandas as pd
import pytest
from mlsteps.errors import DataValidationError, UsageError
from mlsteps.monitor.labels import join_labels, live_metrics, worse_by
from mlsteps.schema import SchemaConfig

SCHEMA = SchemaConfig(
    id_column="customer_id",
    target="churned",
    task="binary",
    labels=["no", "yes"],
    positive_class="yes",
    columns={"x": {"type": "float"}},
)
LOGGED = pd.DataFrame(
    {
        "request_id": ["a", "a", "b", "c"],
        "row": [1, 2, 1, 1],
        "prediction": ["yes", "no", "yes", "no"],
        "id": ["7", "8", "9", "10"],
    }
)


def test_labels_keyed_by_request_and_row_join_only_the_rows_they_name() -> None:
    labels = pd.DataFrame({"request_id": ["a", "b", "zzz"], "row": [2, 1, 1], "churned": ["no", "no", "yes"]})
    joined = join_labels(LOGGED, labels, SCHEMA, "labels.csv")
    assert joined.to_dict("list") == {"prediction": ["no", "yes"], "actual": ["no", "no"]}


def test_labels_keyed_by_the_id_column() -> None:
    labels = pd.DataFrame({"customer_id": [10, 7], "churned": ["yes", "yes"]})
    joined = join_labels(LOGGED, labels, SCHEMA, "labels.csv")
    assert sorted(joined.itertuples(index=False, name=None)) == [("no", "yes"), ("yes", "yes")]


@pytest.mark.parametrize(
    ("labels", "logged", "message"),
    [
        (pd.DataFrame({"request_id": ["a"]}), LOGGED, "no column 'churned' (schema.target)"),
        (pd.DataFrame({"churned": ["no"]}), LOGGED, "no key column: add request_id (and row) or 'customer_id'"),
        (pd.DataFrame({"request_id": ["a"], "churned": ["no"]}), LOGGED, "add a 'row' column"),
        (
            pd.DataFrame({"customer_id": [7], "churned": ["no"]}),
            LOGGED.drop(columns="id"),
            "send 'customer_id' with each row",
        ),
    ],
)
def test_labels_that_cannot_be_joined_say_why(labels: pd.DataFrame, logged: pd.DataFrame, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        join_labels(logged, labels, SCHEMA, "labels.csv")
    assert message in str(raised.value)
    assert "labels.csv" in str(raised.value)


def test_a_row_labelled_twice_is_refused() -> None:
    labels = pd.DataFrame({"request_id": ["b", "b"], "row": [1, 1], "churned": ["no", "yes"]})
    with pytest.raises(DataValidationError, match="more than once"):
        join_labels(LOGGED, labels, SCHEMA, "labels.csv")


def test_live_metrics_of_a_classifier_and_a_regressor() -> None:
    got = live_metrics(pd.Series(["yes", "no", "yes", "no"]), pd.Series(["yes", "yes", "no", "no"]), SCHEMA)
    assert got == {"accuracy_score": 0.5, "precision_score": 0.5, "recall_score": 0.5, "f1_score": 0.5}
    regression = SchemaConfig(target="y", task="regression", columns={"x": {"type": "float"}})
    got = live_metrics(pd.Series([1.0, 2.0, 3.0]), pd.Series([1.0, 2.0, 5.0]), regression)
    assert got["mean_absolute_error"] == pytest.approx(2 / 3)
    assert got["root_mean_squared_error"] == pytest.approx((4 / 3) ** 0.5)
    assert got["r2_score"] == pytest.approx(1 - 4 / 2)


def test_worse_by_is_a_share_of_the_holdout_value_either_way() -> None:
    assert worse_by(0.8, 1.0, more_is_better=True) == pytest.approx(0.2)
    assert worse_by(1.2, 1.0, more_is_better=False) == pytest.approx(0.2)
    assert worse_by(1.1, 1.0, more_is_better=True) < 0


def test_a_label_outside_the_contract_is_refused_not_counted_as_a_miss() -> None:
    labels = pd.DataFrame({"request_id": ["b", "c"], "row": [1, 1], "churned": ["yes", "maybe"]})
    with pytest.raises(DataValidationError) as raised:
        join_labels(LOGGED, labels, SCHEMA, "labels.csv")
    assert "'maybe'" in str(raised.value) and "schema.labels" in str(raised.value)
