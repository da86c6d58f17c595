"""The inference log's own process: it reads the spool's files back into the log's table and ships them as Parquet.

A server starts one (``python -m mlsteps.serving.log_shipper``) per log, beside its worker process, so that the
log's CPU work (parsing the requests' bodies again, building the table, encoding Parquet, uploading) never
holds the server's GIL: a request waits for no part of it. The two speak over pipes, a JSON object per line:

- the server writes the spec on the first line of the shipper's stdin (destination, spool folder, settings), then
  ``{"file": NAME}`` for each spool file it wrote, in order, and ``{"stop": true}`` when it closes;
- the shipper answers on its stdout with what happened: ``shipped`` (files, requests, rows), ``failed`` (the
  error, the seconds until the next try) and ``unreadable`` (a file set aside).

The shipper writes the files as one Parquet file once ``batch_rows`` rows wait or ``flush_seconds`` after the
oldest arrived, and deletes a spool file only once its Parquet is written. A failed write keeps the files, tried
again with backoff (1 s doubling to 60 s). At ``stop`` it makes one last attempt, whatever the backoff, and ends.
When its stdin ends without a ``stop`` (the server was killed), it ends at once: the next server takes the
spool over (``mlsteps.serving.inference_log``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mlsteps.config import InferenceLogParams
from mlsteps.serving.bodies import rows_of
from mlsteps.serving.log_files import concat_tables, log_table
from mlsteps.serving.spool_files import read_arrow_spool_file, read_spool_records, spool_counts
from mlsteps.storage import Storage

UNREADABLE = "unreadable"  # the folder, beside the servers' spool folders, of spool files that cannot be read
RETRY_FIRST, RETRY_MAX = 1.0, 60.0  # seconds before shipping is tried again after a failure, doubling


@dataclass
class _File:
    name: str
    requests: int
    rows: int
    oldest: float  # epoch seconds its oldest request arrived


class Shipper:
    """The spool files named so far, shipped in order; ``run`` until ``stop``."""

    def __init__(
        self, folder: Path, location: str, params: InferenceLogParams, storage: Storage, report: IO[bytes], retry: float
    ) -> None:
        self.folder, self.location, self.params, self.storage = folder, location, params, storage
        self._report, self._retry_first = report, retry
        self._files: collections.deque[_File] = collections.deque()
        self._named: set[str] = set()  # every file ever named: a second mention (after a restart) is not a second file
        self._rows = 0
        self._lock = threading.Condition()
        self._stopping = self._gave_up = False
        self._retry_at = self._retry_wait = 0.0

    def add(self, name: str) -> None:
        requests, rows, oldest = spool_counts(name)
        with self._lock:
            if name in self._named:
                return
            self._named.add(name)
            self._files.append(_File(name, requests, rows, oldest))
            self._rows += rows
            self._lock.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    def run(self) -> None:
        while True:
            with self._lock:
                while not self._shippable():
                    if self._stopping and (not self._files or self._gave_up):
                        return  # stopping: everything is shipped, or the destination failed on the last try
                    self._lock.wait(self._wait())
                group = self._take()
            self._ship(group)

    def _shippable(self) -> bool:
        if not self._files:
            return False
        if self._stopping:  # one last attempt, whatever the backoff
            return not self._gave_up
        now = time.time()
        if now < self._retry_at:
            return False
        return self._rows >= self.params.batch_rows or now - self._files[0].oldest >= self.params.flush_seconds

    def _wait(self) -> float | None:
        if not self._files:
            return None
        now = time.time()
        full = self._rows >= self.params.batch_rows
        due = max(self._retry_at, now if full else self._files[0].oldest + self.params.flush_seconds)
        return max(0.01, due - now)

    def _take(self) -> list[_File]:
        """The oldest files, up to ``batch_rows`` rows (at least one file)."""
        group: list[_File] = []
        rows = 0
        for file in self._files:
            if group and rows + file.rows > self.params.batch_rows:
                break
            group.append(file)
            rows += file.rows
        return group

    def _ship(self, group: list[_File]) -> None:
        tables = []
        for file in group:
            try:
                tables.append(self._table(self.folder / file.name))
            except Exception as exc:  # noqa: BLE001 - one bad file never holds the log back; it is said
                with contextlib.suppress(OSError):  # kept for a person to look at, beside the servers' folders
                    (self.folder.parent / UNREADABLE).mkdir(exist_ok=True)
                    (self.folder / file.name).rename(self.folder.parent / UNREADABLE / f"{file.name}.unreadable")
                self._done([file])
                self._say(unreadable=file.name, requests=file.requests, rows=file.rows, error=_named(exc))
                return
        now = datetime.now(UTC)
        uri = f"{self.location.rstrip('/')}/date={now:%Y-%m-%d}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.parquet"
        try:
            self.storage.write_table(concat_tables(tables), uri)
        except Exception as exc:  # noqa: BLE001 - the files stay in the spool, tried again
            with self._lock:
                self._retry_wait = min(RETRY_MAX, self._retry_wait * 2 or self._retry_first)
                self._retry_at = time.time() + self._retry_wait
                self._gave_up = self._stopping
            self._say(failed=_named(exc), retry_in=self._retry_wait)
            return
        for file in group:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / file.name).unlink()
        self._done(group)
        with self._lock:
            self._retry_at = self._retry_wait = 0.0
        self._say(
            shipped=[f.name for f in group],
            requests=sum(f.requests for f in group),
            rows=sum(f.rows for f in group),
        )

    def _table(self, path: Path) -> Any:
        if path.suffix == ".arrow":  # spooled by an earlier version: the table itself
            return read_arrow_spool_file(path)
        model, schema, entries = read_spool_records(path)
        for entry, body in entries:
            if entry.status == 200:
                entry.inputs = rows_of(body, entry.content_type.split(";")[0].strip().lower(), schema)
        return log_table([entry for entry, _ in entries], model)

    def _done(self, group: list[_File]) -> None:
        with self._lock:
            for _ in group:
                self._rows -= self._files.popleft().rows

    def _say(self, **event: Any) -> None:
        self._report.write(json.dumps(event).encode() + b"\n")
        self._report.flush()


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def main() -> None:
    """The process: the spec from stdin's first line, then commands from stdin, events to stdout."""
    # The server ends this process (a stop on stdin, or stdin's end), not a Ctrl-C or SIGTERM meant for the server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: where cores are short, the scoring workers (and their clients) go first.
    with contextlib.suppress(OSError):
        os.nice(10)
    report = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into the events
    commands = sys.stdin.buffer
    spec = json.loads(commands.readline())
    # What shipping needs, imported before the first file: not while files wait.
    import pyarrow.parquet  # noqa: F401

    shipper = Shipper(
        Path(spec["folder"]),
        spec["location"],
        InferenceLogParams.model_validate(spec["params"]),
        Storage(**spec["aws"]),
        report,
        spec.get("retry_first", RETRY_FIRST),
    )

    def listen() -> None:
        for line in commands:
            command = json.loads(line)
            if "file" in command:
                shipper.add(command["file"])
            elif command.get("stop"):
                shipper.stop()
                return
        os._exit(0)  # stdin ended without a stop: the server is gone; the next one takes the spool over

    threading.Thread(target=listen, name="inference-log-commands", daemon=True).start()
    shipper.run()
    report.write(b'{"done": true}\n')
    report.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
