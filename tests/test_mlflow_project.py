"""The MLproject file, run for real with `mlflow run .`: in the current environment (`--env-manager local`) and in
a fresh one that MLflow builds with uv from uv.lock (`--env-manager uv`, for machines without conda)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlsteps.config import REPO_ROOT
from mlsteps.discovery import declarations, step_names

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


def test_entry_point_parameters_are_the_options_their_steps_declare() -> None:
    options = {d.name: {flag.lstrip("-").replace("-", "_"): flag for flag in d.options} for d in declarations()}
    every = {dest: flag for declared in options.values() for dest, flag in declared.items()}

    for name, entry in MLPROJECT["entry_points"].items():
        declared = every if name == "main" else options[name]
        parameters = set(entry["parameters"]) - {"environment", "steps"}
        assert parameters <= set(declared), f"MLproject '{name}': {parameters - set(declared)} is no option of it"
        for parameter in parameters:
            assert f"{declared[parameter]} {{{parameter}}}" in entry["command"], (name, parameter)
    # Every option a step declares (but repeatable ones) can be given to its entry point.
    for name, declared in options.items():
        singles = {
            dest
            for dest, flag in declared.items()
            if not _spec(name, flag).get("multiple") and _spec(name, flag).get("type") != "flag"
        }
        assert singles <= set(MLPROJECT["entry_points"][name]["parameters"]), name


def _spec(step: str, flag: str) -> dict:
    return next(d for d in declarations() if d.name == step).options[flag]


def _mlflow_run(
    workspace,
    *args: str,
    env_manager: str = "local",
    extra_env: dict[str, str] | None = None,
    project: Path = REPO_ROOT,
) -> subprocess.CompletedProcess:
    env = scrubbed_env(
        {
            "MLFLOW_TRACKING_URI": workspace.tracking_uri,
            "PIPELINE_DATA_ROOT": str(workspace.data_root),
            # `python` in the MLproject commands (with `local`) and `uv` (with `uv`) come from this environment.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **(extra_env or {}),
        }
    )
    # As a user types `mlflow run`: without the bytecode compilation `make` asks of uv (the Makefile's export).
    env.pop("UV_COMPILE_BYTECODE", None)
    return subprocess.run(
        [sys.executable, "-m", "mlflow", "run", ".", "--env-manager", env_manager, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _package_index_env() -> dict[str, str]:
    """The package index that works here, for uv: its own settings pass through; a pip mirror is handed on."""
    if os.environ.get("PIP_INDEX_URL") and not (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")):
        return {"UV_DEFAULT_INDEX": os.environ["PIP_INDEX_URL"]}
    return {}


def _runtime_pins_for(python: Path, project: Path = REPO_ROOT) -> dict[str, str]:
    """requirements-runtime.lock's pins that apply to ``python`` (markers evaluated for its version)."""
    from packaging.markers import Marker

    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    where = {"python_full_version": version, "python_version": ".".join(version.split(".")[:2])}
    pins = {}
    for line in (project / "requirements-runtime.lock").read_text().splitlines():
        if line and not line.startswith(("#", " ")):
            requirement, _, marker = line.partition(" ; ")
            if not marker or Marker(marker).evaluate(where):
                name, version = requirement.split("==")
                pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
@pytest.mark.long
def test_mlflow_run_nests_steps_under_the_project_run(workspace) -> None:
    from mlflow import MlflowClient

    # `mlflow run` would create the experiment with artifacts under ./mlruns of the repo: give it a place here.
    MlflowClient(workspace.tracking_uri).create_experiment(
        "project-test", artifact_location=(workspace.root / "project-artifacts").as_uri()
    )
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
    first_children = [
        r.data.tags["pipeline.step"] for r in runs if r.data.tags.get("mlflow.parentRunId") == projects[0].info.run_id
    ]
    second_children = [
        r.data.tags["pipeline.step"] for r in runs if r.data.tags.get("mlflow.parentRunId") == projects[1].info.run_id
    ]
    assert first_children == list(STEPS)
    assert second_children == ["train_model"]
    # Nothing changed, so the lone train_model reuses the first one's run instead of training again.
    first_train = next(
        r
        for r in runs
        if r.data.tags.get("pipeline.step") == "train_model"
        and r.data.tags.get("mlflow.parentRunId") == projects[0].info.run_id
    )
    second_train = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == projects[1].info.run_id)
    assert second_train.data.tags["pipeline.reused_from"] == first_train.info.run_id
    assert len(client.search_model_versions("name = 'breast-cancer-local'")) == 1


def _generated_project(root: Path) -> Path:
    """A project made from this repository with the default answers (the example, on the library from git), its
    lock made for its own pyproject.toml as its first `make install` does."""
    import copier

    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
    ).stdout.decode()
    template = root / "template"
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (template / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, template / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "template"]):
        subprocess.run([*git, *command], cwd=template, check=True, capture_output=True, env=_git_env())
    project = root / "project"
    copier.run_copy(str(template), str(project), defaults=True, unsafe=True, quiet=True, vcs_ref="HEAD")
    uv = str(Path(sys.executable).parent / "uv")
    locked = subprocess.run(
        ["make", "--no-print-directory", "lock", f"UV={uv}"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **_package_index_env()},
        timeout=600,
        check=False,
    )
    assert locked.returncode == 0, locked.stderr[-3000:]
    return project


def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.mark.slow
@pytest.mark.long
def test_mlflow_run_with_uv_builds_a_projects_runtime_environment_from_its_lock(workspace) -> None:
    """In a generated project (the library pinned from git): this repository's own lock names the library as a
    workspace folder, which MLflow's copy of the lock cannot reach (docs/running.md)."""
    pytest.importorskip("copier")
    from mlflow import MlflowClient

    project = _generated_project(workspace.root)
    env_root = workspace.root / "mlflow-envs"  # empty: MLflow must build the environment
    # `mlflow run` would create the experiment with artifacts under ./mlruns of the project: give it a place here.
    MlflowClient(workspace.tracking_uri).create_experiment(
        "uv-project", artifact_location=(workspace.root / "uv-artifacts").as_uri()
    )
    result = _mlflow_run(
        workspace,
        "--experiment-name",
        "uv-project",
        env_manager="uv",
        extra_env={"MLFLOW_ENV_ROOT": str(env_root), "PIPELINE_CONFIG_DIR": str(project / "config")},
        project=project,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert "restoring environment with uv sync" in result.stderr
    (env,) = [path for path in env_root.iterdir() if path.name.startswith("mlflow-")]
    freeze = subprocess.run(
        [str(Path(sys.executable).parent / "uv"), "pip", "freeze", "--python", str(env / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    library = [line for line in freeze if line.startswith("mlsteps @ git+file://")]
    installed = {_norm(name): version for name, version in (line.split("==") for line in freeze if "==" in line)}
    # The library from the template's repository, and exactly the runtime packages at their locked versions (those
    # of the template's lock): no test or notebook tools, nothing from this venv.
    assert len(library) == 1 and "subdirectory=packages/mlsteps" in library[0]
    assert installed == _runtime_pins_for(env / "bin" / "python", project) == _runtime_pins_for(env / "bin" / "python")
    assert "pytest" not in installed

    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name("uv-project")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.data.tags["mlflow.project.env"] == "uv"
    children = [
        r.data.tags["pipeline.step"] for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert children == list(STEPS)
    assert all(r.info.status == "FINISHED" for r in runs)
