"""Step cache keys: a step is reused only when its code, parameters, environment and input bytes are unchanged.

Unlike MLflow's ``multistep_workflow`` example (``_already_ran``), the key covers the step's source code and the
library versions, compares parameters in canonical JSON, and includes the digests of the inputs: a changed
upstream output changes every key below it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from src.lib.config import REPO_ROOT

TAG_KEY = "pipeline.cache.key"
TAG_CODE = "pipeline.cache.code"
TAG_PARAMS = "pipeline.cache.params"
TAG_INPUTS = "pipeline.cache.inputs"

# Libraries whose version can change a step's result: part of every code digest.
RESULT_LIBRARIES = ("pandas", "numpy", "scikit-learn", "pandera", "pyarrow", "mlflow")


@dataclass(frozen=True)
class CacheKey:
    """The parts of a step's cache key, each a SHA-256, and the key itself."""

    step: str
    environment: str
    code: str
    params: str
    inputs: str

    @property
    def value(self) -> str:
        return _sha256_text(f"{self.step}|{self.environment}|{self.code}|{self.params}|{self.inputs}")

    def tags(self) -> dict[str, str]:
        return {TAG_KEY: self.value, TAG_CODE: self.code, TAG_PARAMS: self.params, TAG_INPUTS: self.inputs}

    def difference(self, previous_tags: dict[str, str]) -> str:
        """Why this key differs from an earlier run's (its tags), in words."""
        changed = [
            what
            for what, tag, mine in (
                ("code", TAG_CODE, self.code),
                ("parameters", TAG_PARAMS, self.params),
                ("inputs", TAG_INPUTS, self.inputs),
            )
            if previous_tags.get(tag) != mine
        ]
        if not changed:
            return "the cached run's outputs are gone"
        return " and ".join(changed) + (" changed" if len(changed) == 1 else " changed") + " since the last run"


def make_key(
    step: str, environment: str, code_paths: tuple[str, ...], params: dict[str, Any], inputs: dict[str, str]
) -> CacheKey:
    """Build a step's key from its source files, parameters and input digests."""
    return CacheKey(
        step=step,
        environment=environment,
        code=code_digest(code_paths),
        params=_sha256_text(_canonical(params)),
        inputs=_sha256_text(_canonical(inputs)),
    )


@cache
def code_digest(paths: tuple[str, ...]) -> str:
    """SHA-256 over the named source files (folders: every ``*.py`` below) and the result-relevant versions."""
    digest = hashlib.sha256()
    for relative in paths:
        target = REPO_ROOT / relative
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for file in files:
            digest.update(file.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(b"\0")
            digest.update(file.read_bytes())
            digest.update(b"\0")
    for package in RESULT_LIBRARIES:
        try:
            digest.update(f"{package}=={version(package)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{package}==absent\n".encode())
    return digest.hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
