"""The repository as a Copier template: its default answers render this very example, file for file; projects made
from data of their own (one per task type) run to a champion and pass their fast tests; `copier update` brings a
template change into a made project, which still runs. Not part of generated projects (copier.yml excludes it).

Copier must be importable (a dev dependency in pyproject.toml); without it these tests are skipped.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlsteps.config import REPO_ROOT

from tests.helpers import scrubbed_env

copier = pytest.importorskip(
    "copier",
    reason="Copier is not installed here: add it with the dev dependencies "
    "(the dev group of pyproject.toml) to run the template's tests",
)

# Files of the template that are not files of a project: the template's machinery (the library mlsteps, installed by
# a project), its own tests, benchmarks, docs and lock.
TEMPLATE_ONLY = ("copier.yml", ".copier/", "packages/", "bench/", "docs/", "conftest.py")
# The template's tests a project keeps: its steps', its contract, the smoke run, the check of its workflows (and
# their package files).
PROJECT_TESTS = {
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_project_contract.py",
    "tests/test_smoke.py",
    "tests/test_lib.py",
    "tests/test_workflows.py",
    "tests/data/__init__.py",
    "tests/data/test_make_dataset.py",
    "tests/features/__init__.py",
    "tests/features/test_build_features.py",
    "tests/models/__init__.py",
    "tests/models/test_train_model.py",
}


def _template_only(name: str) -> bool:
    return name.startswith(TEMPLATE_ONLY) or (name.startswith("tests/") and name not in PROJECT_TESTS)


def _python_lines(root: Path) -> int:
    """Lines of Python of a project's own (its virtualenvs left out)."""
    return sum(
        len(p.read_text().splitlines())
        for p in root.rglob("*.py")
        if not {".venv", ".airflow-venv", ".tools"} & set(p.relative_to(root).parts)
    )


GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args],
        check=False,
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _commit_all(cwd: Path, message: str, tag: str | None = None) -> None:
    _git(cwd, "add", "-A")
    _git(cwd, "commit", "-q", "-m", message)
    if tag:
        _git(cwd, "tag", tag)


def _files(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under root (but .git): its bytes and whether it is executable."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), os.access(p, os.X_OK))
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as a user gets it: the repo's files (tracked, and new ones not ignored) in a git repo of their
    own, tagged 1.0.0."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
    )
    if listed.returncode != 0:
        pytest.skip("the template's tests need its git checkout")
    root = tmp_path_factory.mktemp("template")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    _git(root, "init", "-q", "-b", "main")
    _commit_all(root, "the template", tag="1.0.0")
    return root


def _copy(template: Path, dst: Path, **answers: str) -> Path:
    copier.run_copy(str(template), str(dst), data=answers, defaults=True, unsafe=True, quiet=True)
    return dst


def test_the_default_answers_render_the_example_file_for_file(template: Path, tmp_path: Path) -> None:
    project = _copy(template, tmp_path / "example")

    rendered = _files(project)
    answers = yaml.safe_load(rendered.pop(".copier-answers.yml")[0])
    expected = {
        name: content
        for name, content in _files(template).items()
        if not name.endswith(".jinja") and not _template_only(name)
    }
    rendered_pyproject = rendered.pop("pyproject.toml")[0].decode()
    expected.pop("pyproject.toml")
    # A project's README.md is its own short guide (README.md.jinja), not the template's README.md.
    rendered.pop("README.md")
    expected.pop("README.md")
    assert sorted(rendered) == sorted(expected)
    assert [name for name in expected if rendered[name] != expected[name]] == []
    assert answers["_commit"] == "1.0.0" and answers["project_name"] == "breast-cancer"
    # The project installs the library from the template's repository, at the commit it was made from.
    commit = _git(template, "rev-parse", "HEAD").strip()
    assert f'git = "file://{template}", subdirectory = "packages/mlsteps", rev = "{commit}"' in rendered_pyproject


