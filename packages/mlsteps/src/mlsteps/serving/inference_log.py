"""The inference log of online serving: every request, its inputs, outputs, model and latency, as Parquet.

A request hands its entry to ``InferenceLog.record``, which only appends it to a bounded queue: it never waits
for storage. A background thread writes what waits as one Parquet file once ``batch_rows`` rows wait or
``flush_seconds`` after the oldest arrived, and everything that is left when the server stops. When the queue
holds ``max_pending_rows`` rows, a request's entry is dropped instead, and counted: the counts are in
``InferenceLog.stats`` (served at ``/stats``), warned about while it happens and printed when the server stops.

Files go to ``<location>/date=<YYYY-MM-DD>/<UTC time>-<id>.parquet``, one row per scored row (a refused request
is one row with its error): ``request_id``, ``row`` (from 1), ``received_at`` (UTC), ``latency_ms``,
``status``, ``error``, ``client`` (the API key's label), ``model_uri``, ``model_name``, ``model_version``,
``model_run_id``, then ``input.<column>`` and ``output.<name>``. ``read_inference_log`` reads them back as one
table.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlsteps.config import InferenceLogParams
from mlsteps.refs import ModelRef
from mlsteps.storage import Storage

logger = logging.getLogger(__name__)

_WARN_EVERY = 10.0  # seconds between two warnings about drops or failed writes


@dataclass
class Entry:
    """One request, as the server saw it."""

    request_id: str
    received_at: datetime
    latency_ms: float
    status: int
    client: str | None = None
    inputs: pd.DataFrame | None = None
    outputs: Any = None
    error: str | None = None

    @property
    def rows(self) -> int:
        return 1 if self.inputs is None else len(self.inputs)


@dataclass
class Counts:
    requests_logged: int = 0
    rows_logged: int = 0
    files_written: int = 0
    requests_dropped: int = 0
    rows_dropped: int = 0
    write_failures: int = 0


@dataclass
class InferenceLog:
    """A bounded queue of entries and the thread that writes them; ``start`` it, then ``close`` it."""

    location: str
    model: ModelRef
    params: InferenceLogParams
    write: Callable[[pd.DataFrame, str], Any]
    counts: Counts = field(default_factory=Counts)
    _queue: list[Entry] = field(default_factory=list)
    _pending_rows: int = 0
    _oldest: float = 0.0
    _closing: bool = False
    _warned_at: float = 0.0
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None

    def start(self) -> InferenceLog:
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()
        return self

    def record(self, entry: Entry) -> bool:
        """Queue ``entry`` for writing, or count it as dropped when the queue is full; never blocks on I/O."""
        with self._lock:
            if self._closing or self._pending_rows + entry.rows > self.params.max_pending_rows:
                self.counts.requests_dropped += 1
                self.counts.rows_dropped += entry.rows
                self._warn("the inference log is behind")
                return False
            first = not self._queue
            if first:
                self._oldest = time.monotonic()
            self._queue.append(entry)
            self._pending_rows += entry.rows
            if first or self._pending_rows >= self.params.batch_rows:
                self._lock.notify()  # the writer sets its clock by the oldest entry, or writes now
            return True

    def close(self, timeout: float = 60.0) -> Counts:
        """Write what waits, stop the thread; the final counts."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.counts

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**vars(self.counts), "rows_waiting": self._pending_rows}

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closing and not self._due():
                    wait = self.params.flush_seconds - (time.monotonic() - self._oldest) if self._queue else None
                    self._lock.wait(wait)
                batch, self._queue, self._pending_rows = self._queue, [], 0
                closing = self._closing
            if batch:
                self._write(batch)
            if closing:
                return

    def _due(self) -> bool:
        return bool(self._queue) and (
            self._pending_rows >= self.params.batch_rows or time.monotonic() - self._oldest >= self.params.flush_seconds
        )

    def _write(self, batch: list[Entry]) -> None:
        now = datetime.now(UTC)
        uri = f"{self.location.rstrip('/')}/date={now:%Y-%m-%d}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.parquet"
        rows = sum(e.rows for e in batch)
        try:
            self.write(log_frame(batch, self.model), uri)
        except Exception as exc:  # noqa: BLE001 - serving goes on; the loss is counted and said
            with self._lock:
                self.counts.write_failures += 1
                self.counts.requests_dropped += len(batch)
                self.counts.rows_dropped += rows
                self._warn(f"an inference log file could not be written ({type(exc).__name__}: {exc})")
            return
        with self._lock:
            self.counts.files_written += 1
            self.counts.requests_logged += len(batch)
            self.counts.rows_logged += rows

    def _warn(self, why: str) -> None:
        if time.monotonic() - self._warned_at >= _WARN_EVERY:
            self._warned_at = time.monotonic()
            c = self.counts
            logger.warning(
                "%s: %d request(s), %d row(s) not logged so far (serving.log.max_pending_rows = %d)",
                why,
                c.requests_dropped,
                c.rows_dropped,
                self.params.max_pending_rows,
            )


def log_frame(batch: list[Entry], model: ModelRef) -> pd.DataFrame:
    """The log's rows for ``batch``: one per scored row, one per refused request."""
    frames = []
    for entry in batch:
        meta = {
            "request_id": entry.request_id,
            "row": None,
            "received_at": pd.Timestamp(entry.received_at),
            "latency_ms": entry.latency_ms,
            "status": entry.status,
            "error": entry.error,
            "client": entry.client,
        }
        if entry.inputs is None:
            frames.append(pd.DataFrame([meta]))
            continue
        inputs = entry.inputs.reset_index(drop=True).add_prefix("input.")
        outputs = entry.outputs
        outputs = (
            outputs.reset_index(drop=True)
            if isinstance(outputs, pd.DataFrame)
            else pd.DataFrame({"prediction": np.asarray(outputs).tolist()})
        )
        frames.append(
            pd.concat([inputs, outputs.add_prefix("output.")], axis=1).assign(
                **{**meta, "row": range(1, len(inputs) + 1)}
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.assign(
        model_uri=model.uri,
        model_name=model.name,
        model_version=model.version,
        model_run_id=model.run_id,
        row=frame["row"].astype("Int64"),
        status=frame["status"].astype("int16"),
    )
    first = [
        "request_id",
        "row",
        "received_at",
        "latency_ms",
        "status",
        "error",
        "client",
        "model_uri",
        "model_name",
        "model_version",
        "model_run_id",
    ]
    return frame[first + [c for c in frame.columns if c not in first]]


def read_inference_log(location: str, storage: Storage | None = None) -> pd.DataFrame:
    """Every file of the log at ``location`` (a folder or s3:// prefix) as one table, oldest request first;
    each row names the model version that served it (``model_name``, ``model_version``, ``model_run_id``)."""
    storage = storage or Storage()
    fs, path = storage.filesystem(location)
    files = sorted(fs.glob(path.rstrip("/") + "/**/*.parquet")) if fs.exists(path) else []
    frames = []
    for name in files:
        with fs.open(name, "rb") as handle:
            frames.append(pd.read_parquet(handle))
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "received_at", "model_name", "model_version"])
    return pd.concat(frames, ignore_index=True).sort_values(["received_at", "request_id", "row"], ignore_index=True)
