"""Where config values come from: YAML files, environment variables and command-line overrides.

``load_config`` (``mlsteps.config``) merges them in this order, lowest first, and remembers which source set
each key so that a validation error can name it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlsteps.errors import ConfigError

# Environment variables that override a single key (checked in this order; the first set one wins).
ENV_SHORTCUTS: dict[str, tuple[str, ...]] = {
    "PIPELINE_TRACKING_URI": ("tracking", "uri"),
    "MLFLOW_TRACKING_URI": ("tracking", "uri"),
    "PIPELINE_EXPERIMENT": ("tracking", "experiment"),
    "PIPELINE_DATA_ROOT": ("data", "root"),
    "PIPELINE_AWS_PROFILE": ("aws", "profile"),
    "PIPELINE_AWS_REGION": ("aws", "region"),
}
# Generic override of any key: PIPELINE__TRAIN_MODEL__SEED=7 sets train_model.seed (value parsed as YAML).
ENV_GENERIC_PREFIX = "PIPELINE__"
COMMAND_LINE = "command-line option"

Sources = dict[tuple[str, ...], str]


# Sections an environment's file replaces whole instead of merging into: a dataset's contract and the gate's
# minimums are meant as a set (an overlay describing other data must not inherit the example's columns).
REPLACED_SECTIONS = {("schema",), ("gate", "thresholds")}


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Recursively merge ``overlay`` into a copy of ``base``: mappings merge (but REPLACED_SECTIONS), anything
    else replaces."""
    result = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        here = (*path, key)
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping) and here not in REPLACED_SECTIONS:
            result[key] = deep_merge(result[key], value, here)
        else:
            result[key] = copy.deepcopy(value)
    return result


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' is missing; create it (it may be empty)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file '{path}' must hold a mapping of keys at the top level, not {type(data).__name__}"
        )
    return data


def apply_env_overrides(config: dict[str, Any], env: Mapping[str, str]) -> Sources:
    """Apply overrides in place; return which variable set which key (for error messages)."""
    sources: Sources = {}
    for name, key in ENV_SHORTCUTS.items():
        if env.get(name) and key not in sources:
            set_key(config, key, env[name])
            sources[key] = name
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_GENERIC_PREFIX):
            continue
        key = tuple(part.lower() for part in name[len(ENV_GENERIC_PREFIX) :].split("__") if part)
        if not key:
            raise ConfigError(f"environment variable {name} names no config key; use e.g. PIPELINE__TRAIN_MODEL__SEED")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {name} is not a valid YAML value: {exc}") from exc
        set_key(config, key, value)
        sources[key] = name
    if env.get("PIPELINE_BUCKET"):
        _replace_bucket(config, env["PIPELINE_BUCKET"])
        sources[("data", "root")] = "PIPELINE_BUCKET"
    return sources


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any], sources: Sources) -> None:
    """Command-line overrides (nested keys) win over everything else."""
    for key, value in _flatten(overrides):
        set_key(config, key, value)
        sources[key] = COMMAND_LINE


def describe_source(sources: Sources, loc: tuple[str, ...]) -> str | None:
    """Which variable or option set the key at ``loc`` (or a key above it), in words."""
    for key, source in sources.items():
        if loc[: len(key)] == key:
            return source if source == COMMAND_LINE else f"environment variable {source}"
    return None


def set_key(config: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    node = config
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[key[-1]] = value


def _replace_bucket(config: dict[str, Any], bucket: str) -> None:
    """PIPELINE_BUCKET: keep the data root's prefix, swap its bucket (one image, any account)."""
    root = str(config.get("data", {}).get("root", ""))
    if not root.startswith("s3://"):
        raise ConfigError(
            f"PIPELINE_BUCKET is set but data.root '{root}' is not an s3:// URI; unset it or use PIPELINE_DATA_ROOT"
        )
    prefix = root[len("s3://") :].partition("/")[2]
    config["data"]["root"] = f"s3://{bucket}/{prefix}".rstrip("/")


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    items: list[tuple[tuple[str, ...], Any]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, (*prefix, key)))
        else:
            items.append(((*prefix, key), value))
    return items
