"""Real servers for integration tests, on free loopback ports, stopped by PID.

- an S3-speaking server (moto_server over HTTP: the code under test talks to it exactly as to S3);
- a PostgreSQL cluster made with initdb in a temporary folder;
- an MLflow tracking server on that PostgreSQL with its artifacts proxied to the S3 server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never look for credentials beyond this machine (no instance-metadata calls).
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(Exception):  # not up yet
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f}s")


@dataclass
class Server:
    """A started process and what to stop when done."""

    url: str
    proc: subprocess.Popen
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        for step in self.cleanup:
            step()


def _popen(args: list[str], env: dict[str, str], log: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, **kwargs
    )


def start_s3_server(workdir: Path) -> Server:
    port = free_port()
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if moto is None:
        raise RuntimeError("moto_server is not installed: pip install -r requirements.lock")
    proc = _popen([moto, "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), workdir / "moto.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url, timeout=2).status_code < 500, "moto_server", proc)
    return Server(url, proc)


def find_postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def start_postgres(workdir: Path) -> Server:
    """A throwaway cluster: initdb in a temp folder, run as the postgres user when we are root."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    as_user: list[str] = []
    data_dir = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    if os.geteuid() == 0:
        import pwd

        pg = pwd.getpwnam("postgres")
        os.chown(data_dir, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data_dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    proc = _popen(
        [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir / "data"),
            "-p",
            str(port),
            "-k",
            str(data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        dict(os.environ),
        workdir / "postgres.log",
    )

    def ready() -> bool:
        return (
            subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], check=False, capture_output=True
            ).returncode
            == 0
        )

    wait_until(ready, "postgres", proc)
    subprocess.run(
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"],
        check=True,
        capture_output=True,
    )
    server = Server(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow", proc)
    server.cleanup.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    return server


def start_mlflow_server(workdir: Path, backend_uri: str, artifacts_destination: str, s3_url: str) -> Server:
    port = free_port()
    from tests.helpers import scrubbed_env

    env = scrubbed_env(
        {
            **AWS_TEST_ENV,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "AWS_ENDPOINT_URL": s3_url,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # As deploy/docker-compose.yml sets them for the team server.
            "AWS_RETRY_MODE": "standard",
            "AWS_MAX_ATTEMPTS": "3",
        }
    )
    proc = _popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            artifacts_destination,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env,
        workdir / "mlflow-server.log",
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/health", timeout=2).status_code == 200, "mlflow server", proc, timeout=120)
    return Server(url, proc)


class FailingProxy:
    """An HTTP proxy on a free loopback port in front of ``upstream`` (an S3-speaking server) that answers the first
    ``failures`` GET requests whose path holds ``marker`` with S3's "503 Slow Down", and forwards everything else:
    a storage failing for now, at the network level (the code under test talks to it over HTTP as to S3).

    ``fail_writes(marker)`` answers every PUT or POST whose path holds ``marker`` with "503 Slow Down" until
    ``heal``: a destination that cannot be written for a while.

    ``lose_at_next_write(skip)`` makes it a storage lost for good instead: the next PUT or POST whose path holds
    none of ``skip``, and every request after it, gets its connection closed with no answer (an endpoint gone
    mid-run)."""

    def __init__(self, upstream: str, marker: str = "", failures: int = 0) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import quote, urlsplit

        target = urlsplit(upstream)
        state: dict = {
            "left": failures,
            "failed": 0,
            "lost": 0,
            "gone": False,
            "armed": False,
            "skip": (),
            "writes": None,
        }
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.1: answers "Expect: 100-continue" (S3 clients send it before a body) and keeps connections.
            protocol_version = "HTTP/1.1"
            timeout = 30  # a client that stops talking never holds the test

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    write = self.command in ("PUT", "POST") and not any(quote(s) in self.path for s in state["skip"])
                    if state["gone"] or (state["armed"] and write):
                        state["gone"] = True
                        state["lost"] += 1
                        self.close_connection = True
                        return
                    fail = self.command == "GET" and quote(marker) in self.path and state["left"] > 0
                    if fail:
                        state["left"] -= 1
                    fail = fail or (write and state["writes"] is not None and quote(state["writes"]) in self.path)
                    if fail:
                        state["failed"] += 1
                if fail:
                    payload = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                # A HEAD answer's length is the object's, not its (empty) body's.
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self.state = state
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def failed(self) -> int:
        return self.state["failed"]

    @property
    def lost(self) -> int:
        """Requests dropped since the storage was lost (0: it was never lost)."""
        return self.state["lost"]

    def lose_at_next_write(self, skip: tuple[str, ...] = ()) -> None:
        self.state["skip"] = skip
        self.state["armed"] = True

    def fail_writes(self, marker: str) -> None:
        self.state["writes"] = marker

    def heal(self) -> None:
        """From now on, forward every request (a lost storage is back; ``lost`` keeps its count)."""
        self.state["left"] = 0
        self.state["writes"] = None
        self.state["armed"] = self.state["gone"] = False

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_sagemaker_server(workdir: Path) -> Server:
    """moto_server with UpdateEndpoint, endpoints that never become InService, and one invoke answer per queued
    result (tests/sagemaker_server.py); S3 and every other service of moto too."""
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-m", "tests.sagemaker_server", "-H", "127.0.0.1", "-p", str(port)]
    proc = _popen(args, env, workdir / f"sagemaker-moto-{port}.log", cwd=root)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url, timeout=2).status_code < 500, "moto_server (SageMaker)", proc)
    return Server(url, proc)
