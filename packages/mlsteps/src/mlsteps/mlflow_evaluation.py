"""Evaluating a logged model on a holdout with ``mlflow.models.evaluate``: metrics and plots on the active run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsteps.schema import SchemaConfig


def evaluate(model_uri: str, data: Any, schema: SchemaConfig, plots: bool = True) -> Any:
    """mlflow.models.evaluate of a model on a dataset (an MLflow dataset with its targets), for the schema's task:
    a classifier (with its labels, and the positive one for a binary target) or a regressor.

    ``plots=False``: the same metrics, computed by the same MLflow evaluator, without its plots (ROC, precision-
    recall, lift, calibration, confusion matrix: about a second on any data), for a baseline nobody looks at.
    """
    import mlflow

    # SHAP explanations are slow and need the optional shap package; metrics and plots are enough here.
    config: dict[str, Any] = {"log_model_explainability": False}
    if schema.is_classification:
        config["label_list"] = list(schema.labels or [])
        if schema.task == "binary":
            config["pos_label"] = schema.positive_class
    evaluator = "default" if plots else _metrics_only(schema.is_classification)
    return mlflow.models.evaluate(
        model=model_uri,
        data=data,
        model_type="classifier" if schema.is_classification else "regressor",
        evaluators=[evaluator],
        evaluator_config={evaluator: config},
    )


def _metrics_only(classifier: bool) -> str:
    """The name of MLflow's built-in classifier (or regressor) evaluator with its image artifacts left out,
    registered on first use. Everything else (predictions, metrics, how they are logged) is MLflow's own.

    It relies on the evaluators' internals (``_log_image_artifact``, the evaluator registry), pinned with MLflow
    in uv.lock; tests/lib/test_mlflow_evaluation.py compares its metrics with the default evaluator's, so an MLflow
    upgrade that changes them fails there, not silently in the gate.
    """
    from mlflow.models.evaluation.evaluator_registry import _model_evaluation_registry
    from mlflow.models.evaluation.evaluators.classifier import ClassifierEvaluator
    from mlflow.models.evaluation.evaluators.regressor import RegressorEvaluator

    base = ClassifierEvaluator if classifier else RegressorEvaluator
    name = f"{base.name}_metrics_only"
    if not _model_evaluation_registry.is_registered(name):

        class MetricsOnly(base):  # type: ignore[misc, valid-type]
            def _log_image_artifact(self, do_plot: Any, artifact_name: str) -> None:
                """No plot is drawn or logged."""

        MetricsOnly.name = name
        _model_evaluation_registry.register(name, MetricsOnly)
    return name


def evaluation_metrics(evaluation: Any) -> dict[str, float]:
    """The numeric metrics of an mlflow.models.evaluate result."""
    return {k: float(v) for k, v in evaluation.metrics.items() if isinstance(v, int | float)}
