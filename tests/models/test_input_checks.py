"""The checks every scoring path runs before it scores: tiny inline batches, one misfit each."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from mlsteps import csv_input
from mlsteps.csv_input import csv_has_header, read_csv
from mlsteps.input_checks import InputError, ModelInputs, check_frame, frame_from_json

SCHEMA = {"a": "double", "n": "long", "plan": "string"}
FIX = "The model's inputs, in order: a (double), n (long), plan (string)."


def _csv(text: str, names: list[str] | None = None) -> pd.DataFrame:
    return read_csv(io.BytesIO(text.encode()), names)


# -- CSV: one value per column ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("1.5,2,x\n3,4,y\n", list(SCHEMA), {"a": [1.5, 3.0], "n": [2, 4], "plan": ["x", "y"]}),
        ("a,n,plan\n1.5,2,x\n\n3,4,y\n", None, {"a": [1.5, 3.0], "n": [2, 4], "plan": ["x", "y"]}),
        ('a,n,plan\r\n1.5,2,"x, quoted"\r\n', None, {"a": [1.5], "n": [2], "plan": ["x, quoted"]}),
        ("1.5,,x\n", list(SCHEMA), {"a": [1.5], "n": [None], "plan": ["x"]}),
    ],
)
def test_well_formed_csv_is_read_as_pandas_reads_it(text: str, names: list[str] | None, expected: dict) -> None:
    frame = _csv(text, names)

    assert frame.astype(object).where(frame.notna(), None).to_dict("list") == expected


@pytest.mark.parametrize(
    ("text", "names", "message"),
    [
        ("1.5,2,x\n0,3.5,2,y\n", list(SCHEMA), "row 2 (line 2): 4 values, expected 3"),
        ("1.5,2,x\n3.5,y\n", list(SCHEMA), "row 2 (line 2): 2 values, expected 3"),
        ("a,n,plan\n1,2,x,EXTRA\n3,4,y,EXTRA\n", None, "row 1 (line 2): 4 values, expected 3; row 2 (line 3)"),
        ("a,n,plan\n\n1,2\n", None, "row 1 (line 3): 2 values, expected 3"),
        ('a,n,plan\n1,2,"x,y",3\n', None, "row 1 (line 2): 4 values, expected 3"),
    ],
)
def test_rows_with_a_value_too_many_or_too_few_are_refused(text: str, names: list[str] | None, message: str) -> None:
    with pytest.raises(InputError) as caught:
        _csv(text, names)

    assert message in str(caught.value)


@pytest.mark.parametrize("chunk", [1, 7, 64, 8 * 1024 * 1024])
@pytest.mark.parametrize("quote", ["", '"'])
def test_rows_and_lines_are_counted_across_chunks_and_blank_lines(
    monkeypatch: pytest.MonkeyPatch, chunk: int, quote: str
) -> None:
    monkeypatch.setattr(csv_input, "_CHUNK", chunk)
    text = f"\na,n,plan\n1,2,{quote}x{quote}\n\n   \n3,4,y\n5,6\n7,8,z\n9,10,z,11"

    with pytest.raises(InputError) as caught:
        _csv(text)

    assert caught.value.problems == ["row 3 (line 7): 2 values, expected 3", "row 5 (line 9): 4 values, expected 3"]


def test_every_misfit_row_is_counted_and_the_first_ten_are_named() -> None:
    text = "a,n,plan\n" + "1,2\n" * 25

    with pytest.raises(InputError) as caught:
        _csv(text)

    assert len(caught.value.problems) == 10
    assert "(and 15 more)" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "header"),
    [("a,n,plan", True), ("plan,a,n", True), ("1.5,2,x", False), ('"a",1,2', True), ("x,y,z", False)],
)
def test_a_header_is_a_first_line_that_names_a_model_input(line: str, header: bool) -> None:
    assert csv_has_header(line, SCHEMA) is header


# -- frames: names and types -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": [1.0], "n": [2]}), "column 'plan' is missing"),
        (
            pd.DataFrame({"a": ["high"], "n": [2], "plan": ["x"]}),
            "row 1, column 'a': expected a number (double), got 'high'",
        ),
        (
            pd.DataFrame({"a": [1.0, 2.0], "n": [2.0, 2.5], "plan": ["x", "y"]}),
            "row 2, column 'n': expected a whole number (long), got 2.5",
        ),
        (
            pd.DataFrame({"a": [1.0], "n": [None], "plan": ["x"]}),
            "row 1, column 'n': expected a whole number (long), got an empty value",
        ),
        (
            pd.DataFrame({"a": [np.inf], "n": [1], "plan": ["x"]}),
            "row 1, column 'a': expected a number (double), got inf",
        ),
        (
            pd.DataFrame({"a": [True], "n": [1], "plan": ["x"]}),
            "row 1, column 'a': expected a number (double), got true",
        ),
        (
            pd.DataFrame({"a": [1.0], "n": [1], "plan": [["x"]]}),
            "row 1, column 'plan': expected text (string), got ['x']",
        ),
        (pd.DataFrame({"a": [], "n": [], "plan": []}), "there are no rows to score"),
    ],
)
def test_misfits_are_named_by_row_and_column(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(InputError) as caught:
        check_frame(frame, SCHEMA)

    assert message in str(caught.value)
    assert str(caught.value).endswith(FIX)


def test_a_fitting_frame_is_typed_as_the_model_expects_and_keeps_other_columns() -> None:
    frame = pd.DataFrame({"id": [7, 8], "a": ["1.5", None], "n": [2.0, 3.0], "plan": [1, None]})
    before = frame.copy()

    checked = check_frame(frame, SCHEMA)

    assert checked["a"].dtype == "float64" and checked["a"].iloc[0] == 1.5 and np.isnan(checked["a"].iloc[1])
    assert checked["n"].dtype == "int64" and checked["n"].tolist() == [2, 3]
    assert checked["plan"].tolist() == ["1", None]
    assert checked["id"].tolist() == [7, 8]
    pd.testing.assert_frame_equal(frame, before)  # the input is not changed


def test_a_request_may_not_carry_columns_the_model_does_not_take() -> None:
    frame = pd.DataFrame({"a": [1.0], "n": [1], "plan": ["x"], "id": [3]})

    with pytest.raises(InputError) as caught:
        check_frame(frame, SCHEMA, extra_columns=False)

    assert "column 'id' is not an input of the model" in str(caught.value)


@pytest.mark.parametrize(("values", "ok"), [([True, "false", 1], True), (["yes"], False), ([None], False)])
def test_booleans(values: list, ok: bool) -> None:
    frame = pd.DataFrame({"flag": pd.Series(values, dtype=object)})

    if ok:
        assert check_frame(frame, {"flag": "boolean"})["flag"].tolist() == [True, False, True]
    else:
        with pytest.raises(InputError, match="column 'flag': expected true or false"):
            check_frame(frame, {"flag": "boolean"})


# -- JSON shapes -----------------------------------------------------------------------------------------------
ROWS = [[1.5, 2, "x"], [3.0, 4, "y"]]
RECORDS = [dict(zip(SCHEMA, row, strict=True)) for row in ROWS]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": list(SCHEMA), "data": ROWS}},
        {"dataframe_split": {"columns": ["plan", "a", "n"], "data": [[r[2], r[0], r[1]] for r in ROWS]}},
        {"dataframe_split": {"data": ROWS}},
        {"dataframe_records": RECORDS},
        {"instances": RECORDS},
        {"instances": ROWS},
        {"inputs": {"a": [1.5, 3.0], "n": [2, 4], "plan": ["x", "y"]}},
    ],
)
def test_every_json_shape_gives_the_same_frame(payload: dict) -> None:
    frame = frame_from_json(payload, SCHEMA)

    assert frame[list(SCHEMA)].to_dict("list") == {"a": [1.5, 3.0], "n": [2, 4], "plan": ["x", "y"]}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"dataframe_split": {"columns": list(SCHEMA), "data": [[1.5, 2, "x"], [1.5, 2]]}},
            "row 2: 2 values, expected 3",
        ),
        ({"dataframe_split": {"data": [[1.5, 2, "x", 9]]}}, "row 1: 4 values, expected 3"),
        (
            {"dataframe_split": {"columns": ["a", "n", "tier"], "data": [[1.5, 2, "x"]]}},
            "column 'plan' is missing; column 'tier' is not an input of the model",
        ),
        (
            {"dataframe_split": {"columns": list(SCHEMA), "data": [[1.5, "two", "x"]]}},
            "row 1, column 'n': expected a whole number (long), got 'two'",
        ),
        (
            {"dataframe_records": [RECORDS[0], {"a": 1.0, "plan": "x", "tier": 2}]},
            "row 2: column 'n' is missing; column 'tier' is not an input of the model",
        ),
        (
            {"dataframe_records": [RECORDS[0], [1.0, 2, "x"]]},
            "row 2: expected an object of column: value, got a JSON list",
        ),
        ({"instances": [[1.5, 2]]}, "row 1: 2 values, expected 3"),
        ({"inputs": {"a": [1.5], "n": [2, 3], "plan": ["x"]}}, "all of the same length (got a: 1, n: 2, plan: 1)"),
        ({"dataframe_split": {"columns": list(SCHEMA), "data": []}}, "there are no rows to score"),
        ({"dataframe_split": ROWS}, "'dataframe_split' must be an object with 'data'"),
        ({"data": ROWS}, "the JSON body is an object with keys ['data']"),
        ({"instances": ROWS, "inputs": ROWS}, "exactly one of the keys"),
        ([1, 2], "the JSON body is a JSON list"),
    ],
)
def test_json_misfits_are_named(payload: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        frame_from_json(payload, SCHEMA)

    assert message in str(caught.value)


# -- category values: what the model was trained for ---------------------------------------------------------------
def test_a_category_value_the_model_was_not_trained_for_is_refused_with_the_values_it_knows() -> None:
    inputs = ModelInputs(SCHEMA, {"plan": ["basic", "pro"], "not_an_input": ["x"]})
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "n": [1, 2, 3], "plan": ["basic", "west", "east"]})

    with pytest.raises(InputError) as caught:
        check_frame(frame, inputs)

    message = str(caught.value)
    assert "column 'plan' holds 2 value(s) the model was not trained for: 'east', 'west' (row(s) 2, 3)" in message
    assert "it knows basic, pro" in message
    assert "schema.columns.<column>.allowed" in message
    assert set(inputs.categories) == {"plan"}


def test_known_and_missing_category_values_pass_and_a_plain_schema_checks_no_values() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "n": [1, 2], "plan": ["pro", None]})

    checked = check_frame(frame, ModelInputs(SCHEMA, {"plan": ["basic", "pro"]}))
    unchecked = check_frame(frame.assign(plan=["west", None]), SCHEMA)

    assert checked["plan"].tolist() == ["pro", None]
    assert unchecked["plan"].tolist() == ["west", None]


def test_a_request_with_an_unknown_category_is_refused_in_every_json_shape() -> None:
    inputs = ModelInputs(SCHEMA, {"plan": ["basic"]})

    with pytest.raises(InputError, match="column 'plan' holds 1 value"):
        frame_from_json({"dataframe_records": [{"a": 1, "n": 2, "plan": "gold"}]}, inputs)
    with pytest.raises(InputError, match="column 'plan' holds 1 value"):
        csv_input.frame_from_csv(b"1,2,gold\n", inputs)


# -- the id column: carried by a request, kept with its rows, never an input ------------------------------------
KEEPING = ModelInputs(SCHEMA, keep=["customer_id"])


@pytest.mark.parametrize(
    "body",
    [
        ("text/csv", b"customer_id,a,n,plan\n007,1.5,2,x\n8,3,4,y\n"),
        ("application/json", json.dumps({"dataframe_records": [
            {"customer_id": "007", "a": 1.5, "n": 2, "plan": "x"}, {"customer_id": "8", "a": 3, "n": 4, "plan": "y"}
        ]}).encode()),
        ("application/json", json.dumps({"dataframe_split": {
            "columns": ["a", "n", "plan", "customer_id"], "data": [[1.5, 2, "x", "007"], [3, 4, "y", "8"]]
        }}).encode()),
        ("application/json", json.dumps(
            {"inputs": {"a": [1.5, 3], "n": [2, 4], "plan": ["x", "y"], "customer_id": ["007", "8"]}}
        ).encode()),
    ],
)  # fmt: skip
def test_a_request_may_carry_the_id_column_which_comes_after_the_inputs(body: tuple[str, bytes]) -> None:
    from mlsteps.serving.bodies import rows_of

    frame = rows_of(body[1], body[0], KEEPING)

    assert list(frame.columns) == ["a", "n", "plan", "customer_id"]
    assert frame["customer_id"].tolist() == ["007", "8"]  # as sent: "007" stays "007"
    assert frame["n"].tolist() == [2, 4]


def test_rows_without_the_id_column_pass_and_other_columns_are_still_refused() -> None:
    from mlsteps.serving.bodies import rows_of

    plain = rows_of(b"a,n,plan\n1.5,2,x\n", "text/csv", KEEPING)
    assert list(plain.columns) == ["a", "n", "plan"]
    with pytest.raises(InputError) as caught:
        rows_of(b"customer_id,age,a,n,plan\n1,2,1.5,2,x\n", "text/csv", KEEPING)
    assert "column 'age' is not an input of the model" in str(caught.value)
    assert "customer_id" not in str(caught.value)
    with pytest.raises(InputError) as caught:
        rows_of(b"customer_id,a,n,plan\n1,1.5,2,x\n", "text/csv", ModelInputs(SCHEMA))
    assert "column 'customer_id' is not an input of the model" in str(caught.value)
