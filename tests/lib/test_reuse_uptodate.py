"""The up-to-date shortcut: a state holds while the fingerprint and every watched file's stat are unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlsteps.reuse import local as uptodate


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A config folder, a data file, an output folder and a SQLite file, all in a temp folder."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "base.yaml").write_text("project: demo\n")
    raw = tmp_path / "raw.csv"
    raw.write_text("a,b\n1,2\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-0.parquet").write_bytes(b"0")
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"db")
    monkeypatch.setenv("PIPELINE_CONFIG_DIR", str(config))
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    return {"config": config, "raw": raw, "out": out, "db": database}


OPTIONS = {"steps": "all", "seed": None}


def _record(project: dict[str, Path], *uris: str, tracking: str | None = None) -> str:
    current = uptodate.fingerprint("local", OPTIONS)
    uris = uris or (str(project["raw"]), str(project["out"]), "models:/demo-local@champion")
    written = uptodate.record(
        "local", current, tracking or f"sqlite:///{project['db']}", uris, "parent1", ["  = make_data  run r1"]
    )
    assert written
    return current


def _later(path: Path) -> None:
    """Touch a file so that its mtime surely differs (same content)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_an_unchanged_project_is_up_to_date(project) -> None:
    current = _record(project)

    state = uptodate.check("local", uptodate.fingerprint("local", OPTIONS))

    assert state == uptodate.UpToDate("parent1", ["  = make_data  run r1"])
    assert uptodate.fingerprint("local", OPTIONS) == current


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: _later(p["raw"]), id="an input's mtime"),
        pytest.param(lambda p: p["raw"].write_text("a,b\n1,3\n"), id="an input's content"),
        pytest.param(lambda p: p["raw"].unlink(), id="an input deleted"),
        pytest.param(lambda p: (p["out"] / "part-0.parquet").unlink(), id="an output inside a folder deleted"),
        pytest.param(lambda p: (p["out"] / "part-1.parquet").write_bytes(b"1"), id="a file added to an output"),
        pytest.param(lambda p: p["db"].write_bytes(b"db2"), id="the tracking store written"),
        pytest.param(lambda p: Path(str(p["db"]) + "-wal").write_bytes(b"w"), id="a SQLite WAL appeared"),
    ],
)
def test_any_watched_file_change_sends_the_run_through_mlflow(project, change) -> None:
    current = _record(project)

    change(project)

    assert uptodate.check("local", current) is None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p, mp: (p["config"] / "local.yaml").write_text("x: 1\n"), id="a config file added"),
        pytest.param(lambda p, mp: (p["config"] / "base.yaml").write_text("project: other\n"), id="config edited"),
        pytest.param(lambda p, mp: mp.setenv("PIPELINE_SEED", "3"), id="a PIPELINE_ variable"),
        pytest.param(lambda p, mp: mp.setenv("AWS_PROFILE", "team"), id="an AWS_ variable"),
        pytest.param(lambda p, mp: mp.chdir(p["out"]), id="the working directory"),
    ],
)
def test_the_fingerprint_covers_config_environment_and_working_directory(project, monkeypatch, change) -> None:
    before = _record(project)

    change(project, monkeypatch)

    assert uptodate.fingerprint("local", OPTIONS) != before
    assert uptodate.check("local", uptodate.fingerprint("local", OPTIONS)) is None


@pytest.mark.parametrize("name", ["MLFLOW_DISABLE_TELEMETRY", "MLFLOW_LOGGING_LEVEL"])
def test_variables_that_cannot_change_a_result_are_not_in_the_fingerprint(project, monkeypatch, name) -> None:
    monkeypatch.delenv(name, raising=False)
    before = _record(project)

    monkeypatch.setenv(name, "true")

    assert uptodate.fingerprint("local", OPTIONS) == before
    assert uptodate.check("local", before) is not None


def test_the_fingerprint_covers_the_options_and_the_environment_name(project) -> None:
    base = uptodate.fingerprint("local", OPTIONS)

    assert uptodate.fingerprint("local", {**OPTIONS, "seed": 7}) != base
    assert uptodate.fingerprint("local", {**OPTIONS, "steps": "predict"}) != base
    assert uptodate.fingerprint("dev", OPTIONS) != base


def test_the_fingerprint_covers_the_code_under_src(project, monkeypatch, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "step.py").write_text("x = 1\n")
    monkeypatch.setattr(uptodate, "REPO_ROOT", repo)
    before = uptodate.fingerprint("local", OPTIONS)

    (repo / "src" / "step.py").write_text("x = 2\n")

    assert uptodate.fingerprint("local", OPTIONS) != before


def test_under_mlflow_run_it_never_applies(project, monkeypatch) -> None:
    current = _record(project)
    monkeypatch.setenv("MLFLOW_RUN_ID", "abc")

    assert not uptodate.applies()
    assert uptodate.check("local", current) is None


@pytest.mark.parametrize(
    ("tracking", "uri"),
    [
        pytest.param("http://127.0.0.1:5000", None, id="a tracking server"),
        pytest.param("postgresql://db/mlflow", None, id="a SQL database"),
        pytest.param(None, "s3://bucket/raw.csv", id="an S3 dataset"),
        pytest.param(None, "memory://raw.csv", id="a memory dataset"),
    ],
)
def test_nothing_is_kept_unless_everything_is_a_local_file(project, tracking, uri) -> None:
    _record(project)  # a state from a local set-up
    current = uptodate.fingerprint("local", OPTIONS)

    written = uptodate.record(
        "local", current, tracking or f"sqlite:///{project['db']}", [uri or str(project["raw"])], "parent2", []
    )

    assert not written
    assert uptodate.check("local", current) is None  # the earlier state is gone too


def test_a_broken_state_file_is_ignored(project) -> None:
    current = _record(project)
    state = Path(os.environ["PIPELINE_STATE_DIR"]) / "uptodate-local.json"

    state.write_text("{not json")

    assert uptodate.check("local", current) is None
