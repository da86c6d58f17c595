"""The plots of a classifier's evaluation, as matplotlib figures: the ones MLflow's default evaluator logs, under
its artifact names (ROC and precision-recall curves, lift curve, calibration curve, normalized confusion matrix).

Figures are made with matplotlib's object API (no pyplot, no global state): each is drawn when its function is
called (``write_png``), so a run that logs no plots never imports matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# MLflow's evaluation figures: 6 x 4 inches at 175 dpi, 8-point text.
FIGURE_SIZE = (6.0, 4.0)
DPI = 175
FONT_SIZE = 8
# The artifact name of each plot, as MLflow logs it.
ROC, PRECISION_RECALL, LIFT = "roc_curve_plot", "precision_recall_curve_plot", "lift_curve_plot"
CALIBRATION, CONFUSION = "calibration_curve_plot", "confusion_matrix"
CALIBRATION_BINS = 10


def classifier_figures(
    truth: np.ndarray,
    predicted: np.ndarray,
    probabilities: np.ndarray | None,
    labels: list[str],
    positive: str | None,
) -> dict[str, Callable[[], Figure]]:
    """A classifier's plots, by artifact name, each drawn when called. ``labels`` sorted (the columns of
    ``probabilities``); ``positive``: the positive class of a binary classifier, None for a multiclass one.

    Without probabilities there is only the confusion matrix; a multiclass classifier of more than
    ``evaluation.MAX_CLASSES_FOR_CURVES`` classes has no ROC or precision-recall curves (as in MLflow)."""
    from mlsteps.evaluation import MAX_CLASSES_FOR_CURVES

    figures: dict[str, Callable[[], Figure]] = {}
    if probabilities is not None:
        if positive is not None:
            scores = probabilities[:, labels.index(positive)]
            figures[ROC] = partial(_curves, "roc", [(truth == positive, scores, "")], positive)
            figures[PRECISION_RECALL] = partial(_curves, "pr", [(truth == positive, scores, "")], positive)
            figures[LIFT] = partial(_lift, truth, probabilities, labels, positive)
        elif len(labels) <= MAX_CLASSES_FOR_CURVES:
            per_class = [(truth == label, probabilities[:, i], f"label={label},") for i, label in enumerate(labels)]
            figures[ROC] = partial(_curves, "roc", per_class, None)
            figures[PRECISION_RECALL] = partial(_curves, "pr", per_class, None)
        figures[CALIBRATION] = partial(_calibration, truth, probabilities, labels, positive)
    # A binary matrix lists the positive class last, as MLflow's does.
    order = [label for label in labels if label != positive] + ([positive] if positive is not None else [])
    figures[CONFUSION] = partial(_confusion, truth, predicted, order)
    return figures


def write_png(draw: Callable[[], Figure], path: str | Path) -> None:
    """Draw a figure and write it as a PNG (in MLflow's text size, trimmed to what is drawn, as MLflow does)."""
    import matplotlib

    with matplotlib.rc_context({"font.size": FONT_SIZE}):
        figure = draw()
        figure.savefig(path, bbox_inches="tight")


@contextmanager
def _figure() -> Iterator[tuple[Figure, Axes]]:
    """A new figure of MLflow's size, laid out tightly once drawn."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="tight")
    yield figure, figure.subplots()


def _curves(kind: str, series: list[tuple[np.ndarray, np.ndarray, str]], positive: str | None) -> Figure:
    """ROC (``roc``) or precision-recall (``pr``) curves, one per (is-positive, score, name) series, each with its
    area (ROC AUC, or average precision) in the legend."""
    from sklearn import metrics as m

    suffix = f" (Positive label: {positive})" if positive is not None else ""
    with _figure() as (figure, ax):
        for is_positive, scores, name in series:
            if kind == "roc":
                x, y, _ = m.roc_curve(is_positive, scores)
                label = f"{name}AUC={m.roc_auc_score(is_positive, scores):.3f}"
            else:
                y, x, _ = m.precision_recall_curve(is_positive, scores)
                label = f"{name}AP={m.average_precision_score(is_positive, scores):.3f}"
            ax.plot(x, y, label=label, drawstyle="steps-post", linewidth=1)
        diagonal = ([0, 1], [0, 1]) if kind == "roc" else ([0, 1], [1, 0])
        ax.plot(*diagonal, color="gray", alpha=0.3, linestyle="dashed")
        if kind == "roc":
            ax.set(xlabel=f"False Positive Rate{suffix}", ylabel=f"True Positive Rate{suffix}", title="ROC curve")
        else:
            ax.set(xlabel=f"Recall{suffix}", ylabel=f"Precision{suffix}", title="Precision recall curve")
        if positive is not None:
            ax.legend(loc="best")
        else:
            ax.legend(loc="center left", bbox_to_anchor=(1, 0.5))
    return figure


def _lift(truth: np.ndarray, probabilities: np.ndarray, labels: list[str], positive: str) -> Figure:
    """The lift of each class: the share of that class among the top x% of rows by its probability, over its
    share overall."""
    with _figure() as (figure, ax):
        for i, label in enumerate(labels):
            order = np.argsort(probabilities[:, i], kind="stable")[::-1]
            hits = np.cumsum(truth[order] == label)
            share = np.arange(1, len(truth) + 1) / len(truth)
            lift = hits / max(hits[-1], 1) / share
            ax.plot(share, lift, linewidth=3, label=f"Class {label}" + (" (positive)" if label == positive else ""))
        ax.plot([0, 1], [1, 1], "k--", linewidth=2, label="Baseline")
        ax.set(xlabel="Percentage of sample", ylabel="Lift", title="Lift Curve")
        ax.grid(True)
        ax.legend(loc="best")
    return figure


def _calibration(truth: np.ndarray, probabilities: np.ndarray, labels: list[str], positive: str | None) -> Figure:
    """The fraction of rows of a class against the mean probability the model gave it, in 10 bins: for the
    positive class of a binary classifier, or for each class of a multiclass one."""
    from sklearn.calibration import calibration_curve

    classes = [positive] if positive is not None else labels
    with _figure() as (figure, ax):
        ax.plot([0, 1], [0, 1], linestyle="dotted", color="black", label="Perfectly calibrated")
        for label in classes:
            fraction, mean = calibration_curve(
                truth == label, probabilities[:, labels.index(label)], n_bins=CALIBRATION_BINS
            )
            ax.plot(mean, fraction, marker="s" if positive else "o", markersize=3, label=f"Class {label}")
        who = f" (Positive class: {positive})" if positive is not None else ""
        ax.set(
            xlabel=f"Mean predicted probability{who}",
            ylabel=f"Fraction of positives{who}",
            title="Calibration curve",
            xlim=(-0.05, 1.05),
            ylim=(-0.05, 1.05),
        )
        ax.legend(loc="upper left")
    return figure


def _confusion(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> Figure:
    """The confusion matrix normalized over the true classes (each row sums to 1), as MLflow logs it."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(truth, predicted, labels=labels, normalize="true")
    with _figure() as (figure, ax):
        image = ax.imshow(matrix, interpolation="nearest", cmap="Blues", vmin=0.0)
        figure.colorbar(image, ax=ax)
        size = min(8, math.ceil(50.0 / len(labels)))
        threshold = (matrix.max() + matrix.min()) / 2.0
        for (row, column), value in np.ndenumerate(matrix):
            color = "white" if value > threshold else "black"
            ax.text(column, row, f"{value:.2g}", ha="center", va="center", color=color, fontsize=size)
        ticks = np.arange(len(labels))
        ax.set(xticks=ticks, yticks=ticks, xticklabels=labels, yticklabels=labels)
        ax.set(xlabel="Predicted label", ylabel="True label", title="Normalized confusion matrix")
        ax.set_ylim(len(labels) - 0.5, -0.5)
    return figure
