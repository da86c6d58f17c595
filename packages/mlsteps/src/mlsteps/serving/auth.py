"""API keys for the scoring server, kept only as SHA-256 digests and given through the environment.

Keys never live in the YAML or the image: ``PIPELINE_API_KEYS_SHA256`` holds digests separated by commas, and
``PIPELINE_API_KEYS_FILE`` names a file (a mounted secret) with one digest a line, optionally followed by a
label saying whose key it is (recorded in the inference log; a key's own text never is), ``#`` starting a
comment. A digest is made with ``printf %s "$KEY" | sha256sum``. A client sends its key as
``Authorization: Bearer <key>`` or ``x-api-key: <key>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlsteps.errors import ConfigError

ENV_DIGESTS = "PIPELINE_API_KEYS_SHA256"
ENV_FILE = "PIPELINE_API_KEYS_FILE"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_HOW = 'the SHA-256 digest of the key, not the key itself: printf %s "$KEY" | sha256sum'


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys, as digest -> label. Empty: no key is asked for."""

    labels: Mapping[str, str]

    @property
    def enabled(self) -> bool:
        return bool(self.labels)

    def holder(self, authorization: str | None, x_api_key: str | None) -> str | None:
        """The label of the key a request presents, or None when it presents no valid one."""
        key = x_api_key
        if authorization and authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
        if not key:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        found = None
        for known, label in self.labels.items():  # every digest compared in constant time, none skipped
            if hmac.compare_digest(known, digest):
                found = label
        return found


def load_api_keys(env: Mapping[str, str]) -> ApiKeys:
    """The keys the environment gives; a ConfigError naming the variable (or file and line) of a malformed one."""
    entries: list[tuple[str, str, str]] = []
    for i, item in enumerate(env.get(ENV_DIGESTS, "").split(",")):
        if item.strip():
            entries.append((item.strip(), "", f"{ENV_DIGESTS} (item {i + 1})"))
    path = env.get(ENV_FILE)
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{ENV_FILE}={path} cannot be read ({exc.strerror}): mount the secret there") from exc
        for number, line in enumerate(lines, 1):
            digest, _, label = line.split("#", 1)[0].strip().partition(" ")
            if digest:
                entries.append((digest, label.strip(), f"line {number} of {ENV_FILE}={path}"))
    labels: dict[str, str] = {}
    for digest, label, where in entries:
        if not _DIGEST.fullmatch(digest.lower()):
            raise ConfigError(f"{where} is not a SHA-256 digest (64 hex digits): give {_HOW}")
        labels[digest.lower()] = label or f"key-{digest.lower()[:8]}"
    return ApiKeys(labels)
