"""Evaluating a logged model on a holdout with ``mlflow.models.evaluate``: metrics and plots on the active run."""

from __future__ import annotations

from typing import Any


def evaluate(model_uri: str, data: Any) -> Any:
    """mlflow.models.evaluate of a classifier on a dataset (an MLflow dataset with its targets)."""
    import mlflow

    return mlflow.models.evaluate(
        model=model_uri,
        data=data,
        model_type="classifier",
        evaluators=["default"],
        # SHAP explanations are slow and need the optional shap package; metrics and plots are enough here.
        evaluator_config={"default": {"log_model_explainability": False}},
    )


def evaluation_metrics(evaluation: Any) -> dict[str, float]:
    """The numeric metrics of an mlflow.models.evaluate result."""
    return {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, int | float)}
