"""What the cache remembers on this machine, by file stat (size, mtime in ns, inode), as ``make`` and DVC do.

Two memories share one folder (``state_dir()``: ``PIPELINE_STATE_DIR``, else ``.pipeline/`` in the project) and one
rule: a remembered answer holds while the stat of every file it was drawn from is unchanged.

- **File digests** (``DigestCache``, ``digests.json``): a file's SHA-256, the input part of a step's cache key
  (``mlsteps.reuse.keys``). A large raw file is hashed once, and again when its stat changes.
- **Up to date** (``fingerprint``, ``check``, ``record``; ``uptodate-<environment>.json``): after a pipeline run
  that ended well, a fingerprint of everything that decides what the run does and the stat of every local file it
  read or wrote, the SQLite tracking store among them. When both still hold, every step's key would match its
  last run, so the command says so and ends before MLflow, pandas or the config models are imported; on any
  difference it falls back to the full check (the steps' cache keys, asked of MLflow).

The fingerprint covers the command's options, the environment's name, the working directory, every file of the
config folder, the ``PIPELINE_*``, ``MLFLOW_*`` and ``AWS_*`` environment variables, every file under ``src/`` and
of the library, the interpreter and the library versions of the cache keys. The tracking store is a file: any write
to it (a run, a tag, an alias moved, a run deleted) changes its stat and so sends the next run through MLflow.
Up to date applies only where the tracking store and every dataset are local files (the ``local`` environment);
under ``mlflow run`` (``MLFLOW_RUN_ID`` set) never: that run is waiting for its steps. An up-to-date run records
nothing in MLflow (``--record`` or ``--force`` go through MLflow anyway). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsteps.project import ROOT as REPO_ROOT
from mlsteps.reuse.keys import library_versions

LIBRARY = Path(__file__).resolve().parents[1]
STATE_VERSION = 1
MAX_DIGESTS = 2000  # the oldest are forgotten beyond this (a forgotten file is only hashed again)
ENV_PREFIXES = ("PIPELINE_", "MLFLOW_", "AWS_")
# Variables of those prefixes that cannot change a result (the Makefile exports MLFLOW_DISABLE_TELEMETRY: a direct
# `python src/main.py` after `make run` is still up to date).
ENV_IGNORED = frozenset({"MLFLOW_DISABLE_TELEMETRY", "MLFLOW_LOGGING_LEVEL", "MLFLOW_CONFIGURE_LOGGING"})
# URIs that are not files: a model is resolved through the tracking store, whose file is watched.
_TRACKED_SCHEMES = ("models:/", "runs:/")


@dataclass(frozen=True)
class UpToDate:
    """A state that still holds: the summary lines of the run that made it, and that run's id."""

    parent_run_id: str
    lines: list[str]


def state_dir() -> Path:
    """Where the state files live: ``PIPELINE_STATE_DIR``, else ``.pipeline/`` in the project (git-ignored)."""
    return Path(os.environ.get("PIPELINE_STATE_DIR") or REPO_ROOT / ".pipeline")


