"""The inference log: a bounded queue, a background writer, Parquet files read back as one table."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlsteps.config import InferenceLogParams
from mlsteps.refs import ModelRef
from mlsteps.serving.inference_log import InferenceLog
from mlsteps.serving.log_files import Entry, log_frame, read_inference_log
from mlsteps.storage import Storage

MODEL = ModelRef("models:/m/3", "m", "3", "run-abc")


def _entry(rows: int, request_id: str = "r", status: int = 200) -> Entry:
    inputs = pd.DataFrame({"a": np.arange(rows, dtype="float64"), "plan": ["x"] * rows})
    return Entry(
        request_id, datetime.now(UTC), 1.5, status, client="team-a", inputs=inputs, outputs=np.arange(rows) % 2
    )


def test_a_batch_becomes_one_row_per_scored_row_and_one_per_refused_request_in_order() -> None:
    refused = Entry("bad", datetime.now(UTC), 0.5, 400, client="team-b", error="row 1: plan is not a string")
    labelled = Entry(
        "lab",
        datetime.now(UTC),
        2.0,
        200,
        inputs=pd.DataFrame({"a": [7.0], "plan": ["y"]}),
        outputs=pd.DataFrame({"prediction": [1], "probability": [0.9]}),
    )

    frame = log_frame([_entry(2, "two"), refused, labelled, _entry(1, "one")], MODEL)

    assert list(frame.columns[:11]) == [
        "request_id", "row", "received_at", "latency_ms", "status", "error", "client",
        "model_uri", "model_name", "model_version", "model_run_id",
    ]  # fmt: skip
    assert frame["request_id"].tolist() == ["two", "two", "bad", "lab", "one"]
    assert frame["row"].tolist() == [1, 2, pd.NA, 1, 1]
    assert frame["status"].tolist() == [200, 200, 400, 200, 200] and frame["status"].dtype == "int16"
    assert [frame["client"][i] for i in (0, 1, 2, 4)] == ["team-a", "team-a", "team-b", "team-a"]
    assert pd.isna(frame["client"][3])
    assert frame["input.a"].tolist()[:2] == [0.0, 1.0] and pd.isna(frame["input.a"][2])
    assert frame["input.plan"].tolist()[3] == "y" and frame["error"][2] == "row 1: plan is not a string"
    # an entry's outputs, a frame or an array, land on its own rows; a refused request has none
    assert frame["output.prediction"].tolist()[:2] == [0, 1] and frame["output.prediction"][3] == 1
    assert pd.isna(frame["output.probability"][0]) and frame["output.probability"][3] == 0.9
    assert frame["model_version"].unique().tolist() == ["3"]
    assert frame["received_at"].dt.tz is not None


class Gate:
    """A writer that writes only once the test opens the gate: storage that is slow or stuck."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.calls = 0

    def __call__(self, frame: pd.DataFrame, uri: str) -> None:
        self.calls += 1
        self.open.wait(30)
        Storage().write_table(frame, uri)


def _log(tmp_path: Path, write=None, **params) -> InferenceLog:
    settings = InferenceLogParams(
        **{"batch_rows": 1000, "flush_seconds": 60, "max_pending_rows": 100, "spool_seconds": 0.05, **params}
    )
    log = InferenceLog(str(tmp_path / "log"), MODEL, settings, write or Storage().write_table, tmp_path / "spool")
    return log.start()


