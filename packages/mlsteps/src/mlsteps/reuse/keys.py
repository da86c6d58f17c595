"""The cache key: a step is reused only when its code, parameters, environment and input bytes are unchanged.

Unlike MLflow's ``multistep_workflow`` example (``_already_ran``), the key covers the step's source code and the
library versions, compares parameters in canonical JSON, and includes the digests of the inputs: a changed
upstream output changes every key below it. The code is the step module's import closure inside ``src/``,
found by reading the imports (``import_closure``), never a hand-written list: a module a step imports is part
of its key, and code it does not import (serving, the promotion policy, the pipeline machinery) is not.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mlsteps.project import ROOT as REPO_ROOT

# The library's own modules a step imports (mlsteps.step, mlsteps.schema, ...) are part of its code too.
LIBRARY_PARENT = Path(__file__).resolve().parents[2]

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
        return " and ".join(changed) + " changed since the last run"


def make_key(step: str, environment: str, code: str, params: dict[str, Any], inputs: dict[str, str]) -> CacheKey:
    """Build a step's key from its code digest, parameters and input digests."""
    return CacheKey(
        step=step,
        environment=environment,
        code=code,
        params=_sha256_text(_canonical(params)),
        inputs=_sha256_text(_canonical(inputs)),
    )


@cache
def code_digest(module: str, root: Path = REPO_ROOT) -> str:
    """SHA-256 over the source of ``module``'s import closure inside ``src/`` and the result-relevant versions."""
    digest = hashlib.sha256()
    for file in import_closure(module, root):
        label = file.relative_to(LIBRARY_PARENT if file.is_relative_to(LIBRARY_PARENT) else root).as_posix()
        digest.update(label.encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(library_versions().encode())
    return digest.hexdigest()


@cache
def library_versions() -> str:
    """``name==version`` of each of ``RESULT_LIBRARIES``, one a line (``absent`` when not installed)."""
    lines = []
    for package in RESULT_LIBRARIES:
        try:
            lines.append(f"{package}=={version(package)}\n")
        except PackageNotFoundError:
            lines.append(f"{package}==absent\n")
    return "".join(lines)


def import_closure(module: str, root: Path = REPO_ROOT) -> list[Path]:
    """The files of ``module`` and of every ``src.`` or ``mlsteps.`` module it imports, directly or not (imports inside
    functions included, ``if TYPE_CHECKING:`` blocks excluded: they exist for type checkers only)."""
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_file(name, root)
        if name in seen or path is None:
            continue
        seen[name] = path
        pending.extend(_imported_src_modules(path, name))
    return sorted(set(seen.values()))


def _module_file(name: str, root: Path) -> Path | None:
    base = (LIBRARY_PARENT if name.split(".")[0] == "mlsteps" else root).joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_src_modules(path: Path, name: str) -> list[str]:
    found = []
    for node in _walk_runtime(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = name.split(".")[: -node.level] if path.name != "__init__.py" else name.split(".")
                base = ".".join([*package, *([base] if base else [])])
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]  # `from mlsteps import config`
    return [m for m in found if m.split(".")[0] in ("src", "mlsteps")]


def _walk_runtime(tree: ast.AST) -> list[ast.AST]:
    """Every node, but those under ``if TYPE_CHECKING:``."""
    nodes: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
