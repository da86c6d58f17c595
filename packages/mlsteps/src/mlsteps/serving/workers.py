"""The worker processes of ``serve --workers N`` (N > 1) on Linux: one listening socket per worker, all on the same
host and port with ``SO_REUSEPORT``, so that the kernel gives each new connection to one worker's socket (by a hash
of its addresses and ports), whichever worker is awake.

uvicorn's own ``workers=N`` binds one socket that every worker accepts from: the worker that wakes first takes every
connection waiting, and a kept-alive connection stays with the worker that took it, so the few long-lived
connections of a client's pool can all land on one worker while the others idle (2,000 requests, all to one of two
workers, in one measured run). Where the kernel does not spread connections this way (not Linux: BSD's and macOS's
``SO_REUSEPORT`` give every connection to one socket), ``serve`` keeps uvicorn's workers.

This process, the supervisor:

- checks that no other process listens on the port with a plain bind (no ``SO_REUSEPORT``: a port shared with
  another ``serve`` or any other server fails it), then at once binds one ``SO_REUSEPORT`` socket per worker and
  listens on it, and holds the sockets while it runs (a replaced worker gets its predecessor's socket, with the
  connections waiting in it);
- starts each worker as a fresh interpreter (multiprocessing's spawn, as uvicorn does), which builds its app from
  ``PIPELINE_SERVE_SPEC`` and runs ``uvicorn.Server(config).run(sockets=[its socket])``;
- on SIGTERM or SIGINT, sends SIGTERM to every worker (each drains its requests, up to
  ``timeout_graceful_shutdown``, and flushes its inference log) and waits for them;
- replaces a worker that ends while the server runs (the OOM killer, say), or that has not been heard from for
  ``HUNG_SECONDS`` (killed first), and says so on stderr. A worker that ends before it ever served (its model cannot
  be loaded, say) stops the server with an error instead: another would end the same way.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from mlsteps.errors import ConfigError, PipelineError

BEAT_SECONDS = 1.0  # how often a worker tells the supervisor it is alive
HUNG_SECONDS = 10.0  # a worker not heard from for this long is killed and replaced
BACKLOG = 2048  # connections waiting in one worker's socket (uvicorn's default)
_spawn = multiprocessing.get_context("spawn")


def spreads_connections() -> bool:
    """Whether the kernel spreads the connections of one port over the sockets bound to it with SO_REUSEPORT."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listen(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` with SO_REUSEPORT (``port`` 0: one the kernel picks); a
    ConfigError when another process listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds its workers' socket
    sockets: list[socket.socket] = []
    try:
        # Without SO_REUSEPORT, the bind fails on a port any other socket listens on, a group of SO_REUSEPORT ones
        # (another `serve`) included, which a SO_REUSEPORT socket of the same user would silently join.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier server's TIME_WAIT: no conflict
            probe.bind((host, port))
            port = probe.getsockname()[1]
        for _ in range(count):
            # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on an accepted connection only when its socket says TCP
            # (else each kept-alive request after the first waits for the client's delayed ACK).
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)  # now: a socket only bound would not keep another server off the port
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} of {host} is in use by another process (another server, or another `serve`): stop "
                "it, or serve on another port (--port, SAGEMAKER_BIND_TO_PORT)"
            ) from exc
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): check --host and --port") from exc
    return sockets


@dataclass
class Worker:
    """One worker process, the socket it accepts from, and what it tells the supervisor."""

    number: int  # 1..N, for messages
    sock: socket.socket
    process: BaseProcess
    # Shared memory without a lock: a worker stopped or killed while it held one would leave the supervisor stuck.
    ready: Any  # a shared flag, true once its server listens (its model loaded): it has served
    beat: Any  # a shared double: time.monotonic() when it was last heard from
    heard: float = field(default_factory=time.monotonic)  # when the supervisor last saw it beat (or started it)

    @property
    def name(self) -> str:
        return f"worker {self.number} (pid {self.process.pid})"


