"""make_data: the raw DataFrame in, a validated clean DataFrame out. No I/O, no tracking.

The raw data's contract is the config's ``schema`` section; every failing check is reported at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from src.lib.errors import DataValidationError
from src.lib.schema import SchemaConfig
from src.lib.step import Step, StepContext, StepOutput, StepParams

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

# pandas dtype each schema type is coerced to (nullable dtypes, so a missing value never changes a column's type).
DTYPES = {"float": "float64", "int": "Int64", "bool": "boolean", "category": "category", "string": "string"}
LABEL_CHECK = "label_in_schema_labels"


class MakeDataParams(StepParams):
    # Drop rows that are exact duplicates of an earlier row.
    drop_duplicates: bool = True
    # A feature column with a larger share of nulls fails validation (1.0 allows all but all-null).
    max_null_fraction: float = Field(0.5, ge=0.0, le=1.0)


@dataclass(frozen=True)
class CleanReport:
    """What cleaning changed, in numbers (logged as metrics by the runner)."""

    raw_rows: int
    dropped_missing_target: int
    dropped_duplicates: int
    clean_rows: int
    null_cells: int


def build_raw_schema(
    schema: SchemaConfig, params: MakeDataParams, null_share: bool = True
):  # -> pandera.DataFrameSchema
    """The pandera schema of the raw dataset, built from the config's ``schema`` section.

    ``null_share=False`` leaves out the check of each column's share of nulls, which only the whole dataset can
    answer (chunks of it are checked without it, and the shares counted over all of them).
    """
    import pandera.pandas as pa

    columns: dict[str, pa.Column] = {}
    if schema.id_column:
        columns[schema.id_column] = pa.Column(nullable=False)
    if schema.is_classification:
        # An unknown label is an error that names it, never a silent negative.
        known = pa.Check(lambda s, labels=tuple(schema.labels or ()): s.isin(labels), name=LABEL_CHECK)
        columns[schema.target] = pa.Column("string", checks=[known], nullable=True, coerce=True)
    else:
        columns[schema.target] = pa.Column("float64", nullable=True, coerce=True)
    for name, spec in schema.columns.items():
        checks = []
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max))
        if spec.allowed is not None:
            checks.append(pa.Check.isin(spec.allowed))
        if null_share:
            checks.append(
                pa.Check(
                    lambda s, limit=params.max_null_fraction: _null_share_ok(int(s.isna().sum()), len(s), limit),
                    element_wise=False,
                    ignore_na=False,
                    name=_null_share_check(params),
                )
            )
        columns[name] = pa.Column(DTYPES[spec.type], checks=checks, nullable=spec.nullable, coerce=True)
    return pa.DataFrameSchema(columns, strict=True, ordered=False, name="raw dataset")


def _null_share_check(params: MakeDataParams) -> str:
    return f"null_share<={params.max_null_fraction:g}_and_not_all_null"


def _null_share_ok(nulls: int, rows: int, limit: float) -> bool:
    return nulls < rows and nulls / rows <= limit


def validate_raw(raw: pd.DataFrame, schema: SchemaConfig, params: MakeDataParams) -> pd.DataFrame:
    """Check the raw dataset against the schema, reporting every failing check at once.

    Returns a copy with every feature coerced to its declared type.
    Raises:
        DataValidationError: with the full failure report in ``.report``.
    """
    import pandera.errors as pa_errors

    if raw.empty:
        raise _no_rows(raw.columns)
    try:
        # pandera copies (inplace=False)
        return build_raw_schema(schema, params).validate(_integral_target(raw, schema), lazy=True)
    except pa_errors.SchemaErrors as exc:
        raise _invalid(_failure_report(exc.failure_cases, _shares(raw))) from None


def _no_rows(columns: Iterable[object]) -> DataValidationError:
    return DataValidationError(
        f"the raw dataset has no rows (columns: {', '.join(map(str, columns)) or 'none'}): "
        "point data.raw at a file with data"
    )


def _invalid(report: str) -> DataValidationError:
    return DataValidationError(
        "the raw dataset does not match the schema in the config:\n"
        + report
        + "\nfix the data, or the 'schema' section of the config if the data is right",
        report=report,
    )


def _shares(raw: pd.DataFrame) -> dict[str, float]:
    """Each column's share of nulls (for the report)."""
    return {str(c): float(v) for c, v in raw.isna().mean().items()} if len(raw) else {}


