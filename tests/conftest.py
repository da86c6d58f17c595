"""The project's fixtures: tiny inline frames for its steps' tests, and an environment that never reaches the
developer's own runs, data or cloud account."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pandas as pd
import pytest
from mlsteps.schema import ColumnSpec, SchemaConfig

from src.data.make_dataset import MakeDataParams

# Variables that would point a test at the developer's own runs, data or cloud account.
_LEAKY_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_S3_ENDPOINT_URL",
    "PIPELINE_TRACKING_URI",
    "PIPELINE_DATA_ROOT",
    "PIPELINE_EXPERIMENT",
    "PIPELINE_CONFIG_DIR",
    "PIPELINE_BUCKET",
    "PIPELINE_AWS_PROFILE",
    "PIPELINE_AWS_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("PIPELINE__"):
            monkeypatch.delenv(name)
    # No credentials from the developer's files, and no instance-metadata calls off this machine.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # Remembered digests and up-to-date states (mlsteps.reuse.local) never go into .pipeline/.
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path_factory.getbasetemp() / "state"))
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
        task="binary",
        labels=["no", "yes"],
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
