"""Scoring a Dask frame on the workers: each partition with the same code as the pandas engine.

The fitted model goes to the workers once per computation, as a piece of data every scoring task of the computation
shares: each worker receives it (unpickles it) once, not once per partition, and never loads it from the registry
itself (the workers need neither MLflow's tracking server nor its credentials). A registered model is loaded here,
by the client, as the pandas engine loads it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlsteps.engine import is_dask
from mlsteps.scoring import PREDICTION, PROBABILITY, predict_frame

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.refs import LoadedModel
    from mlsteps.schema import SchemaConfig

TRUTH = "truth"


def _score_part(
    part: pd.DataFrame, model: Any, loaded: LoadedModel, scored_at: datetime, positive_class: str | None
) -> pd.DataFrame:
    """On a worker: one partition scored as the predict step scores a frame (its input columns, lineage kept)."""
    return predict_frame(model, part, loaded.input_schema, loaded.ref, scored_at, positive_class)


def predict_partitions(frame: Any, loaded: LoadedModel, scored_at: datetime, positive_class: str | None) -> Any:
    """``frame`` (Dask) scored by the registered model ``loaded`` on the workers, lazily: the frame ``predict_frame``
    gives for each partition, in order. The layout is taken from scoring a few rows here, with the same model."""
    import dask

    sample = frame.head(2, npartitions=-1)
    meta = predict_frame(loaded.model, sample, loaded.input_schema, loaded.ref, scored_at, positive_class).iloc[:0]
    model = dask.delayed(loaded.model, pure=True)  # sent once per computation; each worker unpickles it once
    light = type(loaded)(None, loaded.input_schema, loaded.ref)
    return frame.map_partitions(_score_part, model, light, scored_at, positive_class, meta=meta)


def _holdout_part(part: pd.DataFrame, model: Any, prepare: Any, target: str, keep: Any = None) -> pd.DataFrame:
    """On a worker: what the model predicts for a partition (its rows ``keep`` selects), next to the true values;
    nothing else of it."""
    import numpy as np
    import pandas as pd

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
    """A fitted ``model`` (in this process) scored on every row of the Dask ``frame`` (with ``keep``, a boolean mask per partition: those rows) on the workers; only the true values
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


def prediction_counts(scored: pd.DataFrame, schema: SchemaConfig) -> dict[str, float]:
    """Sums over scored rows (a whole frame or one partition): rows, positive predictions, the predictions' sum."""
    counts = {"rows": float(len(scored))}
    if schema.task == "binary":
        counts["positives"] = float((scored[PREDICTION] == schema.positive_class).sum())
    elif schema.task == "regression":
        counts["sum"] = float(scored[PREDICTION].sum())
    return counts


def _metrics_of(counts: list[dict[str, float]], schema: SchemaConfig) -> dict[str, float]:
    total = {key: sum(c[key] for c in counts) for key in counts[0]} if counts else {"rows": 0.0}
    metrics = {"rows_scored": total["rows"]}
    rows = total["rows"] or float("nan")
    if schema.task == "binary":
        metrics["positive_rate"] = total["positives"] / rows
    elif schema.task == "regression":
        metrics["prediction_mean"] = total["sum"] / rows
    return metrics


def prediction_metrics(scored: Any, schema: SchemaConfig) -> tuple[dict[str, float], Any]:
    """``rows_scored`` and the positive rate (binary) or the mean prediction (regression) of scored rows: for a
    pandas frame, now; for a Dask frame, a ``dask.delayed`` result over its partitions (``StepOutput.lazy_metrics``,
    computed with the write). Returns (metrics, lazy metrics)."""
    if not is_dask(scored):
        return _metrics_of([prediction_counts(scored, schema)], schema), None
    import dask

    from mlsteps.partitions import parts

    counts = [dask.delayed(prediction_counts)(part, schema) for part in parts(scored)]
    return {}, dask.delayed(_metrics_of)(counts, schema)
