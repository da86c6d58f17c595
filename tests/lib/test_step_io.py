"""Every step on the in-memory catalog: snapshots and lineage, a model logged, evaluated, registered and gated,
predictions from the champion (fast: a throwaway tracking store, data in fsspec's memory filesystem)."""

from __future__ import annotations

import fsspec
import pandas as pd
import pytest

from src.lib.discovery import step_names
from src.lib.errors import StepError
from src.pipeline import run_pipeline


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
    test_file = first.steps[1].outputs["test"]
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
    train_run = first.steps[2].run_id
    from mlflow import MlflowClient

    snapshot = MlflowClient().get_run(train_run).data.params["test_uri"]
    with fsspec.open(snapshot, "wb") as handle:
        handle.write(b"damaged")

    with pytest.raises(StepError) as caught:
        run_pipeline(memory_workspace.settings(), ["train_model"], from_run=train_run)

    message = str(caught.value)
    assert f"the test snapshot of run {train_run} at '{snapshot}' was changed after that run" in message
    assert "Restore the file from a backup" in message
