"""SHA-256 digests of local files, remembered by (size, mtime, inode) across runs, as DVC does.

A large raw file is hashed once; later runs take its digest from ``.pipeline/digests.json`` while its size,
modification time (in nanoseconds) and inode are unchanged, and hash it again as soon as any of them changes.
Standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from mlsteps.uptodate import state_dir

MAX_ENTRIES = 2000  # the oldest are forgotten beyond this (a forgotten file is only hashed again)


class DigestCache:
    """Digests by file stat, loaded from and saved to a JSON file in the state folder."""

    def __init__(self) -> None:
        self._entries: dict[str, list] | None = None

    @property
    def file(self) -> str:
        return str(state_dir() / "digests.json")

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            try:
                with open(self.file) as handle:
                    loaded = json.load(handle)
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def digest(self, path: str, compute: Callable[[], str]) -> str:
        """The digest of the file at ``path``: remembered while its stat is unchanged, else ``compute()``d."""
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError:
            return compute()  # reports the missing file its own way
        seen = [st.st_size, st.st_mtime_ns, st.st_ino]
        entries = self._load()
        entry = entries.get(path)
        if isinstance(entry, list) and entry[:3] == seen and len(entry) == 4:
            return str(entry[3])
        value = compute()
        entries.pop(path, None)
        entries[path] = [*seen, value]
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        self._save(entries)
        return value

    def _save(self, entries: dict[str, list]) -> None:
        try:
            os.makedirs(os.path.dirname(self.file), exist_ok=True)
            tmp = f"{self.file}.{os.getpid()}.tmp"
            with open(tmp, "w") as handle:
                json.dump(entries, handle)
            os.replace(tmp, self.file)
        except OSError:
            pass  # a read-only project: digests are computed again next time, nothing else changes
