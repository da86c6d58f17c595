"""Reading CSV files: options from the catalog, and a header that is wrong said plainly."""

from __future__ import annotations

import io

import pytest
from mlsteps.errors import StorageError
from mlsteps.tables import CsvOptions, read_frame


def _read(text: str, options: CsvOptions | None = None):
    return read_frame(io.BytesIO(text.encode("latin-1")), "raw.csv", ".csv", options)


def test_semicolons_and_decimal_commas_are_read_when_configured() -> None:
    frame = _read("a;b\n1,5;x\n2,25;y\n", CsvOptions(sep=";", decimal=","))

    assert frame["a"].tolist() == [1.5, 2.25]
    assert frame["b"].tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a;b;c\n1;2;3\n", "csv.sep to ';'"),
        ("a\tb\n1\t2\n", "csv.sep to '\\t'"),
        ("a,b,a\n1,2,3\n", "names column(s) ['a'] more than once"),
    ],
)
def test_a_header_that_cannot_be_right_is_refused(text: str, expected: str) -> None:
    with pytest.raises(StorageError) as caught:
        _read(text)

    assert expected in str(caught.value)


def test_another_encoding_is_named_with_the_setting_to_change() -> None:
    with pytest.raises(StorageError) as caught:
        _read("caf\xe9,b\n1,2\n")

    assert "set its catalog entry's csv.encoding" in str(caught.value)
    assert _read("caf\xe9,b\n1,2\n", CsvOptions(encoding="latin-1")).columns.tolist() == ["café", "b"]
