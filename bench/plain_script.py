"""The same work as the pipeline, as one plain script: no tracking, no structure, no validation framework.

Reads the raw CSV, cleans it, splits it, fits the same scikit-learn Pipeline, computes the same holdout metrics
and plots (confusion matrix, ROC, precision-recall, calibration), scores the holdout, and writes the same
outputs (clean data, train/test splits, model, metrics, plots, predictions). It is the baseline the benchmark
compares the pipeline with.

    python bench/plain_script.py CONFIG_DIR DATA_ROOT OUT_DIR
"""

from __future__ import annotations

import json
import pickle
import sys
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from script_model import build_model, model_input  # bench/script_model.py, beside this script
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split

config_dir, data_root, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
cfg = yaml.safe_load((config_dir / "base.yaml").read_text())
schema = cfg["schema"]
numeric = [c for c, s in schema["columns"].items() if s["type"] in ("float", "int", "bool")]
categorical = [c for c, s in schema["columns"].items() if s["type"] in ("category", "string")]

raw = pd.read_csv(data_root / cfg["catalog"]["raw"]["path"])
clean = raw.dropna(subset=[schema["target"]]).drop_duplicates().reset_index(drop=True)
clean.to_parquet(out / "clean.parquet", index=False)

label = (clean[schema["target"]].astype(str) == str(schema["positive_class"])).astype("int64")
keep = ([schema["id_column"]] if schema["id_column"] else []) + numeric + categorical
features = clean[keep].assign(label=label.to_numpy())
train, test = train_test_split(
    features, test_size=cfg["feat_data"]["test_size"], random_state=cfg["feat_data"]["seed"], stratify=features["label"]
)
train.to_parquet(out / "train.parquet", index=False)
test.to_parquet(out / "test.parquet", index=False)


def X(df: pd.DataFrame) -> pd.DataFrame:
    return model_input(df, numeric, categorical)


model = build_model(cfg, numeric, categorical)
model.fit(X(train), train["label"])
(out / "model.pkl").write_bytes(pickle.dumps(model))

X_test, y_test = X(test), test["label"].to_numpy()
proba = model.predict_proba(X_test)[:, 1]
pred = (proba >= 0.5).astype(int)
metrics = {
    "roc_auc": roc_auc_score(y_test, proba),
    "f1_score": f1_score(y_test, pred),
    "accuracy_score": accuracy_score(y_test, pred),
    "precision_score": precision_score(y_test, pred),
    "recall_score": recall_score(y_test, pred),
    "log_loss": log_loss(y_test, proba),
}
(out / "metrics.json").write_text(json.dumps(metrics, indent=2))
for name, draw in (
    ("confusion_matrix", lambda ax: ConfusionMatrixDisplay.from_predictions(y_test, pred, ax=ax)),
    ("roc_curve", lambda ax: RocCurveDisplay.from_predictions(y_test, proba, ax=ax)),
    ("precision_recall", lambda ax: PrecisionRecallDisplay.from_predictions(y_test, proba, ax=ax)),
    ("calibration", lambda ax: CalibrationDisplay.from_predictions(y_test, proba, ax=ax)),
):
    fig, ax = plt.subplots()
    draw(ax)
    fig.savefig(out / f"{name}.png")
    plt.close(fig)

scored = test.assign(prediction=model.predict(X_test), probability=proba, scored_at=datetime.now(UTC))
scored.to_parquet(out / "predictions.parquet", index=False)
print(json.dumps({k: round(float(v), 4) for k, v in metrics.items()}))
_ = np  # numpy is imported for parity with what the pipeline loads
