"""Evaluating a logged model on a holdout with ``mlflow.models.evaluate``: metrics and plots on the active run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from src.lib.schema import SchemaConfig


def evaluate(model_uri: str, data: Any, schema: SchemaConfig) -> Any:
    """mlflow.models.evaluate of a model on a dataset (an MLflow dataset with its targets), for the schema's task:
    a classifier (with its labels, and the positive one for a binary target) or a regressor."""
    import mlflow

    # SHAP explanations are slow and need the optional shap package; metrics and plots are enough here.
    config: dict[str, Any] = {"log_model_explainability": False}
    if schema.is_classification:
        config["label_list"] = list(schema.labels or [])
        if schema.task == "binary":
            config["pos_label"] = schema.positive_class
    return mlflow.models.evaluate(
        model=model_uri,
        data=data,
        model_type="classifier" if schema.is_classification else "regressor",
        evaluators=["default"],
        evaluator_config={"default": config},
    )


def evaluation_metrics(evaluation: Any) -> dict[str, float]:
    """The numeric metrics of an mlflow.models.evaluate result."""
    return {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, int | float)}
