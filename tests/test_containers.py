"""Dockerfile, run scripts and the Airflow DAG."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT
from mlsteps.discovery import step_names

from tests.helpers import scrubbed_env

HADOLINT = Path(sys.executable).parent / "hadolint"
AIRFLOW_VENV = REPO_ROOT / ".airflow-venv"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/mlflow-server.Dockerfile"])
def test_dockerfiles_are_hadolint_clean(dockerfile: str) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", dockerfile], check=False, cwd=REPO_ROOT, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_layers_user_and_entrypoint() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert lines[0].startswith("FROM python:3.11.") and "latest" not in lines[0]
    copy_lock = lines.index("COPY requirements-runtime.lock ./")
    assert copy_lock < lines.index("COPY src/ src/")
    assert "USER 10001" in lines
    assert "COPY MLproject conda.yaml docker-entrypoint.sh ./" in lines
    assert 'ENTRYPOINT ["./docker-entrypoint.sh"]' in lines
    assert "EXPOSE 8080" in lines  # SageMaker's port
    assert not [line for line in lines if "AWS_" in line or "SECRET" in line.upper() or "API_KEY" in line]


def test_dockerignore_keeps_data_runs_and_secrets_out() -> None:
    rules = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert rules[0] == "*"  # everything is out unless listed
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {
        "Dockerfile",
        "requirements-runtime.lock",
        "wheels",
        "MLproject",
        "conda.yaml",
        "docker-entrypoint.sh",
        "config",
        "src",
    }
    assert "**/.env" in rules


# -- the entry script: `serve` is SageMaker's model server, anything else the pipeline ----------------------------
@pytest.fixture
def fake_python(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `python` first on PATH that records its arguments: what the entry script runs."""
    record = tmp_path / "python-args.txt"
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    python.chmod(0o755)
    return {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}, record


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ["serve"],
            {},
            ["src/main.py", "serve", "--environment", "local", "--host", "0.0.0.0", "--model-dir", "/opt/ml/model"],
        ),
        (
            ["serve", "--workers", "2"],
            {"PIPELINE_ENVIRONMENT": "dev", "PIPELINE_MODEL_DIR": "/models/m"},
            [
                "src/main.py",
                "serve",
                "--environment",
                "dev",
                "--host",
                "0.0.0.0",
                "--model-dir",
                "/models/m",
                "--workers",
                "2",
            ],
        ),
        (
            ["--step", "train_model", "--environment", "dev"],
            {},
            ["src/main.py", "--step", "train_model", "--environment", "dev"],
        ),
        ([], {}, ["src/main.py"]),
    ],
)
def test_entry_script_dispatches_serve_and_the_pipeline(
    fake_python, args: list[str], env: dict[str, str], expected: list[str]
) -> None:
    path_env, record = fake_python

    done = subprocess.run(
        ["sh", str(REPO_ROOT / "docker-entrypoint.sh"), *args],
        check=False,
        env={**path_env, **env},
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )

    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == expected


def test_entry_script_is_executable_and_runs_sagemaker_training(fake_python) -> None:
    path_env, record = fake_python

    done = subprocess.run(
        [str(REPO_ROOT / "docker-entrypoint.sh"), "train", "--channel", "train"],
        check=False,
        env={**path_env, "PIPELINE_ENVIRONMENT": "dev"},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    # tests/test_sagemaker_train.py runs the training job itself.
    assert record.read_text().splitlines() == [
        "src/main.py",
        "sagemaker-train",
        "--environment",
        "dev",
        "--channel",
        "train",
    ]


def _docker_engine() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=60).returncode == 0
    )


