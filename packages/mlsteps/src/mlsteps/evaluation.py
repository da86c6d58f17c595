"""A model's evaluation on a holdout, from what it predicted: the metrics, table and plots MLflow's default
evaluator gives (``mlflow.models.evaluate``: the same names and values), computed with scikit-learn.

It takes the true values, the predictions and, for a classifier, the class probabilities, never a model: they may
come from a model in this process (``score``) or be gathered from a cluster. Nothing here touches MLflow; the
caller logs the result (``mlsteps.evaluation_log``). tests/lib/test_evaluation.py compares every metric with
``mlflow.models.evaluate``'s on the same data, for each task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlsteps.errors import DataValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mlsteps.schema import SchemaConfig

# MLflow draws the one-vs-rest ROC and precision-recall curves of a multiclass model up to this many classes.
MAX_CLASSES_FOR_CURVES = 10


@dataclass(frozen=True)
class Predictions:
    """What a model predicted for each row of a holdout, next to the true values (all in the same row order).

    ``probabilities``: a classifier's probability of each class, one column per label (named as the labels, as
    strings); None for a regressor or a classifier without ``predict_proba``.
    """

    truth: np.ndarray
    predicted: np.ndarray
    probabilities: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "truth", np.asarray(self.truth))
        object.__setattr__(self, "predicted", np.asarray(self.predicted))
        sizes = {"true values": len(self.truth), "predictions": len(self.predicted)}
        if self.probabilities is not None:
            sizes["probability rows"] = len(self.probabilities)
        if len(set(sizes.values())) > 1:
            raise DataValidationError(
                f"the holdout's {', '.join(f'{k} ({v})' for k, v in sizes.items())} differ in length: give one "
                "prediction (and one row of probabilities) per holdout row, in the holdout's order"
            )

    def __len__(self) -> int:
        return len(self.truth)

    def rows(self, keep: Any) -> Predictions:
        """The same predictions for the rows ``keep`` selects (a boolean mask or positions)."""
        probabilities = None if self.probabilities is None else self.probabilities.iloc[keep].reset_index(drop=True)
        return Predictions(self.truth[keep], self.predicted[keep], probabilities)


@dataclass(frozen=True)
class Evaluation:
    """The metrics of a model on a holdout, the tables and plots that go with them (each plot drawn when asked:
    ``figures[name]()``), and the predictions they were computed from."""

    metrics: dict[str, float]
    predictions: Predictions
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Callable[[], Figure]] = field(default_factory=dict)


def score(model: Any, features: pd.DataFrame, truth: Any) -> Predictions:
    """A fitted scikit-learn model's predictions on ``features`` (and its class probabilities, when it has
    ``predict_proba``), next to ``truth``."""
    probabilities = None
    if hasattr(model, "predict_proba"):
        values = np.asarray(model.predict_proba(features), dtype="float64")
        classes = [str(c) for c in getattr(model, "classes_", range(values.shape[1]))]
        probabilities = pd.DataFrame(values, columns=classes)
    return Predictions(np.asarray(truth), np.asarray(model.predict(features)), probabilities)


def evaluate(schema: SchemaConfig, predictions: Predictions, plots: bool = True) -> Evaluation:
    """The holdout metrics of the schema's task, with ``mlflow.models.evaluate``'s names; with ``plots``, the
    plots it draws (a classifier's ROC, precision-recall, lift (binary), calibration and confusion matrix; none
    for a regressor). A multiclass evaluation also has the table ``per_class_metrics`` (with or without plots)."""
    if not len(predictions):
        raise DataValidationError("the holdout has no rows to evaluate the model on: check feat_data's test split")
    if not schema.is_classification:
        truth = predictions.truth.astype("float64")
        return Evaluation(regression_metrics(truth, predictions.predicted.astype("float64")), predictions)
    labels = sorted(str(label) for label in schema.labels or [])
    probabilities = _class_probabilities(predictions, labels)
    truth, predicted = predictions.truth.astype(str), predictions.predicted.astype(str)
    if schema.task == "binary":
        positive = str(schema.positive_class)
        metrics = binary_metrics(truth, predicted, probabilities, labels, positive)
        tables: dict[str, pd.DataFrame] = {}
    else:
        metrics = multiclass_metrics(truth, predicted, probabilities, labels)
        tables = {"per_class_metrics": per_class_metrics(truth, predicted, probabilities, labels)}
    figures = {}
    if plots:
        from mlsteps.evaluation_plots import classifier_figures

        positive_class = str(schema.positive_class) if schema.task == "binary" else None
        figures = classifier_figures(truth, predicted, probabilities, labels, positive_class)
    return Evaluation(metrics, predictions, tables, figures)


def _class_probabilities(predictions: Predictions, labels: list[str]) -> np.ndarray | None:
    """The probabilities as a matrix with one column per label, in sorted label order (scikit-learn's)."""
    if predictions.probabilities is None:
        return None
    given = predictions.probabilities.rename(columns=str)
    missing = [label for label in labels if label not in given.columns]
    if missing:
        raise DataValidationError(
            f"the model gives no probability for the label(s) {missing} (it has {list(given.columns)}): every "
            "label of the schema must be in the training data; check schema.labels and the training split"
        )
    return given[labels].to_numpy(dtype="float64")


def binary_metrics(
    truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray | None, labels: list[str], positive: str
) -> dict[str, float]:
    """A binary classifier's metrics, the positive class's precision, recall and F1."""
    from sklearn import metrics as m

    negative = next(label for label in labels if label != positive)
    tn, fp, fn, tp = m.confusion_matrix(truth, predicted, labels=[negative, positive]).ravel()
    result = {"true_negatives": tn, "false_positives": fp, "false_negatives": fn, "true_positives": tp}
    result |= _common_metrics(truth, predicted, probabilities, labels, "binary", positive)
    if probabilities is not None:
        positive_scores = probabilities[:, labels.index(positive)]
        result["roc_auc"] = m.roc_auc_score(truth == positive, positive_scores)
        result["precision_recall_auc"] = m.average_precision_score(truth, positive_scores, pos_label=positive)
    return {k: float(v) for k, v in result.items()}


def multiclass_metrics(
    truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray | None, labels: list[str]
) -> dict[str, float]:
    """A multiclass classifier's metrics, averaged over the classes weighted by their support."""
    from sklearn import metrics as m

    result = _common_metrics(truth, predicted, probabilities, labels, "weighted", None)
    if probabilities is not None:
        result["roc_auc"] = m.roc_auc_score(truth, probabilities, average="weighted", multi_class="ovr")
    return {k: float(v) for k, v in result.items()}


def _common_metrics(
    truth: np.ndarray,
    predicted: np.ndarray,
    probabilities: np.ndarray | None,
    labels: list[str],
    average: str,
    positive: str | None,
) -> dict[str, Any]:
    from sklearn import metrics as m

    accuracy = m.accuracy_score(truth, predicted)
    result: dict[str, Any] = {
        "example_count": len(truth),
        "accuracy_score": accuracy,
        # What scikit-learn's ``score`` gives a classifier (MLflow logs it under this name too).
        "score": accuracy,
        "recall_score": m.recall_score(truth, predicted, average=average, pos_label=positive),
        "precision_score": m.precision_score(truth, predicted, average=average, pos_label=positive),
        "f1_score": m.f1_score(truth, predicted, average=average, pos_label=positive),
    }
    if probabilities is not None:
        result["log_loss"] = m.log_loss(truth, probabilities, labels=labels)
    return result


def per_class_metrics(
    truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray | None, labels: list[str]
) -> pd.DataFrame:
    """One row per class (in sorted label order): that class against the rest, as a binary classifier's counts
    and scores; with probabilities (and at most ``MAX_CLASSES_FOR_CURVES`` classes), its ROC AUC and average
    precision. MLflow's ``per_class_metrics.csv``."""
    from sklearn import metrics as m

    rows = []
    for i, label in enumerate(labels):
        is_true, is_predicted = (truth == label).astype(int), (predicted == label).astype(int)
        tn, fp, fn, tp = m.confusion_matrix(is_true, is_predicted, labels=[0, 1]).ravel()
        row: dict[str, Any] = {"positive_class": label}
        row |= {"true_negatives": tn, "false_positives": fp, "false_negatives": fn, "true_positives": tp}
        row |= {
            "example_count": len(truth),
            "accuracy_score": m.accuracy_score(is_true, is_predicted),
            "recall_score": m.recall_score(is_true, is_predicted),
            "precision_score": m.precision_score(is_true, is_predicted),
            "f1_score": m.f1_score(is_true, is_predicted),
        }
        if probabilities is not None and len(labels) <= MAX_CLASSES_FOR_CURVES:
            row["roc_auc"] = m.roc_auc_score(is_true, probabilities[:, i])
            row["precision_recall_auc"] = m.average_precision_score(is_true, probabilities[:, i])
        rows.append(row)
    return pd.DataFrame(rows)


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """A regressor's error metrics, R² (also as ``score``, what scikit-learn's ``score`` gives a regressor),
    and the sum and mean of the target."""
    from sklearn import metrics as m

    r2 = m.r2_score(truth, predicted)
    total = float(np.sum(truth))
    result = {
        "example_count": len(truth),
        "mean_absolute_error": m.mean_absolute_error(truth, predicted),
        "mean_squared_error": m.mean_squared_error(truth, predicted),
        "root_mean_squared_error": m.root_mean_squared_error(truth, predicted),
        "sum_on_target": total,
        "mean_on_target": total / len(truth),
        "r2_score": r2,
        "score": r2,
        "max_error": m.max_error(truth, predicted),
        "mean_absolute_percentage_error": m.mean_absolute_percentage_error(truth, predicted),
    }
    return {k: float(v) for k, v in result.items()}
