"""The image's `train`: a SageMaker training job (hyperparameters.json, a data channel, the model into /opt/ml/model,
the reason of a failure in /opt/ml/output/failure), with a temporary folder standing in for /opt/ml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.errors import UsageError
from mlsteps.sagemaker_train import hyperparameter_overrides, job_paths, raw_data_file, read_hyperparameters

from tests.helpers import EXAMPLE_RAW, run_main, scrubbed_env

TRAINING_STEPS = ["make_data", "feat_data", "train_model"]


def _job_root(tmp_path: Path, hyperparameters: dict[str, str] | None, data: bool = True) -> Path:
    """A stand-in for /opt/ml as SageMaker lays it out before the job starts."""
    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "model").mkdir()
    if hyperparameters is not None:
        (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    if data:
        (root / "input" / "data" / "training").mkdir(parents=True)
        shutil.copy(EXAMPLE_RAW, root / "input" / "data" / "training" / "rows.csv")
    return root


def _job_env(tmp_path: Path, root: Path) -> dict[str, str]:
    return {
        "PIPELINE_SAGEMAKER_ROOT": str(root),
        "PIPELINE_DATA_ROOT": str(tmp_path / "data"),
        "PIPELINE__GATE__EVALUATION_PLOTS": "false",
    }


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
def test_entry_script_train_writes_a_model_that_serves_like_the_trained_one(tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient
    from mlsteps.serving.server import app_from_spec, resolve_model
    from starlette.testclient import TestClient

    hyperparameters = {"C": "0.5", "estimator": "logistic_regression", "sagemaker_region": '"eu-west-1"'}
    root = _job_root(tmp_path, hyperparameters)
    # As SageMaker runs the image: `train`, the interpreter found on PATH (the image's own is the first there).
    env = scrubbed_env(
        {**_job_env(tmp_path, root), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TRAINING_JOB_NAME": "j-1"}
    )

    done = subprocess.run(
        ["sh", str(REPO_ROOT / "docker-entrypoint.sh"), "train"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert not (root / "output" / "failure").exists()
    assert (root / "model" / "MLmodel").is_file()
    assert "written to" in done.stderr and str(root / "model") in done.stderr
    # No tracking server on `local`: the runs are in the job's output (uploaded by SageMaker as output.tar.gz).
    store = f"sqlite:///{root / 'output' / 'data' / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("breast-cancer-local")
    runs = {r.data.tags.get("pipeline.step", "parent"): r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted([*TRAINING_STEPS, "parent"])
    assert runs["train_model"].data.params["hp.C"] == "0.5"
    assert runs["parent"].data.params["train_model.set_params.C"] == "0.5"
    assert runs["parent"].data.params["sagemaker.training_job"] == "j-1"
    assert "sagemaker_region" not in json.dumps(runs["parent"].data.params)

    # What the image's `serve --model-dir /opt/ml/model` builds, on the folder the job wrote.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path, ref = resolve_model(load_config("local"), None, str(root / "model"), scratch)
    assert (ref.name, ref.version) == ("breast-cancer-local", "1")
    spec = {"path": path, "ref": ref.__dict__, "log": None, "spool": None, "timeout": 30}
    spec |= {"settings": load_config("local").serving.model_dump(), "aws": {"profile": None, "region": None}}
    rows = pd.read_csv(EXAMPLE_RAW).drop(columns=["sample_id", "diagnosis"]).head(20)
    with TestClient(app_from_spec(spec)) as server:
        assert server.get("/ping").status_code == 200
        answer = server.post("/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    mlflow.set_tracking_uri(store)
    trained = mlflow.pyfunc.load_model("models:/breast-cancer-local/1")
    assert answer.json()["predictions"] == list(trained.predict(rows))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hyperparameters", "data", "reason"),
    [
        ({"C": "-3"}, True, "The 'C' parameter of LogisticRegression must be a float in the range (0.0, inf]"),
        ({"C": "0.5"}, False, "no data channel 'training'"),
    ],
    ids=["bad-hyperparameter", "no-data"],
)
def test_a_failed_job_says_why_in_the_failure_file(
    tmp_path: Path, hyperparameters: dict[str, str], data: bool, reason: str
) -> None:
    root = _job_root(tmp_path, hyperparameters, data=data)

    done = run_main("sagemaker-train", env=_job_env(tmp_path, root), timeout=120)

    assert done.returncode == 2
    first_line = (root / "output" / "failure").read_text().splitlines()[0]
    assert reason in first_line
    assert first_line in done.stderr.replace("\n", "")
    assert list((root / "model").iterdir()) == []


def test_job_paths_under_the_root_or_the_training_toolkit_s_variables() -> None:
    paths = job_paths("training", {"PIPELINE_SAGEMAKER_ROOT": "/jobs/1"})
    toolkit = job_paths("train", {"SM_MODEL_DIR": "/m", "SM_CHANNEL_TRAIN": "/d", "SM_OUTPUT_DIR": "/o"})

    assert paths.hyperparameters == Path("/jobs/1/input/config/hyperparameters.json")
    assert paths.channel == Path("/jobs/1/input/data/training")
    assert (paths.model, paths.failure) == (Path("/jobs/1/model"), Path("/jobs/1/output/failure"))
    assert job_paths("training", {}).model == Path("/opt/ml/model")
    assert (toolkit.model, toolkit.channel, toolkit.failure) == (Path("/m"), Path("/d"), Path("/o/failure"))


def test_hyperparameters_set_options_or_estimator_params_as_the_command_line_does(tmp_path: Path) -> None:
    file = tmp_path / "hyperparameters.json"
    file.write_text(
        json.dumps(
            {"estimator": "random_forest", "n_estimators": "50", "seed": "7", "test_size": "0.3", "max_depth": "null"}
            | {"sagemaker_program": "x", "_tuning_objective_metric": "roc_auc"}
        )
    )

    overrides = hyperparameter_overrides(read_hyperparameters(file), TRAINING_STEPS)

    assert overrides["train_model"] == {
        "estimator": "random_forest",
        "seed": 7,
        "set_params": {"n_estimators": 50, "max_depth": None},
    }
    assert overrides["feat_data"] == {"test_size": 0.3, "seed": 7}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"seed": "x"}', "hyperparameter seed='x' is not a valid int"),
        ('{"C": "[1,"}', "hyperparameter C='[1,' is not a value"),
        ('["C"]', "holds a list, not a JSON object"),
        ("{C: 1}", "is not valid JSON"),
    ],
)
def test_malformed_hyperparameters_are_named(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "hyperparameters.json"
    file.write_text(content)

    with pytest.raises(UsageError) as caught:
        hyperparameter_overrides(read_hyperparameters(file), TRAINING_STEPS)

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("files", "chosen", "message"),
    [
        (["rows.parquet"], "rows.parquet", None),
        (["a.csv", "breast_cancer.csv", "notes.txt"], "breast_cancer.csv", None),
        (["notes.txt"], None, "no CSV or Parquet file in"),
        (["a.csv", "b.csv"], None, "2 data files in"),
    ],
)
def test_the_channel_s_raw_data_file(tmp_path: Path, files: list[str], chosen: str | None, message: str | None) -> None:
    for name in files:
        (tmp_path / name).write_text("x\n")

    if message:
        with pytest.raises(UsageError) as caught:
            raw_data_file(tmp_path, "breast_cancer.csv")
        assert message in str(caught.value)
    else:
        assert raw_data_file(tmp_path, "breast_cancer.csv") == tmp_path / chosen
