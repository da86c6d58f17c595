"""The trivial baseline every candidate must beat: scikit-learn's Dummy model, fitted on the same training target.

A classifier predicts the class prior (``strategy="prior"``), a regressor the training mean. It is saved to a
temporary folder (not logged, not registered) so that ``mlflow.models.evaluate`` measures it exactly as it
measures the candidate.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlsteps.schema import SchemaConfig


def fit_dummy(schema: SchemaConfig, train_target: Any) -> Any:
    """A Dummy model fitted on the training target (it never looks at the features)."""
    import numpy as np
    from sklearn.dummy import DummyClassifier, DummyRegressor

    dummy = DummyClassifier(strategy="prior") if schema.is_classification else DummyRegressor(strategy="mean")
    return dummy.fit(np.zeros((len(train_target), 1)), train_target)


@contextlib.contextmanager
def dummy_model(schema: SchemaConfig, train_target: Any, evaluation_data: Any) -> Iterator[str]:
    """The fitted dummy, saved as an MLflow model in a temporary folder for as long as the block runs: its URI."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    dummy = fit_dummy(schema, train_target)
    example = evaluation_data.df.drop(columns=[evaluation_data.targets]).head(5)
    with tempfile.TemporaryDirectory(prefix="dummy-baseline-") as folder:
        path = Path(folder) / "model"
        mlflow.sklearn.save_model(
            dummy,
            str(path),
            signature=infer_signature(example, dummy.predict(example)),
            serialization_format="cloudpickle",
            # Never served, only evaluated here: without a list, MLflow infers one in a subprocess (about 3 s).
            pip_requirements=[],
        )
        yield str(path)
