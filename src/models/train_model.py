"""train_model transforms: train DataFrame in, fitted scikit-learn Pipeline out. No I/O, no tracking."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pandas as pd

from src.features.build_features import LABEL
from src.lib.config import SchemaConfig, TrainModelParams
from src.lib.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


def _estimator_class(name: str) -> type:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logistic_regression": LogisticRegression,
        "random_forest": RandomForestClassifier,
        "gradient_boosting": HistGradientBoostingClassifier,
    }[name]


def build_model(params: TrainModelParams, schema: SchemaConfig) -> Pipeline:
    """An unfitted Pipeline: imputation, scaling and one-hot encoding, then the configured estimator.

    Preprocessing lives inside the model so that a served model takes the raw feature columns.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cls = _estimator_class(params.estimator)
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(params.estimator_params) - accepted)
    if unknown:
        raise ConfigError(
            f"train_model.hyperparameters.{params.estimator}: {unknown} not accepted by {cls.__name__}; "
            f"valid names: {', '.join(sorted(accepted))}"
        )
    kwargs: dict[str, Any] = params.estimator_params
    if "random_state" in accepted:
        kwargs.setdefault("random_state", params.seed)
    try:
        estimator = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train_model.hyperparameters.{params.estimator} are invalid for {cls.__name__}: {exc}") from exc

    transformers = []
    if schema.numeric_features:
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        transformers.append(("numeric", numeric, schema.numeric_features))
    if schema.categorical_features:
        categorical = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", min_frequency=5),
        )
        transformers.append(("categorical", categorical, schema.categorical_features))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def train_model(train: pd.DataFrame, params: TrainModelParams, schema: SchemaConfig) -> Pipeline:
    """Fit the model on the training split's feature columns and label."""
    missing = [c for c in [*schema.features, LABEL] if c not in train.columns]
    if missing:
        raise DataValidationError(f"the training data lacks columns {missing}: re-run feat_data with this config")
    model = build_model(params, schema)
    X = feature_frame(train, schema)
    try:
        model.fit(X, train[LABEL])
    except ValueError as exc:
        raise DataValidationError(f"the model cannot be fitted on this training data: {exc}") from exc
    return model


def feature_frame(df: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """Only the feature columns, in schema order: what the model is fitted on and served with.

    Numeric columns become float64 (an int column with a missing value would break MLflow's input schema at
    serving time) and categorical ones plain object columns, which every serving path (JSON, CSV) reproduces.
    """
    import numpy as np

    X = df.loc[:, schema.features]
    numeric = {c: X[c].to_numpy(dtype="float64", na_value=np.nan) for c in schema.numeric_features if c in X}
    categorical = {c: X[c].astype("object").where(X[c].notna(), None) for c in schema.categorical_features if c in X}
    return X.assign(**numeric, **categorical)
