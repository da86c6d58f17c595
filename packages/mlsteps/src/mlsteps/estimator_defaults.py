"""The estimators a project starts with, per kind of task: what `init` writes into ``train_model`` when the
configured estimator does not fit the task it inferred (a classifier for a regression, or the other way round)."""

from __future__ import annotations

import importlib
from typing import Any

# The chosen estimator, and the estimators to choose from: name -> (import path, constructor arguments).
DEFAULTS: dict[str, tuple[str, dict[str, tuple[str, dict[str, Any]]]]] = {
    "classification": (
        "logistic_regression",
        {
            "logistic_regression": ("sklearn.linear_model.LogisticRegression", {"C": 1.0, "max_iter": 2000}),
            "random_forest": (
                "sklearn.ensemble.RandomForestClassifier",
                {"n_estimators": 200, "min_samples_leaf": 2, "n_jobs": -1},
            ),
            "gradient_boosting": (
                "sklearn.ensemble.HistGradientBoostingClassifier",
                {"max_iter": 200, "learning_rate": 0.1},
            ),
        },
    ),
    "regression": (
        "ridge",
        {
            "ridge": ("sklearn.linear_model.Ridge", {"alpha": 1.0}),
            "random_forest": (
                "sklearn.ensemble.RandomForestRegressor",
                {"n_estimators": 200, "min_samples_leaf": 2, "n_jobs": -1},
            ),
            "gradient_boosting": (
                "sklearn.ensemble.HistGradientBoostingRegressor",
                {"max_iter": 200, "learning_rate": 0.1},
            ),
        },
    ),
}


def estimators_section(kind: str) -> str:
    """The ``train_model.estimators`` section of ``kind``'s defaults, as config text."""
    from mlsteps.config_text import flow_mapping

    lines = ["  estimators:"]
    for name, (path, params) in DEFAULTS[kind][1].items():
        lines.append(f"    {name}: {flow_mapping({'class': path, 'params': params})}")
    return "\n".join(lines) + "\n"


def task_kind(task: str) -> str:
    return "regression" if task == "regression" else "classification"


def estimator_kind(train_model: dict[str, Any]) -> str | None:
    """'classification' or 'regression' for the configured estimator; None when it cannot be told (a class that
    cannot be imported or built with its defaults, or one that is neither)."""
    from sklearn.base import is_classifier, is_regressor

    name = str(train_model.get("estimator") or "")
    spec = (train_model.get("estimators") or {}).get(name)
    path = spec.get("class") if isinstance(spec, dict) else name
    module_name, _, class_name = str(path or "").rpartition(".")
    try:
        estimator = getattr(importlib.import_module(module_name), class_name)()
    except Exception:  # noqa: BLE001 - not importable or not buildable here: leave the config as it is
        return None
    if is_regressor(estimator):
        return "regression"
    return "classification" if is_classifier(estimator) else None


def defaults_if_mismatched(train_model: dict[str, Any], task: str) -> tuple[str, str] | None:
    """(estimator, estimators section) to write when the configured estimator does not fit ``task``; else None."""
    kind = estimator_kind(train_model)
    wanted = task_kind(task)
    return (DEFAULTS[wanted][0], estimators_section(wanted)) if kind is not None and kind != wanted else None
