"""Folders a live process owns, and the ones a dead process left: the server's model copy and its inference log spool.

A folder is made under a temporary name, an exclusive ``flock`` is taken on its ``.lock`` file, and only then is
it renamed to ``<prefix><pid>-<id>``: a folder with its final name is always locked while its process lives. The
kernel releases the lock when the process ends, however it ends (SIGKILL, OOM kill), so the next process that
finds the lock free knows the owner is gone, even when a restarted container gives it the same pid. The pid in
the name is for people only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK = ".lock"


@dataclass
class Owned:
    """A folder this process holds the lock of until ``release``."""

    path: Path
    fd: int

    def release(self, remove: bool = False) -> None:
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1  # never close a number another file took since


def claim(root: Path, prefix: str) -> Owned:
    """A new folder ``root/<prefix><pid>-<id>``, locked by this process."""
    root.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    making = root / f".making-{prefix}{tag}"
    making.mkdir()
    fd = os.open(making / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    final = root / f"{prefix}{tag}"
    os.rename(making, final)
    return Owned(final, fd)


@contextlib.contextmanager
def owned_folder(root: Path, prefix: str) -> Iterator[Path]:
    """``claim`` for the span of a ``with`` block, removed after it (what ``tempfile.TemporaryDirectory`` does,
    but a folder a killed process leaves is found and removed by ``remove_dead``)."""
    remove_dead(root, prefix)
    owned = claim(root, prefix)
    try:
        yield owned.path
    finally:
        owned.release(remove=True)


def dead(root: Path, prefix: str) -> Iterator[Owned]:
    """The folders ``<prefix>*`` under ``root`` whose owner is gone, each locked by this process while it is
    handled (two processes never handle the same one); the caller releases each."""
    if not root.is_dir():
        return
    for folder in sorted(root.glob(f"{prefix}*")):
        try:
            fd = os.open(folder / LOCK, os.O_RDWR)
        except OSError:  # not one of ours, or already removed by another process
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner lives
            os.close(fd)
            continue
        if os.fstat(fd).st_nlink == 0:  # removed by another process between the glob and the lock
            os.close(fd)
            continue
        yield Owned(folder, fd)


def remove_dead(root: Path, prefix: str) -> int:
    """Remove what dead owners left under ``root``; how many folders went."""
    removed = 0
    for owned in dead(root, prefix):
        owned.release(remove=True)
        removed += 1
    return removed
