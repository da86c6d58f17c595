"""What a served model's rows are compared with: the data it was trained on (its train_model run's snapshot),
its predictions on its own holdout and its holdout metrics, found from the model version each log row names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsteps.errors import UsageError
from mlsteps.storage import Storage

HOLDOUT_ROWS = 100_000  # holdout rows scored for the reference distribution of predictions, at most


@dataclass
class Reference:
    """One model version's reference: where its training and holdout snapshots are, its inputs and metrics."""

    model: str  # models:/<name>/<version>
    version: str
    run_id: str
    train_uri: str
    test_uri: str
    inputs: dict[str, str]  # the model's input columns and their MLflow types
    metrics: dict[str, float]
    _model: Any = field(default=None, repr=False)
    _storage: Storage = field(default_factory=Storage, repr=False)

    def column(self, name: str, rows: int, seed: int = 0) -> np.ndarray:
        """A training column as numpy (numbers as float64), a seeded sample of ``rows`` at most."""
        values = self._read(self.train_uri, [name])[name]
        if len(values) > rows:
            values = values.sample(rows, random_state=seed)
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            return values.astype("float64").to_numpy()
        return values.astype(object).to_numpy()

    def holdout_predictions(self, seed: int = 0) -> np.ndarray:
        """The model's predictions on (a seeded sample of) its holdout."""
        test = self._read(self.test_uri, list(self.inputs))
        if len(test) > HOLDOUT_ROWS:
            test = test.sample(HOLDOUT_ROWS, random_state=seed)
        return np.asarray(self._model.predict(test))

    def _read(self, uri: str, columns: list[str]) -> pd.DataFrame:
        """Columns of a snapshot: one Parquet file, or (trained on the dask engine) a manifest of files."""
        from mlsteps import partitions

        if partitions.is_partitioned(uri):
            return partitions.read_whole(self._storage, uri, columns)
        return self._storage.read_table(uri, columns=columns)


def reference_for(name: str, version: str, storage: Storage) -> Reference:
    """The reference of registered model ``name`` version ``version``; a UsageError that says why there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlsteps.lineage import load_manifest
    from mlsteps.registry import load_model

    client = MlflowClient()
    try:
        run_id = str(client.get_model_version(name, version).run_id)
    except MlflowException as exc:
        raise UsageError(
            f"the log's rows were scored by version {version} of '{name}', which this environment's tracking store "
            f"does not hold ({exc.message.splitlines()[0]}): monitor the environment that served them (-e), or "
            "leave that version's rows out with --model-version"
        ) from exc
    manifest = load_manifest(run_id)
    files = manifest.get("files", {})
    training = manifest.get("training")
    holdout = next((n for n in files if n != training), None)
    if training not in files or holdout is None:
        raise UsageError(
            f"the train_model run {run_id} of version {version} of '{name}' records no training and holdout "
            "snapshot: monitor needs a model trained by this pipeline's train_model"
        )
    uri = f"models:/{name}/{version}"
    model, inputs = load_model(uri)
    metrics = dict(client.get_run(run_id).data.metrics)
    return Reference(
        uri,
        version,
        run_id,
        files[training]["uri"],
        files[holdout]["uri"],
        dict(inputs),
        metrics,
        model,
        storage,
    )
