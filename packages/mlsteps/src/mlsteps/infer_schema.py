"""Inferring the raw data's contract (the config's ``schema``) from a DataFrame. Pure: a frame in, a guess out.

The rules, chosen so that new data from the same source passes the contract:
- type: ``bool`` for true/false values; ``int`` for whole numbers (a whole-number column with missing values,
  which a CSV reader turns into floats, included); ``float`` for other numbers; for text, ``string`` when it
  looks like dates (derive features from it in build_features), ``category`` when it has few distinct values
  (at most 20, and at most half as many as values), ``string`` otherwise; a datetime column is ``string``.
- nullable: true where a value is missing, false where none is (a column that was always filled and suddenly
  is not is worth stopping for).
- bounds: ``min: 0`` for a numeric column with no negative value, nothing else: the observed extremes are not
  a contract, and the next file would break them.
- allowed: the values seen, for a category column.
- task (auto): a numeric target with fractional values or more than 20 distinct values is regression; otherwise
  two labels is binary and three or more multiclass.
- positive class (binary, when not given): 1, true or yes where the labels are such a pair, else the rarer label.
- id column (when not given): the one column named like an identifier with a different value on every row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsteps.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

TASKS = ("binary", "multiclass", "regression")
# At most this many distinct values (and at most this share of the values) make a text column a category.
CATEGORY_MAX_VALUES = 20
CATEGORY_MAX_SHARE = 0.5
# A numeric target with more distinct values than this (or any fractional one) is a quantity: regression.
CLASSES_MAX = 20
_DATE = re.compile(
    r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?$"
)
# Label pairs whose positive member is plain: (negative, positive), compared in lower case.
_POSITIVE_PAIRS = {("0", "1"), ("false", "true"), ("no", "yes"), ("n", "y"), ("negative", "positive")}


@dataclass(frozen=True)
class ColumnGuess:
    """One feature column's contract, and what was seen that made it."""

    name: str
    type: str
    nullable: bool
    min: float | None = None
    allowed: list[str] | None = None
    nulls: int = 0
    rows: int = 0
    seen: str = ""
    notes: tuple[str, ...] = ()

    def spec(self) -> dict[str, Any]:
        """The ``schema.columns`` entry."""
        spec: dict[str, Any] = {"type": self.type, "nullable": self.nullable}
        if self.min is not None:
            spec["min"] = int(self.min) if float(self.min).is_integer() else self.min
        if self.allowed is not None:
            spec["allowed"] = self.allowed
        return spec


@dataclass(frozen=True)
class TargetGuess:
    """The target: the task, its labels and the positive class, each with the reason it was chosen."""

    name: str
    task: str
    task_reason: str
    labels: list[str] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    positive_class: str | None = None
    positive_reason: str = ""
    missing: int = 0


def infer_column(series: pd.Series) -> ColumnGuess:
    """The contract of one feature column."""
    import pandas as pd

    name, rows = str(series.name), len(series)
    values = series.dropna()
    nulls = rows - len(values)
    base: dict[str, Any] = {"name": name, "nullable": nulls > 0, "nulls": nulls, "rows": rows}
    if values.empty:
        raise DataValidationError(f"column '{name}' has no value on any row: remove it from the data file")
    if pd.api.types.is_bool_dtype(series) or all(isinstance(v, bool) for v in values):
        true = int(sum(bool(v) for v in values))
        return ColumnGuess(type="bool", seen=f"{true} true, {len(values) - true} false", **base)
    if pd.api.types.is_numeric_dtype(series):
        whole = pd.api.types.is_integer_dtype(series) or (nulls > 0 and bool((values % 1 == 0).all()))
        low, high = values.min(), values.max()
        seen = f"{_number(low)} to {_number(high)}"
        return ColumnGuess(type="int" if whole else "float", min=0 if low >= 0 else None, seen=seen, **base)
    if pd.api.types.is_datetime64_any_dtype(series):
        return ColumnGuess(type="string", seen="dates", notes=("date-like",), **base)
    text = values.astype(str)
    distinct = sorted(text.unique())
    if all(_DATE.match(v.strip()) for v in distinct):
        return ColumnGuess(type="string", seen=f"dates, e.g. {distinct[0]}", notes=("date-like",), **base)
    if len(distinct) <= CATEGORY_MAX_VALUES and len(distinct) <= CATEGORY_MAX_SHARE * len(text):
        return ColumnGuess(type="category", allowed=distinct, seen=f"{len(distinct)} values", **base)
    notes = ("distinct on every row",) if len(distinct) == rows else ()
    return ColumnGuess(type="string", seen=f"{len(distinct)} distinct values", notes=notes, **base)


