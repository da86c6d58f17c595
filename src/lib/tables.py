"""Parsing table files (CSV, Parquet) into DataFrames, with messages that name what is wrong with the file."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from src.lib.errors import DataValidationError, StorageError

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
    """The table in ``handle`` (a ``.parquet`` or ``.csv`` file at ``uri``)."""
    import pandas as pd

    if suffix == ".parquet":
        return pd.read_parquet(handle, columns=columns)
    options = options or CsvOptions()
    data = handle.read()
    _check_header(data, uri, options)
    if options == CsvOptions():  # the common dialect: every row's width is checked against the header too
        from src.models.input_checks import InputError, read_csv

        try:
            frame = read_csv(io.BytesIO(data))
        except InputError as exc:
            raise DataValidationError(f"dataset '{uri}': {exc}") from exc
        return frame if columns is None else frame.loc[:, columns]
    return pd.read_csv(
        io.BytesIO(data), usecols=columns, sep=options.sep, encoding=options.encoding, decimal=options.decimal
    )


def _check_header(data: bytes, uri: str, options: CsvOptions) -> None:
    """Refuse a header that names a column twice, or that looks written with another delimiter."""
    try:
        first_line = data.split(b"\n", 1)[0].decode(options.encoding).strip("\r\ufeff")
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
