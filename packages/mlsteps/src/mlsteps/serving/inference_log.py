"""The inference log of online serving: every request, its inputs, outputs, model and latency, as Parquet.

Nothing that was answered is lost silently. The path of an entry:

1. A request hands its entry to ``InferenceLog.record``, which only appends it to a list in memory (at most
   ``max_pending_rows`` rows; beyond, the entry is dropped and counted): a request never waits on a disk or
   storage. Measured: a few microseconds per request, as before the spool.
2. Every ``spool_seconds`` (0.2 s) the spooler thread appends what waits to the local spool as one Arrow IPC
   file, written under a temporary name, fsynced and renamed: a file in the spool is whole, or absent. Arrow IPC
   because it is the cheapest format to write and read back with its types (no encoding, unlike Parquet), and
   one file per append because a spool file that is complete by its name needs no recovery code. This is the
   write-ahead: a SIGKILL loses what was accepted in the last ``spool_seconds``, never more (plus what waits in
   memory when the spool cannot keep up, bounded by ``max_pending_rows``).
3. The shipper thread writes the spool's files as one Parquet file once ``batch_rows`` rows wait or
   ``flush_seconds`` after the oldest arrived, and deletes a spool file only once its Parquet is written. A
   failed write keeps the files and is retried with backoff (1 s doubling to 60 s), warned about every 10 s,
   and counted on ``/stats``; only when the spool holds ``max_spool_mb`` are new entries dropped (and counted).
   A kill between the upload and the delete ships those rows twice: the log is at least once (``request_id``
   and ``row`` tell the copies apart).
4. Each server (each worker) spools into a folder of its own, ``<spool_dir>/<location's digest>/server-<pid>-<id>``,
   locked while it lives (``mlsteps.serving.owned``). At start, a log takes over the folders of dead servers of
   the same destination and ships them first: what a killed server spooled reaches the log when the next one
   starts. At a clean stop, whatever cannot be shipped stays in the spool, said in a warning.

What the files hold, and reading the log back (``read_inference_log``): ``mlsteps.serving.log_files``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlsteps.config import InferenceLogParams
from mlsteps.refs import ModelRef
from mlsteps.serving.log_files import (
    Entry,
    concat_tables,
    counts_of,
    default_spool_dir,
    log_frame,
    log_table,
    read_inference_log,
    read_spool_file,
    spool_root,
    write_spool_file,
)
from mlsteps.serving.owned import Owned, claim, dead

logger = logging.getLogger(__name__)

# What callers import from here, defined with the files (mlsteps.serving.log_files).
__all__ = ["Entry", "InferenceLog", "default_spool_dir", "log_frame", "log_table", "read_inference_log", "spool_root"]

_WARN_EVERY = 10.0  # seconds between two warnings about drops or failed writes
_RETRY_FIRST, _RETRY_MAX = 1.0, 60.0  # seconds before shipping is tried again after a failure, doubling
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

    path: Path
    requests: int
    rows: int
    size: int
    oldest: float  # monotonic time its oldest entry arrived


@dataclass
class InferenceLog:
    """Entries in memory, a spooler and a shipper thread; ``start`` it, then ``close`` it."""

    location: str
    model: ModelRef
    params: InferenceLogParams
    write: Callable[[Any, str], Any]  # an Arrow table to a Parquet URI (Storage.write_table)
    spool_dir: str | Path | None = None  # None: params.spool_dir, else default_spool_dir()
    counts: Counts = field(default_factory=Counts)
    _queue: list[Entry] = field(default_factory=list)
    _pending_rows: int = 0
    _oldest: float = 0.0
    _spooled: collections.deque[_Spooled] = field(default_factory=collections.deque)
    _spool_bytes: int = 0
    _spool_rows: int = 0
    _seq: int = 0
    _folder: Owned | None = None
    _closing: bool = False
    _spooler_done: bool = False
    _retry_at: float = 0.0
    _gave_up: bool = False  # stopping, and the destination failed on the last attempt
    _retry_wait: float = 0.0
    _warned_at: float = 0.0
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> InferenceLog:
        """Claim a spool folder, take over what dead servers left in theirs, start the threads."""
        root = spool_root(self.spool_dir or self.params.spool_dir or default_spool_dir(), self.location)
        root.mkdir(parents=True, exist_ok=True)
        (root / "location.txt").write_text(self.location + "\n")
        self._folder = claim(root, _SERVER)
        self._recover(root)
        # What the threads write with, imported now: not by the first spool or ship, under the first requests.
        import pyarrow.ipc
        import pyarrow.parquet  # noqa: F401

        for name, target in (("inference-log-spooler", self._spool_loop), ("inference-log-shipper", self._ship_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def spool(self) -> Path | None:
        """This server's spool folder (once started)."""
        return self._folder.path if self._folder else None

    def record(self, entry: Entry) -> bool:
        """Queue ``entry`` for the spool, or count it as dropped when the queue is full; never blocks on I/O."""
        with self._lock:
            if self._closing or self._pending_rows + entry.rows > self.params.max_pending_rows:
                self.counts.requests_dropped += 1
                self.counts.rows_dropped += entry.rows
                self._warn("the inference log is behind (serving.log.max_pending_rows)")
                return False
            if not self._queue:
                self._oldest = time.monotonic()
            self._queue.append(entry)
            self._pending_rows += entry.rows
            return True

    def close(self, timeout: float = 60.0) -> Counts:
        """Spool what waits, ship what the spool holds (one attempt), stop the threads; the final counts."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = self._spool_rows
        if self._folder is not None and not any(t.is_alive() for t in self._threads):
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
                for path in sorted(orphan.path.glob("*.arrow")):
                    requests, rows = counts_of(path)
                    target = self._next_path(requests, rows)
                    os.rename(path, target)
                    size = target.stat().st_size
                    self._spooled.append(_Spooled(target, requests, rows, size, oldest=0.0))
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

    def _next_path(self, requests: int, rows: int) -> Path:
        assert self._folder is not None
        self._seq += 1
        return self._folder.path / f"{self._seq:012d}-{requests}q-{rows}r.arrow"

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
                with self._lock:
                    self._spooler_done = True
                    self._lock.notify_all()
                return

    def _append(self, batch: list[Entry], oldest: float) -> None:
        rows = sum(e.rows for e in batch)
        limit = self.params.max_spool_mb * 1_000_000
        with self._lock:
            full = self._spool_bytes >= limit
            if full:
                self.counts.requests_dropped += len(batch)
                self.counts.rows_dropped += rows
                self._warn(
                    f"the inference log's spool is full (serving.log.max_spool_mb = {self.params.max_spool_mb:g})"
                )
                return
            path = self._next_path(len(batch), rows)
        try:
            size = write_spool_file(log_table(batch, self.model), path)
        except Exception as exc:  # noqa: BLE001 - serving goes on; the loss is counted and said
            with self._lock:
                self.counts.requests_dropped += len(batch)
                self.counts.rows_dropped += rows
                self._warn(
                    f"the inference log's spool {path.parent} could not be written ({type(exc).__name__}: {exc})"
                )
            return
        with self._lock:
            self._spooled.append(_Spooled(path, len(batch), rows, size, oldest))
            self._spool_bytes += size
            self._spool_rows += rows
            self.counts.rows_spooled += rows
            self._lock.notify_all()

    # -- shipping -------------------------------------------------------------------------------------------
    def _ship_loop(self) -> None:
        while True:
            with self._lock:
                while not self._shippable():
                    if self._spooler_done and (not self._spooled or self._gave_up):
                        return  # stopping: everything is shipped, or the destination failed on the last try
                    self._lock.wait(self._wait())
                group = self._take()
            self._ship(group)

    def _shippable(self) -> bool:
        if not self._spooled:
            return False
        if self._spooler_done:  # stopping: one last attempt, whatever the backoff
            return not self._gave_up
        now = time.monotonic()
        if now < self._retry_at:
            return False
        rows = self._spool_rows
        return rows >= self.params.batch_rows or now - self._spooled[0].oldest >= self.params.flush_seconds

    def _wait(self) -> float | None:
        now = time.monotonic()
        if not self._spooled:
            return None
        full = self._spool_rows >= self.params.batch_rows
        due = max(self._retry_at, now if full else self._spooled[0].oldest + self.params.flush_seconds)
        return max(0.01, due - now)

    def _take(self) -> list[_Spooled]:
        """The oldest spool files, up to ``batch_rows`` rows (at least one file)."""
        group: list[_Spooled] = []
        rows = 0
        for spooled in self._spooled:
            if group and rows + spooled.rows > self.params.batch_rows:
                break
            group.append(spooled)
            rows += spooled.rows
        return group

    def _ship(self, group: list[_Spooled]) -> None:
        now = datetime.now(UTC)
        uri = f"{self.location.rstrip('/')}/date={now:%Y-%m-%d}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.parquet"
        tables = self._read(group)
        if not tables:
            return
        requests, rows = sum(s.requests for s in group), sum(s.rows for s in group)
        try:
            self.write(concat_tables(tables), uri)
        except Exception as exc:  # noqa: BLE001 - serving goes on; the rows stay in the spool, retried
            with self._lock:
                self.counts.write_failures += 1
                self._retry_wait = min(_RETRY_MAX, self._retry_wait * 2 or _RETRY_FIRST)
                self._retry_at = time.monotonic() + self._retry_wait
                self._gave_up = self._spooler_done
                self._warn(
                    f"an inference log file could not be written to {self.location} ({type(exc).__name__}: {exc}); "
                    f"{self._spool_rows} row(s) wait in the spool {group[0].path.parent}, "
                    f"tried again in {self._retry_wait:g} s"
                )
            return
        for spooled in group:
            with contextlib.suppress(FileNotFoundError):
                spooled.path.unlink()
        with self._lock:
            for _ in group:
                self._spooled.popleft()
            self._spool_bytes -= sum(s.size for s in group)
            self._spool_rows -= rows
            self._retry_at, self._retry_wait = 0.0, 0.0
            self.counts.files_written += 1
            self.counts.requests_logged += requests
            self.counts.rows_logged += rows

    def _read(self, group: list[_Spooled]) -> list[Any]:
        """The Arrow tables of ``group``; a spool file that cannot be read is set aside (``.unreadable``), its rows
        counted as dropped, and the others shipped later: one bad file never holds the log back. []: one was."""
        tables = []
        for spooled in group:
            try:
                tables.append(read_spool_file(spooled.path))
            except Exception as exc:  # noqa: BLE001 - the loss is counted and said
                with contextlib.suppress(OSError):
                    spooled.path.rename(spooled.path.with_name(spooled.path.name + ".unreadable"))
                with self._lock:
                    self._spooled.remove(spooled)
                    self._spool_bytes -= spooled.size
                    self._spool_rows -= spooled.rows
                    self.counts.requests_dropped += spooled.requests
                    self.counts.rows_dropped += spooled.rows
                    self._warned_at = 0.0  # said at once
                    self._warn(
                        f"the inference log's spool file {spooled.path} cannot be read ({type(exc).__name__}: {exc})"
                    )
                return []
        return tables

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