def label_values(series: pd.Series) -> dict[str, int]:
    """The target's distinct values as strings, with their counts (whole-number floats written as integers:
    a CSV target with missing values is read as floats)."""
    values = series.dropna()
    if len(values) and all(isinstance(v, float) and v.is_integer() for v in values):
        values = values.astype("int64")
    counts = values.astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def infer_target(
    series: pd.Series, task: str = "auto", positive_class: str | None = None, task_source: str = "--task"
) -> TargetGuess:
    """The task (``auto``: from the values), the labels and the positive class of the target column.
    ``task_source`` says where a given task came from (the option, or the config's ``schema.task``)."""
    import pandas as pd

    name = str(series.name)
    values = series.dropna()
    missing = len(series) - len(values)
    if values.empty:
        raise DataValidationError(f"target '{name}' has no value on any row: choose another --target")
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    counts = label_values(series)
    reason = f"set with --task {task}" if task_source == "--task" else f"{task}, from {task_source}"
    if task == "auto":
        fractional = numeric and not bool((values % 1 == 0).all())
        if numeric and (fractional or len(counts) > CLASSES_MAX):
            task, reason = (
                "regression",
                (f"numbers with {len(counts)} distinct values" + (", some fractional" if fractional else "")),
            )
        else:
            task = "binary" if len(counts) == 2 else "multiclass"
            reason = f"{len(counts)} distinct values"
    if task == "regression":
        if not numeric:
            raise DataValidationError(
                f"target '{name}' holds text ({', '.join(list(counts)[:3])}, ...), which a "
                "regression cannot predict: use --task binary or multiclass"
            )
        return TargetGuess(name=name, task=task, task_reason=reason, missing=missing)
    _check_classes(name, task, counts)
    chosen, why = choose_positive_class(counts, positive_class) if task == "binary" else (None, "")
    return TargetGuess(
        name=name,
        task=task,
        task_reason=reason,
        labels=list(counts),
        counts=counts,
        positive_class=chosen,
        positive_reason=why,
        missing=missing,
    )


def _check_classes(name: str, task: str, counts: dict[str, int]) -> None:
    shown = ", ".join(list(counts)[:5]) + (", ..." if len(counts) > 5 else "")
    if len(counts) < 2:
        raise DataValidationError(
            f"target '{name}' holds a single value ({shown}): there is nothing to learn; choose another --target"
        )
    if task == "binary" and len(counts) != 2:
        raise DataValidationError(
            f"target '{name}' holds {len(counts)} values ({shown}), not 2: use --task "
            "multiclass (or regression for a quantity)"
        )
    if task == "multiclass" and len(counts) == 2:
        raise DataValidationError(f"target '{name}' holds 2 values ({shown}): use --task binary")


def choose_positive_class(counts: dict[str, int], requested: str | None = None) -> tuple[str, str]:
    """The positive class of a binary target, and why it was chosen."""
    labels = list(counts)
    if requested not in (None, ""):
        if str(requested) not in counts:
            raise DataValidationError(
                f"positive class {requested!r} is not a value of the target: choose one of {labels}"
            )
        return str(requested), "as given"
    pair = tuple(sorted(labels, key=str.lower))
    for negative, positive in _POSITIVE_PAIRS:
        if tuple(v.lower() for v in pair) == (negative, positive):
            return pair[1], f"'{pair[1]}' against '{pair[0]}'"
    rarer = min(reversed(labels), key=counts.__getitem__)  # a tie: the later label
    other = next(v for v in labels if v != rarer)
    return rarer, f"the rarer label ({counts[rarer]} rows against {counts[other]} of '{other}')"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_ID_NAME = re.compile(r"(?:^|[ _.-])(?:id|key|uuid|guid)$|^(?:id|uuid|guid)(?:$|[ _.-])", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z0-9](?:Id|ID)$")  # customerId, LoanID


def identifier_column(frame: pd.DataFrame, target: str | None) -> str | None:
    """The one column named like an identifier (``id``, ``loan_id``, ``customerId``, ``ID``) that holds a different
    value on every row, whole numbers or text: an identifier taken for a feature lets the model learn row
    numbers. None when there is no such column, or more than one."""
    from pandas.api.types import is_float_dtype

    found = [
        str(name)
        for name in frame.columns
        if str(name) != target
        and (_ID_NAME.search(str(name)) or _CAMEL_ID.search(str(name)))
        and not is_float_dtype(frame[name])
        and frame[name].notna().all()
        and frame[name].is_unique
    ]
    return found[0] if len(found) == 1 else None
