"""make_data's checks and cleaning on a Dask frame: every partition validated against the contract, with the same
report as the pandas engine's (``mlsteps.validation``), exact duplicates found across partitions, ids checked.

One pass over the partitions validates each one and returns, per partition, its failures (or the hashes of its
rows and ids); the client merges them. Rows whose hash repeats (usually none) are gathered and compared value by
value, in partition order, so the row kept is the first, as ``DataFrame.drop_duplicates`` keeps it. The clean
frame is lazy: each partition is validated again, typed and cut when it is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsteps.row_keys import column_hash, row_hash
from mlsteps.schema import SchemaConfig
from mlsteps.validation import (
    DTYPES,
    NullLimit,
    _failure_report,
    _in_schema_order,
    _integral_target,
    _invalid,
    _no_rows,
    _null_share_check,
    _null_share_ok,
    build_raw_schema,
    check_unique_ids,
)

if TYPE_CHECKING:
    import pandas as pd

_PART, _POS = "__partition__", "__position__"


def _typed(raw: pd.DataFrame, schema: SchemaConfig, params: NullLimit) -> pd.DataFrame:
    """A partition validated and typed, without the rows that have no target, its columns in the contract's order."""
    typed = build_raw_schema(schema, params, null_share=False).validate(_integral_target(raw, schema), lazy=True)
    typed = typed[typed[schema.target].notna()]
    for name, spec in schema.columns.items():
        if spec.type == "category":  # every partition with the same categories, so that its files read alike
            values = sorted(spec.allowed) if spec.allowed else None
            column = typed[name]
            typed[name] = column.cat.set_categories(values) if values else column.astype("string")
    ordered = ([schema.id_column] if schema.id_column else []) + schema.features + [schema.target]
    return typed.loc[:, ordered].reset_index(drop=True)


def _scan(raw: pd.DataFrame, schema: SchemaConfig, params: NullLimit, hashes: bool) -> dict[str, Any]:
    """On a worker: one partition's rows and nulls, and its failures, or the hashes of its typed rows and ids."""
    import pandera.errors as pa_errors

    features = [c for c in schema.columns if c in raw.columns]
    scan: dict[str, Any] = {
        "rows": len(raw),
        "columns": list(raw.columns),
        "nulls": {str(k): int(v) for k, v in raw[features].isna().sum().items()},
    }
    if raw.empty:
        return scan
    try:
        typed = _typed(raw, schema, params)
    except pa_errors.SchemaErrors as exc:
        return scan | {"failures": exc.failure_cases}
    scan["kept"] = len(typed)
    scan["null_cells"] = int(typed[schema.features].isna().sum().sum())
    if hashes:
        scan["hashes"] = row_hash(typed)
    if schema.id_column:
        scan["ids"] = column_hash(typed[schema.id_column])
    return scan


def _rows_with(
    raw: pd.DataFrame, index: int, schema: SchemaConfig, params: NullLimit, column: str | None, wanted: Any
) -> pd.DataFrame:
    """On a worker: the typed rows of partition ``index`` whose hash (of the row, or of ``column``) is ``wanted``."""
    import numpy as np

    typed = _typed(raw, schema, params)
    hashes = row_hash(typed) if column is None else column_hash(typed[column])
    where = np.flatnonzero(np.isin(hashes, wanted))
    return typed.iloc[where].assign(**{_PART: index, _POS: where})


def _drop(
    raw: pd.DataFrame, schema: SchemaConfig, params: NullLimit, drops: dict[int, Any], partition_info: Any = None
) -> Any:
    """On a worker: a partition typed, without its rows found to repeat an earlier one (Dask passes its number)."""
    typed = _typed(raw, schema, params)
    positions = drops.get(int(partition_info["number"]), None) if partition_info else None
    if positions is None or not len(positions):
        return typed
    keep = typed.index.difference(positions)
    return typed.loc[keep].reset_index(drop=True)


