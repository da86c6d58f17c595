"""Every step on the in-memory catalog: snapshots and lineage, a model logged, evaluated, registered and gated,
predictions from the champion (fast: a throwaway tracking store, data in fsspec's memory filesystem)."""

from __future__ import annotations

import shutil

import fsspec
import pandas as pd
import pytest
from mlsteps.discovery import step_names
from mlsteps.errors import StepError
from mlsteps.pipeline import run_pipeline

# Each test runs the pipeline (on fsspec's memory filesystem, a throwaway tracking store): seconds each.
pytestmark = pytest.mark.slow


def test_the_whole_pipeline_on_an_in_memory_catalog(memory_workspace) -> None:
    from mlflow import MlflowClient

    result = run_pipeline(memory_workspace.settings(), list(step_names()))

    by_step = {s.step: s for s in result.steps}
    client = MlflowClient(memory_workspace.tracking_uri)
    train = client.get_run(by_step["train_model"].run_id)
    model_name = memory_workspace.settings().model_name
    assert by_step["train_model"].outputs["registered_model"] == f"models:/{model_name}/1"
    assert by_step["train_model"].notes == ["promoted version 1 to @champion"]
    # The exact training data, stored once by content, with its manifest and lineage.
    snapshot = train.data.params["train_uri"]
    assert snapshot.startswith(f"{memory_workspace.data_root}/snapshots/")
    assert snapshot.endswith(train.data.tags["pipeline.data.train.sha256"] + ".parquet")
    contexts = {t.value for i in train.inputs.dataset_inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert contexts == {"training", "evaluation"}
    # predict scored the test split with the champion.
    scored = pd.read_parquet(by_step["predict"].outputs["predictions"])
    assert len(scored) == 114
    assert set(scored["model_version"]) == {"1"}
    assert client.get_run(by_step["predict"].run_id).data.params["input_uri"] == by_step["feat_data"].outputs["test"]


def test_a_damaged_split_is_refused_before_training(memory_workspace) -> None:
    first = run_pipeline(memory_workspace.settings(), ["make_data", "feat_data"])
    test_file = first.step("feat_data").outputs["test"]
    frame = pd.read_parquet(test_file)
    with fsspec.open(test_file, "wb") as handle:
        frame.head(10).to_parquet(handle)

    with pytest.raises(StepError) as caught:
        run_pipeline(memory_workspace.settings(), ["train_model"])

    assert "changed after it was written" in str(caught.value)


def test_every_registered_version_carries_its_gate_decision(memory_workspace) -> None:
    from mlflow import MlflowClient

    run_pipeline(memory_workspace.settings(), ["make_data", "feat_data", "train_model"])
    run_pipeline(memory_workspace.settings(train_model={"set_params": {"C": 1e-6}}), ["train_model"])

    versions = MlflowClient().search_model_versions(f"name = '{memory_workspace.settings().model_name}'")
    assert sorted((str(v.version), v.tags["gate.decision"]) for v in versions) == [("1", "promoted"), ("2", "rejected")]


def test_retraining_from_a_damaged_snapshot_names_the_file_and_what_to_do(memory_workspace) -> None:
    first = run_pipeline(memory_workspace.settings(), ["make_data", "feat_data", "train_model"])
    train_run = first.step("train_model").run_id
    from mlflow import MlflowClient

    snapshot = MlflowClient().get_run(train_run).data.params["test_uri"]
    with fsspec.open(snapshot, "wb") as handle:
        handle.write(b"damaged")

    with pytest.raises(StepError) as caught:
        run_pipeline(memory_workspace.settings(), ["train_model"], from_run=train_run)

    message = str(caught.value)
    assert f"the test snapshot of run {train_run} at '{snapshot}' was changed after that run" in message
    assert "Restore the file from a backup" in message


def _task_config(tmp_path, task: str, columns: list[str], labels: list[str] | None, estimator: str):
    """A config folder: the repo's base.yaml with a local.yaml whose schema (replacing the example's) fits."""
    import shutil

    import yaml

    from tests.helpers import EXAMPLE_CONFIG

    folder = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, folder)
    schema = {
        "id_column": "row_id",
        "target": "target",
        "task": task,
        "columns": {c: {"type": "float"} for c in columns},
    }
    if labels:
        schema["labels"] = labels
    local = yaml.safe_load((folder / "local.yaml").read_text())
    local |= {"schema": schema, "catalog": {"raw": {"path": "raw/data.csv"}}, "train_model": {"estimator": estimator}}
    (folder / "local.yaml").write_text(yaml.safe_dump(local))
    return folder


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_multiclass_and_regression_run_through_every_step(memory_workspace, tmp_path, monkeypatch, task) -> None:
    from mlsteps.config import load_config
    from sklearn.datasets import load_diabetes, load_iris

    bunch = (load_iris if task == "multiclass" else load_diabetes)(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    labels = [str(n) for n in bunch.target_names] if task == "multiclass" else None
    if labels:
        frame["target"] = frame["target"].map(dict(enumerate(labels)))
    frame.insert(0, "row_id", range(len(frame)))
    memory_workspace.write_raw(frame, "raw/data.csv")
    features = [c for c in frame.columns if c not in ("row_id", "target")]
    estimator = "sklearn.linear_model.Ridge" if task == "regression" else "logistic_regression"
    monkeypatch.setenv("PIPELINE_CONFIG_DIR", str(_task_config(tmp_path, task, features, labels, estimator)))

    result = run_pipeline(load_config("local"), list(step_names()))

    train, predict = result.step("train_model"), result.step("predict")
    assert train.notes == ["promoted version 1 to @champion"]
    scored = pd.read_parquet(predict.outputs["predictions"])
    if task == "multiclass":
        assert {"accuracy_score", "f1_score"} <= set(train.metrics)
        assert set(scored["prediction"]) <= set(labels) and scored["prediction"].nunique() == 3
        assert [f"probability_{label}" for label in labels] == [c for c in scored if c.startswith("probability_")]
        assert (scored["prediction"] == scored["target"]).mean() > 0.8
    else:
        assert {"root_mean_squared_error", "r2_score"} <= set(train.metrics)
        assert scored["prediction"].dtype == "float64"
        assert not [c for c in scored if c.startswith("probability")]
        assert train.metrics["r2_score"] > 0.3


def test_a_champion_with_other_inputs_is_not_compared_it_stays_and_the_reason_is_kept(
    memory_workspace, tmp_path, monkeypatch
) -> None:
    import yaml
    from mlflow import MlflowClient
    from mlsteps.config import load_config

    from tests.helpers import EXAMPLE_CONFIG

    run_pipeline(memory_workspace.settings(), ["make_data", "feat_data", "train_model"])  # version 1, champion
    # The same data without one column: the next candidate's inputs differ from the champion's.
    raw = pd.read_csv(memory_workspace.data_root + "/raw/breast_cancer.csv").drop(columns=["mean_area"])
    memory_workspace.write_raw(raw)
    folder = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, folder)
    base = yaml.safe_load((folder / "base.yaml").read_text())
    schema = {**base["schema"], "columns": {k: v for k, v in base["schema"]["columns"].items() if k != "mean_area"}}
    (folder / "local.yaml").write_text((folder / "local.yaml").read_text() + "\n" + yaml.safe_dump({"schema": schema}))
    monkeypatch.setenv("PIPELINE_CONFIG_DIR", str(folder))

    second = run_pipeline(load_config("local"), ["make_data", "feat_data", "train_model"])

    note = second.step("train_model").notes[0]
    assert note.startswith("version 2 not promoted: no fair comparison with version 1 (the champion)")
    assert note.endswith("@champion stays version 1")
    name = memory_workspace.settings().model_name
    version = MlflowClient().get_model_version(name, "2")
    assert (
        "version 1's inputs differ from the candidate's (added: [], removed: ['mean_area']"
        in version.tags["gate.champion_comparison"]
    )
    run = MlflowClient().get_run(second.step("train_model").run_id)
    assert run.data.tags["gate.champion_comparison"] == version.tags["gate.champion_comparison"]