def file_stat(path: str) -> list[int] | None:
    """(size, mtime_ns, inode) of a file, or None when there is none: what every remembered answer is keyed by."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read_state(path: Path) -> Any:
    """A state file's JSON, or None when it is missing or unreadable (a memory lost is only computed again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_state(path: Path, value: Any) -> None:
    """Write a state file whole or not at all (a temp file, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


class DigestCache:
    """File digests remembered by stat, loaded from and saved to ``digests.json`` in the state folder."""

    def __init__(self) -> None:
        self._entries: dict[str, list] | None = None

    @property
    def file(self) -> Path:
        return state_dir() / "digests.json"

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            loaded = _read_state(self.file)
            self._entries = loaded if isinstance(loaded, dict) else {}
        return self._entries

    def digest(self, path: str, compute: Callable[[], str]) -> str:
        """The digest of the file at ``path``: remembered while its stat is unchanged, else ``compute()``d."""
        path = os.path.abspath(path)
        seen = file_stat(path)
        if seen is None:
            return compute()  # reports the missing file its own way
        entries = self._load()
        entry = entries.get(path)
        if isinstance(entry, list) and entry[:3] == seen and len(entry) == 4:
            return str(entry[3])
        value = compute()
        entries.pop(path, None)
        entries[path] = [*seen, value]
        while len(entries) > MAX_DIGESTS:
            entries.pop(next(iter(entries)))
        try:
            _write_state(self.file, entries)
        except OSError:
            pass  # a read-only project: digests are computed again next time, nothing else changes
        return value


def _state_file(environment: str) -> Path:
    return state_dir() / f"uptodate-{environment}.json"


def fingerprint(environment: str, options: Mapping[str, Any]) -> str:
    """SHA-256 of what decides a run: options, config files, environment variables, code, interpreter, libraries."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("environment", environment.encode())
    add("options", json.dumps(dict(options), sort_keys=True, default=str).encode())
    add("python", f"{sys.executable}\0{sys.version}".encode())
    add("cwd", os.getcwd().encode())  # relative paths in the config resolve against it
    add("libraries", library_versions().encode())
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) and k not in ENV_IGNORED)
    add("env", json.dumps(env).encode())
    config_dir = Path(os.environ.get("PIPELINE_CONFIG_DIR") or REPO_ROOT / "config").resolve()
    add("config dir", str(config_dir).encode())
    for path in _files(config_dir):
        add(f"config {path.relative_to(config_dir)}", path.read_bytes())
    src = REPO_ROOT / "src"
    for path in _files(src):
        add(f"src {path.relative_to(src)}", path.read_bytes())
    for path in _files(LIBRARY):
        add(f"library {path.relative_to(LIBRARY)}", path.read_bytes())
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def local_path(uri: str) -> str | None:
    """The local path of a dataset URI; None for anything that is not a local file (s3://, memory://, ...)."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri or uri.startswith(_TRACKED_SCHEMES):
        return None
    return uri


def sqlite_path(tracking_uri: str) -> str | None:
    """The database file of a ``sqlite:///`` tracking URI; None for a server or another database."""
    prefix = "sqlite:///"
    return tracking_uri[len(prefix) :] if tracking_uri.startswith(prefix) else None


def applies() -> bool:
    """False under ``mlflow run``: that run waits for its steps, which must attach to it."""
    return not os.environ.get("MLFLOW_RUN_ID")


def check(environment: str, current: str) -> UpToDate | None:
    """The state of the last run, if its fingerprint is ``current`` and nothing it used has changed; else None."""
    if not applies():
        return None
    state = _read_state(_state_file(environment))
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        return None
    if state.get("fingerprint") != current:
        return None
    files = state.get("files")
    if not isinstance(files, dict) or any(file_stat(path) != seen for path, seen in files.items()):
        return None
    return UpToDate(str(state.get("parent_run_id", "")), [str(line) for line in state.get("lines", [])])


def record(
    environment: str,
    fingerprint_before: str,
    tracking_uri: str,
    uris: Iterable[str],
    parent_run_id: str,
    lines: list[str],
) -> bool:
    """Write the state of a run that ended well; False (and no state) when something it used is not a local file.

    ``fingerprint_before`` is taken before the run started: a file edited while it ran makes the state stale."""
    target = _state_file(environment)
    database = sqlite_path(tracking_uri)
    paths = [local_path(u) for u in uris if not u.startswith(_TRACKED_SCHEMES)]
    if database is None or None in paths:
        target.unlink(missing_ok=True)  # a state from before would describe another set-up
        return False
    watched: dict[str, Any] = {}
    for path in [p for p in paths if p]:
        absolute = os.path.abspath(path)
        if os.path.isdir(absolute):
            watched |= {str(f): file_stat(str(f)) for f in _files(Path(absolute))}
        watched[absolute] = file_stat(absolute)
    # The database, and the files SQLite writes beside it in its other journal modes (their absence counts too).
    for suffix in ("", "-wal", "-journal"):
        watched[os.path.abspath(database + suffix)] = file_stat(database + suffix)
    state = {
        "version": STATE_VERSION,
        "fingerprint": fingerprint_before,
        "parent_run_id": parent_run_id,
        "files": watched,
        "lines": lines,
    }
    _write_state(target, state)
    return True
