"""Live performance: ground truth that arrived after the fact, joined to the logged predictions, and the task's
metrics on them (named as the train_model run names its holdout metrics, so the two sit side by side)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlsteps.errors import DataValidationError, UsageError

if TYPE_CHECKING:
    from mlsteps.schema import SchemaConfig


def join_labels(logged: pd.DataFrame, labels: pd.DataFrame, schema: SchemaConfig, source: str) -> pd.DataFrame:
    """The logged rows that have a label: ``prediction`` and ``actual`` columns.

    ``logged`` holds ``request_id``, ``row``, ``prediction`` and, when requests carried it, ``id`` (the contract's
    id column). ``labels`` holds the target column and a key: ``request_id`` (with ``row`` when a request held
    several rows; the response's X-Request-Id header) or the contract's id column.
    """
    target = schema.target
    if target not in labels.columns:
        raise UsageError(f"the labels in {source} have no column '{target}' (schema.target): add it")
    if "request_id" in labels.columns:
        keys = ["request_id", "row"] if "row" in labels.columns else ["request_id"]
        if keys == ["request_id"] and logged.duplicated("request_id").any():
            raise UsageError(
                f"the labels in {source} are keyed by request_id alone, but some requests held several rows: add a "
                "'row' column (1 for a request's first row, as the log numbers them)"
            )
        left = logged.assign(request_id=logged["request_id"].astype(str))
        right = labels.assign(request_id=labels["request_id"].astype(str))
        if "row" in keys:
            left, right = left.assign(row=left["row"].astype("Int64")), right.assign(row=right["row"].astype("Int64"))
    elif schema.id_column and schema.id_column in labels.columns:
        if "id" not in logged.columns:
            raise UsageError(
                f"the labels in {source} are keyed by '{schema.id_column}', but the log's requests did not carry it: "
                f"send '{schema.id_column}' with each row to /invocations, or key the labels by request_id"
            )
        keys = ["id"]
        left = logged.assign(id=logged["id"].astype(str))
        right = labels.rename(columns={schema.id_column: "id"})
        right = right.assign(id=right["id"].astype(str))
    else:
        wanted = "request_id (and row)" + (f" or '{schema.id_column}'" if schema.id_column else "")
        raise UsageError(f"the labels in {source} have no key column: add {wanted}")
    if right.duplicated(keys).any():
        raise DataValidationError(f"the labels in {source} give some {' + '.join(keys)} more than once: keep one each")
    joined = left.merge(right[[*keys, target]], on=keys, how="inner")
    if schema.is_classification:
        unknown = sorted(set(joined[target].dropna().astype(str)) - set(schema.labels or []))
        if unknown:
            raise DataValidationError(
                f"the labels in {source} hold value(s) {', '.join(map(repr, unknown))} in '{target}', which is not "
                f"one of the contract's labels {schema.labels}: fix the labels file (or schema.labels and retrain)"
            )
    return joined.rename(columns={target: "actual"})[["prediction", "actual"]]


def live_metrics(actual: pd.Series, predicted: pd.Series, schema: SchemaConfig) -> dict[str, float]:
    """The task's metrics on labelled rows (a classifier's from its labels: the log holds no probabilities)."""
    from sklearn import metrics

    if schema.is_classification:
        y_true, y_pred = actual.astype(str).to_numpy(), predicted.astype(str).to_numpy()
        binary = schema.task == "binary"
        average = {"average": "binary", "pos_label": schema.positive_class} if binary else {"average": "weighted"}
        return {
            "accuracy_score": float(metrics.accuracy_score(y_true, y_pred)),
            "precision_score": float(metrics.precision_score(y_true, y_pred, zero_division=0, **average)),
            "recall_score": float(metrics.recall_score(y_true, y_pred, zero_division=0, **average)),
            "f1_score": float(metrics.f1_score(y_true, y_pred, zero_division=0, **average)),
        }
    y_true, y_pred = actual.astype(float).to_numpy(), predicted.astype(float).to_numpy()
    mse = float(metrics.mean_squared_error(y_true, y_pred))
    return {
        "mean_absolute_error": float(metrics.mean_absolute_error(y_true, y_pred)),
        "mean_squared_error": mse,
        "root_mean_squared_error": float(np.sqrt(mse)),
        "r2_score": float(metrics.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def worse_by(live: float, holdout: float, more_is_better: bool) -> float:
    """How much worse ``live`` is than ``holdout``, as a share of the holdout's value (negative: better)."""
    scale = abs(holdout) or 1.0
    return (holdout - live) / scale if more_is_better else (live - holdout) / scale
