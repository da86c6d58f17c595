"""`make clean` removes exactly what it says: the local runs and what the pipeline wrote, never data/raw."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from src.lib.config import REPO_ROOT

OUTPUTS = ["mlflow.db", "mlflow.db.lock", "mlruns/1/abc/artifacts/model.pkl", "data/interim/r1/clean.parquet",
           "data/processed/r2/train.parquet", "data/processed/predictions/r3/predictions.parquet",
           "data/snapshots/0123abcd.parquet"]
KEPT = ["data/raw/breast_cancer.csv", "data/raw/README.md", "data/interim/.gitkeep", "data/processed/.gitkeep",
        "data/snapshots/.gitkeep", "config/base.yaml"]


def test_make_clean_removes_run_outputs_and_keeps_the_raw_data(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for name in OUTPUTS + KEPT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    done = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert [name for name in OUTPUTS if (tmp_path / name).exists()] == []
    assert [name for name in KEPT if not (tmp_path / name).exists()] == []
    assert sorted(p.name for p in (tmp_path / "data" / "processed").iterdir()) == [".gitkeep"]
