"""The whole pipeline, in process, into a temporary workspace; assertions on MLflow and on the written files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import load_config
from mlsteps.discovery import step_names
from mlsteps.errors import ConfigError, StepError
from mlsteps.pipeline import parse_steps, run_pipeline
from mlsteps.runs import TAG_ENVIRONMENT, TAG_STEP
from mlsteps.store import TAG_GIT_COMMIT, TAG_GIT_DIRTY

STEPS = step_names()

pytestmark = pytest.mark.slow


def _client(ws):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=ws.tracking_uri)


def _runs(ws, experiment_id: str):
    return _client(ws).search_runs([experiment_id], order_by=["attributes.start_time ASC"])


def test_full_pipeline_one_parent_four_children(workspace) -> None:
    settings = load_config("local")

    result = run_pipeline(settings, list(STEPS))

    runs = _runs(workspace, result.experiment_id)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    assert [c.data.tags[TAG_STEP] for c in children] == list(STEPS)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags[TAG_ENVIRONMENT] == "local"
        assert len(run.data.tags[TAG_GIT_COMMIT]) in (40, len("unknown"))
        assert run.data.tags[TAG_GIT_DIRTY] in ("true", "false", "unknown")

    parent = parents[0]
    assert parent.data.params["train_model.estimator"] == "logistic_regression"
    assert parent.data.metrics["train_model/roc_auc"] > 0.95
    assert parent.data.metrics["make_data/clean_rows"] == 569
    artifacts = [a.path for a in _client(workspace).list_artifacts(parent.info.run_id, "config")]
    assert artifacts == ["config/resolved.yaml"]
    # gate.evaluation_plots is false in the tests' workspace: the metrics, no plot.
    train = next(c for c in children if c.data.tags[TAG_STEP] == "train_model")
    assert not [a.path for a in _client(workspace).list_artifacts(train.info.run_id) if a.path.endswith(".png")]


def test_train_model_logs_evaluation_and_registers(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE__GATE__EVALUATION_PLOTS", "true")  # the default; the workspace turns them off
    result = run_pipeline(load_config("local"), list(STEPS))
    train = next(s for s in result.steps if s.step == "train_model")
    client = _client(workspace)

    plots = {a.path for a in client.list_artifacts(train.run_id)}
    assert {"confusion_matrix.png", "roc_curve_plot.png"} <= plots
    assert {"roc_auc", "f1_score", "accuracy_score"} <= set(client.get_run(train.run_id).data.metrics)
    version = client.get_model_version("breast-cancer-local", "1")
    assert version.run_id == train.run_id
    assert train.outputs["registered_model"] == "models:/breast-cancer-local/1"

    import mlflow

    info = mlflow.models.get_model_info(train.outputs["model"])
    assert info.signature is not None
    assert "mean_radius" in info.signature.inputs.input_names()
    assert "sample_id" not in info.signature.inputs.input_names()


def test_outputs_are_run_scoped_files_in_the_data_root(workspace) -> None:
    result = run_pipeline(load_config("local"), list(STEPS))
    by_step = {s.step: s for s in result.steps}

    clean = Path(by_step["make_data"].outputs["clean"])
    predictions = Path(by_step["predict"].outputs["predictions"])
    assert clean == workspace.data_root / "interim" / by_step["make_data"].run_id / "clean.parquet"
    assert predictions.parent.name == by_step["predict"].run_id
    assert str(predictions).startswith(str(workspace.data_root))

    scored = pd.read_parquet(predictions)
    test = pd.read_parquet(by_step["feat_data"].outputs["test"])
    assert len(scored) == len(test) == 114
    assert scored["sample_id"].tolist() == test["sample_id"].tolist()
    assert set(scored["model_version"]) == {"1"}
    assert scored["probability"].between(0, 1).all()
    assert (scored["prediction"] == scored["diagnosis"]).mean() > 0.9
    assert set(scored["prediction"]) == {"B", "M"}


def test_steps_run_alone_take_inputs_from_the_latest_runs(workspace) -> None:
    settings = load_config("local")
    first = run_pipeline(settings, ["make_data", "feat_data"])
    train_only = run_pipeline(settings, ["train_model"])
    predict_only = run_pipeline(settings, ["predict"])

    feat = next(s for s in first.steps if s.step == "feat_data")
    client = _client(workspace)
    train_run = client.get_run(train_only.steps[0].run_id)
    assert train_run.data.params["train_rows"] == "455"
    predict_run = client.get_run(predict_only.steps[0].run_id)
    assert predict_run.data.params["model_uri"] == "models:/breast-cancer-local@champion"
    assert predict_run.data.params["model_version"] == "1"
    assert predict_run.data.params["input_uri"] == feat.outputs["test"]


def test_a_step_alone_without_upstream_says_what_to_run(workspace) -> None:
    with pytest.raises(StepError) as caught:
        run_pipeline(load_config("local"), ["feat_data"])

    assert "no finished 'make_data' run" in str(caught.value)
    assert "--step make_data" in str(caught.value)


def test_failing_step_marks_child_and_parent_failed(workspace) -> None:
    (workspace.data_root / "raw" / "breast_cancer.csv").write_text("sample_id,diagnosis\n1,M\n")

    with pytest.raises(StepError) as caught:
        run_pipeline(load_config("local"), list(STEPS))

    assert caught.value.step == "make_data"
    settings = load_config("local")
    experiment = _client(workspace).get_experiment_by_name(settings.tracking.experiment)
    runs = _runs(workspace, experiment.experiment_id)
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED"]
    child = next(r for r in runs if r.data.tags.get(TAG_STEP) == "make_data")
    assert "missing column" in child.data.tags["pipeline.error"]
    artifacts = {a.path for a in _client(workspace).list_artifacts(child.info.run_id, "validation")}
    assert artifacts == {"validation/report.txt"}
    assert [a.path for a in _client(workspace).list_artifacts(child.info.run_id, "error")] == ["error/traceback.txt"]
    assert not list(workspace.data_root.glob("interim/**/*.parquet"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("all", list(STEPS)), ("predict,make_data", ["make_data", "predict"]), (" train_model ", ["train_model"])],
)
def test_parse_steps(text: str, expected: list[str]) -> None:
    assert parse_steps(text) == expected


def test_parse_steps_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_steps("make_data,train")

    assert "unknown step(s) ['train']" in str(caught.value)