def validate_chunks(
    chunks: Iterable[pd.DataFrame], schema: SchemaConfig, params: MakeDataParams
) -> tuple[list[pd.DataFrame], int]:
    """Check the raw dataset, given in chunks of rows, against the schema: the same checks, the same full failure
    report and the same errors as ``validate_raw`` on the whole of it, never holding more than one raw chunk.

    Returns the typed chunks, already without the rows that have no target (they are dropped anyway), and the
    number of raw rows.
    """
    import pandera.errors as pa_errors

    checker = build_raw_schema(schema, params, null_share=False)
    features = list(schema.columns)
    typed: list[pd.DataFrame] = []
    failures: list[pd.DataFrame] = []
    nulls = dict.fromkeys(features, 0)
    rows, columns = 0, None
    for chunk in chunks:
        columns = chunk.columns if columns is None else columns
        if chunk.empty:
            continue
        rows += len(chunk)
        for name, count in chunk.reindex(columns=[c for c in features if c in chunk]).isna().sum().items():
            nulls[str(name)] += int(count)
        try:
            part = checker.validate(_integral_target(chunk, schema), lazy=True)
        except pa_errors.SchemaErrors as exc:
            failures.append(exc.failure_cases)
            typed.clear()  # the data is refused: only the report is still needed
            continue
        if not failures:
            typed.append(part[part[schema.target].notna()])
    if rows == 0:
        raise _no_rows(columns if columns is not None else [])
    shares = {name: count / rows for name, count in nulls.items()}
    check = _null_share_check(params)
    over = [
        name
        for name in features
        if columns is not None and name in columns and not _null_share_ok(nulls[name], rows, params.max_null_fraction)
    ]
    if over:
        import pandas as pd

        failures.append(pd.DataFrame({"column": over, "check": check, "failure_case": False}))
    if failures:
        raise _invalid(_failure_report(_in_schema_order(failures, schema), shares))
    return typed, rows


def _in_schema_order(failures: list[pd.DataFrame], schema: SchemaConfig) -> pd.DataFrame:
    """The failure cases of every chunk, in the order one validation of the whole would list them: the frame's
    column-level problems, then the values that cannot be typed, then the other checks, each column by column in
    the schema's order (stable within a column)."""
    import numpy as np
    import pandas as pd

    cases = pd.concat(failures, ignore_index=True)
    order = {name: i for i, name in enumerate([schema.id_column, schema.target, *schema.columns]) if name}
    checks = cases["check"].astype(str)
    frame_level = checks.isin(["column_in_schema", "column_in_dataframe"]).to_numpy()
    typing = checks.str.startswith(("coerce_dtype", "dtype")).to_numpy()
    group = pd.Series(np.select([frame_level, typing], [0, 1], 2), index=cases.index)
    rank = group * (len(order) + 1) + cases["column"].map(lambda c: order.get(str(c), len(order)))
    return cases.iloc[rank.argsort(kind="stable")]


