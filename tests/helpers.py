"""Helpers shared by the tests that run the project as a user does: in a subprocess, with a clean environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlsteps.config import REPO_ROOT

# The project the tests run the pipeline machinery on: the template's example. In the template it is the repo
# itself; in a project made with `copier copy` from data of its own, the example is kept under tests/example
# (the project's own config and data are checked by tests/test_project_contract.py).
_KEPT_EXAMPLE = REPO_ROOT / "tests" / "example"
EXAMPLE_ROOT = _KEPT_EXAMPLE if (_KEPT_EXAMPLE / "config" / "base.yaml").is_file() else REPO_ROOT
EXAMPLE_CONFIG = EXAMPLE_ROOT / "config"
EXAMPLE_RAW = EXAMPLE_ROOT / "data" / "raw" / "breast_cancer.csv"

# How far two scoring paths (predict, the batch handler, serving) may differ on the same rows: a float32 model
# matrix keeps about 7 significant digits, and BLAS picks other kernels for another batch size or CPU, so the last
# digits differ (docs/your-own-data.md: matrix_dtype). Labels must be equal; probabilities agree to this.
SCORE_TOLERANCE = 1e-5


def scrubbed_env(extra: Mapping[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without MLflow and pipeline settings (and ``drop`` prefixes), plus ``extra``;
    the config is the example's."""
    prefixes = ("MLFLOW_", "PIPELINE_", *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PIPELINE_CONFIG_DIR"] = str(EXAMPLE_CONFIG)
    if "PIPELINE_STATE_DIR" in os.environ:  # the test session's (conftest): never the repo's own .pipeline/
        env["PIPELINE_STATE_DIR"] = os.environ["PIPELINE_STATE_DIR"]
    env.update(extra or {})
    return env


def run_main(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    main: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """``python src/main.py ARGS`` (or another copy's main.py) as a user runs it."""
    script = str(main) if main else "src/main.py"
    return subprocess.run(
        [sys.executable, script, *args],
        check=False,
        cwd=cwd,
        env=scrubbed_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def serving(
    env: Mapping[str, str],
    log: Path,
    *args: str,
    cwd: Path = REPO_ROOT,
    entry: list[str] | None = None,
    stop: signal.Signals = signal.SIGTERM,
    process: list[subprocess.Popen] | None = None,
) -> Iterator[str]:
    """``python src/main.py serve`` (or ``entry``, told its port by SAGEMAKER_BIND_TO_PORT) on a free loopback
    port until the block ends, its output in ``log``; yields its URL (and appends the server's process to
    ``process``). The server is stopped with ``stop``: SIGTERM, as ``docker stop`` does, or SIGKILL, as the OOM
    killer does."""
    import requests

    from tests.servers import free_port, wait_until

    port = free_port()
    command = entry or [sys.executable, "src/main.py", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=scrubbed_env({**env, "SAGEMAKER_BIND_TO_PORT": str(port)}),
        stdout=log.open("w"),  # the log's warnings print to stdout (Rich), the server's messages to stderr
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    if process is not None:
        process.append(server)
    try:
        wait_until(
            lambda: requests.get(url + "/ping", timeout=2).status_code == 200, "scoring server", server, timeout=120
        )
        yield url
    finally:
        os.killpg(server.pid, stop)
        server.wait(timeout=60)
