"""The server's side of the inference log's process (``mlsteps.serving.log_shipper``): starting it, telling it of
each spool file, handing its events over, replacing it when it dies, and stopping it."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("mlsteps.serving.inference_log")

RESTART_EVERY = 10.0  # seconds between two starts of the log's process


class LogProcess:
    """The log's process for one server: ``start``, ``tell`` it each spool file, ``stop`` it.

    ``spec`` is what it needs (``mlsteps.serving.log_shipper.main``); ``waiting`` gives the spool files not yet
    shipped, told to each process it starts; ``on_event`` gets its events (in a thread of their own)."""

    def __init__(
        self, spec: dict[str, Any], waiting: Callable[[], list[str]], on_event: Callable[[dict[str, Any]], None]
    ) -> None:
        self.spec, self._waiting, self._on_event = spec, waiting, on_event
        self._process: subprocess.Popen | None = None
        self._listener: threading.Thread | None = None
        self._stopping = False
        self._started_at = 0.0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start a process, tell it the files that wait (recovered ones, or those a dead process left)."""
        self._started_at = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "mlsteps.serving.log_shipper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,  # the spool folder's lock stays the server's alone
            # A Ctrl-C or SIGTERM sent to the server's process group must not end it before the server's last
            # spool is shipped: the server ends it (a stop, or the end of its stdin when the server is gone).
            start_new_session=True,
        )
        with self._lock:
            self._process = process
        self._send(self.spec)
        for name in self._waiting():
            self._send({"file": name})
        self._listener = threading.Thread(target=self._listen, args=(process,), name="inference-log-listener")
        self._listener.daemon = True
        self._listener.start()

    def tell(self, name: str) -> None:
        """A new spool file. When the process is gone, nothing: the next one is told of every file that waits."""
        with contextlib.suppress(OSError, ValueError):
            self._send({"file": name})

    def stop(self, timeout: float) -> None:
        """Ask for a last attempt and wait for the end, at most ``timeout`` seconds (then it is killed)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            process = self._process
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._send({"stop": True})
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._listener is not None:
            self._listener.join(5)

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            process = self._process
        assert process is not None and process.stdin is not None
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()

    def _listen(self, process: subprocess.Popen) -> None:
        """The process's events, handed over; when it ends unasked, another is started."""
        assert process.stdout is not None
        for line in process.stdout:
            self._on_event(json.loads(line))
        code = process.wait()
        with self._lock:
            if self._stopping:
                return
        wait = max(0.0, self._started_at + RESTART_EVERY - time.monotonic())
        logger.warning(
            "the inference log's process ended (exit code %s): another is started in %.0f s; the spool keeps the "
            "rows meanwhile",
            code,
            wait,
        )
        time.sleep(wait)
        with self._lock:
            if self._stopping:
                return
        self.start()