def _integral_target(raw: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """A numeric class column with gaps is read as floats (1.0): make it whole numbers again, so labels "1" match."""
    from pandas.api.types import is_float_dtype

    target = raw.get(schema.target)
    if not schema.is_classification or target is None or not is_float_dtype(target):
        return raw
    values = target.dropna()
    if len(values) and (values == values.round()).all():
        return raw.assign(**{schema.target: target.astype("Int64")})
    return raw


def clean_data(
    raw: pd.DataFrame | Iterable[pd.DataFrame], schema: SchemaConfig, params: MakeDataParams
) -> tuple[pd.DataFrame, CleanReport]:
    """Validate and clean: coerce types, drop rows without a target, drop exact duplicates.

    ``raw`` is the raw DataFrame, or its rows in chunks (DataFrames one after another: a large file read a piece
    at a time), which are validated one by one and never held all at once.
    Missing feature values are kept: the model's own imputer fills them, so serving handles them the same way.
    """
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        typed = validate_raw(raw, schema, params)
        raw_rows = len(typed)
        with_target = typed[typed[schema.target].notna()]
        del typed
    else:
        parts, raw_rows = validate_chunks(raw, schema, params)
        with_target = _concat(parts, schema)
    dropped_target = raw_rows - len(with_target)
    deduped = drop_duplicate_rows(with_target) if params.drop_duplicates else with_target
    dropped_dupes = len(with_target) - len(deduped)
    del with_target
    ordered = ([schema.id_column] if schema.id_column else []) + schema.features + [schema.target]
    clean = (deduped if list(deduped.columns) == ordered else deduped.loc[:, ordered]).reset_index(drop=True)
    if clean.empty:
        raise DataValidationError(
            f"no rows are left after cleaning ({dropped_target} had no '{schema.target}', "
            f"{dropped_dupes} were duplicates): the raw dataset has no usable rows"
        )
    report = CleanReport(
        raw_rows=raw_rows,
        dropped_missing_target=dropped_target,
        dropped_duplicates=dropped_dupes,
        clean_rows=len(clean),
        null_cells=int(clean[schema.features].isna().sum().sum()),
    )
    return clean, report


def _concat(parts: list[pd.DataFrame], schema: SchemaConfig) -> pd.DataFrame:
    """The typed chunks as one frame; a category column gets the categories of all chunks (sorted, as one
    conversion of the whole column would give them), so it stays a category column."""
    import pandas as pd

    if len(parts) == 1:
        return parts[0]
    for name, spec in schema.columns.items():
        if spec.type == "category":
            values = sorted(set().union(*(p[name].cat.categories for p in parts)))
            dtype = pd.CategoricalDtype(values)
            parts = [p.assign(**{name: p[name].cat.set_categories(values).astype(dtype)}) for p in parts]
    whole = pd.concat(parts, ignore_index=True, copy=False)
    parts.clear()
    return whole


def drop_duplicate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the rows that repeat an earlier row exactly (as ``DataFrame.drop_duplicates``).

    Rows are hashed column by column first (linear in rows; pandas' own method slows down more than linearly on
    millions of rows of distinct floats); only rows whose hash is not unique are compared value by value.
    """
    import numpy as np

    hashes = np.zeros(len(frame), dtype="uint64")
    for name in frame.columns:
        hashes = hashes * np.uint64(1_000_003) + _column_hash(frame[name])
    values, counts = np.unique(hashes, return_counts=True)  # a sort: cheaper than a hash table of every row
    repeated_hashes = values[counts > 1]
    if not len(repeated_hashes):
        return frame
    candidates = np.isin(hashes, repeated_hashes)
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[np.flatnonzero(candidates)] = frame.iloc[np.flatnonzero(candidates)].duplicated().to_numpy()
    return frame[~repeated] if repeated.any() else frame


def _column_hash(column: pd.Series):  # -> numpy.ndarray of uint64
    """A hash per value, equal for values ``duplicated`` takes as equal (NaN and NA alike, 0.0 and -0.0)."""
    import numpy as np
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if isinstance(column.dtype, pd.CategoricalDtype):
        values = column.cat.codes.to_numpy(dtype="float64")
    elif is_numeric_dtype(column.dtype) or is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # + 0.0 turns -0.0 into 0.0
        values[np.isnan(values)] = np.nan  # one NaN for all
    else:
        return pd.util.hash_array(column.to_numpy(dtype=object, na_value=None))
    return pd.util.hash_array(values)


def _failure_report(failure_cases: pd.DataFrame, null_shares: Mapping[str, float]) -> str:
    """One line per problem, with a count and a few example values."""
    lines: dict[str, None] = {}  # ordered set: pandera can report one problem twice
    type_failures: set[str] = set()
    for row in failure_cases.itertuples(index=False):
        check = str(row.check)
        if check in ("column_in_schema", "column_in_dataframe"):
            what = "extra column not in the schema" if check == "column_in_schema" else "missing column"
            lines[f"  - {what}: '{row.failure_case}'"] = None
        elif check.startswith(("coerce_dtype", "dtype")):
            type_failures.add(str(row.column))
    for (column, check), group in failure_cases.groupby(["column", "check"], sort=False, dropna=False):
        check = str(check)
        if check in ("column_in_schema", "column_in_dataframe"):
            continue
        examples = ", ".join(repr(v) for v in group["failure_case"].drop_duplicates().head(3).tolist())
        if check.startswith(("coerce_dtype", "dtype")):
            wanted = check.split("(")[-1].rstrip(")").strip("'")
            text = f"values that cannot be read as {wanted} ({len(group)} rows; e.g. {examples})"
        elif check == LABEL_CHECK:
            text = (
                f"values that are not one of schema.labels ({len(group)} rows; e.g. {examples}): add the label "
                "to schema.labels if it is right, or fix the data"
            )
        elif check == "not_nullable":
            text = f"nulls where none are allowed ({len(group)} rows)"
        elif check.startswith("null_share"):
            share = null_shares.get(str(column), float("nan"))
            text = (
                "is entirely null"
                if share == 1
                else f"is {share:.0%} null, more than {check.split('<=')[1].split('_')[0]} allowed"
            )
        elif column in type_failures:
            continue  # a range check on values that failed to parse repeats the type failure
        else:
            text = f"fails {check} ({len(group)} rows; e.g. {examples})"
        lines[f"  - column '{column}': {text}"] = None
    return "\n".join(lines)


def run_make_data(ctx: StepContext[MakeDataParams], inputs: Mapping[str, Any]) -> StepOutput:
    params = {"raw_uri": ctx.input_uris.get("raw", ""), **ctx.params.model_dump()}
    raw = inputs["raw"]
    with ctx.phase(f"validating {len(raw):,} rows" if hasattr(raw, "__len__") else "validating the rows"):
        clean, report = clean_data(raw, ctx.settings.dataset_schema, ctx.params)
    return StepOutput(outputs={"clean": clean}, metrics={k: float(v) for k, v in vars(report).items()}, params=params)


STEP = Step(
    name="make_data",
    reads=("raw",),
    writes=("clean",),
    params=MakeDataParams,
    run=run_make_data,
    chunked=("raw",),
    headline=("clean_rows", "dropped_duplicates", "dropped_missing_target"),
    resources={"cpu": "1", "memory": "4Gi"},
)
