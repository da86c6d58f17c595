"""Whether a batch fits the model's inputs, checked before anything is scored: the one place that says so.

All three ways of scoring use it, with the same wording: the ``predict`` step (``--input``), the S3-triggered
batch handler, and ``serve``'s ``/invocations`` (CSV with or without a header, JSON ``dataframe_split``,
``dataframe_records``, ``instances`` and ``inputs``). Pure: bytes, decoded JSON or a DataFrame in, a DataFrame
typed as the model expects or an ``InputError`` out; no MLflow, no I/O. The model's input schema is plain data:
column name -> type, in the model's order, the types named as in an MLflow signature (``double``, ``float``,
``long``, ``integer``, ``boolean``, ``string``, ``datetime``; others are passed on unchecked).

A category column the model was trained under a contract's ``allowed`` values for (``ModelInputs.categories``,
recorded with the model by train_model) refuses any other value: the model never saw it, and a one-hot encoder
would score it as no value at all, a plausible answer that is wrong.

Rows are counted from 1, a header line not included. An empty CSV value or a JSON ``null`` is a missing value,
refused only for ``long``, ``integer`` and ``boolean``. A CSV is read by ``src/models/csv_input.py``, which first
refuses a row with a value too many or too few, then checks the frame here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from mlsteps.errors import DataValidationError

Schema = Mapping[str, str]  # the model's inputs: column name -> type, in the model's order


class ModelInputs(dict[str, str]):
    """A model's inputs (column name -> type, in the model's order) and, for its category columns, the values it
    was trained for (``categories``): a Schema that also refuses a category value the model never saw.

    ``keep``: columns a request may carry besides the inputs (the contract's id column), never scored, kept with
    the rows (the inference log holds them, so that labels arriving later can be joined by them)."""

    def __init__(
        self,
        columns: Mapping[str, str],
        categories: Mapping[str, Sequence[str]] | None = None,
        keep: Sequence[str] = (),
    ) -> None:
        super().__init__(columns)
        self.categories = {name: frozenset(map(str, v)) for name, v in (categories or {}).items() if name in columns}
        self.keep = tuple(name for name in keep if name and name not in columns)


def kept_columns(schema: Schema) -> tuple[str, ...]:
    """The columns besides the inputs a request may carry (``ModelInputs.keep``; none for a plain mapping)."""
    return tuple(getattr(schema, "keep", ()))


JSON_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_LISTED = 10  # problems spelled out in one message; the rest are counted
_NUMERIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
_EXPECTED = {
    "double": "a number",
    "float": "a number",
    "long": "a whole number",
    "integer": "a whole number",
    "boolean": "true or false",
    "string": "text",
    "datetime": "a date-time",
}
_BOOLEANS = {
    True: True,
    False: False,
    "true": True,
    "false": False,
    "1": True,
    "0": False,
}  # 1 and 0 equal True and False


class InputError(DataValidationError):
    """A batch that does not fit the model's inputs. Nothing of it is scored."""

    def __init__(self, problems: Sequence[str], fix: str, count: int | None = None) -> None:
        self.problems = list(problems)
        count = len(self.problems) if count is None else count
        more = f" (and {count - len(self.problems)} more)" if count > len(self.problems) else ""
        super().__init__(f"{'; '.join(self.problems)}{more}. {fix}")


class _Problems:
    """Problems found so far: the first few spelled out, all of them counted."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.add_many(1, lambda _: text)

    def add_many(self, count: int, describe: Callable[[int], str]) -> None:
        for i in range(min(count, _LISTED - len(self.listed))):
            self.listed.append(describe(i))
        self.count += count

    def raise_if_any(self, fix: str) -> None:
        if self.count:
            raise InputError(self.listed, fix, self.count)


def describe_inputs(schema: Schema) -> str:
    """``The model's inputs, in order: a (double), b (string)``: what every fix ends with."""
    return "The model's inputs, in order: " + ", ".join(f"{name} ({kind})" for name, kind in schema.items()) + "."


def check_frame(frame: pd.DataFrame, schema: Schema, *, extra_columns: bool = True) -> pd.DataFrame:
    """``frame`` with the model's columns typed as the model expects, or an InputError naming every misfit.

    ``extra_columns``: whether columns the model does not take are allowed (files may carry an id or a label;
    they are kept, not scored) or refused (a request to the server).
    """
    if len(frame) == 0:
        raise InputError(["there are no rows to score"], "Send at least one row. " + describe_inputs(schema))
    problems = _Problems()
    columns = [str(c) for c in frame.columns]
    _check_names(columns, schema, extra_columns, problems)
    problems.raise_if_any(describe_inputs(schema))
    dtypes = dict(zip(columns, frame.dtypes, strict=True))
    # The common case in one pass: number columns holding numbers; only a column that fails is looked at alone.
    plain = [n for n, kind in schema.items() if kind in _NUMERIC and _holds_numbers(dtypes[n])]
    unsure = [n for n in schema if n not in plain]
    if plain:
        block = (frame if columns == plain else frame[plain]).to_numpy(dtype="float64")
        wrong = np.isinf(block).any(axis=0)
        whole = np.array([schema[n] in ("long", "integer") for n in plain])
        if whole.any():
            wrong |= whole & (np.isnan(block) | (np.nan_to_num(block) % 1 != 0)).any(axis=0)
        unsure += [n for n, w in zip(plain, wrong, strict=True) if w]
    typed = {
        n: frame[n].astype(_NUMERIC[schema[n]]) for n in plain if n not in unsure and dtypes[n] != _NUMERIC[schema[n]]
    }
    for name in (n for n in schema if n in unsure):
        converted = _convert(frame[name], name, schema[name], problems)
        if converted is not None:
            typed[name] = converted
    problems.raise_if_any(describe_inputs(schema))
    checked = frame.assign(**typed) if typed else frame
    categories = getattr(schema, "categories", None)
    if categories:
        _check_categories(checked, categories, problems)
        problems.raise_if_any(
            "The model was trained for these values only (the contract's schema.columns.<column>.allowed) and has "
            "never seen another (a one-hot encoder scores it as no value at all). Send one of them; or, if the new "
            "value is right, add it to allowed, retrain with rows that have it and promote the new version."
        )
    return checked


def frame_from_json(payload: Any, schema: Schema) -> pd.DataFrame:
    """The rows of a decoded JSON request, checked: ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``
    (``columns`` may be left out: values in the model's order), ``{"dataframe_records": [{...}]}``, or
    ``{"instances"|"inputs": ...}`` holding records, rows in the model's order, or ``{column: [values]}``."""
    keys = sorted(payload) if isinstance(payload, dict) else []
    formats = [k for k in keys if k in JSON_FORMATS]
    if len(formats) != 1 or len(keys) != 1:
        got = f"an object with keys {keys}" if isinstance(payload, dict) else f"a JSON {type(payload).__name__}"
        raise InputError(
            [f"the JSON body is {got}"], f"Send an object with exactly one of the keys {', '.join(JSON_FORMATS)}."
        )
    body = payload[formats[0]]
    if formats[0] == "dataframe_split":
        if not isinstance(body, dict) or not set(body) <= {"columns", "data", "index"} or "data" not in body:
            raise InputError(
                ["'dataframe_split' must be an object with 'data' (a list of rows) and 'columns'"],
                describe_inputs(schema),
            )
        return _from_rows(body["data"], body.get("columns"), schema)
    if formats[0] == "dataframe_records":
        return _from_records(body, schema)
    if isinstance(body, dict):
        return _from_columns(body, schema)
    if isinstance(body, list) and body and all(isinstance(r, dict) for r in body):
        return _from_records(body, schema)
    return _from_rows(body, None, schema)


# -- JSON shapes ---------------------------------------------------------------------------------------------------
def _from_rows(rows: Any, columns: Any, schema: Schema) -> pd.DataFrame:
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise InputError(["'columns' must be a list of column names"], describe_inputs(schema))
    names = list(schema) if columns is None else columns
    _require_list(rows, "rows (each a list of values)", schema)
    problems = _Problems()
    _check_names(names, schema, False, problems)
    problems.raise_if_any(describe_inputs(schema))
    bad = [i for i, row in enumerate(rows) if not isinstance(row, list) or len(row) != len(names)]
    problems.add_many(len(bad), lambda i: f"row {bad[i] + 1}: {_count(rows[bad[i]])}, expected {len(names)}")
    where = "the model's inputs" if columns is None else "'columns'"
    problems.raise_if_any(f"Give every row one value per name of {where}. {describe_inputs(schema)}")
    return check_frame(pd.DataFrame(rows, columns=names), schema, extra_columns=False)


def _from_records(records: Any, schema: Schema) -> pd.DataFrame:
    _require_list(records, "records (each an object of column: value)", schema)
    expected, kept = set(schema), kept_columns(schema)
    problems = _Problems()
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            problems.add(f"row {i + 1}: expected an object of column: value, got a JSON {type(record).__name__}")
        elif record.keys() != expected and (not kept or record.keys() - set(kept) != expected):
            problems.add(
                f"row {i + 1}: "
                + "; ".join(
                    [f"column '{c}' is missing" for c in schema if c not in record]
                    + [
                        f"column '{c}' is not an input of the model"
                        for c in record
                        if c not in expected and c not in kept
                    ]
                )
            )
    problems.raise_if_any(describe_inputs(schema))
    present = [k for k in kept if any(k in record for record in records)]
    frame = pd.DataFrame.from_records(records, columns=[*schema, *present])
    return check_frame(frame, schema, extra_columns=False)


def _from_columns(columns: dict[str, Any], schema: Schema) -> pd.DataFrame:
    problems = _Problems()
    _check_names(list(columns), schema, False, problems)
    lengths = {name: len(values) if isinstance(values, list) else -1 for name, values in columns.items()}
    if not problems.count and (len(set(lengths.values())) != 1 or -1 in lengths.values()):
        problems.add(
            "every column must be a list of values, all of the same length (got "
            + ", ".join(f"{n}: {'not a list' if k < 0 else k}" for n, k in lengths.items())
            + ")"
        )
    problems.raise_if_any(describe_inputs(schema))
    present = [k for k in kept_columns(schema) if k in columns]
    return check_frame(pd.DataFrame(columns, columns=[*schema, *present]), schema, extra_columns=False)


def _require_list(value: Any, what: str, schema: Schema) -> None:
    if not isinstance(value, list):
        raise InputError([f"expected a list of {what}, got a JSON {type(value).__name__}"], describe_inputs(schema))


def _count(row: Any) -> str:
    return f"{len(row)} values" if isinstance(row, list) else f"a JSON {type(row).__name__}, not a list of values"


# -- names and types -----------------------------------------------------------------------------------------------
def _check_names(columns: Sequence[str], schema: Schema, extra_columns: bool, problems: _Problems) -> None:
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.add(f"column '{name}' is given more than once")
        seen.add(name)
    for name in schema:
        if name not in seen:
            problems.add(f"column '{name}' is missing")
    if not extra_columns:
        kept = kept_columns(schema)
        for name in dict.fromkeys(columns):
            if name not in schema and name not in kept:
                problems.add(f"column '{name}' is not an input of the model")


def _convert(column: pd.Series, name: str, kind: str, problems: _Problems) -> pd.Series | None:
    """``column`` as the model's type (None: a type passed on unchecked, or misfits, which are added)."""
    if kind in _NUMERIC:
        numbers = _numbers(column)
        bad = (numbers.isna() & column.notna()) | np.isinf(numbers)
        if kind in ("long", "integer"):
            bad |= numbers.isna() | (numbers.fillna(0) % 1 != 0)
        convert: Callable[[], pd.Series] = lambda: numbers.astype(_NUMERIC[kind])
    elif kind == "boolean":
        mapped = column.map(lambda v: _BOOLEANS.get(v.lower() if isinstance(v, str) else v) if _scalar(v) else None)
        bad = mapped.isna()
        convert = lambda: mapped.astype(bool)
    elif kind == "string":
        if _holds_numbers(column.dtype):  # a file's numeric-looking text ("7", not "7.0" for a float column)
            column = column.map(lambda v: None if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v))
        bad = column.notna() & ~column.map(lambda v: isinstance(v, str))
        convert = lambda: column.astype(object).where(column.notna(), None)
    elif kind == "datetime":
        stamps = pd.to_datetime(column, errors="coerce")
        bad = stamps.isna() & column.notna()
        convert = lambda: stamps
    else:
        return None
    positions = np.flatnonzero(np.asarray(bad))
    expected = f"expected {_EXPECTED[kind]} ({kind})"
    problems.add_many(
        len(positions),
        lambda i: f"row {positions[i] + 1}, column '{name}': {expected}, got {_show(column.iloc[positions[i]])}",
    )
    return None if len(positions) else convert()


