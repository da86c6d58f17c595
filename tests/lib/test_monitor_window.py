"""A window of the inference log: the rows received in it, wherever the day's folder they were written to."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.errors import StorageError, UsageError
from mlsteps.monitor.window import LogWindow
from mlsteps.storage import Storage

DAY = datetime(2026, 12, 1, tzinfo=UTC)
NEXT = datetime(2026, 12, 2, tzinfo=UTC)


def _write(log: Path, folder: str, name: str, received: list[str], x: list[object]) -> None:
    (log / f"date={folder}").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(len(x))],
            "received_at": pd.to_datetime(received, utc=True),
            "input.x": x,
        }
    ).to_parquet(log / f"date={folder}" / name)


def test_a_row_received_before_midnight_and_written_after_is_in_its_day(tmp_path: Path) -> None:
    _write(tmp_path, "2026-12-01", "a.parquet", ["2026-11-30T23:59:59", "2026-12-01T12:00:00"], [1, 2])
    _write(tmp_path, "2026-12-02", "b.parquet", ["2026-12-01T23:59:58", "2026-12-02T00:00:01"], [3.5, 4.5])
    _write(tmp_path, "2026-12-05", "c.parquet", ["2026-12-01T13:00:00"], [9])  # a folder outside: not read

    window = LogWindow(str(tmp_path), DAY, NEXT, Storage())

    assert sorted(window.column("input.x").tolist()) == [2.0, 3.5]  # int in one file, float in the other
    assert len(window.files) == 2


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    _write(tmp_path, "2026-12-01", "a.parquet", ["2026-12-01T12:00:00"], [1])
    (tmp_path / "date=2026-12-01" / "broken.parquet").write_bytes(b"PAR1 but not really")

    with pytest.raises(StorageError) as raised:
        LogWindow(str(tmp_path), DAY, NEXT, Storage())

    assert "broken.parquet cannot be read" in str(raised.value)


def test_a_window_that_ends_before_it_starts_or_a_missing_log_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ends .* before it starts"):
        LogWindow(str(tmp_path), NEXT, DAY, Storage())
    with pytest.raises(UsageError, match="there is no inference log at"):
        LogWindow(str(tmp_path / "none"), DAY, NEXT, Storage())