def run_workers(app: str, sockets: list[socket.socket], options: dict[str, Any]) -> None:
    """Serve ``app`` (an import string of an app factory) with one worker process per socket until SIGTERM or
    SIGINT; a PipelineError when a worker ends before it was ready (see the module's docstring)."""
    from mlsteps.console import err

    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers: list[Worker] = []
    try:
        for number, sock in enumerate(sockets, start=1):
            workers.append(_start(number, sock, app, options))
        last = time.monotonic()
        while not stopping:
            wait([w.process.sentinel for w in workers], timeout=BEAT_SECONDS / 2)
            now = time.monotonic()
            if now - last > 2 * BEAT_SECONDS:  # this process was not running (a paused VM): nobody was heard from
                for worker in workers:
                    worker.heard = now
            last = now
            for index, worker in enumerate(workers):
                failure = None if stopping else _failure(worker, now)
                if failure is None:
                    continue
                if not worker.ready.value:
                    raise PipelineError(
                        f"{worker.name} {failure} before it was ready to serve, so the server is stopped (what it "
                        "printed above says why; another worker would end the same way)"
                    )
                err.print(f"{worker.name} {failure}: starting another", highlight=False, soft_wrap=True)
                workers[index] = _start(worker.number, worker.sock, app, options)
    finally:
        for sock in sockets:  # the workers close theirs as they stop: then the port refuses new connections
            sock.close()
        for worker in workers:
            # SIGTERM whatever stopped the server: Ctrl-C reaches the workers too, and SIGINT twice skips the drain.
            worker.process.terminate()
        for worker in workers:
            worker.process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(number: int, sock: socket.socket, app: str, options: dict[str, Any]) -> Worker:
    ready, beat = _spawn.Value("b", 0, lock=False), _spawn.Value("d", 0.0, lock=False)
    process = _spawn.Process(target=_work, args=(app, sock, options, ready, beat), name=f"serve-worker-{number}")
    process.start()
    return Worker(number, sock, process, ready, beat)


def _failure(worker: Worker, now: float) -> str | None:
    """What went wrong with ``worker``, if anything: it ended, or it was not heard from (and is killed)."""
    code = worker.process.exitcode
    if code is not None:
        if code < 0:
            name = signal.Signals(-code).name
            return f"was killed by {name}" + (" (the OOM killer, or kill -9)" if name == "SIGKILL" else "")
        return f"exited with code {code}"
    worker.heard = max(worker.heard, worker.beat.value)
    # Not while it starts: unpickling a large model can hold the GIL, and so its heartbeat, for longer.
    if worker.ready.value and now - worker.heard > HUNG_SECONDS:
        worker.process.kill()
        worker.process.join()
        return f"was not heard from for {HUNG_SECONDS:g} s and was killed"
    return None


def _work(app: str, sock: socket.socket, options: dict[str, Any], ready: Any, beat: Any) -> None:
    """One worker process: uvicorn serving ``app`` on ``sock`` until SIGTERM or SIGINT."""
    import uvicorn

    # uvicorn takes SIGTERM and SIGINT while it serves and raises them again once it has stopped: then (and before
    # it serves) the worker ends at once, exit code 0.
    signal.signal(signal.SIGTERM, _leave)
    signal.signal(signal.SIGINT, _leave)
    server = uvicorn.Server(uvicorn.Config(app, factory=True, **options))
    supervisor = os.getppid()

    def heartbeat() -> None:
        while True:
            beat.value = time.monotonic()  # the same clock for every process of the machine
            ready.value = ready.value or server.started
            if os.getppid() != supervisor:  # killed: stop as if told to, rather than serve on alone
                server.should_exit = True
            time.sleep(BEAT_SECONDS)

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    server.run(sockets=[sock])
    _leave()


def _leave(*_signal: object) -> None:
    # Nothing is left to do once uvicorn has stopped: the app flushed its inference log. The interpreter's own
    # teardown (MLflow's and pandas' modules, their exit hooks) would add 1 to 2 s to every stop.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
