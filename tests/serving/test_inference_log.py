"""The inference log: a bounded queue, a background writer, Parquet files read back as one table."""

from __future__ import annotations

import json
import os
import signal
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
from mlsteps.serving.spool_files import read_spool_records, spool_name, write_spool_records

MODEL = ModelRef("models:/m/3", "m", "3", "run-abc")


SCHEMA = {"a": "double", "plan": "string"}


def _entry(rows: int, request_id: str = "r", status: int = 200) -> Entry:
    """A scored request as the server hands it over: its checked rows, the body they were read from, its outputs."""
    inputs = pd.DataFrame({"a": np.arange(rows, dtype="float64"), "plan": ["x"] * rows})
    body = json.dumps({"dataframe_split": {"columns": ["a", "plan"], "data": inputs.values.tolist()}}).encode()
    entry = Entry(
        request_id, datetime.now(UTC), 1.5, status, client="team-a", inputs=inputs, outputs=np.arange(rows) % 2
    )
    entry.body, entry.content_type = body, "application/json"
    return entry


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


def _log(tmp_path: Path, location: str | None = None, **params) -> InferenceLog:
    settings = InferenceLogParams(
        **{"batch_rows": 1000, "flush_seconds": 60, "max_pending_rows": 100, "spool_seconds": 0.05, **params}
    )
    log = InferenceLog(location or str(tmp_path / "log"), MODEL, settings, SCHEMA, spool_dir=tmp_path / "spool")
    return log.start()


