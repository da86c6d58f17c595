"""Reading a dataset as a Dask frame: a partitioned dataset by its manifest, an input file or folder of CSV or
Parquet files in partitions (local paths or ``s3://``, through the same fsspec filesystems as ``mlsteps.storage``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsteps import partitions
from mlsteps.errors import StorageError

if TYPE_CHECKING:
    from mlsteps.config import Settings
    from mlsteps.storage import Storage

# Bytes of the start of a CSV file looked at to estimate a row's size (the partitions' size in bytes follows).
_SAMPLE_BYTES = 256 * 1024


def read_input(settings: Settings, storage: Storage, name: str, uri: str) -> Any:
    """Dataset ``name`` at ``uri`` as a Dask frame, about ``engine.partition_rows`` rows a partition for a CSV
    (a Parquet file keeps its row groups, a partitioned dataset its files)."""
    import dask.dataframe as dd

    if partitions.is_partitioned(uri):
        return partitions.read_dask(storage, uri)
    files = partitions.input_files(storage, uri)
    if files is None:
        if not storage.exists(uri):
            raise StorageError(f"dataset '{uri}' does not exist: check data.root and the dataset path in the config")
        files = [uri]
    options = storage.options(uri)
    if files[0].lower().endswith(".parquet"):
        return dd.read_parquet(files, storage_options=options, split_row_groups="infer")
    csv = settings.dataset(name).csv
    # Every feature the contract calls a number is read as float64 (pandas reads an int column with a gap so):
    # each block is parsed alike, never typed by the first block alone.
    schema = settings.dataset_schema
    numbers = {c: "float64" for c, spec in schema.columns.items() if spec.type in ("float", "int")}
    try:
        return dd.read_csv(
            files,
            sep=csv.sep,
            encoding=csv.encoding,
            decimal=csv.decimal,
            blocksize=_blocksize(storage, files[0], settings.engine.partition_rows),
            dtype=numbers,
            storage_options=options,
        )
    except ValueError as exc:
        raise StorageError(f"dataset '{uri}' cannot be parsed as csv: {exc}") from exc


def _blocksize(storage: Storage, uri: str, rows: int) -> int:
    """Bytes per partition for about ``rows`` rows of the CSV at ``uri`` (from the size of its first rows)."""
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    lines = max(1, sample.count(b"\n") - 1)
    return max(1 << 20, int(len(sample) / lines * rows))
