"""Shared fixtures: tiny inline frames for unit tests, an isolated workspace for integration tests."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from src.lib.config import REPO_ROOT, ColumnSpec, MakeDataParams, SchemaConfig

# Variables that would point a test at the developer's own runs or data.
_LEAKY_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
              "PIPELINE_TRACKING_URI", "PIPELINE_DATA_ROOT", "PIPELINE_EXPERIMENT", "PIPELINE_CONFIG_DIR")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("PIPELINE__"):
            monkeypatch.delenv(name)
    yield
    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run():
            mlflow.end_run()


@pytest.fixture
def schema() -> SchemaConfig:
    """A small schema: two numeric features, one categorical, an id and a string target."""
    return SchemaConfig(
        id_column="id",
        target="outcome",
        positive_class="yes",
        columns={
            "age": ColumnSpec(type="float", min=0, max=130),
            "visits": ColumnSpec(type="int", min=0),
            "plan": ColumnSpec(type="category", allowed=["basic", "plus", "pro"]),
        },
    )


@pytest.fixture
def make_params() -> MakeDataParams:
    return MakeDataParams(drop_duplicates=True, max_null_fraction=0.5)


@pytest.fixture
def dummy_raw() -> pd.DataFrame:
    """Twelve raw rows, balanced classes, no problems."""
    return pd.DataFrame(
        {
            "id": list(range(1, 13)),
            "age": [23.0, 35.5, 41.0, 52.0, 29.0, 61.0, 33.0, 47.0, 38.0, 56.0, 25.0, 44.0],
            "visits": [1, 4, 2, 7, 0, 3, 5, 2, 6, 1, 3, 4],
            "plan": ["basic", "plus", "pro", "basic", "plus", "pro", "basic", "plus", "pro", "basic", "plus", "pro"],
            "outcome": ["yes", "no"] * 6,
        }
    )


@dataclass
class Workspace:
    """A throwaway data root and tracking store: runs and files go here, never into the repo."""

    root: Path
    data_root: Path
    tracking_uri: str

    def env(self) -> dict[str, str]:
        return {"PIPELINE_DATA_ROOT": str(self.data_root), "PIPELINE_TRACKING_URI": self.tracking_uri}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The example raw dataset copied into a temp data root; a SQLite tracking store beside it."""
    data_root = tmp_path / "data"
    (data_root / "raw").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "data" / "raw" / "breast_cancer.csv", data_root / "raw" / "breast_cancer.csv")
    ws = Workspace(root=tmp_path, data_root=data_root, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key, value in ws.env().items():
        monkeypatch.setenv(key, value)
    return ws
