"""Synthetic tabular data for the benchmarks: ~20 columns of mixed types, a binary target, and its config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

N_FLOAT, N_INT, N_CAT = 14, 3, 3
LEVELS = [f"level_{i}" for i in range(8)]


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows: an id, 14 float, 3 int and 3 categorical features (1% missing floats), a yes/no target."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {"row_id": np.arange(1, rows + 1)}
    signal = np.zeros(rows)
    for i in range(N_FLOAT):
        values = rng.normal(loc=i, scale=1 + i / 10, size=rows)
        signal += values * rng.normal() / (1 + i / 10)
        values[rng.random(rows) < 0.01] = np.nan
        data[f"f{i}"] = values
    for i in range(N_INT):
        values = rng.poisson(lam=3 + i, size=rows)
        signal += 0.3 * values
        data[f"n{i}"] = values
    for i in range(N_CAT):
        codes = rng.integers(0, len(LEVELS), size=rows)
        signal += (codes % 3 - 1) * 0.5
        data[f"c{i}"] = np.asarray(LEVELS, dtype=object)[codes]
    logits = (signal - signal.mean()) / signal.std() * 1.5
    data["outcome"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logits)), "yes", "no")
    return pd.DataFrame(data)


def write_config(base_yaml: Path, folder: Path, raw_name: str) -> Path:
    """A config folder for the synthetic data: the repo's base.yaml with its data and schema sections replaced."""
    config = yaml.safe_load(base_yaml.read_text())
    config["catalog"]["raw"]["path"] = f"raw/{raw_name}"
    columns = {f"f{i}": {"type": "float"} for i in range(N_FLOAT)}
    columns |= {f"n{i}": {"type": "int", "min": 0} for i in range(N_INT)}
    columns |= {f"c{i}": {"type": "category", "allowed": LEVELS} for i in range(N_CAT)}
    config["schema"] = {
        "id_column": "row_id",
        "target": "outcome",
        "task": "binary",
        "labels": ["no", "yes"],
        "positive_class": "yes",
        "columns": columns,
    }
    config["catalog"]["model"]["name"] = "synthetic-classifier"
    # The synthetic signal is learnable but noisy: a gate tuned for the example data would reject everything.
    config["gate"]["thresholds"] = {"roc_auc": 0.6}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "local.yaml").write_text("tracking:\n  experiment: synthetic-bench\n")
    return folder
