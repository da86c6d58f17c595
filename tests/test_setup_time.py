"""The set-up benchmark's parts that decide what is measured: the fresh copy, the environment, the table.

A real run downloads every package twice per path (`make bench-setup`, minutes): it is not part of the suite.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT

from bench import setup_time


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_fresh_copy_has_what_a_clone_has(tmp_path: Path) -> None:
    repo, dest = tmp_path / "repo", tmp_path / "copy"
    repo.mkdir()
    dest.mkdir()
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text(".venv/\n.tools/\nmlflow.db\n")
    for name in ("Makefile", "src/main.py", "gone.txt", "new.py", ".venv/bin/python", ".tools/bin/uv", "mlflow.db"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(name)
    _git(repo, "add", ".gitignore", "Makefile", "src/main.py", "gone.txt")
    (repo / "gone.txt").unlink()  # deleted in the work tree: a clone of the work tree would not have it

    setup_time.fresh_copy(dest, source=repo)

    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == [".gitignore", "Makefile", "new.py", "src/main.py"]
    assert (dest / "src" / "main.py").read_text() == "src/main.py"


def test_environment_keeps_the_index_and_drops_caches_and_venvs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PIP_CACHE_DIR", "/somewhere/pip")
    monkeypatch.setenv("UV_CACHE_DIR", "/somewhere/uv")
    monkeypatch.setenv("VIRTUAL_ENV", str(REPO_ROOT / ".venv"))
    monkeypatch.setenv("PATH", f"{REPO_ROOT / '.venv' / 'bin'}:/usr/bin")

    env = setup_time.base_env("isolated")

    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert not {"PIP_CACHE_DIR", "UV_CACHE_DIR", "VIRTUAL_ENV"} & set(env)
    assert env["PATH"] == "/usr/bin"
    assert env["PIP_CONFIG_FILE"] == setup_time.os.devnull
    assert "PIP_CONFIG_FILE" not in setup_time.base_env("inherit")


def test_table_reports_both_paths_and_their_ratio() -> None:
    results = {
        "uv": {
            "cold": {"bootstrap": 5.0, "sync": 15.0, "total": 20.0},
            "warm": {"bootstrap": 4.0, "sync": 1.0, "total": 5.0},
            "cache": {"mib": 990.0},
        },
        "pip": {"cold": {"total": 80.0}, "warm": {"total": 50.0}, "cache": {"mib": 400.0}},
    }

    text = setup_time.render(results, ["## header"])

    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| path")
    }
    assert rows["uv: `make install` (no uv on PATH)"] == ["20.0", "5.0"]
    assert rows["- of which `uv sync` + `uv pip check`"] == ["15.0", "1.0"]
    assert rows["pip: `python -m venv` + `pip install -r requirements.lock`"] == ["80.0", "50.0"]
    assert rows["pip / uv"] == ["4.0x", "10.0x"]
    assert text.endswith("uv 990 MiB, pip 400 MiB")
    results["pip"]["cache"]["mib"] = 0.0
    assert "pip cached nothing" in setup_time.render(results, ["## header"])
