"""The evaluation computed from predictions gives mlflow.models.evaluate's metrics (names and values), table and
plot names, for each task; and refuses predictions it cannot evaluate, saying why."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlsteps.errors import DataValidationError
from mlsteps.evaluation import Predictions, evaluate, score
from mlsteps.evaluation_log import log_evaluation
from mlsteps.evaluation_plots import write_png
from mlsteps.schema import SchemaConfig
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier

LABELS = {"binary": ["yes", "no"], "multiclass": ["b", "a", "c"], "no_proba": ["yes", "no"]}


def _schema(case: str) -> SchemaConfig:
    task = "binary" if case == "no_proba" else case
    extra: dict = {}
    if task == "binary":
        extra = {"labels": LABELS[case], "positive_class": "yes"}
    elif task == "multiclass":
        extra = {"labels": LABELS[case]}
    return SchemaConfig.model_validate({"target": "y", "task": task, "columns": {"x": {"type": "float"}}, **extra})


def _data(case: str, rows: int = 300) -> tuple[pd.DataFrame, object]:
    """A holdout with a learnable, noisy target, and an estimator fitted on it. The positive class "yes" sorts
    last and the labels are given unsorted, so that an order mix-up changes the metrics."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    if case == "regression":
        return pd.DataFrame({"x": x, "y": 3 * x + 10 + rng.normal(size=rows)}), LinearRegression()
    cut = np.digitize(x + rng.normal(scale=0.7, size=rows), [0.0] if case != "multiclass" else [-0.5, 0.5])
    labels = np.array(["no", "yes"] if case != "multiclass" else ["a", "b", "c"])
    estimator = RidgeClassifier() if case == "no_proba" else LogisticRegression()
    return pd.DataFrame({"x": x, "y": labels[cut].astype(object)}), estimator


