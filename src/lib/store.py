"""The MLflow tracking store of an environment: connecting to it, fast, with a clear error when it is down.

Also what identifies the process that owns a run (host, pid, git state), for the run tags.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
from collections.abc import Iterator

from src.lib.config import REPO_ROOT, Settings
from src.lib.errors import TrackingError

TAG_GIT_COMMIT = "git.commit"
TAG_GIT_DIRTY = "git.dirty"
TAG_HOST = "pipeline.host"
TAG_PID = "pipeline.pid"


def connect(settings: Settings) -> str:
    """Point MLflow at the environment's tracking server and make sure the experiment exists; its id."""
    import mlflow

    tracking = settings.tracking
    probe_server(tracking.uri)
    mlflow.set_tracking_uri(tracking.uri)
    try:
        with _sqlite_setup_lock(tracking.uri):
            experiment = mlflow.get_experiment_by_name(tracking.experiment)
            if experiment is not None:
                return str(experiment.experiment_id)
            return str(mlflow.create_experiment(tracking.experiment, artifact_location=tracking.artifact_location))
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the store is a TrackingError
        raise TrackingError(
            f"cannot use the MLflow tracking store '{tracking.uri}': {type(exc).__name__}: {exc}; "
            "check tracking.uri (or PIPELINE_TRACKING_URI / MLFLOW_TRACKING_URI) and that the server is up"
        ) from exc


def probe_server(uri: str, timeout: float = 5.0) -> None:
    """For an HTTP tracking server: fail in seconds, with the reason, if it does not answer its /health."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as exc:
        raise TrackingError(
            f"the MLflow tracking server at {uri} does not answer ({type(exc).__name__}): start it (deploy/README.md), "
            "or point PIPELINE_TRACKING_URI at a running one"
        ) from exc
    if response.status_code != 200:
        raise TrackingError(
            f"the MLflow tracking server at {uri} answered /health with HTTP {response.status_code}: "
            "check that the URI is an MLflow server and that it is healthy"
        )


@contextlib.contextmanager
def _sqlite_setup_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a SQLite store: two processes creating its tables at once break its migration."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        fcntl = None  # type: ignore[assignment]
    if fcntl is None or not uri.startswith("sqlite:///"):
        yield
        return

    db_path = uri[len("sqlite:///") :]
    os.makedirs(os.path.dirname(db_path) or ".", exist_ok=True)
    with open(db_path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def git_state() -> tuple[str, bool | None]:
    """The repo's current commit and whether the work tree differs from it ("unknown", None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        # No git (a container image): the commit the image was built from, if the build recorded it.
        baked = os.environ.get("PIPELINE_GIT_COMMIT")
        return (baked, None) if baked else ("unknown", None)
    return commit, bool(status.strip())


def owner_tags() -> dict[str, str]:
    """Git state and the owning process: lets a later pipeline close runs left RUNNING by a killed one."""
    commit, dirty = git_state()
    return {
        TAG_GIT_COMMIT: commit,
        TAG_GIT_DIRTY: "unknown" if dirty is None else str(dirty).lower(),
        TAG_HOST: socket.gethostname(),
        TAG_PID: str(os.getpid()),
    }


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
