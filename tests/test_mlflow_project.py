"""The MLproject file, run for real with `mlflow run . --env-manager local`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.lib.config import REPO_ROOT
from src.lib.discovery import step_names
from tests.helpers import scrubbed_env

MLPROJECT = yaml.safe_load((REPO_ROOT / "MLproject").read_text())


STEPS = step_names()


def test_every_step_has_an_entry_point_that_runs_it() -> None:
    entry_points = MLPROJECT["entry_points"]

    assert set(entry_points) == {"main", *STEPS}
    for step in STEPS:
        assert f"--step {step}" in entry_points[step]["command"]
        assert entry_points[step]["parameters"]["environment"] == {"type": "string", "default": "local"}
    assert MLPROJECT["conda_env"] == "conda.yaml"


def _mlflow_run(workspace, *args: str) -> subprocess.CompletedProcess:
    env = scrubbed_env({
        "MLFLOW_TRACKING_URI": workspace.tracking_uri,
        "PIPELINE_DATA_ROOT": str(workspace.data_root),
        # `python` in the MLproject commands must be this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return subprocess.run(
        [sys.executable, "-m", "mlflow", "run", ".", "--env-manager", "local", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_mlflow_run_nests_steps_under_the_project_run(workspace) -> None:
    from mlflow import MlflowClient

    # `mlflow run` would create the experiment with artifacts under ./mlruns of the repo: give it a place here.
    MlflowClient(workspace.tracking_uri).create_experiment(
        "project-test", artifact_location=(workspace.root / "project-artifacts").as_uri())
    whole = _mlflow_run(workspace, "--experiment-name", "project-test")
    assert whole.returncode == 0, whole.stderr[-3000:]
    alone = _mlflow_run(workspace, "-e", "train_model", "-P", "environment=local", "--experiment-name", "project-test")
    assert alone.returncode == 0, alone.stderr[-3000:]

    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name("project-test")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    projects = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(projects) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags.get("mlflow.project.entryPoint") for r in projects)
    first_children = [r.data.tags["pipeline.step"] for r in runs
                      if r.data.tags.get("mlflow.parentRunId") == projects[0].info.run_id]
    second_children = [r.data.tags["pipeline.step"] for r in runs
                       if r.data.tags.get("mlflow.parentRunId") == projects[1].info.run_id]
    assert first_children == list(STEPS)
    assert second_children == ["train_model"]
    # Nothing changed, so the lone train_model reuses the first one's run instead of training again.
    first_train = next(r for r in runs if r.data.tags.get("pipeline.step") == "train_model"
                       and r.data.tags.get("mlflow.parentRunId") == projects[0].info.run_id)
    second_train = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == projects[1].info.run_id)
    assert second_train.data.tags["pipeline.reused_from"] == first_train.info.run_id
    assert len(client.search_model_versions("name = 'breast-cancer-local'")) == 1