def _check_categories(frame: pd.DataFrame, categories: Mapping[str, frozenset[str]], problems: _Problems) -> None:
    for name, known in categories.items():
        column = frame[name]
        present = column.notna().to_numpy()
        unknown = present & ~column.astype(str).isin(known).to_numpy()
        if unknown.any():
            positions = np.flatnonzero(unknown)
            values = sorted(set(column.iloc[positions].astype(str)))
            shown = _listed([_show(v) for v in values], 5)
            rows = ", ".join(str(p + 1) for p in positions[:5]) + (" ..." if len(positions) > 5 else "")
            problems.add(
                f"column '{name}' holds {len(positions)} value(s) the model was not trained for: {shown} "
                f"(row(s) {rows}); it knows {_listed(sorted(known))}"
            )


def _listed(values: list[str], first: int = 10) -> str:
    return ", ".join(values[:first]) + (f" and {len(values) - first} more" if len(values) > first else "")


def _holds_numbers(dtype: Any) -> bool:
    return is_numeric_dtype(dtype) and not is_bool_dtype(dtype)


def _numbers(column: pd.Series) -> pd.Series:
    """The column's values as floats; NaN where a value is missing or not a number (a JSON true is not one)."""
    if is_bool_dtype(column):
        return pd.Series(np.nan, index=column.index)
    if is_numeric_dtype(column):
        return column.astype("float64")
    flags = column.map(lambda v: isinstance(v, bool | np.bool_))
    return pd.to_numeric(column.mask(flags, None), errors="coerce").astype("float64").mask(flags, np.nan)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float | np.bool_ | np.integer | np.floating)


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "an empty value"
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."
