"""The model both baseline scripts fit (bench/plain_script.py and bench/mlflow_script.py): the pipeline's default
model for a classifier, written out plainly: median imputing and scaling of the numeric columns, most-frequent
imputing and one-hot encoding of the others, into a float32 matrix (train_model.matrix_dtype: auto), then a
logistic regression with the config's parameters and seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils import check_array


def model_input(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The model's columns: numeric ones as float64, the others as objects."""
    return df[numeric + categorical].astype({c: "float64" for c in numeric} | {c: "object" for c in categorical})


def build_model(cfg: dict[str, Any], numeric: list[str], categorical: list[str]) -> Pipeline:
    cast = FunctionTransformer(
        check_array, kw_args={"dtype": "float32", "ensure_all_finite": False}, feature_names_out="one-to-one"
    )
    scale = make_pipeline(cast, SimpleImputer(strategy="median", copy=False), StandardScaler(copy=False))
    transformers = [("numeric", scale, numeric)]
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", min_frequency=5, dtype=np.float32)
        transformers.append(
            ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), categorical)
        )
    params = cfg["train_model"]["estimators"]["logistic_regression"]["params"]
    estimator = LogisticRegression(random_state=cfg["train_model"]["seed"], **params)
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("estimator", estimator)])
