"""An evaluation (``mlsteps.evaluation``) logged on the active MLflow run, as ``mlflow.models.evaluate`` logs
one: the metrics, tied to the dataset they were measured on (and to the logged model they describe), the tables
as CSV files and the plots as PNG files at the root of the run's artifacts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsteps.evaluation import Evaluation


def log_evaluation(evaluation: Evaluation, dataset: Any = None, model_id: str | None = None) -> None:
    """Log ``evaluation`` on the active run. ``dataset``: the MLflow dataset it was measured on; ``model_id``: the
    logged model it describes (its metrics then show on the model's page too)."""
    import mlflow

    mlflow.log_metrics(evaluation.metrics, dataset=dataset, model_id=model_id)
    if not evaluation.tables and not evaluation.figures:
        return
    from mlsteps.evaluation_plots import write_png

    with tempfile.TemporaryDirectory(prefix="evaluation-") as folder:
        for name, table in evaluation.tables.items():
            table.to_csv(Path(folder) / f"{name}.csv", index=False)
        for name, draw in evaluation.figures.items():
            write_png(draw, Path(folder) / f"{name}.png")
        mlflow.log_artifacts(folder)  # one upload of every file, not one per file
