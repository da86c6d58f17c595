"""feat_data: the clean DataFrame in, train and test DataFrames out. No I/O, no tracking.

The columns written here (but the id and the target) are the model's inputs: derive, add or drop features in
``build_features``. What the model must also compute at serving time from the raw columns (imputation,
scaling, encoding) belongs in its scikit-learn Pipeline (``src/models/train_model.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsteps.engine import is_dask
from mlsteps.errors import DataValidationError
from mlsteps.row_keys import Chooser, allocate
from mlsteps.schema import SchemaConfig
from mlsteps.split_metrics import split_metrics
from mlsteps.step import Step, StepContext, StepOutput, StepParams
from pydantic import Field

if TYPE_CHECKING:
    import pandas as pd


class FeatDataParams(StepParams):
    # Share of rows held out for evaluation.
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    # Seed of the split: the same seed and data give the same split.
    seed: int = 42
    # Keep the class balance equal in train and test.
    stratify: bool = True


def build_features(clean: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """The id, the model's input columns and the target (under its own name). Derive or add features here."""
    missing = [c for c in [schema.target, *schema.features] if c not in clean.columns]
    if missing:
        raise DataValidationError(f"the clean dataset lacks columns {missing}: re-run make_data with this config")
    keep = ([schema.id_column] if schema.id_column else []) + schema.features + [schema.target]
    if schema.is_classification:
        labels = clean[schema.target].dropna().astype(str)
        present = set(labels.unique().compute() if is_dask(labels) else labels)
        absent = [label for label in schema.labels or [] if label not in present]
        if len(present) < 2:
            raise DataValidationError(
                f"the target '{schema.target}' holds one class only ({sorted(present)}; schema.labels is "
                f"{schema.labels}): a classifier needs at least two; check the data or schema.labels"
            )
        if schema.task == "binary" and absent:
            raise DataValidationError(
                f"the target '{schema.target}' never holds {absent}: a binary classifier needs "
                "both labels in the data; check the data or schema.labels"
            )
    return clean if list(clean.columns) == keep else clean.loc[:, keep]  # no copy when nothing is dropped


def split_data(
    features: pd.DataFrame, params: FeatDataParams, schema: SchemaConfig
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Split into train and test sets by each row's stable key (its id, else all its columns; seeded), stratified
    on the target for a classification task when asked: in each class, the ``test_size`` share of rows with the
    smallest keys is the test set. A row's side depends on its own key only, so the same data gives the same split
    on either engine, in any order or partitioning. Returns train, test and their sizes and target balance.
    """
    stratify = params.stratify and schema.is_classification
    key_columns = [schema.id_column] if schema.id_column else list(features.columns)
    chooser = Chooser(features, key_columns, schema.target if stratify else None, params.seed)
    counts = chooser.counts
    n_rows = sum(counts.values())
    n_test = max(1, math.ceil(n_rows * params.test_size)) if n_rows else 0  # as scikit-learn rounds it
    smallest_class = min(counts.values()) if n_rows and stratify else 2
    if n_rows - n_test < 2 or n_test < 2 or smallest_class < 2:
        raise DataValidationError(
            f"too few rows to split: {n_rows} rows (smallest class: {smallest_class}) with test_size "
            f"{params.test_size}; train and test each need at least 2 rows, and stratifying needs 2 rows per "
            "class: add data or change feat_data.test_size"
        )
    limits, chosen = chooser.thresholds(allocate(counts, n_test))
    test, train = chooser.choose(limits), chooser.choose(limits, chosen=False)
    if not is_dask(features):
        train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    # Stratified, the sizes and shares follow from the class counts: no pass over the data.
    return train, test, split_metrics(train, test, schema, *((counts, chosen) if stratify else ()))


def run_feat_data(ctx: StepContext[FeatDataParams], inputs: Mapping[str, Any]) -> StepOutput:
    schema = ctx.settings.dataset_schema
    train, test, metrics = split_data(build_features(inputs["clean"], schema), ctx.params, schema)
    return StepOutput(outputs={"train": train, "test": test}, metrics=metrics, params=ctx.params.model_dump())


STEP = Step(
    name="feat_data",
    reads=("clean",),
    writes=("train", "test"),
    params=FeatDataParams,
    run=run_feat_data,
    headline=("train_rows", "test_rows"),
    options={
        "--test-size": {"key": "test_size", "type": "float", "help": "share of rows held out."},
        "--seed": {"key": "seed", "type": "int", "help": "seed of the train/test split."},
    },
    resources={"cpu": "1", "memory": "4Gi"},
)
