"""Find the pipeline's steps: every module under ``src/<package>/`` with a top-level ``STEP = Step(...)``.

The declarations are read statically (``ast``), with the standard library only, so that ``--help``, the
Airflow DAG (in its own virtualenv) and the tests know the steps without importing pandas or MLflow. Their
order comes from the datasets they read and write (a step runs after the steps that write what it reads),
as Kedro orders its nodes; steps with no dependency between them keep the order of their names.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsteps.project import SRC

# The keywords of Step(...) that must be literals, so they can be read without importing the module.
LITERAL_KEYWORDS = ("name", "reads", "writes", "headline", "resources", "fallbacks", "snapshot", "options")


@dataclass(frozen=True)
class Declaration:
    """What a step declares about itself, read from its module's source."""

    name: str
    module: str  # dotted, e.g. "src.data.make_dataset"
    path: Path
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    resources: dict[str, str] = field(default_factory=dict)
    # Datasets read in place of another when it is not set (e.g. predict_input -> test): an ordering edge.
    fallbacks: dict[str, str] = field(default_factory=dict)
    # Datasets stored content-addressed before it runs: the step retrains with --from-run.
    snapshot: tuple[str, ...] = ()
    # Command-line options that set its config keys ({flag: spec}; see Step).
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (*self.reads, *(self.fallbacks.get(r, "") for r in self.reads if r in self.fallbacks))


class DeclarationError(Exception):
    """A step declaration cannot be read (not a literal, a duplicate name, a cycle)."""


@functools.cache
def declarations(src: Path = SRC) -> tuple[Declaration, ...]:
    """Every declared step, in pipeline order."""
    found: dict[str, Declaration] = {}
    for path in sorted(src.glob("*/*.py")):
        declaration = _read_declaration(path, src)
        if declaration is None:
            continue
        if declaration.name in found:
            raise DeclarationError(
                f"step '{declaration.name}' is declared twice: {found[declaration.name].path} and {path}"
            )
        found[declaration.name] = declaration
    return tuple(_in_order(list(found.values())))


def step_names(src: Path = SRC) -> tuple[str, ...]:
    return tuple(d.name for d in declarations(src))


def writers(src: Path = SRC) -> dict[str, str]:
    """Which step writes each dataset."""
    return {dataset: d.name for d in declarations(src) for dataset in d.writes}


def option_for(key: str, src: Path = SRC) -> str | None:
    """The command-line option a step declares for a config key (``catalog.predict_input.path`` -> ``--input``)."""
    return next((flag for d in declarations(src) for flag, spec in d.options.items() if spec.get("key") == key), None)


def _read_declaration(path: Path, src: Path) -> Declaration | None:
    text = path.read_text(encoding="utf-8")
    if "STEP" not in text:
        return None
    tree = ast.parse(text, filename=str(path))
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        target = (
            node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else (node.target if isinstance(node, ast.AnnAssign) else None)
        )
        if not (isinstance(target, ast.Name) and target.id == "STEP" and isinstance(node.value, ast.Call)):
            continue
        values = {}
        for keyword in node.value.keywords:
            if keyword.arg in LITERAL_KEYWORDS:
                try:
                    values[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError as exc:
                    raise DeclarationError(f"{path}: STEP's '{keyword.arg}' must be a literal ({exc})") from exc
        if "name" not in values:
            raise DeclarationError(f"{path}: STEP = Step(...) needs name='...' as a keyword")
        for flag, spec in dict(values.get("options", {})).items():
            _check_option(path, flag, spec)
        module = ".".join(("src", *path.relative_to(src).with_suffix("").parts))
        return Declaration(
            name=values["name"],
            module=module,
            path=path,
            reads=tuple(values.get("reads", ())),
            writes=tuple(values.get("writes", ())),
            headline=tuple(values.get("headline", ())),
            resources=dict(values.get("resources", {})),
            fallbacks=dict(values.get("fallbacks", {})),
            snapshot=tuple(values.get("snapshot", ())),
            options=dict(values.get("options", {})),
        )
    return None


OPTION_KEYS = {"key", "help", "type", "multiple", "short", "metavar"}
OPTION_TYPES = {"str", "int", "float", "flag"}


def _check_option(path: Path, flag: str, spec: Any) -> None:
    """A step's command-line option is ``--name: {key: ..., ...}`` with known spec keys and types."""
    where = f"{path}: STEP's option '{flag}'"
    if not (isinstance(flag, str) and flag.startswith("--")):
        raise DeclarationError(f"{where}: an option is named '--like-this'")
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
        raise DeclarationError(f"{where}: give a mapping with the config key it sets, e.g. {{'key': 'seed'}}")
    unknown = sorted(set(spec) - OPTION_KEYS)
    if unknown:
        raise DeclarationError(f"{where}: unknown spec key(s) {unknown}; use {', '.join(sorted(OPTION_KEYS))}")
    if spec.get("type", "str") not in OPTION_TYPES:
        raise DeclarationError(f"{where}: type '{spec['type']}' is not one of {', '.join(sorted(OPTION_TYPES))}")


def _in_order(found: list[Declaration]) -> list[Declaration]:
    """Topological order by datasets (Kahn's algorithm); ties in name order."""
    producer = {dataset: d.name for d in found for dataset in d.writes}
    after = {d.name: {producer[r] for r in d.depends_on if r in producer and producer[r] != d.name} for d in found}
    by_name = {d.name: d for d in found}
    ordered: list[Declaration] = []
    while after:
        ready = sorted(name for name, needs in after.items() if not needs)
        if not ready:
            raise DeclarationError(f"the steps' datasets form a cycle: {sorted(after)} each wait for another")
        # One at a time, so that a step placed after another ties with its peers by name, not by depth.
        name = ready[0]
        ordered.append(by_name[name])
        del after[name]
        for needs in after.values():
            needs.discard(name)
    return ordered


@functools.cache
def load_steps(src: Path = SRC) -> dict[str, Any]:
    """The ``Step`` objects, in pipeline order (imports the step modules, and so their libraries)."""
    steps = {}
    for declaration in declarations(src):
        step = importlib.import_module(declaration.module).STEP
        if step.name != declaration.name:
            raise DeclarationError(f"{declaration.path}: STEP's name must be a literal string")
        steps[step.name] = step
    return steps