def _wait_for(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_entries_are_written_in_one_file_once_enough_rows_wait(tmp_path: Path) -> None:
    log = _log(tmp_path, batch_rows=5)

    log.record(_entry(2, "first"))
    log.record(_entry(3, "second"))
    deadline = time.monotonic() + 10
    while log.stats["files_written"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    table = read_inference_log(str(tmp_path / "log"))
    log.close()

    assert log.counts.files_written == 1
    assert len(list((tmp_path / "log").rglob("*.parquet"))) == 1
    assert table["request_id"].tolist() == ["first"] * 2 + ["second"] * 3
    assert table["row"].tolist() == [1, 2, 1, 2, 3]
    assert table["input.a"].tolist() == [0.0, 1.0, 0.0, 1.0, 2.0]
    assert table["output.prediction"].tolist() == [0, 1, 0, 1, 0]
    assert set(table["model_version"]) == {"3"} and set(table["model_run_id"]) == {"run-abc"}
    assert set(table["client"]) == {"team-a"}
    assert str(table["received_at"].dtype).endswith("UTC]")


def test_a_few_rows_are_written_after_flush_seconds(tmp_path: Path) -> None:
    log = _log(tmp_path, flush_seconds=0.5)

    log.record(_entry(1))
    started = time.monotonic()
    early = log.stats["files_written"]
    while log.stats["files_written"] < 1 and time.monotonic() - started < 10:
        time.sleep(0.02)
    waited = time.monotonic() - started
    log.close()

    assert early == 0
    assert log.counts.files_written == 1
    assert 0.3 < waited < 10


def test_what_waits_is_written_when_the_log_closes(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.record(_entry(2, "late"))
    log.record(Entry("refused", datetime.now(UTC), 0.3, 400, error="row 1, column 'a': expected a number"))

    counts = log.close()

    table = read_inference_log(str(tmp_path / "log"))
    assert counts.requests_logged == 2 and counts.rows_logged == 3
    refused = table[table["request_id"] == "refused"].iloc[0]
    assert refused["status"] == 400 and "column 'a'" in refused["error"] and pd.isna(refused["row"])
    assert pd.isna(refused["input.a"])


def test_overload_drops_and_counts_entries_and_never_blocks_a_request(tmp_path: Path) -> None:
    # The spooler takes what waits in memory only every spool_seconds: meanwhile max_pending_rows bounds it.
    log = _log(tmp_path, spool_seconds=60, max_pending_rows=4)

    started = time.monotonic()
    accepted = [log.record(_entry(2, f"r{i}")) for i in range(4)]
    took = time.monotonic() - started
    stats = log.stats
    counts = log.close()

    assert accepted == [True, True, False, False]
    assert took < 0.5
    assert stats["requests_dropped"] == 2 and stats["rows_dropped"] == 4 and stats["rows_waiting"] == 4
    assert counts.requests_logged == 2 and counts.rows_logged == 4
    assert set(read_inference_log(str(tmp_path / "log"))["request_id"]) == {"r0", "r1"}


def test_a_stuck_destination_does_not_stop_the_spool(tmp_path: Path) -> None:
    gate = Gate()
    log = _log(tmp_path, gate, batch_rows=1, max_pending_rows=4)
    log.record(_entry(1, "written-first"))
    _wait_for(lambda: gate.calls >= 1)  # the shipper is now stuck in storage

    accepted = [log.record(_entry(2, f"r{i}")) for i in range(4) if not time.sleep(0.1)]
    _wait_for(lambda: log.stats["rows_spooled"] == 9)
    stats = log.stats
    gate.open.set()
    counts = log.close()

    assert accepted == [True] * 4
    assert stats["rows_spooled"] == 9 and stats["rows_in_spool"] == 9 and stats["rows_dropped"] == 0
    assert counts.rows_logged == 9 and counts.requests_dropped == 0
    assert list((tmp_path / "spool").rglob("*.arrow")) == []
    assert len(set(read_inference_log(str(tmp_path / "log"))["request_id"])) == 5


def test_a_failing_destination_is_retried_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlsteps.serving.inference_log._RETRY_FIRST", 0.1)
    calls = []

    def flaky(frame: pd.DataFrame, uri: str) -> None:
        calls.append(uri)
        if len(calls) <= 3:
            raise OSError("disk full")
        Storage().write_table(frame, uri)

    log = _log(tmp_path, flaky, batch_rows=1)
    log.record(_entry(1, "first"))
    _wait_for(lambda: len(calls) >= 2)
    failing = log.stats
    log.record(_entry(1, "second"))
    _wait_for(lambda: log.stats["rows_logged"] == 2)
    counts = log.close()

    assert failing["write_failures"] >= 1 and failing["rows_in_spool"] == 1 and failing["rows_logged"] == 0
    assert counts.write_failures == 3 and counts.requests_dropped == 0 and counts.rows_logged == 2
    assert read_inference_log(str(tmp_path / "log"))["request_id"].tolist() == ["first", "second"]
    assert "could not be written to" in caplog.text and "(OSError: disk full)" in caplog.text
    assert "1 row(s) wait in the spool" in caplog.text


def _down(frame: pd.DataFrame, uri: str) -> None:
    raise OSError("no route to host")


def test_the_spool_bound_drops_and_counts(tmp_path: Path) -> None:
    log = _log(tmp_path, _down, max_spool_mb=0.000_001)
    log.record(_entry(2, "kept"))
    _wait_for(lambda: log.stats["rows_spooled"] == 2)
    log.record(_entry(3, "over"))
    _wait_for(lambda: log.stats["rows_dropped"] == 3)
    counts = log.close()

    assert counts.rows_spooled == 2 and counts.requests_dropped == 1 and counts.rows_dropped == 3
    assert len(list((tmp_path / "spool").rglob("*.arrow"))) == 1  # kept for the next server


def test_what_a_dead_server_spooled_is_shipped_by_the_next(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = _log(tmp_path, _down, batch_rows=1)  # its destination is down
    dead.record(_entry(2, "answered-before-the-kill"))
    _wait_for(lambda: dead.stats["rows_spooled"] == 2)
    alive = _log(tmp_path)  # another server, meanwhile: it takes nothing from a live one
    assert alive.counts.rows_recovered == 0
    alive.close()
    assert dead._folder is not None
    dead._folder.release()  # what the kernel does when the process is killed: its lock is free

    after = _log(tmp_path)
    counts = after.close()
    dead.close(timeout=5)  # its threads, which a kill would have ended

    assert counts.rows_recovered == 2 and counts.rows_logged == 2
    assert read_inference_log(str(tmp_path / "log"))["request_id"].tolist() == ["answered-before-the-kill"] * 2
    assert "found 2 row(s) a stopped server had not shipped" in caplog.text
    assert list((tmp_path / "spool").rglob("server-*")) == []


def test_an_unreadable_spool_file_is_set_aside_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = _log(tmp_path, _down, batch_rows=1)
    log.record(_entry(2, "damaged"))
    _wait_for(lambda: log.stats["rows_spooled"] == 2)
    [spooled] = (tmp_path / "spool").rglob("*.arrow")
    spooled.write_bytes(b"not arrow")
    log.write = Storage().write_table  # the destination heals
    log.record(_entry(1, "fine"))
    counts = log.close()

    assert counts.rows_dropped == 2 and counts.rows_logged == 1
    assert read_inference_log(str(tmp_path / "log"))["request_id"].tolist() == ["fine"]
    assert "cannot be read (ArrowInvalid" in caplog.text


def test_reading_an_empty_log_gives_an_empty_table(tmp_path: Path) -> None:
    assert read_inference_log(str(tmp_path / "nothing-yet")).empty
