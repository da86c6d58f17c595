"""Estimators named by import path in the config, built and validated before any run starts.

    train_model:
      estimator: random_forest                      # a name under `estimators`, or an import path
      estimators:
        random_forest: {class: sklearn.ensemble.RandomForestClassifier, params: {n_estimators: 200}}

Any scikit-learn-compatible class works once its package is installed; its names and values are checked with
scikit-learn's own parameter validation when the config is loaded.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from mlsteps.errors import ConfigError


def import_class(path: str, where: str) -> type:
    """The class at ``package.module.Class``, or a ConfigError saying what is missing."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{where}: '{path}' is not an import path like sklearn.ensemble.RandomForestClassifier")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: cannot import '{module_name}' ({exc}): install its package "
            "(add it to pyproject.toml's dependencies, then make lock) or fix the path"
        ) from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{where}: module '{module_name}' has no class '{class_name}'")
    if not (hasattr(cls, "fit") and hasattr(cls, "get_params")):
        raise ConfigError(f"{where}: {path} is not a scikit-learn-compatible estimator (it needs fit and get_params)")
    return cls


def build_estimator(path: str, params: dict[str, Any], seed: int, where: str) -> Any:
    """An unfitted estimator with ``params`` (and ``random_state=seed`` where it takes one), validated."""
    cls = import_class(path, where)
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"{where}: {unknown} not accepted by {cls.__name__}; valid names: {', '.join(sorted(accepted))}"
        )
    kwargs = dict(params)
    if "random_state" in accepted:
        kwargs.setdefault("random_state", seed)
    try:
        estimator = cls(**kwargs)
        validate = getattr(estimator, "_validate_params", None)  # scikit-learn's own names-and-values check
        if callable(validate):
            validate()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid for {cls.__name__}: {exc}") from exc
    return estimator


def distribution_of(path: str) -> str:
    """``name==version`` of the installed distribution that provides the class at ``path``."""
    from importlib.metadata import version

    from mlsteps.packages import providers

    top = path.split(".")[0]
    names = providers(top) or [top]
    try:
        return f"{names[0]}=={version(names[0])}"
    except Exception:  # noqa: BLE001 - a module outside any distribution (the project's own code)
        return f"{top}==local"
