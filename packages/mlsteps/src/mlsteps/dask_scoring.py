"""Scoring a Dask frame on the workers: each partition with the same code as the pandas engine, the model loaded
once per worker process.

A registered model goes to the workers by its URI and the tracking store's (``ModelSource``): each worker loads it
from there on its first partition and keeps it for the next ones (and the next computations) of the same URI. A
model fitted in this process and not yet logged (train_model's candidate) goes once per computation, as a piece
of data every scoring task shares.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsteps.scoring import PREDICTION, PROBABILITY, predict_frame

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.refs import LoadedModel

TRUTH = "truth"
_LOADED: dict[tuple[str, str], Any] = {}  # per worker process: (tracking URI, model URI) -> the fitted model
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Where a worker loads a registered model from: the tracking store and the model's URI."""

    tracking_uri: str
    registry_uri: str
    model_uri: str

    @classmethod
    def current(cls, model_uri: str) -> ModelSource:
        import mlflow

        return cls(mlflow.get_tracking_uri(), mlflow.get_registry_uri(), model_uri)

    def load(self) -> Any:
        """The model, loaded on the first call in this process, the same object after."""
        key = (self.tracking_uri, self.model_uri)
        with _LOCK:
            if key not in _LOADED:
                import mlflow
                import mlflow.sklearn

                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.set_registry_uri(self.registry_uri)
                _LOADED[key] = mlflow.sklearn.load_model(self.model_uri)
            return _LOADED[key]


def _score_part(
    part: pd.DataFrame,
    source: ModelSource,
    loaded: LoadedModel,
    scored_at: datetime,
    positive_class: str | None,
) -> pd.DataFrame:
    """On a worker: one partition scored as the predict step scores a frame (its input columns, lineage kept)."""
    return predict_frame(source.load(), part, loaded.input_schema, loaded.ref, scored_at, positive_class)


def predict_partitions(frame: Any, loaded: LoadedModel, scored_at: datetime, positive_class: str | None) -> Any:
    """``frame`` (Dask) scored by the registered model ``loaded`` on the workers, lazily: the frame ``predict_frame``
    gives for each partition, in order. The layout is taken from scoring a few rows here, with the same model."""
    from mlsteps.scoring import predict_frame as score_here

    source = ModelSource.current(loaded.ref.uri)
    sample = frame.head(2, npartitions=-1)
    meta = score_here(loaded.model, sample, loaded.input_schema, loaded.ref, scored_at, positive_class).iloc[:0]
    # Only the model's identity travels with the tasks; its fitted object is loaded on each worker.
    light = type(loaded)(None, loaded.input_schema, loaded.ref)
    return frame.map_partitions(_score_part, source, light, scored_at, positive_class, meta=meta)


def _holdout_part(part: pd.DataFrame, model: Any, prepare: Any, target: str, keep: Any = None) -> pd.DataFrame:
    """On a worker: what the model predicts for a partition (its rows ``keep`` selects), next to the true values;
    nothing else of it. ``model``: a fitted model, or a ``ModelSource`` loaded once per worker."""
    import numpy as np
    import pandas as pd

    if isinstance(model, ModelSource):
        model = model.load()
    if keep is not None:
        part = part[keep]
    features = prepare(part)
    out = {TRUTH: part[target].astype("category") if part[target].dtype != "float64" else part[target]}
    predicted = model.predict(features)
    out[PREDICTION] = pd.Categorical(predicted) if predicted.dtype == object else predicted
    if hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(features), dtype="float64")
        for i, label in enumerate(getattr(model, "classes_", range(probabilities.shape[1]))):
            out[f"{PROBABILITY}_{label}"] = probabilities[:, i]
    return pd.DataFrame(out, index=pd.RangeIndex(len(part)))


def score_holdout(frame: Any, model: Any, prepare: Any, target: str, keep: list[Any] | None = None) -> pd.DataFrame:
    """A fitted ``model`` (in this process), or a registered one (a ``ModelSource``), scored on every row of the
    Dask ``frame`` (with ``keep``, a boolean mask per partition: those rows) on the workers; only the true values
    (``truth``), the predictions and, for a classifier, each class's probability (``probability_<class>``) are
    gathered here, in the frame's row order. ``prepare`` turns a partition into the model's inputs."""
    import dask
    import pandas as pd

    shared = dask.delayed(model, pure=True)  # one copy of the model per computation, whatever the partitions
    masks = keep or [None] * frame.npartitions
    parts = [
        dask.delayed(_holdout_part)(p, shared, prepare, target, m)
        for p, m in zip(frame.to_delayed(), masks, strict=True)
    ]
    computed = dask.compute(*parts)
    scored = [p for p in computed if len(p)] or list(computed[:1])
    whole = pd.concat(scored, ignore_index=True) if len(scored) > 1 else scored[0]
    for column in (TRUTH, PREDICTION):
        if isinstance(whole[column].dtype, pd.CategoricalDtype):  # categories differ by partition: plain labels
            whole[column] = whole[column].astype("object")
    return whole