def test_raw_data_read_in_small_chunks_gives_the_same_clean_data_and_report(memory_workspace, monkeypatch) -> None:
    whole = run_pipeline(memory_workspace.settings(), ["make_data"]).steps[0]
    monkeypatch.setenv("PIPELINE__CATALOG__RAW__CHUNK_ROWS", "50")  # the 569 example rows in 12 chunks
    chunked = run_pipeline(memory_workspace.settings(), ["make_data"]).steps[0]

    assert chunked.run_id != whole.run_id  # a run of its own, not the first one reused
    pd.testing.assert_frame_equal(
        pd.read_parquet(chunked.outputs["clean"]), pd.read_parquet(whole.outputs["clean"]), check_exact=True
    )
    assert chunked.metrics == whole.metrics
    raw = pd.read_csv(f"{memory_workspace.data_root}/raw/breast_cancer.csv")
    bad = raw.drop(columns=["mean_area"]).assign(notes="x")
    bad.loc[500:, "worst_area"] = -1.0  # only in the last chunks
    bad.loc[:300, "mean_radius"] = None  # more than half null, all in the first chunks
    memory_workspace.write_raw(bad)
    reports = []
    for rows in ("50", "100000"):
        monkeypatch.setenv("PIPELINE__CATALOG__RAW__CHUNK_ROWS", rows)
        with pytest.raises(StepError) as caught:
            run_pipeline(memory_workspace.settings(), ["make_data"])
        reports.append(str(caught.value))

    assert reports[0] == reports[1]
    for line in ("missing column: 'mean_area'", "'notes'", "column 'worst_area': fails", "'mean_radius': is 53% null"):
        assert line in reports[0]


