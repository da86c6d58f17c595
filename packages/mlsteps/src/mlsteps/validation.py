"""make_data's checks of the raw dataset against the config's ``schema`` section (pandera), on the whole frame or
chunk by chunk with the same result: every failing check at once, in one report that names each column, what is
wrong with it and a few of its values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from mlsteps.errors import DataValidationError
from mlsteps.schema import SchemaConfig

if TYPE_CHECKING:
    import pandas as pd


class NullLimit(Protocol):
    """What the checks take of make_data's parameters."""

    @property
    def max_null_fraction(self) -> float:
        """A feature column with a larger share of nulls fails."""


# pandas dtype each schema type is coerced to (nullable dtypes, so a missing value never changes a column's type).
DTYPES = {"float": "float64", "int": "Int64", "bool": "boolean", "category": "category", "string": "string"}
LABEL_CHECK = "label_in_schema_labels"


def build_raw_schema(schema: SchemaConfig, params: NullLimit, null_share: bool = True):  # -> pandera.DataFrameSchema
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


def _null_share_check(params: NullLimit) -> str:
    return f"null_share<={params.max_null_fraction:g}_and_not_all_null"


def _null_share_ok(nulls: int, rows: int, limit: float) -> bool:
    return nulls < rows and nulls / rows <= limit


def validate_raw(raw: pd.DataFrame, schema: SchemaConfig, params: NullLimit) -> pd.DataFrame:
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
        "point catalog.raw.path at a file with data"
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
    chunks: Iterable[pd.DataFrame], schema: SchemaConfig, params: NullLimit
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


def check_unique_ids(frame: pd.DataFrame, schema: SchemaConfig) -> None:
    """The id column holds each id once (after exact duplicate rows are dropped), unless the schema allows
    repeats: else one error with the count and a few of the repeated ids."""
    if not schema.id_column or schema.id_may_repeat or schema.id_column not in frame.columns:
        return
    ids = frame[schema.id_column]
    repeated = ids[ids.duplicated(keep=False) & ids.notna()]
    if repeated.empty:
        return
    counts = repeated.value_counts()
    examples = ", ".join(f"{value!r} ({count} rows)" for value, count in counts.head(5).items())
    raise DataValidationError(
        f"id column '{schema.id_column}' repeats: {len(repeated)} rows share {len(counts)} id(s) with another "
        f"row ({examples}{', ...' if len(counts) > 5 else ''}): make the ids unique, or set "
        "schema.id_may_repeat: true if rows may share an id"
    )
