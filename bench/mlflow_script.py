"""The pipeline's MLflow work as one unstructured script: the honest anchor for the pipeline's fixed cost.

Everything ``bench/plain_script.py`` does (read, clean, split, fit the same scikit-learn Pipeline, score the
holdout, write the same files), plus the MLflow work the pipeline does, in one run with no structure: parameters,
the training and evaluation datasets as run inputs, the model logged with its signature, input example and pinned
requirements (skops, as the pipeline logs it), ``mlflow.models.evaluate`` on the holdout with its plots, the
version registered and given the champion alias, and the model loaded back through the alias to score the
holdout. No validation framework, no cache keys, no gate baselines, no nested runs.

    python bench/mlflow_script.py CONFIG_DIR DATA_ROOT OUT_DIR    # MLFLOW_TRACKING_URI says where runs go
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
import yaml
from mlflow.models import infer_signature
from script_model import build_model, model_input  # bench/script_model.py, beside this script
from sklearn.model_selection import train_test_split

config_dir, data_root, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
cfg = yaml.safe_load((config_dir / "base.yaml").read_text())
schema = cfg["schema"]
target = schema["target"]
numeric = [c for c, s in schema["columns"].items() if s["type"] in ("float", "int", "bool")]
categorical = [c for c, s in schema["columns"].items() if s["type"] in ("category", "string")]
name = "mlflow-script"
mlflow.set_experiment(name)

with mlflow.start_run():
    raw_path = data_root / cfg["catalog"]["raw"]["path"]
    raw = pd.read_csv(raw_path)
    clean = raw.dropna(subset=[target]).drop_duplicates().reset_index(drop=True)
    clean[target] = clean[target].astype(str)
    clean.to_parquet(out / "clean.parquet", index=False)
    keep = ([schema["id_column"]] if schema["id_column"] else []) + numeric + categorical + [target]
    train, test = train_test_split(
        clean[keep],
        test_size=cfg["feat_data"]["test_size"],
        random_state=cfg["feat_data"]["seed"],
        stratify=clean[target],
    )
    train.to_parquet(out / "train.parquet", index=False)
    test.to_parquet(out / "test.parquet", index=False)

    def X(df: pd.DataFrame) -> pd.DataFrame:
        return model_input(df, numeric, categorical)

    model = build_model(cfg, numeric, categorical)
    params = cfg["train_model"]["estimators"]["logistic_regression"]["params"]
    mlflow.log_params({**params, "test_size": cfg["feat_data"]["test_size"], "seed": cfg["feat_data"]["seed"]})
    mlflow.log_input(mlflow.data.from_pandas(train, source=str(raw_path), name="train", targets=target), "training")
    model.fit(X(train), train[target])

    example = X(train).head(5)
    requirements = [f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")]
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        pip_requirements=requirements,
        skops_trusted_types=list(skops.io.get_untrusted_types(data=skops.io.dumps(model))),
    )
    holdout = mlflow.data.from_pandas(X(test).assign(**{target: test[target].to_numpy()}), name="test", targets=target)
    mlflow.log_input(holdout, "evaluation")
    config = {"log_model_explainability": False, "label_list": list(schema["labels"])}
    if schema["task"] == "binary":
        config["pos_label"] = schema["positive_class"]
    mlflow.models.evaluate(
        model=info.model_uri,
        data=holdout,
        model_type="classifier",
        evaluators=["default"],
        evaluator_config={"default": config},
    )
    registered = mlflow.register_model(info.model_uri, name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", registered.version)

    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    scored = test.assign(prediction=champion.predict(X(test)), scored_at=datetime.now(UTC))
    scored.to_parquet(out / "predictions.parquet", index=False)
    mlflow.log_metric("rows_scored", len(scored))