def test_a_training_sample_is_recorded_and_evaluation_uses_the_whole_test_split(memory_workspace, monkeypatch) -> None:
    import json

    from mlflow import MlflowClient

    monkeypatch.setenv("PIPELINE__TRAIN_MODEL__MAX_TRAIN_ROWS", "100")

    result = run_pipeline(memory_workspace.settings(), ["make_data", "feat_data", "train_model"])

    run = MlflowClient(memory_workspace.tracking_uri).get_run(result.step("train_model").run_id)
    params = run.data.params
    assert (params["train_rows"], params["train_rows_available"], params["train_sample"]) == (
        "100",
        "455",
        "stratified",
    )
    assert params["test_rows"] == "114"
    rows = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): json.loads(i.dataset.profile)["num_rows"]
        for i in run.inputs.dataset_inputs
    }
    assert rows == {"training": 455, "evaluation": 114}
    assert "roc_auc" in run.data.metrics


@pytest.mark.long
def test_after_the_split_changes_the_champion_is_compared_on_rows_it_was_not_trained_on(memory_workspace) -> None:
    from mlflow import MlflowClient

    run_pipeline(memory_workspace.settings(), ["make_data", "feat_data", "train_model"])  # version 1, champion

    second = run_pipeline(memory_workspace.settings(feat_data={"test_size": 0.25}), ["feat_data", "train_model"])

    reasons = MlflowClient().get_run(second.step("train_model").run_id).data.tags["gate.reasons"]
    holdout = len(pd.read_parquet(second.step("feat_data").outputs["test"]))
    fair = int(reasons.split("compared with version 1 on the ")[1].split(" holdout rows")[0])
    left_out = int(reasons.split(" left out)")[0].rsplit("(", 1)[1])
    assert fair + left_out == holdout and left_out > 0 and fair >= 30


@pytest.mark.long
def test_a_champion_of_another_task_is_not_compared_and_training_goes_on(memory_workspace, tmp_path, monkeypatch):
    import yaml
    from mlflow import MlflowClient
    from mlsteps.config import load_config

    from tests.helpers import EXAMPLE_CONFIG

    raw = pd.read_csv(memory_workspace.data_root + "/raw/breast_cancer.csv")
    memory_workspace.write_raw(raw.assign(diagnosis=(raw["diagnosis"] == "M").astype(int)))
    folder = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, folder)
    schema = yaml.safe_load((folder / "base.yaml").read_text())["schema"]
    binary = {"schema": {**schema, "labels": ["0", "1"], "positive_class": "1"}}
    regression = {
        "schema": {k: v for k, v in schema.items() if k not in ("labels", "positive_class")} | {"task": "regression"},
        "train_model": {"estimator": "sklearn.linear_model.Ridge"},
    }
    local = (folder / "local.yaml").read_text()
    monkeypatch.setenv("PIPELINE_CONFIG_DIR", str(folder))
    (folder / "local.yaml").write_text(local + "\n" + yaml.safe_dump(binary))
    run_pipeline(load_config("local"), ["make_data", "feat_data", "train_model"])  # a binary champion

    (folder / "local.yaml").write_text(local + "\n" + yaml.safe_dump(regression))
    second = run_pipeline(load_config("local"), ["make_data", "feat_data", "train_model"])

    note = second.step("train_model").notes[0]
    assert note.startswith("version 2 not promoted: no fair comparison with version 1")
    version = MlflowClient().get_model_version(memory_workspace.settings().model_name, "2")
    assert version.tags["gate.champion_comparison"] == "version 1 is a binary model, the candidate a regression one"
    assert version.tags["gate.task"] == "regression"