def _mlflow_evaluation(case: str, tmp_path, df: pd.DataFrame, estimator) -> tuple[dict, set[str], list[str]]:
    """mlflow.models.evaluate's metrics, its per-class table (multiclass) and the names of its plots."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("evaluation", str(tmp_path / "artifacts")))
    mlflow.sklearn.save_model(
        estimator, str(tmp_path / "model"), serialization_format="cloudpickle", pip_requirements=[]
    )
    schema = _schema(case)
    config: dict = {"log_model_explainability": False}
    if schema.is_classification:
        config |= {"label_list": list(schema.labels or [])}
        if schema.task == "binary":
            config["pos_label"] = schema.positive_class
    with mlflow.start_run() as run:
        result = mlflow.models.evaluate(
            model=str(tmp_path / "model"),
            data=mlflow.data.from_pandas(df, targets="y", name="holdout"),
            model_type="classifier" if schema.is_classification else "regressor",
            evaluators=["default"],
            evaluator_config={"default": config},
        )
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    plots = {a.removesuffix(".png") for a in artifacts if a.endswith(".png")}
    return result.metrics, plots, artifacts


@pytest.mark.slow
@pytest.mark.parametrize("case", ["binary", "multiclass", "regression", "no_proba"])
def test_the_metrics_tables_and_plots_are_mlflow_evaluates(case, tmp_path) -> None:
    df, estimator = _data(case)
    estimator.fit(df[["x"]], df["y"])
    theirs, their_plots, their_artifacts = _mlflow_evaluation(case, tmp_path, df, estimator)

    ours = evaluate(_schema(case), score(estimator, df[["x"]], df["y"]))

    assert sorted(ours.metrics) == sorted(theirs)
    different = {k: (v, theirs[k]) for k, v in ours.metrics.items() if not math.isclose(v, theirs[k], rel_tol=1e-9)}
    assert different == {}
    assert set(ours.figures) == their_plots
    their_tables = {a.removesuffix(".csv") for a in their_artifacts if a.endswith(".csv")}
    assert set(ours.tables) == their_tables
    if case == "multiclass":
        path = mlflow.artifacts.download_artifacts(run_id=mlflow.last_active_run().info.run_id)
        expected = pd.read_csv(f"{path}/per_class_metrics.csv")
        written = tmp_path / "ours.csv"
        ours.tables["per_class_metrics"].to_csv(written, index=False)
        pd.testing.assert_frame_equal(pd.read_csv(written), expected, check_exact=False, rtol=1e-9)
    expected_plots = {
        "binary": {"roc_curve_plot", "precision_recall_curve_plot", "lift_curve_plot", "calibration_curve_plot"},
        "multiclass": {"roc_curve_plot", "precision_recall_curve_plot", "calibration_curve_plot"},
        "regression": set(),
        "no_proba": set(),
    }[case] | ({"confusion_matrix"} if case != "regression" else set())
    assert their_plots == expected_plots  # what MLflow draws for this task: a change in MLflow shows here


@pytest.mark.parametrize("case", ["binary", "multiclass"])
def test_each_plot_is_drawn_and_the_curves_name_their_areas(case, tmp_path) -> None:
    df, estimator = _data(case)
    estimator.fit(df[["x"]], df["y"])

    ours = evaluate(_schema(case), score(estimator, df[["x"]], df["y"]))

    for name, draw in ours.figures.items():
        write_png(draw, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    legend = [t.get_text() for t in ours.figures["roc_curve_plot"]().axes[0].get_legend().get_texts()]
    if case == "binary":
        assert legend == [f"AUC={ours.metrics['roc_auc']:.3f}"]
        roc = ours.figures["roc_curve_plot"]().axes[0]
        assert roc.get_xlabel() == "False Positive Rate (Positive label: yes)"
    else:
        assert legend == [f"label={label},AUC={auc:.3f}" for label, auc in zip("abc", _per_class(ours, "roc_auc"))]


def _per_class(evaluation, column: str) -> list[float]:
    return evaluation.tables["per_class_metrics"][column].tolist()


def test_without_plots_there_are_the_same_metrics_and_no_figures() -> None:
    df, estimator = _data("multiclass")
    estimator.fit(df[["x"]], df["y"])
    predictions = score(estimator, df[["x"]], df["y"])

    with_plots, without = (
        evaluate(_schema("multiclass"), predictions),
        evaluate(_schema("multiclass"), predictions, False),
    )

    assert without.metrics == with_plots.metrics
    assert without.figures == {}
    pd.testing.assert_frame_equal(without.tables["per_class_metrics"], with_plots.tables["per_class_metrics"])


def test_probability_columns_are_matched_by_label_not_by_position() -> None:
    df, estimator = _data("binary")
    estimator.fit(df[["x"]], df["y"])
    predictions = score(estimator, df[["x"]], df["y"])
    shuffled = Predictions(predictions.truth, predictions.predicted, predictions.probabilities[["yes", "no"]])

    assert evaluate(_schema("binary"), shuffled, False).metrics == evaluate(_schema("binary"), predictions).metrics


def test_a_subset_of_rows_is_evaluated_as_those_rows_alone() -> None:
    df, estimator = _data("binary")
    estimator.fit(df[["x"]], df["y"])
    keep = np.arange(len(df)) % 3 == 0

    subset = evaluate(_schema("binary"), score(estimator, df[["x"]], df["y"]).rows(keep), False)

    alone = evaluate(_schema("binary"), score(estimator, df.loc[keep, ["x"]], df.loc[keep, "y"]), False)
    assert subset.metrics == alone.metrics
    assert subset.metrics["example_count"] == keep.sum()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Predictions(np.array(["yes", "no"]), np.array(["yes"])), "true values (2), predictions (1) differ"),
        (
            lambda: Predictions(np.array(["yes"]), np.array(["yes"]), pd.DataFrame({"yes": [0.5, 0.5]})),
            "probability rows (2) differ in length",
        ),
    ],
)
def test_predictions_of_another_length_than_the_holdout_are_refused(make, expected) -> None:
    with pytest.raises(DataValidationError) as caught:
        make()

    assert expected in str(caught.value)
    assert "one prediction (and one row of probabilities) per holdout row" in str(caught.value)


def test_a_label_without_probabilities_is_named() -> None:
    predictions = Predictions(np.array(["yes", "no"]), np.array(["yes", "no"]), pd.DataFrame({"yes": [0.9, 0.2]}))

    with pytest.raises(DataValidationError) as caught:
        evaluate(_schema("binary"), predictions)

    assert "no probability for the label(s) ['no'] (it has ['yes'])" in str(caught.value)


def test_an_empty_holdout_is_refused() -> None:
    with pytest.raises(DataValidationError) as caught:
        evaluate(_schema("regression"), Predictions(np.array([]), np.array([])))

    assert "the holdout has no rows" in str(caught.value)


@pytest.mark.slow
def test_the_logged_run_holds_the_metrics_the_files_and_the_model_its_metrics_on_the_dataset(tmp_path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("logged", str(tmp_path / "artifacts")))
    df, estimator = _data("multiclass")
    estimator.fit(df[["x"]], df["y"])
    evaluation = evaluate(_schema("multiclass"), score(estimator, df[["x"]], df["y"]))
    dataset = mlflow.data.from_pandas(df, targets="y", name="holdout")

    with mlflow.start_run() as run:
        model_id = mlflow.create_external_model(name="candidate").model_id
        log_evaluation(evaluation, dataset, model_id)

    client = mlflow.MlflowClient()
    assert client.get_run(run.info.run_id).data.metrics == evaluation.metrics
    on_the_model = {
        (m.key, m.value, m.dataset_name, m.dataset_digest) for m in client.get_logged_model(model_id).metrics
    }
    assert on_the_model == {(k, v, "holdout", dataset.digest) for k, v in evaluation.metrics.items()}
    artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert artifacts == sorted([f"{name}.png" for name in evaluation.figures] + ["per_class_metrics.csv"])
