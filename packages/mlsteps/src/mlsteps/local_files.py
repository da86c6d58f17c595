"""Local files under ``mlsteps.storage``'s atomic writes: the folders a write makes (and removes again when it
fails), a file's SHA-256 and size, a frame written as Parquet a slice of rows at a time."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

CHUNK = 8 * 1024 * 1024  # bytes read at a time


def missing_folders(folder: str) -> list[str]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def remove_empty(folders: list[str]) -> None:
    """Remove the folders a failed write made, deepest first, while they are empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def hash_file(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_parquet(df: pd.DataFrame, path: str, rows: int) -> None:
    """``df`` as a Parquet file, converted to Arrow ``rows`` rows at a time (one row group each): the frame is
    never held twice, as pandas and as Arrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(df) <= rows:
        df.to_parquet(path, index=False)
        return
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(df), rows):
            part = df.iloc[start : start + rows]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