@pytest.mark.slow
@pytest.mark.skipif(not _docker_engine(), reason="no Docker engine on this machine: the image cannot be built or run")
def test_image_serves_like_sagemaker(champion, tmp_path: Path) -> None:  # pragma: no cover - needs Docker
    import requests

    from tests.helpers import run_main
    from tests.servers import free_port, wait_until

    assert run_main("export-model", "--out", str(tmp_path / "model.tar.gz"), env=champion.env).returncode == 0
    model = tmp_path / "model"
    model.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "model.tar.gz"), "-C", str(model)], check=True)
    model.chmod(0o755)
    build = subprocess.run(
        ["docker", "build", "-t", "pipeline-serve-test", "."],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    port = free_port()
    container = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--rm",
            "-p",
            f"127.0.0.1:{port}:8080",
            "-v",
            f"{model}:/opt/ml/model:ro",
            "pipeline-serve-test",
            "serve",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert container.returncode == 0, container.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url + "/ping", timeout=2).status_code == 200, "container", timeout=120)
        rows = champion.predictions[champion.features].head(5)
        answer = requests.post(
            url + "/invocations",
            data=rows.to_csv(index=False, header=False),
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
        assert answer.json()["predictions"] == champion.predictions["prediction"].head(5).tolist()
    finally:
        subprocess.run(["docker", "stop", container.stdout.strip()], check=False, capture_output=True, timeout=120)


# -- scripts ---------------------------------------------------------------------------------------------------------
SCRIPTS = ["build_docker.sh", "run_docker.sh", "run_docker_cloud.sh"]


def _script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        ["bash", str(REPO_ROOT / name), *args],
        check=False,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_print_usage(name: str) -> None:
    result = _script(name, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: ./{name}")


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_say_when_the_engine_is_missing(name: str) -> None:
    env = {"CONTAINER_ENGINE": "no-such-engine", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}

    result = _script(name, env=env)

    assert result.returncode == 127
    assert "'no-such-engine' is not installed" in result.stderr


@pytest.fixture
def fake_engine(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in for the docker CLI that records its arguments (the scripts' output is their command line)."""
    record = tmp_path / "calls.txt"
    engine = tmp_path / "fake-docker"
    engine.write_text(f'#!/bin/sh\n[ "$1" = info ] && exit 0\nprintf "%s\\n" "$@" > {record}\n')
    engine.chmod(engine.stat().st_mode | stat.S_IEXEC)
    return str(engine), record


def test_cloud_script_needs_credentials(fake_engine) -> None:
    engine, record = fake_engine

    result = _script("run_docker_cloud.sh", env={"CONTAINER_ENGINE": engine})

    assert result.returncode == 1
    assert "no AWS credentials" in result.stderr
    assert not record.exists()


def test_cloud_script_passes_credentials_by_name_only(fake_engine) -> None:
    engine, record = fake_engine
    env = {
        "CONTAINER_ENGINE": engine,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
        "AWS_REGION": "eu-west-1",
        "PIPELINE_BUCKET": "team-bucket",
        "IMAGE": "registry/pipeline:abc123",
    }

    result = _script("run_docker_cloud.sh", "prd", "--step", "train_model", env=env)

    assert result.returncode == 0, result.stderr
    args = record.read_text().split("\n")
    assert "running registry/pipeline:abc123 on environment prd" in result.stderr
    assert args[:2] == ["run", "--rm"]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "PIPELINE_BUCKET"):
        assert name in args
    assert "s3cr3t-value" not in record.read_text()
    image = args.index("registry/pipeline:abc123")
    assert args[image + 1 : image + 5] == ["--environment", "prd", "--step", "train_model"]


def test_cloud_script_mounts_the_aws_profile_read_only(fake_engine, tmp_path: Path) -> None:
    engine, record = fake_engine
    (tmp_path / ".aws").mkdir()

    result = _script(
        "run_docker_cloud.sh", env={"CONTAINER_ENGINE": engine, "AWS_PROFILE": "dev", "HOME": str(tmp_path)}
    )

    assert result.returncode == 0, result.stderr
    args = record.read_text().split("\n")
    assert f"{tmp_path}/.aws:/home/pipeline/.aws:ro" in args
    assert "AWS_PROFILE" in args
    assert args[args.index("--environment") + 1] == "dev"


def test_local_script_mounts_the_repo_at_the_same_path(fake_engine) -> None:
    engine, record = fake_engine

    result = _script("run_docker.sh", "--step", "predict", env={"CONTAINER_ENGINE": engine})

    assert result.returncode == 0, result.stderr
    args = record.read_text().split("\n")
    assert f"{REPO_ROOT}:{REPO_ROOT}" in args
    assert f"PIPELINE_TRACKING_URI=sqlite:///{REPO_ROOT}/mlflow.db" in args
    assert args[-4:-1] == ["local", "--step", "predict"]


@pytest.mark.slow
def test_build_script_tags_with_the_commit(fake_engine) -> None:
    engine, record = fake_engine
    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], check=False, cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )

    result = _script("build_docker.sh", "--pull", env={"CONTAINER_ENGINE": engine, "IMAGE_NAME": "pipe"})

    assert result.returncode == 0, result.stderr
    args = record.read_text().split("\n")
    tag = next(a for a in args if a.startswith("pipe:") and a != "pipe:latest")
    assert tag.removeprefix("pipe:").startswith(commit)
    assert f"GIT_COMMIT={tag.removeprefix('pipe:')}" in args
    assert "--pull" in args


@pytest.mark.skipif(
    shutil.which("podman") is None and shutil.which("buildah") is None,
    reason="no daemonless image builder (podman/buildah) on this machine; Docker has no engine here",
)
def test_image_builds_with_a_daemonless_builder() -> None:  # pragma: no cover - needs podman and a base image
    result = subprocess.run(
        ["podman", "build", "--isolation", "chroot", "-t", "pipeline-test", "."],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# -- Airflow -----------------------------------------------------------------------------------------------------
needs_airflow = pytest.mark.skipif(
    not (AIRFLOW_VENV / "bin" / "airflow").exists(),
    reason="no Airflow virtualenv: run `make airflow-venv` (.ci/run does)",
)


def _airflow_env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = scrubbed_env(drop=("AIRFLOW",))
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PIPELINE_DAG_PYTHON=sys.executable,
        **extra,
    )
    return env


@needs_airflow
@pytest.mark.slow
@pytest.mark.long
def test_dag_runs_every_step_under_one_parent_run(workspace, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    env = _airflow_env(tmp_path, workspace.env())
    airflow = str(AIRFLOW_VENV / "bin" / "airflow")
    migrate = subprocess.run(
        [airflow, "db", "migrate"], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    run = subprocess.run(
        [airflow, "dags", "test", "mlflow_pipeline"], check=False, env=env, capture_output=True, text=True, timeout=900
    )

    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    assert "state=success" in run.stdout + run.stderr
    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name("breast-cancer-local")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [
        r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.data.tags.get("pipeline.kind") == "pipeline"
    ]
    assert len(parents) == 1
    assert parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert [c.data.tags["pipeline.step"] for c in children] == list(step_names())
    assert all(c.info.status == "FINISHED" for c in children)
    assert list(workspace.data_root.glob("processed/predictions/*/predictions.parquet"))


@pytest.mark.slow
@needs_airflow
def test_dag_kubernetes_tasks_use_the_image_and_no_secrets(tmp_path: Path) -> None:
    code = """
import json, importlib.util
spec = importlib.util.spec_from_file_location("dag_module", "dags/mlflow_pipeline.py")
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
out = {}
for task in module.dag.tasks:
    out[task.task_id] = {"type": type(task).__name__, "image": task.image, "cmds": task.cmds,
        "arguments": task.arguments,
        "env": task.env_vars if isinstance(task.env_vars, dict) else {e.name: e.value for e in task.env_vars},
        "service_account": task.service_account_name,
        "requests": task.container_resources.requests, "upstream": sorted(task.upstream_task_ids),
        "trigger_rule": str(task.trigger_rule)}
print(json.dumps(out))
"""
    env = _airflow_env(
        tmp_path,
        {
            "PIPELINE_DAG_OPERATOR": "kubernetes",
            "PIPELINE_IMAGE": "registry/pipe:abc123",
            "PIPELINE_DAG_ENVIRONMENT": "dev",
        },
    )
    result = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "python"), "-c", code],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tasks = json.loads(result.stdout.strip().splitlines()[-1])

    steps = list(step_names())
    assert list(tasks) == ["start_parent_run", *steps, "end_parent_run"]
    for task in tasks.values():
        assert task["type"] == "KubernetesPodOperator"
        assert task["image"] == "registry/pipe:abc123"
        assert task["cmds"] == ["python", "src/main.py"]
        assert task["service_account"] == "mlflow-pipeline"
        assert "--environment" in task["arguments"] and "dev" in task["arguments"]
        for name, value in task["env"].items():
            assert not any(word in name.upper() for word in ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY")), name
            assert "AKIA" not in str(value)
    assert tasks["train_model"]["arguments"][:2] == ["--step", "train_model"]
    assert "ti.xcom_pull(task_ids='start_parent_run')" in " ".join(tasks["predict"]["arguments"])
    assert tasks["train_model"]["upstream"] == [steps[steps.index("train_model") - 1]]
    assert tasks["end_parent_run"]["trigger_rule"].lower().endswith("all_done")
    assert tasks["train_model"]["requests"]["memory"] == "16Gi"
