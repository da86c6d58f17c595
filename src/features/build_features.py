"""feat_data: the clean DataFrame in, train and test DataFrames out. No I/O, no tracking.

The columns written here (but the id and the target) are the model's inputs: derive, add or drop features in
``build_features``. What the model must also compute at serving time from the raw columns (imputation,
scaling, encoding) belongs in its scikit-learn Pipeline (``src/models/train_model.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlsteps.engine import is_dask
from mlsteps.errors import DataValidationError
from mlsteps.row_keys import Chooser, allocate
from mlsteps.schema import SchemaConfig
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
    n_test = max(1, round(n_rows * params.test_size)) if n_rows else 0
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
    if stratify:  # the sizes and shares follow from the counts: no pass over the data
        tested = {label: chosen.get(label, 0) for label in counts}
        trained = {label: counts[label] - tested[label] for label in counts}
        metrics = _counted_metrics(trained, "train", schema) | _counted_metrics(tested, "test", schema)
    elif is_dask(features):
        import dask

        train_stats, test_stats = dask.compute(_stats(train, schema), _stats(test, schema))
        metrics = _stats_metrics(train_stats, "train", schema) | _stats_metrics(test_stats, "test", schema)
    else:
        metrics = {"train_rows": float(len(train)), "test_rows": float(len(test))}
        metrics |= target_metrics(train, schema, "train") | target_metrics(test, schema, "test")
    return train, test, metrics


def _counted_metrics(per_class: dict[str, int], name: str, schema: SchemaConfig) -> dict[str, float]:
    rows = sum(per_class.values())
    metrics = {f"{name}_rows": float(rows)}
    if schema.task == "binary":
        return metrics | {f"positive_rate_{name}": per_class.get(str(schema.positive_class), 0) / rows}
    return metrics | {f"share_{label}_{name}": per_class.get(label, 0) / rows for label in schema.labels or []}


def _stats(split: Any, schema: SchemaConfig) -> Any:
    """What a split's metrics need, as a lazy Dask result: its class counts, or its rows and target mean."""
    target = split[schema.target]
    if schema.is_classification:
        return target.astype(str).value_counts()
    return (target.size, target.mean())


def _stats_metrics(stats: Any, name: str, schema: SchemaConfig) -> dict[str, float]:
    if schema.is_classification:
        return _counted_metrics({str(k): int(v) for k, v in stats.items()}, name, schema)
    return {f"{name}_rows": float(stats[0]), f"target_mean_{name}": float(stats[1])}


def target_metrics(split: pd.DataFrame, schema: SchemaConfig, name: str) -> dict[str, float]:
    """The target's balance in a split: the positive rate, each class's share, or the mean."""
    target = split[schema.target]
    if schema.task == "binary":
        return {f"positive_rate_{name}": float((target == schema.positive_class).mean())}
    if schema.task == "multiclass":
        return {f"share_{label}_{name}": float((target == label).mean()) for label in schema.labels or []}
    return {f"target_mean_{name}": float(target.mean())}


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
