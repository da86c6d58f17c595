"""The Makefile: the environment set-up (uv sync from the lock, the package index handed on to uv), and
`make clean` removing exactly what it says.

`make` runs here with a stand-in for uv that records how it was called (a real `uv sync` would rebuild the
environment running these tests); the real set-up is what `make setup` and CI do.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT


@pytest.fixture
def fake_uv(tmp_path: Path) -> tuple[Path, Path]:
    """A uv that records its arguments and the index settings it was given, and succeeds."""
    record = tmp_path / "calls.txt"
    uv = tmp_path / "uv"
    uv.write_text(
        "#!/bin/sh\n"
        f'printf "%s | default=%s index=%s project=%s\\n" "$*" "$UV_DEFAULT_INDEX" "$UV_INDEX_URL" '
        f'"$UV_PROJECT_ENVIRONMENT" >> {record}\n'
    )
    uv.chmod(uv.stat().st_mode | stat.S_IEXEC)
    return uv, record


def _make(target: str, uv: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "UV_", "PIP_INDEX_URL"))}
    return subprocess.run(
        ["make", target, f"UV={uv}"],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_syncs_the_venv_from_the_lock_then_checks_it(fake_uv) -> None:
    uv, record = fake_uv

    result = _make("install", uv, {})

    assert result.returncode == 0, result.stderr
    lock, sync, check = record.read_text().splitlines()
    # The lock still fits pyproject.toml (this uv says so): nothing is locked again.
    assert lock.startswith("lock --check --quiet")
    assert sync.startswith("sync --locked") and sync.endswith("project=.venv")
    assert check.startswith("pip check --python .venv/bin/python")
    assert "installing uv" not in result.stdout  # a uv was given: nothing is bootstrapped


def test_with_a_pip_mirror_uv_installs_the_exported_pins_from_it(fake_uv) -> None:
    uv, record = fake_uv

    result = _make("install", uv, {"PIP_INDEX_URL": "https://mirror.example/simple"})

    assert result.returncode == 0, result.stderr
    # uv.lock names PyPI's files: from a mirror, the same pins come through requirements.lock.
    # Without a .venv yet (a project just generated), `uv venv` makes it first.
    calls = [c for c in record.read_text().splitlines() if not c.startswith(("venv ", "lock --check"))]
    assert calls[0] == (
        "pip sync --python .venv/bin/python requirements.lock | default=https://mirror.example/simple index= project="
    )
    assert calls[1].startswith("pip check --python .venv/bin/python")
    assert "package index https://mirror.example/simple: installing the pins of requirements.lock" in result.stdout


def test_uv_s_own_index_setting_wins_over_pip_s(fake_uv) -> None:
    uv, record = fake_uv

    result = _make(
        "install",
        uv,
        {"PIP_INDEX_URL": "https://pip-mirror.example/simple", "UV_INDEX_URL": "https://uv-mirror.example/simple"},
    )

    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines()[0].endswith("| default= index=https://uv-mirror.example/simple project=")


OUTPUTS = [
    "mlflow.db",
    "mlflow.db.lock",
    "mlruns/1/abc/artifacts/model.pkl",
    "data/interim/r1/clean.parquet",
    "data/processed/r2/train.parquet",
    "data/processed/predictions/r3/predictions.parquet",
    "data/snapshots/0123abcd.parquet",
]
KEPT = [
    "data/raw/breast_cancer.csv",
    "data/raw/README.md",
    "data/interim/.gitkeep",
    "data/processed/.gitkeep",
    "data/snapshots/.gitkeep",
    "config/base.yaml",
]


def test_make_clean_removes_run_outputs_and_keeps_the_raw_data(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for name in OUTPUTS + KEPT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    done = subprocess.run(["make", "clean"], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert [name for name in OUTPUTS if (tmp_path / name).exists()] == []
    assert [name for name in KEPT if not (tmp_path / name).exists()] == []
    assert sorted(p.name for p in (tmp_path / "data" / "processed").iterdir()) == [".gitkeep"]


def test_make_test_lints_formats_and_type_checks_before_the_tests(fake_uv) -> None:
    uv, _ = fake_uv

    result = subprocess.run(
        ["make", "--dry-run", "test", f"UV={uv}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    commands = result.stdout.splitlines()
    order = [
        next(i for i, line in enumerate(commands) if tail in line)
        for tail in ("ruff check .", "ruff format --check .", "bin/mypy", "-m pytest -n auto")
    ]
    assert order == sorted(order), commands
