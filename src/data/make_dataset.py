"""make_data: the raw DataFrame in, a validated clean DataFrame out. No I/O, no tracking.

The raw data's contract is the config's ``schema`` section; every failing check is reported at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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


def build_raw_schema(schema: SchemaConfig, params: MakeDataParams):  # -> pandera.DataFrameSchema
    """The pandera schema of the raw dataset, built from the config's ``schema`` section."""
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
        checks.append(
            pa.Check(
                lambda s, limit=params.max_null_fraction: bool(s.notna().any()) and s.isna().mean() <= limit,
                element_wise=False,
                ignore_na=False,
                name=f"null_share<={params.max_null_fraction:g}_and_not_all_null",
            )
        )
        columns[name] = pa.Column(DTYPES[spec.type], checks=checks, nullable=spec.nullable, coerce=True)
    return pa.DataFrameSchema(columns, strict=True, ordered=False, name="raw dataset")


def validate_raw(raw: pd.DataFrame, schema: SchemaConfig, params: MakeDataParams) -> pd.DataFrame:
    """Check the raw dataset against the schema, reporting every failing check at once.

    Returns a copy with every feature coerced to its declared type.
    Raises:
        DataValidationError: with the full failure report in ``.report``.
    """
    import pandera.errors as pa_errors

    if raw.empty:
        raise DataValidationError(
            f"the raw dataset has no rows (columns: {', '.join(map(str, raw.columns)) or 'none'}): "
            "point data.raw at a file with data"
        )
    try:
        # pandera copies (inplace=False)
        return build_raw_schema(schema, params).validate(_integral_target(raw, schema), lazy=True)
    except pa_errors.SchemaErrors as exc:
        report = _failure_report(exc.failure_cases, raw)
        raise DataValidationError(
            "the raw dataset does not match the schema in the config:\n"
            + report
            + "\nfix the data, or the 'schema' section of the config if the data is right",
            report=report,
        ) from None


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


def clean_data(raw: pd.DataFrame, schema: SchemaConfig, params: MakeDataParams) -> tuple[pd.DataFrame, CleanReport]:
    """Validate and clean: coerce types, drop rows without a target, drop exact duplicates.

    Missing feature values are kept: the model's own imputer fills them, so serving handles them the same way.
    """
    typed = validate_raw(raw, schema, params)
    raw_rows = len(typed)
    with_target = typed[typed[schema.target].notna()]
    dropped_target = raw_rows - len(with_target)
    deduped = with_target.drop_duplicates() if params.drop_duplicates else with_target
    dropped_dupes = len(with_target) - len(deduped)
    ordered = ([schema.id_column] if schema.id_column else []) + schema.features + [schema.target]
    clean = deduped.loc[:, ordered].reset_index(drop=True)
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


def _failure_report(failure_cases: pd.DataFrame, raw: pd.DataFrame) -> str:
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
            share = raw[column].isna().mean() if column in raw else float("nan")
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
    with ctx.phase(f"validating {len(inputs['raw']):,} rows"):
        clean, report = clean_data(inputs["raw"], ctx.settings.dataset_schema, ctx.params)
    return StepOutput(outputs={"clean": clean}, metrics={k: float(v) for k, v in vars(report).items()}, params=params)


STEP = Step(
    name="make_data",
    reads=("raw",),
    writes=("clean",),
    params=MakeDataParams,
    run=run_make_data,
    headline=("clean_rows", "dropped_duplicates", "dropped_missing_target"),
    resources={"cpu": "1", "memory": "4Gi"},
)
