"""make_data: the raw DataFrame in, a validated clean DataFrame out. No I/O, no tracking.

The raw data's contract is the config's ``schema`` section, checked by ``src/data/validation.py`` (every failing
check reported at once); cleaning drops the rows without a target and the exact duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps.dask_clean import clean_partitions
from mlsteps.engine import is_dask
from mlsteps.errors import DataValidationError
from mlsteps.row_keys import row_hash
from mlsteps.schema import SchemaConfig
from mlsteps.step import Step, StepContext, StepOutput, StepParams
from mlsteps.validation import check_unique_ids, validate_chunks, validate_raw
from pydantic import Field

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


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


def clean_data(
    raw: pd.DataFrame | Iterable[pd.DataFrame], schema: SchemaConfig, params: MakeDataParams
) -> tuple[pd.DataFrame, CleanReport]:
    """Validate and clean: coerce types, drop rows without a target, drop exact duplicates, check the ids.

    ``raw`` is the raw DataFrame, or its rows in chunks (DataFrames one after another: a large file read a piece
    at a time), which are validated one by one and never held all at once, or a Dask frame (the dask engine:
    each partition validated on the workers, duplicates found across partitions; the clean frame stays lazy).
    Missing feature values are kept: the model's own imputer fills them, so serving handles them the same way.
    """
    import pandas as pd

    if is_dask(raw):
        lazy, counts = clean_partitions(raw, schema, params, params.drop_duplicates)
        if not counts["clean_rows"]:
            raise _nothing_left(schema, counts["dropped_missing_target"], counts["dropped_duplicates"])
        return lazy, CleanReport(**counts)
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
    check_unique_ids(deduped, schema)
    ordered = ([schema.id_column] if schema.id_column else []) + schema.features + [schema.target]
    clean = (deduped if list(deduped.columns) == ordered else deduped.loc[:, ordered]).reset_index(drop=True)
    if clean.empty:
        raise _nothing_left(schema, dropped_target, dropped_dupes)
    report = CleanReport(
        raw_rows=raw_rows,
        dropped_missing_target=dropped_target,
        dropped_duplicates=dropped_dupes,
        clean_rows=len(clean),
        null_cells=int(clean[schema.features].isna().sum().sum()),
    )
    return clean, report


def _nothing_left(schema: SchemaConfig, dropped_target: int, dropped_dupes: int) -> DataValidationError:
    return DataValidationError(
        f"no rows are left after cleaning ({dropped_target} had no '{schema.target}', "
        f"{dropped_dupes} were duplicates): the raw dataset has no usable rows"
    )


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

    hashes = row_hash(frame)
    values, counts = np.unique(hashes, return_counts=True)  # a sort: cheaper than a hash table of every row
    repeated_hashes = values[counts > 1]
    if not len(repeated_hashes):
        return frame
    candidates = np.isin(hashes, repeated_hashes)
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[np.flatnonzero(candidates)] = frame.iloc[np.flatnonzero(candidates)].duplicated().to_numpy()
    return frame[~repeated] if repeated.any() else frame


def run_make_data(ctx: StepContext[MakeDataParams], inputs: Mapping[str, Any]) -> StepOutput:
    params = {"raw_uri": ctx.input_uris.get("raw", ""), **ctx.params.model_dump()}
    raw = inputs["raw"]
    sized = hasattr(raw, "__len__") and not is_dask(raw)
    with ctx.phase(f"validating {len(raw):,} rows" if sized else "validating the rows"):
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
