"""The template's own fixtures (a pytest plugin loaded by the root conftest.py; not part of generated projects): the
example's config for every test, an isolated workspace, real servers and a champion model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT

from tests.helpers import EXAMPLE_CONFIG, EXAMPLE_RAW


def _repo_outputs() -> set[str]:
    """Files under the repo's own run outputs: tests must never add any."""
    found = set()
    for folder in ("mlruns", "mlartifacts", "data", ".pipeline"):
        found |= {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / folder).rglob("*") if p.is_file()}
    found |= {name for name in ("mlflow.db", "mlflow.db.lock") if (REPO_ROOT / name).exists()}
    return found


@pytest.fixture(scope="session", autouse=True)
def _repo_left_as_it_was() -> Iterator[None]:
    before = _repo_outputs()
    yield
    added = sorted(_repo_outputs() - before)
    assert not added, f"tests wrote into the repo's own outputs: {added[:10]}"


@pytest.fixture(autouse=True)
def _example_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The config the tests load is the example's (the repo's own; see tests/helpers.py)."""
    monkeypatch.setattr("mlsteps.config.DEFAULT_CONFIG_DIR", EXAMPLE_CONFIG)


@dataclass
class Workspace:
    """A throwaway data root and tracking store: runs and files go here, never into the repo."""

    root: Path
    data_root: Path
    tracking_uri: str

    def env(self) -> dict[str, str]:
        return {
            "PIPELINE_DATA_ROOT": str(self.data_root),
            "PIPELINE_TRACKING_URI": self.tracking_uri,
            # Up-to-date states and remembered digests (mlsteps.reuse.local) stay in the workspace too.
            "PIPELINE_STATE_DIR": str(self.root / "state"),
            # Drawing MLflow's evaluation plots is most of a training on the example (about 2 s): tests that look
            # at the plots turn them on; the champion fixture, the S3 and copier tests keep the default (on).
            "PIPELINE__GATE__EVALUATION_PLOTS": "false",
        }


@pytest.fixture(scope="session")
def empty_tracking_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite tracking store with MLflow's tables made: a copy saves each test's first command the
    migrations (about a second). A store made from nothing is still tried, by test_smoke and the fixtures below."""
    import mlflow

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_tracking_store: Path) -> Workspace:
    """The example raw dataset copied into a temp data root; a SQLite tracking store (empty) beside it."""
    data_root = tmp_path / "data"
    (data_root / "raw").mkdir(parents=True)
    shutil.copy(EXAMPLE_RAW, data_root / "raw" / "breast_cancer.csv")
    shutil.copy(empty_tracking_store, tmp_path / "mlflow.db")
    ws = Workspace(root=tmp_path, data_root=data_root, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key, value in ws.env().items():
        monkeypatch.setenv(key, value)
    return ws


# -- real servers (session-wide: started once, stopped by PID at the end) ----------------------------------------
@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def s3_server(servers_dir: Path) -> Iterator[str]:
    """The URL of an S3-speaking server (moto_server over HTTP on 127.0.0.1)."""
    from tests.servers import start_s3_server

    server = start_s3_server(servers_dir)
    yield server.url
    server.stop()


TEAM_BUCKET = "team-ml-dev"


@pytest.fixture(scope="session")
def team_server(servers_dir: Path, s3_server: str) -> Iterator[str]:
    """The URL of an MLflow tracking server on PostgreSQL with artifacts proxied to s3://team-ml-dev/mlartifacts."""
    import boto3

    from tests.servers import AWS_TEST_ENV, find_postgres_bin, start_mlflow_server, start_postgres

    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql); .ci/run installs them")
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=AWS_TEST_ENV["AWS_DEFAULT_REGION"],
    )
    s3.create_bucket(Bucket=TEAM_BUCKET)
    postgres = start_postgres(servers_dir)
    try:
        mlflow_server = start_mlflow_server(servers_dir, postgres.url, f"s3://{TEAM_BUCKET}/mlartifacts", s3_server)
    except Exception:
        postgres.stop()
        raise
    yield mlflow_server.url
    mlflow_server.stop()
    postgres.stop()


# -- an in-memory catalog and a throwaway tracking store (fast unit tests of the pipeline) -------------------------
@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite tracking store for the session (creating one costs seconds); each test takes its experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"


@dataclass
class MemoryWorkspace:
    """Data in fsspec's memory filesystem, runs in an experiment of their own."""

    data_root: str
    tracking_uri: str
    experiment: str

    def settings(self, **overrides):
        from mlsteps.config import load_config

        return load_config("local", overrides=overrides or None)

    def write_raw(self, frame: pd.DataFrame, name: str = "raw/breast_cancer.csv") -> None:
        import fsspec

        with fsspec.open(f"{self.data_root}/{name}", "w") as handle:
            frame.to_csv(handle, index=False)


@pytest.fixture
def memory_workspace(tracking_store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryWorkspace]:
    """The example raw data in memory://, a fresh experiment in the session's store; the memory files go after."""
    import uuid

    import fsspec

    tag = uuid.uuid4().hex[:12]
    ws = MemoryWorkspace(f"memory://ws-{tag}/data", tracking_store, f"unit-{tag}")
    monkeypatch.setenv("PIPELINE_DATA_ROOT", ws.data_root)
    monkeypatch.setenv("PIPELINE_TRACKING_URI", ws.tracking_uri)
    monkeypatch.setenv("PIPELINE_EXPERIMENT", ws.experiment)
    # Each test registers its own model, so that champions of other tests never meet.
    monkeypatch.setenv("PIPELINE__CATALOG__MODEL__NAME", f"model-{tag}")
    monkeypatch.setenv("PIPELINE__GATE__EVALUATION_PLOTS", "false")  # as in Workspace.env
    ws.write_raw(pd.read_csv(EXAMPLE_RAW))
    yield ws
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/ws-{tag}"):
        fs.rm(f"/ws-{tag}", recursive=True)


# -- a trained champion, shared by the serving, predict and container tests (training costs seconds) -------------
@dataclass
class Champion:
    """A workspace whose pipeline ran once: version 1 of the model holds @champion."""

    root: Path
    env: dict[str, str]
    predictions: pd.DataFrame  # predict's output on the test split
    features: list[str]


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    from tests.helpers import run_main

    root = tmp_path_factory.mktemp("champion")
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "data" / "raw" / "breast_cancer.csv", root / "data" / "raw" / "breast_cancer.csv")
    env = {
        "PIPELINE_DATA_ROOT": str(root / "data"),
        "PIPELINE_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        # A session fixture runs before the per-test environment is set: its state stays in its own folder.
        "PIPELINE_STATE_DIR": str(root / "state"),
    }
    done = run_main(env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    [predictions] = (root / "data" / "processed" / "predictions").glob("*/predictions.parquet")
    frame = pd.read_parquet(predictions)
    features = [
        c
        for c in pd.read_csv(REPO_ROOT / "data" / "raw" / "breast_cancer.csv", nrows=1).columns
        if c not in ("sample_id", "diagnosis")
    ]
    return Champion(root, env, frame, features)
