"""Lineage helpers, and the MLflow internals they rely on (this test fails loudly if MLflow changes them)."""

from __future__ import annotations

import pandas as pd
from mlsteps.lineage import dataset, schema_property_is_cached


def test_mlflow_still_caches_the_pandas_dataset_schema() -> None:
    # lineage.dataset fills PandasDataset.schema from a sample; if MLflow renames or stops caching the property,
    # the fix silently stops applying (slow again, still correct). This is where that gets noticed.
    assert schema_property_is_cached(), "mlflow.data.pandas_dataset.PandasDataset.schema is no longer cached"


def test_dataset_schema_comes_from_a_sample_with_nullability_of_the_whole_frame() -> None:
    frame = pd.DataFrame({"a": [1.0] * 20_000 + [None], "b": ["x"] * 20_001})

    data = dataset(frame, "train", "memory://x/train.parquet", "ab" * 32)

    assert data.digest == ("ab" * 32)[:36]
    specs = {spec.name: spec for spec in data.schema.inputs}
    assert specs["a"].required is False
    assert specs["b"].required is True
