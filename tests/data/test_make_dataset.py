"""make_data transforms on tiny inline frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlsteps.errors import DataValidationError
from mlsteps.schema import SchemaConfig
from mlsteps.validation import validate_raw

from src.data.make_dataset import MakeDataParams, clean_data


def test_clean_keeps_good_rows_and_types(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    clean, report = clean_data(dummy_raw, schema, make_params)

    assert list(clean.columns) == ["id", "age", "visits", "plan", "outcome"]
    assert len(clean) == 12
    assert str(clean["visits"].dtype) == "Int64"
    assert str(clean["plan"].dtype) == "category"
    assert report.clean_rows == 12
    assert report.dropped_duplicates == 0


def test_clean_does_not_mutate_its_input(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    before = dummy_raw.copy(deep=True)

    clean_data(dummy_raw.assign(age=dummy_raw["age"].astype(str)), schema, make_params)
    clean_data(dummy_raw, schema, make_params)

    pd.testing.assert_frame_equal(dummy_raw, before)


def test_clean_drops_duplicates_and_missing_targets(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    raw = pd.concat([dummy_raw, dummy_raw.iloc[[0, 1]]], ignore_index=True)
    raw.loc[2, "outcome"] = None

    clean, report = clean_data(raw, schema, make_params)

    assert report.raw_rows == 14
    assert report.dropped_duplicates == 2
    assert report.dropped_missing_target == 1
    assert len(clean) == 11


def test_missing_feature_values_are_kept_for_the_model_imputer(dummy_raw, schema, make_params) -> None:
    raw = dummy_raw.assign(age=dummy_raw["age"].where(dummy_raw.index != 3))

    clean, report = clean_data(raw, schema, make_params)

    assert report.null_cells == 1
    assert np.isnan(clean.loc[3, "age"])


def test_numbers_given_as_text_are_coerced(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    clean, _ = clean_data(dummy_raw.assign(age=dummy_raw["age"].astype(str)), schema, make_params)

    assert clean["age"].dtype == "float64"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda df: df.drop(columns=["visits"]), "missing column: 'visits'"),
        (lambda df: df.assign(extra=1), "extra column not in the schema: 'extra'"),
        (lambda df: df.assign(age=["old"] + df["age"].tolist()[1:]), "column 'age': values that cannot be read"),
        (lambda df: df.assign(age=np.nan), "column 'age': is entirely null"),
        (lambda df: df.assign(age=[np.nan] * 7 + df["age"].tolist()[7:]), "column 'age': is 58% null"),
        (lambda df: df.assign(age=[-5.0] + df["age"].tolist()[1:]), "greater_than_or_equal_to(0"),
        (lambda df: df.assign(plan=["gold"] + df["plan"].tolist()[1:]), "column 'plan': fails isin"),
        (lambda df: df.iloc[0:0], "has no rows"),
    ],
)
def test_each_bad_input_is_reported(dummy_raw, schema, make_params, mutate, expected: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        clean_data(mutate(dummy_raw), schema, make_params)

    assert expected in str(caught.value)


def test_every_failing_check_is_reported_at_once(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    bad = dummy_raw.drop(columns=["visits"]).assign(extra=1, age=np.nan)

    with pytest.raises(DataValidationError) as caught:
        validate_raw(bad, schema, make_params)

    report = caught.value.report or ""
    assert "missing column: 'visits'" in report
    assert "extra column not in the schema: 'extra'" in report
    assert "column 'age': is entirely null" in report


def test_null_share_limit_is_configurable(dummy_raw: pd.DataFrame, schema: SchemaConfig) -> None:
    raw = dummy_raw.assign(age=[np.nan] * 7 + dummy_raw["age"].tolist()[7:])

    clean, _ = clean_data(raw, schema, MakeDataParams(max_null_fraction=0.9))

    assert clean["age"].isna().sum() == 7


def test_all_rows_without_target_is_an_error(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    with pytest.raises(DataValidationError) as caught:
        clean_data(dummy_raw.assign(outcome=None), schema, make_params)

    assert "no rows are left after cleaning" in str(caught.value)


def test_a_label_not_in_the_schema_is_named_never_a_silent_negative(dummy_raw, schema, make_params) -> None:
    raw = dummy_raw.assign(outcome=["yes", "no", "maybe"] * 4)

    with pytest.raises(DataValidationError) as caught:
        clean_data(raw, schema, make_params)

    assert "column 'outcome': values that are not one of schema.labels (4 rows; e.g. 'maybe')" in str(caught.value)


def test_numeric_labels_match_their_quoted_names_even_with_gaps(dummy_raw, schema, make_params) -> None:
    numeric = schema.model_copy(update={"labels": ["0", "1"], "positive_class": "1"})
    raw = dummy_raw.assign(outcome=[1.0, 0.0, None] * 4)

    clean, report = clean_data(raw, numeric, make_params)

    assert sorted(set(clean["outcome"])) == ["0", "1"]
    assert report.dropped_missing_target == 4


def test_a_regression_target_must_be_numeric(dummy_raw, schema, make_params) -> None:
    regression = schema.model_copy(update={"task": "regression", "labels": None, "positive_class": None})

    with pytest.raises(DataValidationError) as caught:
        clean_data(dummy_raw, regression, make_params)

    assert "column 'outcome': values that cannot be read as float64" in str(caught.value)


def _chunks(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    return [frame.iloc[i : i + rows] for i in range(0, len(frame), rows)]


def _report(raw, schema: SchemaConfig, params: MakeDataParams) -> str:
    with pytest.raises(DataValidationError) as caught:
        clean_data(raw, schema, params)
    return str(caught.value)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda df: df.drop(columns=["visits"]).assign(extra=1),
        lambda df: df.assign(age=["old"] + df["age"].tolist()[1:], plan=df["plan"].tolist()[:-1] + ["gold"]),
        # nulls all in the first chunks: each chunk alone would be judged otherwise than the whole column
        lambda df: df.assign(age=[np.nan] * 7 + df["age"].tolist()[7:]),
        lambda df: df.assign(age=np.nan, outcome=df["outcome"].tolist()[:-2] + ["maybe", "x"]),
        lambda df: df.assign(id=[None] + df["id"].tolist()[1:], visits=[-1] * 12).drop(columns=["plan"]),
    ],
)
def test_chunks_get_the_same_full_report_as_the_whole(dummy_raw, schema, make_params, mutate) -> None:
    bad = mutate(dummy_raw)

    whole = _report(bad, schema, make_params)
    chunked = _report(_chunks(bad, 2), schema, make_params)

    assert chunked == whole
    assert whole.count("\n  - ") >= 1


def test_chunks_give_the_same_clean_data_as_the_whole(dummy_raw, schema, make_params) -> None:
    # duplicates and missing targets across chunk borders; a category level only in some chunks
    raw = pd.concat([dummy_raw, dummy_raw.iloc[[0, 5]]], ignore_index=True)
    raw.loc[3, "outcome"] = None
    raw.loc[12, ["id", "plan"]] = [13, None]  # no longer a duplicate of row 0: a row of its own

    whole, whole_report = clean_data(raw, schema, make_params)
    chunked, chunked_report = clean_data(_chunks(raw, 3), schema, make_params)

    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked_report == whole_report
    assert whole_report.dropped_duplicates == 1 and whole_report.dropped_missing_target == 1


def test_no_rows_in_any_chunk_is_an_error(dummy_raw, schema, make_params) -> None:
    text = _report([dummy_raw.iloc[0:0]], schema, make_params)

    assert "the raw dataset has no rows (columns: id, age, visits, plan, outcome)" in text
    assert "point catalog.raw.path at a file with data" in text  # the key there is


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": [1.0, -0.0, 0.0, np.nan, np.nan, 1.0], "b": ["x", "y", "y", None, None, "x"]}),
        pd.DataFrame({"a": pd.array([1, None, 1, None], dtype="Int64"), "b": pd.Categorical(["u", "v", "u", "v"])}),
        pd.DataFrame({"a": pd.array([True, None, None, False], dtype="boolean"), "b": [2, 3, 3, 2]}),
        pd.DataFrame({"a": np.arange(1000) % 7, "b": (np.arange(1000) % 11).astype(float)}),
    ],
)
def test_duplicate_rows_are_those_pandas_finds(frame: pd.DataFrame) -> None:
    from src.data.make_dataset import drop_duplicate_rows

    pd.testing.assert_frame_equal(drop_duplicate_rows(frame), frame.drop_duplicates())


def test_a_repeated_id_is_named_with_its_count(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    raw = dummy_raw.assign(id=[1] * 8 + [9, 10, 11, 12])

    with pytest.raises(DataValidationError) as caught:
        clean_data(raw, schema, make_params)

    message = str(caught.value)
    assert "id column 'id' repeats: 8 rows share 1 id(s) with another row (1 (8 rows))" in message
    assert "schema.id_may_repeat: true" in message


def test_ids_may_repeat_when_the_schema_says_so(dummy_raw: pd.DataFrame, schema: SchemaConfig, make_params) -> None:
    raw = dummy_raw.assign(id=[1] * 8 + [9, 10, 11, 12])

    clean, _ = clean_data(raw, schema.model_copy(update={"id_may_repeat": True}), make_params)

    assert (clean["id"] == 1).sum() == 8
