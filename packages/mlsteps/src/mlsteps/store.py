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

from mlsteps.config import REPO_ROOT, Settings
from mlsteps.errors import TrackingError

TAG_GIT_COMMIT = "git.commit"
TAG_GIT_DIRTY = "git.dirty"
TAG_HOST = "pipeline.host"
TAG_PID = "pipeline.pid"
# Which process owns a run, unambiguously across containers and PID namespaces: boot id, PID namespace, pid,
# and the process's start time (a recycled pid has another start time).
TAG_PROCESS = "pipeline.process"


def connect(settings: Settings, create: bool = True) -> str | None:
    """Point MLflow at the environment's tracking server and return its experiment's id.

    With ``create`` the experiment (and a SQLite store) is created when missing; without, nothing is written
    (``--dry-run``, ``check``) and a missing experiment or SQLite file gives None.
    """
    import mlflow

    tracking = settings.tracking
    probe_server(tracking.uri)
    apply_http_limits(settings)
    mlflow.set_tracking_uri(tracking.uri)
    if not create and tracking.uri.startswith("sqlite:///") and not os.path.exists(tracking.uri[len("sqlite:///") :]):
        return None
    try:
        with _sqlite_setup_lock(tracking.uri if create else ""):
            experiment = mlflow.get_experiment_by_name(tracking.experiment)
            if experiment is not None:
                return str(experiment.experiment_id)
            if not create:
                return None
            return str(mlflow.create_experiment(tracking.experiment, artifact_location=tracking.artifact_location))
    except Exception as exc:
        raise TrackingError(
            f"cannot use the MLflow tracking store '{tracking.uri}': {type(exc).__name__}: "
            f"{exc}; {_store_hint(tracking.uri, exc)}"
        ) from exc


def _store_hint(uri: str, exc: BaseException) -> str:
    """What to do, by what went wrong (not a generic 'is the server up')."""
    text = f"{type(exc).__name__} {exc}".lower()
    if uri.startswith("sqlite:") and ("not a database" in text or "malformed" in text or "file is encrypted" in text):
        return (
            f"the SQLite file {uri[len('sqlite:///') :]} is damaged (not an MLflow database): move it aside to "
            "start a new store, or restore it from a backup"
        )
    if "no space left" in text or "disk is full" in text or "database or disk is full" in text:
        return "the disk holding the tracking store is full: free space there"
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return "the tracking store cannot be written by this user: fix its permissions or point tracking.uri elsewhere"
    if uri.startswith(("http://", "https://")):
        return "check tracking.uri (or PIPELINE_TRACKING_URI / MLFLOW_TRACKING_URI) and that the server is up"
    return "check tracking.uri (or PIPELINE_TRACKING_URI / MLFLOW_TRACKING_URI)"


def is_missing(exc: BaseException) -> bool:
    """Whether the tracking store answered that what was asked for does not exist (or is no valid name for one):
    the reference given is wrong. A store that fails or does not answer raises other errors."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def apply_http_limits(settings: Settings) -> None:
    """Bounded timeouts and retries for an HTTP tracking server (MLflow's defaults wait minutes on a dead one).
    Variables already set by the user win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.tracking.timeout_seconds))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.tracking.max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def probe_server(uri: str, timeout: float = 3.0) -> None:
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
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
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
        TAG_PROCESS: process_identity(os.getpid()),
    }


def process_identity(pid: int) -> str:
    """``<boot id>/<pid namespace>/<pid>/<start time>`` of a process of this machine ("" if it does not exist)."""
    start = _start_time(pid)
    return f"{_boot_id()}/{_pid_namespace()}/{pid}/{start}" if start is not None else ""


def owner_is_gone(identity: str) -> bool | None:
    """Whether the process an identity names has ended: True, False, or None when this process cannot tell
    (another machine, boot or PID namespace: the same pid number there is another process)."""
    parts = identity.split("/")
    if len(parts) != 4 or not parts[2].isdigit() or parts[:2] != [_boot_id(), _pid_namespace()]:
        return None
    if "unknown" in parts[:2]:
        return None
    return process_identity(int(parts[2])) != identity


@functools.cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return "unknown"


@functools.cache
def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat); "?" off Linux."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
