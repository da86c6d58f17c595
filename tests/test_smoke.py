"""The whole pipeline on the project's own config and raw data, once, into a temporary data root and tracking store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.discovery import step_names
from mlsteps.pipeline import run_pipeline

CONFIG = REPO_ROOT / "config"


@pytest.mark.slow
def test_every_step_runs_on_the_projects_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_config("local", config_dir=CONFIG, env={})
    raw = settings.location("raw")
    if raw is None or "://" in raw:
        pytest.skip(f"the raw data is not a local file ({raw})")
    if Path(raw).is_relative_to(settings.data.root):  # else it is read where it is (nothing is written there)
        copy = tmp_path / "data" / Path(raw).relative_to(settings.data.root)
        copy.parent.mkdir(parents=True)
        shutil.copy(raw, copy)
    monkeypatch.setenv("PIPELINE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("PIPELINE_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))

    result = run_pipeline(load_config("local", config_dir=CONFIG), list(step_names()))

    assert [s.step for s in result.steps] == list(step_names())
    predictions = pd.read_parquet(result.step("predict").outputs["predictions"])
    assert len(predictions) > 0 and predictions["prediction"].notna().all()
