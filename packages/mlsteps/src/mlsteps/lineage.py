"""Lineage: which exact data a run used. Dataset inputs with content digests, and snapshot manifests.

MLflow infers a dataset's schema by visiting every value in Python (seconds per million rows). ``dataset``
fills the schema from a 10k-row sample instead, by setting MLflow's ``PandasDataset.schema`` cached property;
``tests/lib/test_lineage.py`` fails if MLflow no longer has it.
"""

from __future__ import annotations

import functools
from typing import Any

from mlsteps.errors import TrackingError, UsageError

SNAPSHOT_MANIFEST = "snapshot/manifest.json"
SCHEMA_SAMPLE_ROWS = 10_000


def dataset(df: Any, name: str, source: str, sha256: str, targets: str | None = None) -> Any:
    """An MLflow dataset for ``df``, with its content digest and where its bytes are.

    MLflow caps a dataset digest at 36 characters: the full SHA-256 is in the (content-addressed) source URI,
    the run's ``pipeline.data.<name>.sha256`` tag and the snapshot manifest.
    """
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    try:
        result = from_pandas(df, source=source, name=name, targets=targets, digest=sha256[:36])
    except MlflowException:  # a location MLflow has no source type for (memory://): recorded without one
        result = from_pandas(df, name=name, targets=targets, digest=sha256[:36])
    if schema_property_is_cached():
        sample = infer_signature(df.head(SCHEMA_SAMPLE_ROWS)).inputs
        complete = df.notna().all()
        result.__dict__["schema"] = Schema(
            [ColSpec(spec.type, spec.name, required=bool(complete[spec.name])) for spec in sample.inputs]
        )
    return result


@functools.cache
def schema_property_is_cached() -> bool:
    """Whether MLflow's PandasDataset.schema is still a cached property (what ``dataset`` relies on)."""
    from mlflow.data.pandas_dataset import PandasDataset

    return isinstance(PandasDataset.__dict__.get("schema"), functools.cached_property)


def log_input(data: Any, context: str, model_id: str | None = None) -> None:
    """Record a dataset as an input of the active run (context: training, evaluation, ...); with ``model_id``,
    as an input of that logged model too (what it was evaluated on)."""
    import mlflow
    from mlflow.entities import LoggedModelInput

    mlflow.log_input(data, context=context, model=LoggedModelInput(model_id) if model_id else None)


def log_manifest(manifest: dict[str, Any]) -> None:
    """Log a snapshot manifest next to the run, and tag the run with each file's full SHA-256."""
    import mlflow

    mlflow.log_dict(manifest, SNAPSHOT_MANIFEST)
    mlflow.set_tags({f"pipeline.data.{name}.sha256": f["sha256"] for name, f in manifest["files"].items()})


def load_manifest(run_id: str) -> dict[str, Any]:
    """The snapshot manifest of a run (``snapshot/manifest.json``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlsteps.store import is_missing

    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except MlflowException as exc:
        if not is_missing(exc):
            raise TrackingError(
                f"cannot look up run '{run_id}' in '{mlflow.get_tracking_uri()}': {exc.message.splitlines()[0]}"
            ) from exc
        raise UsageError(
            f"run '{run_id}' does not exist in '{mlflow.get_tracking_uri()}': check the run id "
            "(mlflow ui shows it on the train_model run)"
        ) from exc
    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{SNAPSHOT_MANIFEST}"))
    except Exception as exc:
        if any(k.startswith("pipeline.data.") and k.endswith(".sha256") for k in run.data.tags):
            # The run recorded a snapshot (log_manifest tags it): its manifest is there, the store fails to read it.
            raise TrackingError(f"the training-data manifest of run '{run_id}' cannot be read: {exc}") from exc
        raise UsageError(
            f"run '{run_id}' has no training-data manifest ({SNAPSHOT_MANIFEST}): give the id of a train_model "
            "run (not the pipeline run or another step)"
        ) from exc
