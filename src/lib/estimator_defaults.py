"""The estimators a project starts with, per kind of task: what `init` writes into ``train_model`` when the
configured estimator does not fit the task it inferred (a classifier for a regression, or the other way round)."""

from __future__ import annotations

import importlib
from typing import Any

# Section text as it stands in config/base.yaml: the chosen estimator, and the estimators to choose from.
DEFAULTS = {
    "classification": ("logistic_regression", """  estimators:
    logistic_regression: {class: sklearn.linear_model.LogisticRegression, params: {C: 1.0, max_iter: 2000}}
    random_forest:
      class: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 200, min_samples_leaf: 2, n_jobs: -1}
    gradient_boosting:
      class: sklearn.ensemble.HistGradientBoostingClassifier
      params: {max_iter: 200, learning_rate: 0.1}
"""),
    "regression": ("ridge", """  estimators:
    ridge: {class: sklearn.linear_model.Ridge, params: {alpha: 1.0}}
    random_forest:
      class: sklearn.ensemble.RandomForestRegressor
      params: {n_estimators: 200, min_samples_leaf: 2, n_jobs: -1}
    gradient_boosting:
      class: sklearn.ensemble.HistGradientBoostingRegressor
      params: {max_iter: 200, learning_rate: 0.1}
"""),
}


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
    return DEFAULTS[wanted] if kind is not None and kind != wanted else None
