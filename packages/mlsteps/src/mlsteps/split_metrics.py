"""The metrics of a train/test split (sizes and the target's balance), on either engine: from the class counts the
split was chosen by when it has them (no pass over the data), else from the splits themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlsteps.engine import is_dask

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.schema import SchemaConfig


def target_metrics(split: pd.DataFrame, schema: SchemaConfig, name: str) -> dict[str, float]:
    """The target's balance in a split: the positive rate, each class's share, or the mean."""
    target = split[schema.target]
    if schema.task == "binary":
        return {f"positive_rate_{name}": float((target == schema.positive_class).mean())}
    if schema.task == "multiclass":
        return {f"share_{label}_{name}": float((target == label).mean()) for label in schema.labels or []}
    return {f"target_mean_{name}": float(target.mean())}


def counted_metrics(per_class: dict[str, int], name: str, schema: SchemaConfig) -> dict[str, float]:
    """A split's rows and balance from its rows per class (what ``target_metrics`` gives, without the rows)."""
    rows = sum(per_class.values())
    metrics = {f"{name}_rows": float(rows)}
    if schema.task == "binary":
        return metrics | {f"positive_rate_{name}": per_class.get(str(schema.positive_class), 0) / rows}
    return metrics | {f"share_{label}_{name}": per_class.get(label, 0) / rows for label in schema.labels or []}


def split_metrics(
    train: Any, test: Any, schema: SchemaConfig, counts: dict[str, int] | None = None, tested: Any = None
) -> dict[str, float]:
    """``train_rows``, ``test_rows`` and each split's balance. With ``counts`` (rows per class) and ``tested``
    (test rows per class), from those; else from the splits (one pass over a Dask frame's target column)."""
    if counts is not None and tested is not None:
        in_test = {label: tested.get(label, 0) for label in counts}
        in_train = {label: counts[label] - in_test[label] for label in counts}
        return counted_metrics(in_train, "train", schema) | counted_metrics(in_test, "test", schema)
    if not is_dask(train):
        metrics = {"train_rows": float(len(train)), "test_rows": float(len(test))}
        return metrics | target_metrics(train, schema, "train") | target_metrics(test, schema, "test")
    import dask

    stats = dask.compute(*(_stats(split, schema) for split in (train, test)))
    if schema.is_classification:
        per_split = [{str(k): int(v) for k, v in s.items()} for s in stats]
        return counted_metrics(per_split[0], "train", schema) | counted_metrics(per_split[1], "test", schema)
    return {
        "train_rows": float(stats[0][0]),
        "test_rows": float(stats[1][0]),
        "target_mean_train": float(stats[0][1]),
        "target_mean_test": float(stats[1][1]),
    }


def _stats(split: Any, schema: SchemaConfig) -> Any:
    """What a Dask split's metrics need, lazily: its class counts, or its rows and target mean."""
    target = split[schema.target]
    if schema.is_classification:
        return target.astype(str).value_counts()
    return (target.size, target.mean())
