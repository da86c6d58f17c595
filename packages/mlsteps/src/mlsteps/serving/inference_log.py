"""The inference log of online serving: every request, its inputs, outputs, model and latency, as Parquet.

Nothing that was answered is lost silently, and the log's work stays off the server's GIL. The path of an entry:

1. A request hands its entry to ``InferenceLog.record``, which only appends it to a list in memory (at most
   ``max_pending_rows`` rows; beyond, the entry is dropped and counted): a request never waits on a disk or
   storage. A few microseconds per request.
2. Every ``spool_seconds`` (0.2 s) the spooler thread appends what waits to the local spool as one file: each
   request's fields, body and outputs' bytes (``mlsteps.serving.spool_files``), written under a temporary name,
   fsynced and renamed: a file in the spool is whole, or absent. This is the write-ahead: a SIGKILL loses what
   was accepted in the last ``spool_seconds``, never more (plus what waits in memory when the spool cannot keep
   up, bounded by ``max_pending_rows``). It costs the server a few microseconds per request, whatever its size.
3. The log's own process (``mlsteps.serving.log_shipper``, started with the log) reads the spool's files back
   into the log's table and writes them as one Parquet file once ``batch_rows`` rows wait or ``flush_seconds``
   after the oldest arrived, and deletes a spool file only once its Parquet is written. Measured before it had
   a process of its own: building the table in the server's process held the GIL a few ms per batch, which
   requests waited behind. A failed write keeps the files and is retried with backoff (1 s doubling to 60 s),
   warned about every 10 s, and counted on ``/stats``; only when the spool holds ``max_spool_mb`` are new
   entries dropped (and counted). A kill between the upload and the delete ships those rows twice: the log is
   at least once (``request_id`` and ``row`` tell the copies apart). If that process dies, the server starts
   another (at most one start every 10 s), said in a warning.
4. Each server (each worker) spools into a folder of its own, ``<spool_dir>/<location's digest>/server-<pid>-<id>``,
   locked while it lives (``mlsteps.serving.owned``). At start, a log takes over the folders of dead servers of
   the same destination and ships them first: what a killed server spooled reaches the log when the next one
   starts. At a clean stop, whatever cannot be shipped stays in the spool, said in a warning.

What the log's files hold, and reading the log back (``read_inference_log``): ``mlsteps.serving.log_files``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsteps.config import InferenceLogParams
from mlsteps.refs import ModelRef
from mlsteps.serving import log_shipper
from mlsteps.serving.log_files import Entry, default_spool_dir, log_frame, log_table, read_inference_log, spool_root
from mlsteps.serving.log_process import LogProcess
from mlsteps.serving.owned import Owned, claim, dead
from mlsteps.serving.spool_files import SPOOL_SUFFIX, spool_counts, spool_name, write_spool_records

logger = logging.getLogger(__name__)

# What callers import from here, defined with the files (mlsteps.serving.log_files).
__all__ = ["Entry", "InferenceLog", "default_spool_dir", "log_frame", "log_table", "read_inference_log", "spool_root"]

_WARN_EVERY = 10.0  # seconds between two warnings about drops or failed writes
_SERVER = "server-"  # the spool folder of one server: server-<pid>-<id>


@dataclass
class Counts:
    requests_logged: int = 0  # shipped: in a Parquet file at the destination
    rows_logged: int = 0
    files_written: int = 0
    requests_dropped: int = 0
    rows_dropped: int = 0
    write_failures: int = 0  # failed attempts to ship (each retried)
    rows_spooled: int = 0  # written ahead to the local spool by this server
    rows_recovered: int = 0  # found in the spool of a dead server, shipped by this one


@dataclass
class _Spooled:
    """One file of the spool."""

    name: str
    requests: int
    rows: int
    size: int


@dataclass
class InferenceLog:
    """Entries in memory, a spooler thread, and the log's process; ``start`` it, then ``close`` it."""

    location: str
    model: ModelRef
    params: InferenceLogParams
    schema: Mapping[str, str]  # the model's inputs: how the log's process reads the requests' bodies again
    aws: dict[str, Any] = field(default_factory=dict)  # mlsteps.storage.Storage's settings
    spool_dir: str | Path | None = None  # None: params.spool_dir, else default_spool_dir()
    counts: Counts = field(default_factory=Counts)
    _queue: list[Entry] = field(default_factory=list)
    _pending_rows: int = 0
    _oldest: float = 0.0
    _spooled: dict[str, _Spooled] = field(default_factory=dict)  # by name, in order
    _spool_bytes: int = 0
    _spool_rows: int = 0
    _seq: int = 0
    _folder: Owned | None = None
    _closing: bool = False
    _warned_at: float = 0.0
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _spooler: threading.Thread | None = None
    _shipper: LogProcess | None = None

    def start(self) -> InferenceLog:
        """Claim a spool folder, take over what dead servers left in theirs, start the spooler and the shipper."""
        root = spool_root(self.spool_dir or self.params.spool_dir or default_spool_dir(), self.location)
        root.mkdir(parents=True, exist_ok=True)
        (root / "location.txt").write_text(self.location + "\n")
        self._folder = claim(root, _SERVER)
        self._recover(root)
        self._start_shipper()
        self._spooler = threading.Thread(target=self._spool_loop, name="inference-log-spooler", daemon=True)
        self._spooler.start()
        return self

    @property
    def spool(self) -> Path | None:
        """This server's spool folder (once started)."""
        return self._folder.path if self._folder else None

    @property
    def shipper_pid(self) -> int | None:
        """The log's process."""
        return self._shipper.pid if self._shipper else None

    def record(self, entry: Entry) -> bool:
        """Queue ``entry`` for the spool, or count it as dropped when the queue is full; never blocks on I/O."""
        with self._lock:
            if self._closing or self._pending_rows + entry.rows > self.params.max_pending_rows:
                self.counts.requests_dropped += 1
                self.counts.rows_dropped += entry.rows
                self._warn("the inference log is behind (serving.log.max_pending_rows)")
                return False
            if not self._queue:
                self._oldest = time.time()
            self._queue.append(entry)
            self._pending_rows += entry.rows
            return True

    def close(self, timeout: float = 60.0) -> Counts:
        """Spool what waits, let the shipper make one last attempt, stop both; the final counts."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._spooler is not None:
            self._spooler.join(timeout)
        if self._shipper is not None:
            self._shipper.stop(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = self._spool_rows
        if self._folder is not None and (self._spooler is None or not self._spooler.is_alive()):
            if left:
                logger.warning(
                    "%d inference log row(s) could not be shipped to %s: they stay in the spool %s and are "
                    "shipped by the next server started with the same serving.log.spool_dir",
                    left,
                    self.location,
                    self._folder.path,
                )
            self._folder.release(remove=not left)
        return self.counts

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            in_spool = self._spool_rows
            return {
                **vars(self.counts),
                "rows_queued": self._pending_rows,
                "rows_in_spool": in_spool,
                "rows_waiting": self._pending_rows + in_spool,
                "spool_bytes": self._spool_bytes,
            }

    # -- the spool ------------------------------------------------------------------------------------------
    def _recover(self, root: Path) -> None:
        """Move the files of dead servers' spool folders into ours, oldest first, to be shipped before ours."""
        assert self._folder is not None
        for orphan in dead(root, _SERVER):
            try:
                files = [*orphan.path.glob("*.arrow"), *orphan.path.glob(f"*{SPOOL_SUFFIX}")]
                for path in sorted(files, key=lambda p: p.name):
                    requests, rows, _ = spool_counts(path.name)
                    name = self._next_name(requests, rows, 0.0, path.suffix)  # arrived long ago: shipped at once
                    os.rename(path, self._folder.path / name)
                    size = (self._folder.path / name).stat().st_size
                    self._spooled[name] = _Spooled(name, requests, rows, size)
                    self._spool_bytes += size
                    self._spool_rows += rows
                    self.counts.rows_recovered += rows
            finally:
                orphan.release(remove=True)
        if self.counts.rows_recovered:
            logger.warning(
                "the inference log found %d row(s) a stopped server had not shipped to %s: shipping them now",
                self.counts.rows_recovered,
                self.location,
            )

    def _next_name(self, requests: int, rows: int, oldest: float, suffix: str = SPOOL_SUFFIX) -> str:
        self._seq += 1
        return spool_name(self._seq, requests, rows, oldest).removesuffix(SPOOL_SUFFIX) + suffix

    def _spool_loop(self) -> None:
        while True:
            with self._lock:
                if not self._closing:
                    self._lock.wait(self.params.spool_seconds)
                batch, self._queue, self._pending_rows = self._queue, [], 0
                closing, oldest = self._closing, self._oldest
            if batch:
                self._append(batch, oldest)
            if closing:
                return

    def _append(self, batch: list[Entry], oldest: float) -> None:
        rows = sum(e.rows for e in batch)
        limit = self.params.max_spool_mb * 1_000_000
        with self._lock:
            if self._spool_bytes >= limit:
                self.counts.requests_dropped += len(batch)
                self.counts.rows_dropped += rows
                self._warn(
                    f"the inference log's spool is full (serving.log.max_spool_mb = {self.params.max_spool_mb:g})"
                )
                return
            name = self._next_name(len(batch), rows, oldest)
        assert self._folder is not None
        try:
            size = write_spool_records(batch, self.model, self.schema, self._folder.path / name)
        except Exception as exc:  # noqa: BLE001 - serving goes on; the loss is counted and said
            with self._lock:
                self.counts.requests_dropped += len(batch)
                self.counts.rows_dropped += rows
                self._warn(f"the inference log's spool {self._folder.path} could not be written ({_named(exc)})")
            return
        with self._lock:
            self._spooled[name] = _Spooled(name, len(batch), rows, size)
            self._spool_bytes += size
            self._spool_rows += rows
            self.counts.rows_spooled += rows
        assert self._shipper is not None
        self._shipper.tell(name)

    # -- the log's process ------------------------------------------------------------------------------------
    def _start_shipper(self) -> None:
        assert self._folder is not None
        spec = {
            "folder": str(self._folder.path),
            "location": self.location,
            "params": self.params.model_dump(),
            "aws": self.aws,
            "retry_first": log_shipper.RETRY_FIRST,
        }

        def waiting() -> list[str]:
            with self._lock:
                return list(self._spooled)

        self._shipper = LogProcess(spec, waiting, self._event)
        self._shipper.start()

    def _event(self, event: dict[str, Any]) -> None:
        with self._lock:
            if "shipped" in event:
                self._forget(event["shipped"])
                self.counts.files_written += 1
                self.counts.requests_logged += event["requests"]
                self.counts.rows_logged += event["rows"]
            elif "failed" in event:
                self.counts.write_failures += 1
                self._warn(
                    f"an inference log file could not be written to {self.location} ({event['failed']}); "
                    f"{self._spool_rows} row(s) wait in the spool {self.spool}, tried again in "
                    f"{event['retry_in']:g} s"
                )
            elif "unreadable" in event:
                self._forget([event["unreadable"]])
                self.counts.requests_dropped += event["requests"]
                self.counts.rows_dropped += event["rows"]
                self._warned_at = 0.0  # said at once
                self._warn(
                    f"the inference log's spool file {event['unreadable']} cannot be read ({event['error']}): it is "
                    f"set aside in {self.spool.parent / log_shipper.UNREADABLE if self.spool else '-'}"
                )

    def _forget(self, names: list[str]) -> None:
        for name in names:
            spooled = self._spooled.pop(name, None)
            if spooled is not None:
                self._spool_bytes -= spooled.size
                self._spool_rows -= spooled.rows

    def _warn(self, why: str) -> None:
        if time.monotonic() - self._warned_at >= _WARN_EVERY:
            self._warned_at = time.monotonic()
            c = self.counts
            logger.warning(
                "%s: %d request(s), %d row(s) dropped so far, %d row(s) waiting",
                why,
                c.requests_dropped,
                c.rows_dropped,
                self._pending_rows + self._spool_rows,
            )


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
