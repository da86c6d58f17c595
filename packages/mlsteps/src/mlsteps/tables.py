"""Parsing table files (CSV, Parquet) into DataFrames, with messages that name what is wrong with the file."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from mlsteps.errors import DataValidationError, StorageError

if TYPE_CHECKING:
    import pandas as pd

# Delimiters a CSV file is often written with; one of these inside a lone header cell means the wrong one was used.
OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


@dataclass(frozen=True)
class CsvOptions:
    """How a CSV file is read (a catalog entry's ``csv:``)."""

    sep: str = ","
    encoding: str = "utf-8"
    decimal: str = "."


def read_frame(
    handle: IO[bytes], uri: str, suffix: str, options: CsvOptions | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """The table in ``handle`` (a seekable ``.parquet`` or ``.csv`` file at ``uri``), parsed from the handle (the
    file's bytes are never held whole besides the frame)."""
    import pandas as pd

    if suffix == ".parquet":
        # Each column's Arrow memory is freed as soon as it is converted: the table and the frame are never both
        # held whole.
        return pd.read_parquet(handle, columns=columns, to_pandas_kwargs={"self_destruct": True})
    options = options or CsvOptions()
    _check_header(_first_line(handle), uri, options)
    if options == CsvOptions():  # the common dialect: every row's width is checked against the header too
        from mlsteps.csv_input import read_csv
        from mlsteps.input_checks import InputError

        try:
            frame = read_csv(handle)
        except InputError as exc:
            raise DataValidationError(f"dataset '{uri}': {exc}") from exc
        return frame if columns is None else frame.loc[:, columns]
    return pd.read_csv(handle, usecols=columns, sep=options.sep, encoding=options.encoding, decimal=options.decimal)


def read_chunks(
    handle: IO[bytes], uri: str, suffix: str, rows: int, options: CsvOptions | None = None
) -> Iterator[pd.DataFrame]:
    """The table in ``handle``, ``rows`` rows at a time (an iterator of DataFrames): a file larger than memory
    is never held whole. A CSV is checked first as ``read_frame`` checks it (header, then every row's width)."""
    import pandas as pd

    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows):
            yield batch.to_pandas()
        return
    options = options or CsvOptions()
    _check_header(_first_line(handle), uri, options)
    if options == CsvOptions():
        from mlsteps.csv_input import read_csv_chunks
        from mlsteps.input_checks import InputError

        try:
            yield from read_csv_chunks(handle, rows)
        except InputError as exc:
            raise DataValidationError(f"dataset '{uri}': {exc}") from exc
        return
    with pd.read_csv(
        handle, sep=options.sep, encoding=options.encoding, decimal=options.decimal, chunksize=rows
    ) as reader:
        yield from reader


def _first_line(handle: IO[bytes]) -> bytes:
    """The first line of the file (the handle is left where it was)."""
    start = handle.tell()
    line = handle.readline()
    handle.seek(start)
    return line


def _check_header(line: bytes, uri: str, options: CsvOptions) -> None:
    """Refuse a header that names a column twice, or that looks written with another delimiter."""
    try:
        first_line = line.split(b"\n", 1)[0].decode(options.encoding).strip("\r\ufeff")
    except UnicodeDecodeError as exc:
        raise StorageError(
            f"dataset '{uri}' is not {options.encoding} text ({exc}): set its catalog entry's "
            "csv.encoding (e.g. latin-1)"
        ) from exc
    if not first_line.strip():
        return  # an empty file: pandas says so
    header = next(csv.reader([first_line], delimiter=options.sep))
    twice = [name for name, count in Counter(h.strip() for h in header).items() if count > 1]
    if twice:
        raise StorageError(
            f"dataset '{uri}' names column(s) {twice} more than once in its header: rename or remove the duplicates"
        )
    if len(header) == 1:
        for delimiter, name in OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                raise StorageError(
                    f"dataset '{uri}' reads as one column with separator {options.sep!r}, but its header holds "
                    f"{name}s: set its catalog entry's csv.sep to {delimiter!r} (e.g. csv: {{sep: {delimiter!r}}})"
                )