def clean_partitions(
    raw: Any, schema: SchemaConfig, params: NullLimit, drop_duplicates: bool
) -> tuple[Any, dict[str, int]]:
    """The Dask frame ``raw`` validated (the full report of every partition's failures, as the pandas engine gives
    it), without rows that have no target and (``drop_duplicates``) without rows repeating an earlier row.

    Returns the lazy clean frame and the counts: raw_rows, dropped_missing_target, dropped_duplicates, clean_rows,
    null_cells.
    """
    import dask
    import numpy as np
    import pandas as pd

    parts = raw.to_delayed()
    scans = dask.compute(*[dask.delayed(_scan)(p, schema, params, drop_duplicates) for p in parts])
    rows = sum(s["rows"] for s in scans)
    columns = scans[0]["columns"] if scans else list(raw.columns)
    if rows == 0:
        raise _no_rows(columns)
    failures = [s["failures"] for s in scans if "failures" in s]
    nulls = {name: sum(s["nulls"].get(name, 0) for s in scans) for name in schema.columns}
    over = [n for n in schema.columns if n in columns and not _null_share_ok(nulls[n], rows, params.max_null_fraction)]
    if over:
        failures.append(pd.DataFrame({"column": over, "check": _null_share_check(params), "failure_case": False}))
    if failures:
        shares = {name: count / rows for name, count in nulls.items()}
        raise _invalid(_failure_report(_in_schema_order(failures, schema), shares))
    kept = sum(s.get("kept", 0) for s in scans)
    null_cells = sum(s.get("null_cells", 0) for s in scans)
    drops: dict[int, Any] = {}
    if drop_duplicates:
        every = np.concatenate([s["hashes"] for s in scans if "hashes" in s] or [np.empty(0, "uint64")])
        values, counts = np.unique(every, return_counts=True)
        repeated = values[counts > 1]
        if len(repeated):
            found = dask.compute(
                *[dask.delayed(_rows_with)(p, i, schema, params, None, repeated) for i, p in enumerate(parts)]
            )
            candidates = pd.concat(found, ignore_index=True)
            dropped = candidates[candidates.drop(columns=[_PART, _POS]).duplicated().to_numpy()]
            null_cells -= int(dropped[schema.features].isna().sum().sum())
            drops = {int(i): g[_POS].to_numpy() for i, g in dropped.groupby(_PART)}
    dropped_count = sum(len(p) for p in drops.values())
    if schema.id_column and not schema.id_may_repeat:
        _check_ids(parts, scans, drops, schema, params)
    meta = _typed(raw._meta, schema, params)
    clean = raw.map_partitions(_drop, schema, params, drops, meta=meta)
    return clean, {
        "raw_rows": rows,
        "dropped_missing_target": rows - kept,
        "dropped_duplicates": dropped_count,
        "clean_rows": kept - dropped_count,
        "null_cells": null_cells,
    }


def _check_ids(parts: list[Any], scans: Any, drops: dict[int, Any], schema: SchemaConfig, params: NullLimit) -> None:
    """Each id held once by the clean rows, across every partition: else the error ``check_unique_ids`` gives."""
    import dask
    import numpy as np
    import pandas as pd

    ids = []
    for index, scan in enumerate(scans):
        hashes = scan.get("ids")
        if hashes is not None:
            ids.append(np.delete(hashes, drops[index]) if index in drops else hashes)
    values, counts = np.unique(np.concatenate(ids or [np.empty(0, "uint64")]), return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return
    found = dask.compute(
        *[dask.delayed(_rows_with)(p, i, schema, params, schema.id_column, repeated) for i, p in enumerate(parts)]
    )
    rows = pd.concat(found, ignore_index=True)
    dropped = {(i, int(p)) for i, positions in drops.items() for p in positions}
    rows = rows[[(int(i), int(p)) not in dropped for i, p in zip(rows[_PART], rows[_POS], strict=True)]]
    check_unique_ids(rows.drop(columns=[_PART, _POS]), schema)


__all__ = ["DTYPES", "clean_partitions"]
