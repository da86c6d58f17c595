"""feat_data transforms: clean DataFrame in, train and test DataFrames out. No I/O, no tracking.

Feature engineering that must also happen at serving time belongs in the model's scikit-learn Pipeline
(``src/models/train_model.py``), not here: the served model receives raw columns.
"""

from __future__ import annotations

import pandas as pd

from src.lib.config import FeatDataParams, SchemaConfig
from src.lib.errors import DataValidationError

LABEL = "label"


def build_features(clean: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """Keep the id and feature columns and add ``label`` (1 for the positive class, else 0)."""
    missing = [c for c in [schema.target, *schema.features] if c not in clean.columns]
    if missing:
        raise DataValidationError(f"the clean dataset lacks columns {missing}: re-run make_data with this config")
    keep = ([schema.id_column] if schema.id_column else []) + schema.features
    label = (clean[schema.target].astype(str) == str(schema.positive_class)).astype("int64")
    counts = label.value_counts()
    if len(counts) < 2:
        only = "positive" if counts.index[0] == 1 else "negative"
        values = sorted(map(str, clean[schema.target].dropna().unique()))[:5]
        raise DataValidationError(
            f"the label has one class only: every row is {only} ('{schema.target}' values: {values}; "
            f"positive_class is {schema.positive_class!r}): a classifier needs both classes; check "
            "schema.positive_class or the data"
        )
    return clean.loc[:, keep].assign(**{LABEL: label.to_numpy()})


def split_data(features: pd.DataFrame, params: FeatDataParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test sets, stratified on the label when asked."""
    from sklearn.model_selection import train_test_split

    n_rows = len(features)
    n_test = max(1, round(n_rows * params.test_size)) if n_rows else 0
    smallest_class = int(features[LABEL].value_counts().min()) if n_rows else 0
    if n_rows - n_test < 2 or n_test < 2 or (params.stratify and smallest_class < 2):
        raise DataValidationError(
            f"too few rows to split: {n_rows} rows (smallest class: {smallest_class}) with test_size "
            f"{params.test_size}; train and test each need at least 2 rows, and stratifying needs 2 rows per "
            "class: add data or change feat_data.test_size"
        )
    try:
        train, test = train_test_split(
            features,
            test_size=params.test_size,
            random_state=params.seed,
            stratify=features[LABEL] if params.stratify else None,
        )
    except ValueError as exc:
        raise DataValidationError(f"cannot split {n_rows} rows with test_size {params.test_size}: {exc}") from exc
    return train.reset_index(drop=True), test.reset_index(drop=True)