def _champion(project: Path, name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    return str(client.get_model_version_by_alias(f"{name}-local", "champion").version)


def _run(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """A command in the made project, as its user runs it (its own config and data, local tracking)."""
    env = scrubbed_env()
    env.pop("PIPELINE_CONFIG_DIR")
    return subprocess.run(
        [sys.executable, *args], check=False, cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )


def _tumours(folder: Path) -> Path:
    """Binary: scikit-learn's breast cancer data with a Yes/No target and an id column, as CSV."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["malignant"] = frame.pop("target").map({0: "Yes", 1: "No"})
    frame.insert(0, "patient", range(1000, 1000 + len(frame)))
    frame.to_csv(folder / "tumours.csv", index=False)
    return folder / "tumours.csv"


def _flowers(folder: Path) -> Path:
    """Multiclass: iris, with the species names, as CSV."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = frame.pop("target").map(dict(enumerate(data.target_names)))
    frame.to_csv(folder / "flowers.csv", index=False)
    return folder / "flowers.csv"


def _progression(folder: Path) -> Path:
    """Regression: diabetes progression (unscaled), as Parquet."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    frame.to_parquet(folder / "progression.parquet", index=False)
    return folder / "progression.parquet"


CASES = {
    "binary": (_tumours, {"target": "malignant", "task": "binary", "id_column": "patient"}),
    "multiclass": (_flowers, {"target": "species", "task": "auto"}),
    "regression": (_progression, {"target": "progression", "task": "regression"}),
}


def _steps_handle(task: str) -> bool:
    """Whether this version of the steps takes the task (the schema says; binary only before issue 14's task types)."""
    from mlsteps.schema import SchemaConfig

    labels = {
        "binary": {"labels": ["a", "b"], "positive_class": "a"},
        "multiclass": {"labels": ["a", "b", "c"]},
        "regression": {},
    }[task]
    try:
        SchemaConfig(target="y", task=task, columns={"x": {"type": "float"}}, **labels)
    except ValueError:
        return False
    return True


def _make_project(template: Path, folder: Path, task: str) -> tuple[Path, str]:
    make_data, answers = CASES[task]
    data = make_data(folder)
    name = f"made-{task}"
    project = _copy(template, folder / name, data_file=str(data), project_name=name, **answers)
    return project, name


@pytest.mark.slow
@pytest.mark.parametrize("task", list(CASES))
@pytest.mark.long
def test_a_project_made_from_own_data_runs_to_a_champion_and_passes_its_fast_tests(
    template: Path, tmp_path: Path, task: str
) -> None:
    if not _steps_handle(task):
        pytest.skip(f"this version of the steps trains binary classifiers only (mlsteps.schema): no {task}")
    project, name = _make_project(template, tmp_path, task)

    contract = _run(project, "src/main.py", "init", "--if-missing")  # what `make setup` runs first
    pipeline = _run(project, "src/main.py")
    tests = _run(project, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider")

    assert contract.returncode == 0, contract.stderr
    assert pipeline.returncode == 0, pipeline.stderr
    assert _champion(project, name) == "1"
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1]
    config = yaml.safe_load((project / "config" / "base.yaml").read_text())
    assert config["schema"]["task"] == task and config["schema"]["target"] == CASES[task][1]["target"]
    assert config["catalog"]["raw"]["path"] == f"raw/{CASES[task][0](tmp_path).name}"
    assert not (project / "data" / "raw" / "breast_cancer.csv").exists()
    # The project holds its own code: no library, none of the template's tests, and little Python.
    assert not (project / "packages").exists() and not (project / "tests" / "lib").exists()
    assert _python_lines(project) <= 1500


@pytest.mark.slow
@pytest.mark.long
def test_copier_update_brings_a_template_change_into_a_made_project_that_still_runs(
    template: Path, tmp_path: Path
) -> None:
    source = tmp_path / "template"
    shutil.copytree(template, source)
    project, name = _make_project(source, tmp_path, "binary")
    assert _run(project, "src/main.py", "init", "--if-missing").returncode == 0
    _git(project, "init", "-q", "-b", "main")
    _commit_all(project, "made from the template, contract inferred")
    base = source / "config" / "base.yaml"
    base.write_text(base.read_text().replace("  test_size: 0.2\n", "  test_size: 0.25\n"))
    _commit_all(source, "hold out a quarter", tag="1.1.0")

    copier.run_update(str(project), defaults=True, unsafe=True, overwrite=True, quiet=True)
    pipeline = _run(project, "src/main.py")

    config = yaml.safe_load((project / "config" / "base.yaml").read_text())
    assert config["feat_data"]["test_size"] == 0.25
    assert config["schema"]["target"] == "malignant" and len(config["schema"]["columns"]) == 30
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "1.1.0"
    assert pipeline.returncode == 0, pipeline.stderr
    assert _champion(project, name) == "1"
    held_out = pd.read_parquet(next((project / "data" / "processed").glob("*/test.parquet")))
    assert len(held_out) == math.ceil(569 * 0.25)  # scikit-learn rounds the test share up
