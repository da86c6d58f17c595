"""feat_data: the clean DataFrame in, train and test DataFrames out. No I/O, no tracking.

The columns written here (but the id and the label) are the model's inputs: derive, add or drop features in
``build_features``. What the model must also compute at serving time from the raw columns (imputation,
scaling, encoding) belongs in its scikit-learn Pipeline (``src/models/train_model.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from src.lib.errors import DataValidationError
from src.lib.schema import SchemaConfig
from src.lib.step import Step, StepContext, StepOutput, StepParams

if TYPE_CHECKING:
    import pandas as pd

LABEL = "label"


class FeatDataParams(StepParams):
    # Share of rows held out for evaluation.
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    # Seed of the split: the same seed and data give the same split.
    seed: int = 42
    # Keep the class balance equal in train and test.
    stratify: bool = True


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


def run_feat_data(ctx: StepContext[FeatDataParams], inputs: Mapping[str, Any]) -> StepOutput:
    train, test = split_data(build_features(inputs["clean"], ctx.settings.dataset_schema), ctx.params)
    return StepOutput(
        outputs={"train": train, "test": test},
        metrics={"train_rows": float(len(train)), "test_rows": float(len(test)),
                 "positive_rate_train": float(train[LABEL].mean()), "positive_rate_test": float(test[LABEL].mean())},
        params=ctx.params.model_dump(),
    )


STEP = Step(
    name="feat_data",
    reads=("clean",),
    writes=("train", "test"),
    params=FeatDataParams,
    run=run_feat_data,
    headline=("train_rows", "test_rows"),
    resources={"cpu": "1", "memory": "4Gi"},
)
