"""The notebooks: stored without outputs, executed top to bottom against real pipeline runs, and `make notebook`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.discovery import step_names
from mlsteps.pipeline import run_pipeline

from tests.helpers import scrubbed_env

STEPS = step_names()
NOTEBOOKS = REPO_ROOT / "notebooks"
LATEST, COMPARE = "explore_latest_run.ipynb", "compare_runs.ipynb"
MODEL = "breast-cancer-local"


def test_notebooks_are_stored_without_outputs() -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))

    assert {path.name for path in notebooks} >= {LATEST, COMPARE}
    for path in notebooks:
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert cells, path.name
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells), f"{path.name} has outputs"


def _execute(name: str, extra: str | None = None) -> tuple[str, int, list[str]]:
    """Run a notebook with the project's kernel, plus an ``extra`` last cell if given.

    Returns the text of its outputs, how many images it drew, and the lines the extra cell printed.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if extra:
        notebook.cells.append(nbformat.v4.new_code_cell(extra))
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    printed = "".join(o.get("text", "") for o in notebook.cells[-1].get("outputs", [])) if extra else ""
    return text, sum("image/png" in o.get("data", {}) for o in outputs), printed.splitlines()


# The comparison notebook's tables, as JSON lines (what a reader sees as tables).
TABLES = 'print(table.to_json(orient="records", date_format="iso"))\nprint(digests.to_json())'


def _compare() -> tuple[list[dict], dict[str, dict[str, str]], str, int]:
    text, images, (table, digests) = _execute(COMPARE, TABLES)
    return json.loads(table), json.loads(digests), text, images


def _train_model_runs(tracking_uri: str) -> list:
    """The train_model runs of the local experiment, oldest first."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(load_config("local").tracking.experiment)
    return client.search_runs(
        [experiment.experiment_id], "tags.`pipeline.step` = 'train_model'", order_by=["attributes.start_time ASC"]
    )


@pytest.mark.slow
@pytest.mark.long
def test_notebooks_read_reused_runs_and_a_retrain(workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE__GATE__EVALUATION_PLOTS", "true")  # as a user's runs have them (the default)
    run_pipeline(load_config("local"), list(STEPS))
    run_pipeline(load_config("local"), list(STEPS))  # nothing changed: every step is reused
    trained, reused = _train_model_runs(workspace.tracking_uri)
    assert reused.data.tags["pipeline.reused_from"] == trained.info.run_id

    latest, images, _ = _execute(LATEST)

    assert f"train_model run {reused.info.run_id} reuses {trained.info.run_id}" in latest
    assert f"run {trained.info.run_id} | model models:/{MODEL}/1" in latest
    assert "accuracy on the holdout" in latest
    assert images == 1
    table, digests, compare, images = _compare()
    assert "pipelines: 2 | trainings: 1 | distinct training data: 1" in compare
    assert [(row["training run"], row["model"], row["gate"], row["reused by"]) for row in table] == [
        (trained.info.run_id[:8], f"{MODEL}/1", "promoted", 1)
    ]
    train_sha = trained.data.tags["pipeline.data.train.sha256"]
    assert set(digests) == {trained.data.tags["mlflow.parentRunId"], reused.data.tags["mlflow.parentRunId"]}
    assert {column["trained on train"] for column in digests.values()} == {train_sha}
    assert images == 1

    # Retrain on the first training's exact data: a new training, same data digests, version 2 (not promoted).
    run_pipeline(load_config("local"), ["train_model"], from_run=trained.info.run_id)
    retrained = _train_model_runs(workspace.tracking_uri)[-1]
    assert retrained.data.params["from_run"] == trained.info.run_id

    latest, images, _ = _execute(LATEST)

    assert f"retrained on the data snapshot of run {trained.info.run_id}" in latest
    assert f"run {retrained.info.run_id} | model models:/{MODEL}/2" in latest
    assert images == 1
    table, digests, compare, images = _compare()
    assert "pipelines: 3 | trainings: 2 | distinct training data: 1" in compare
    assert [(row["training run"], row["model"], row["gate"], row["from run"]) for row in table] == [
        (trained.info.run_id[:8], f"{MODEL}/1", "promoted", ""),
        (retrained.info.run_id[:8], f"{MODEL}/2", "rejected", trained.info.run_id[:8]),
    ]
    assert table[0]["roc_auc"] == table[1]["roc_auc"]  # the same data and seed reproduce the metrics
    assert len(digests) == 3
    assert {column["trained on train"] for column in digests.values()} == {train_sha}
    assert images == 1


@pytest.mark.slow
def test_make_notebook_opens_jupyterlab_with_the_project_kernel(tmp_path: Path) -> None:
    import psutil
    import requests

    from tests.servers import free_port, wait_until

    port, token, log = free_port(), "notebook-test-token", tmp_path / "jupyter.log"
    args = f"--no-browser --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    env = scrubbed_env(
        {"JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")},
        drop=("MAKE", "MFLAGS"),
    )
    # `-o install`: the environment running this test is the project's; make must not sync it meanwhile.
    server = subprocess.Popen(
        ["make", "-o", "install", "notebook", f"JUPYTER_ARGS={args}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: f"{url}/lab?token=" in log.read_text(), "JupyterLab's URL", server, timeout=120)
        # On a loaded machine the URL was once printed a moment before a connection was accepted: wait for the API.
        wait_until(
            lambda: requests.get(f"{url}/api/status", params={"token": token}, timeout=5).status_code == 200,
            "JupyterLab's API",
            server,
            timeout=60,
        )
        contents = requests.get(f"{url}/api/contents", params={"token": token}, timeout=10).json()
        assert {LATEST, COMPARE} <= {item["name"] for item in contents["content"]}  # it serves notebooks/
        kernel = requests.post(f"{url}/api/kernels", params={"token": token}, json={"name": "python3"}, timeout=30)
        assert kernel.status_code == 201, kernel.text

        processes = psutil.Process(server.pid).children(recursive=True)
        kernels = [p.cmdline() for p in processes if "ipykernel_launcher" in p.cmdline()]
        assert len(kernels) == 1
        assert Path(kernels[0][0]) == Path(sys.executable)  # the kernel is this project's .venv interpreter
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert "JupyterLab on notebooks/ with the kernel of .venv" in log.read_text()