def _down(tmp_path: Path) -> Path:
    """A destination that cannot be written: below a file. Removing the file heals it."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the log's folder should be")
    return blocker


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


def test_a_stuck_shipper_does_not_stop_the_spool(tmp_path: Path) -> None:
    log = _log(tmp_path, batch_rows=1, max_pending_rows=4)
    assert log.shipper_pid is not None
    os.kill(log.shipper_pid, signal.SIGSTOP)  # the log's process is stuck (in storage, say)
    try:
        accepted = [log.record(_entry(1 if i == 0 else 2, f"r{i}")) for i in range(5) if not time.sleep(0.1)]
        _wait_for(lambda: log.stats["rows_spooled"] == 9)
        stats = log.stats
    finally:
        os.kill(log.shipper_pid, signal.SIGCONT)
    counts = log.close()

    assert accepted == [True] * 5
    assert stats["rows_spooled"] == 9 and stats["rows_in_spool"] == 9 and stats["rows_dropped"] == 0
    assert stats["rows_logged"] == 0
    assert counts.rows_logged == 9 and counts.requests_dropped == 0
    assert list((tmp_path / "spool").rglob("*.spool")) == []
    assert len(set(read_inference_log(str(tmp_path / "log"))["request_id"])) == 5


def test_a_failing_destination_is_retried_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlsteps.serving.log_shipper.RETRY_FIRST", 0.1)
    blocker = _down(tmp_path)
    log = _log(tmp_path, str(blocker / "log"), batch_rows=1)
    log.record(_entry(1, "first"))
    _wait_for(lambda: log.stats["write_failures"] >= 2)
    failing = log.stats
    blocker.unlink()  # the destination heals
    log.record(_entry(1, "second"))
    _wait_for(lambda: log.stats["rows_logged"] == 2)
    counts = log.close()

    assert failing["write_failures"] >= 2 and failing["rows_in_spool"] == 1 and failing["rows_logged"] == 0
    assert counts.write_failures >= 2 and counts.requests_dropped == 0 and counts.rows_logged == 2
    assert read_inference_log(str(blocker / "log"))["request_id"].tolist() == ["first", "second"]
    assert f"could not be written to {blocker / 'log'}" in caplog.text
    assert "1 row(s) wait in the spool" in caplog.text and "tried again in 0.1 s" in caplog.text


def test_the_spool_bound_drops_and_counts(tmp_path: Path) -> None:
    log = _log(tmp_path, str(_down(tmp_path) / "log"), max_spool_mb=0.000_001)
    log.record(_entry(2, "kept"))
    _wait_for(lambda: log.stats["rows_spooled"] == 2)
    log.record(_entry(3, "over"))
    _wait_for(lambda: log.stats["rows_dropped"] == 3)
    counts = log.close(timeout=5)

    assert counts.rows_spooled == 2 and counts.requests_dropped == 1 and counts.rows_dropped == 3
    assert len(list((tmp_path / "spool").rglob("*.spool"))) == 1  # kept for the next server


def test_what_a_dead_server_spooled_is_shipped_by_the_next(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = _log(tmp_path, batch_rows=1)
    assert dead.shipper_pid is not None and dead._folder is not None
    os.kill(dead.shipper_pid, signal.SIGSTOP)  # it never ships: the server is killed first
    dead.record(_entry(2, "answered-before-the-kill"))
    _wait_for(lambda: dead.stats["rows_spooled"] == 2)
    alive = _log(tmp_path)  # another server, meanwhile: it takes nothing from a live one
    assert alive.counts.rows_recovered == 0
    alive.close()
    # What the kernel does when the server is killed: its lock is free, and its log's process ends.
    dead._folder.release()
    os.kill(dead.shipper_pid, signal.SIGKILL)

    after = _log(tmp_path)
    counts = after.close()

    assert counts.rows_recovered == 2 and counts.rows_logged == 2
    assert read_inference_log(str(tmp_path / "log"))["request_id"].tolist() == ["answered-before-the-kill"] * 2
    assert "found 2 row(s) a stopped server had not shipped" in caplog.text
    assert list((tmp_path / "spool").rglob("server-*")) == []
    dead._closing = True  # its threads end with the test (a kill would have ended them)


def test_an_unreadable_spool_file_is_set_aside_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = _log(tmp_path, batch_rows=1)
    assert log.shipper_pid is not None
    os.kill(log.shipper_pid, signal.SIGSTOP)
    try:
        log.record(_entry(2, "damaged"))
        _wait_for(lambda: log.stats["rows_spooled"] == 2)
        [spooled] = (tmp_path / "spool").rglob("*.spool")
        spooled.write_bytes(b"not a spool file")
    finally:
        os.kill(log.shipper_pid, signal.SIGCONT)
    log.record(_entry(1, "fine"))
    counts = log.close()

    assert counts.rows_dropped == 2 and counts.rows_logged == 1
    assert read_inference_log(str(tmp_path / "log"))["request_id"].tolist() == ["fine"]
    assert "cannot be read (ValueError: not an inference log spool file)" in caplog.text
    assert len(list((tmp_path / "spool").rglob("*.unreadable"))) == 1


def test_a_log_process_that_dies_is_replaced_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlsteps.serving.log_process.RESTART_EVERY", 0.1)
    log = _log(tmp_path, batch_rows=3)
    first = log.shipper_pid
    assert first is not None
    log.record(_entry(1, "before"))
    _wait_for(lambda: log.stats["rows_spooled"] == 1)
    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: log.shipper_pid != first)
    log.record(_entry(2, "after"))
    _wait_for(lambda: log.stats["rows_logged"] == 3)
    counts = log.close()

    assert log.shipper_pid != first and counts.rows_logged == 3 and counts.files_written == 1
    assert read_inference_log(str(tmp_path / "log"))["request_id"].tolist() == ["before", "after", "after"]
    assert "the inference log's process ended (exit code -9)" in caplog.text


def test_spool_files_keep_bodies_and_outputs_as_they_were(tmp_path: Path) -> None:
    csv = Entry("csv", datetime.now(UTC), 1.0, 200, inputs=pd.DataFrame({"a": [1.5], "plan": ["y"]}))
    csv.body, csv.content_type, csv.outputs = b"1.5,y\n", "text/csv", np.array(["B"], dtype=object)
    probabilities = _entry(2, "p")
    probabilities.outputs = np.array([[0.25, 0.75], [0.5, 0.5]])
    framed = _entry(1, "f")
    framed.outputs = pd.DataFrame({"prediction": ["M"], "probability": [0.9]})
    coded = Entry("coded", datetime.now(UTC), 1.0, 200, inputs=pd.DataFrame({"a": [2.0], "plan": [None]}), outputs=[1])
    refused = Entry("bad", datetime.now(UTC), 0.5, 400, client="k", error="no")
    batch = [csv, probabilities, framed, coded, refused]

    path = tmp_path / spool_name(1, 5, 6, time.time())
    size = write_spool_records(batch, MODEL, SCHEMA, path)
    model, schema, entries = read_spool_records(path)

    assert size > 0 and model == MODEL and schema == SCHEMA
    assert [e.request_id for e, _ in entries] == ["csv", "p", "f", "coded", "bad"]
    assert entries[0][1] == b"1.5,y\n" and entries[0][0].content_type == "text/csv"
    assert entries[0][0].outputs.tolist() == ["B"]
    np.testing.assert_array_equal(entries[1][0].outputs, probabilities.outputs)
    pd.testing.assert_frame_equal(entries[2][0].outputs, framed.outputs, check_dtype=False)
    assert json.loads(entries[3][1]) == {"dataframe_split": {"columns": ["a", "plan"], "data": [[2.0, None]]}}
    assert entries[4][0].error == "no" and entries[4][1] == b"" and entries[4][0].outputs is None
    assert entries[0][0].received_at == csv.received_at


def test_reading_an_empty_log_gives_an_empty_table(tmp_path: Path) -> None:
    assert read_inference_log(str(tmp_path / "nothing-yet")).empty
