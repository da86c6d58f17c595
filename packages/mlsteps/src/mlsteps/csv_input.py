"""CSV in, checked before pandas reads it: every row must hold one value per column (pandas would take an extra
leading value as the index, or fill a missing one with NaN, and answer for a row nobody sent), then the frame is
checked against the model's inputs (``src/models/input_checks.py``). Used by serving's ``/invocations``
(``frame_from_csv``) and by every CSV the pipeline reads (``mlsteps.tables``: ``read_csv``, ``read_csv_chunks``).
Rows are counted from 1, a header line not included.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from typing import IO, Any

import pandas as pd

from mlsteps.input_checks import InputError, Schema, _Problems, check_frame, describe_inputs, kept_columns

_CHUNK = 8 * 1024 * 1024


def read_csv(
    handle: IO[bytes],
    names: Sequence[str] | None = None,
    dtype: Mapping[str, Any] | None = None,
    fix: str = "Give every row one value per column of the header.",
) -> pd.DataFrame:
    """A CSV read with pandas, once every row is known to hold exactly one value per column: per column of its
    header line, or per name of ``names`` for a CSV without one. The handle must be seekable."""
    start = handle.tell()
    problems = _Problems()
    _check_widths(handle, len(names) if names is not None else None, problems)
    problems.raise_if_any(fix)
    handle.seek(start)
    with _parse_errors(fix):
        return pd.read_csv(handle, header=None if names is not None else 0, names=names, index_col=False, dtype=dtype)


def read_csv_chunks(
    handle: IO[bytes], rows: int, fix: str = "Give every row one value per column of the header."
) -> Iterator[pd.DataFrame]:
    """A CSV with a header line, ``rows`` rows at a time, once every row is known to hold one value per column of
    the header (checked in one streaming pass first). The handle must be seekable."""
    start = handle.tell()
    problems = _Problems()
    _check_widths(handle, None, problems)
    problems.raise_if_any(fix)
    handle.seek(start)
    with _parse_errors(fix), pd.read_csv(handle, header=0, index_col=False, chunksize=rows) as reader:
        yield from reader


@contextlib.contextmanager
def _parse_errors(fix: str) -> Iterator[None]:
    """pandas' parsing errors as an InputError saying ``fix``. An empty file (no header, no rows) is let through:
    the caller says what that means where it reads."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise
    except UnicodeDecodeError as exc:
        raise InputError([f"the CSV is not UTF-8 text ({exc.reason} at byte {exc.start})"], "Send UTF-8 text.") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError([f"the CSV cannot be read: {exc}"], fix) from exc


def frame_from_csv(body: bytes, schema: Schema) -> pd.DataFrame:
    """The rows of a CSV request, checked: after a header line naming the model's inputs (in any order), or
    with no header (SageMaker's way), one value per model input in the model's order."""
    if not body.strip():
        raise InputError(["there are no rows to score"], "Send at least one row. " + describe_inputs(schema))
    header = csv_has_header(body.lstrip().split(b"\n", 1)[0].decode("utf-8", "replace"), schema)
    # "007" stays "007"; an id column kept with the rows too
    text = {name: str for name, kind in schema.items() if kind == "string"} | dict.fromkeys(kept_columns(schema), str)
    fix = (
        "Give every row one value per column of the header."
        if header
        else "Send one value per model input, in the model's order, or a header line naming the columns."
    )
    frame = read_csv(
        io.BytesIO(body), None if header else list(schema), text or None, f"{fix} {describe_inputs(schema)}"
    )
    return check_frame(frame, schema, extra_columns=False)


def csv_has_header(first_line: str, schema: Schema) -> bool:
    """Whether a CSV's first line names columns (any of its cells is an input of the model) or holds values."""
    cells = next(csv.reader([first_line]), [])
    return any(cell.strip() in schema for cell in cells)


# -- CSV rows ------------------------------------------------------------------------------------------------------
def _check_widths(handle: IO[bytes], width: int | None, problems: _Problems) -> None:
    """Add a problem for each row of a CSV without ``width`` values (None: as many as its header line has).

    Counting separators is exact when no value is quoted; a CSV with a quote anywhere is read with the ``csv``
    module, which knows quoted separators and line breaks. The file is read in chunks (bounded memory), and
    only the lines whose count differs (blank lines among them) are looked at one by one."""
    start = handle.tell()
    quoted = any(b'"' in chunk for chunk in iter(lambda: handle.read(_CHUNK), b""))
    handle.seek(start)
    row, line_no = (0 if width is None else 1), 0
    for lines, seps, numbers in _quoted_lines(handle) if quoted else _plain_lines(handle):
        blanks = 0
        # Every line until the header is known, or when a blank line has the width; else only the misfits.
        known = width
        misfits = (
            range(len(lines)) if known is None or known == 1 else [i for i, c in enumerate(seps) if c != known - 1]
        )
        for i in misfits:
            if not lines[i].strip():
                blanks += 1
            elif width is None:
                width = seps[i] + 1
            elif seps[i] + 1 != width:
                line = numbers[i] if numbers else line_no + i + 1
                problems.add(f"row {row + i - blanks} (line {line}): {seps[i] + 1} values, expected {width}")
        row, line_no = row + len(lines) - blanks, line_no + len(lines)


def _plain_lines(handle: IO[bytes]) -> Iterator[tuple[list[bytes], list[int], None]]:
    """Chunks of lines, with the separators in each."""
    tail = b""
    while chunk := handle.read(_CHUNK):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield lines, list(map(bytes.count, lines, repeat(b","))), None
    if tail:
        yield [tail], [tail.count(b",")], None


def _quoted_lines(handle: IO[bytes]) -> Iterator[tuple[list[bytes], list[int], list[int]]]:
    """The whole CSV as one chunk: per row, whether it is blank (b""), its separators and its last line."""
    text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
    try:
        reader = csv.reader(text)
        rows = [
            (b"x" if len(cells) > 1 or (cells and cells[0].strip()) else b"", len(cells) - 1, reader.line_num)
            for cells in reader
        ]
    finally:
        text.detach()  # the caller still owns the handle
    yield [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
