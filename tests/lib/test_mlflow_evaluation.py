"""A baseline evaluated without plots gets exactly the metrics the default evaluator gives, and no images."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlsteps.mlflow_evaluation import evaluate, evaluation_metrics
from mlsteps.schema import SchemaConfig
from sklearn.linear_model import LinearRegression, LogisticRegression


def _schema(task: str) -> SchemaConfig:
    extra = {"labels": ["no", "yes"], "positive_class": "yes"} if task == "binary" else {}
    if task == "multiclass":
        extra = {"labels": ["a", "b", "c"]}
    return SchemaConfig.model_validate({"target": "y", "task": task, "columns": {"x": {"type": "float"}}, **extra})


def _data(task: str) -> tuple[pd.DataFrame, object]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    if task == "regression":
        return pd.DataFrame({"x": x, "y": 3 * x + rng.normal(size=200)}), LinearRegression()
    labels = np.array(["no", "yes"] if task == "binary" else ["a", "b", "c"])
    cut = np.digitize(x + rng.normal(scale=0.5, size=200), [0.0] if task == "binary" else [-0.5, 0.5])
    return pd.DataFrame({"x": x, "y": labels[cut].astype(object)}), LogisticRegression()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_metrics_without_plots_equal_the_default_evaluators(task, tmp_path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("evaluation-test", str(tmp_path / "artifacts")))
    df, estimator = _data(task)
    estimator.fit(df[["x"]], df["y"])
    mlflow.sklearn.save_model(estimator, str(tmp_path / "model"), serialization_format="cloudpickle")
    data = mlflow.data.from_pandas(df, targets="y", name="holdout")
    schema = _schema(task)

    with mlflow.start_run() as with_plots:
        full = evaluate(str(tmp_path / "model"), data, schema)
    with mlflow.start_run() as without:
        lean = evaluate(str(tmp_path / "model"), data, schema, plots=False)

    assert evaluation_metrics(lean) == evaluation_metrics(full)
    assert len(evaluation_metrics(lean)) >= 5
    images = {
        run.info.run_id: [
            a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id) if a.path.endswith(".png")
        ]
        for run in (with_plots, without)
    }
    assert images[without.info.run_id] == []
    if task != "regression":  # MLflow's regressor evaluator draws no plots
        assert images[with_plots.info.run_id]
