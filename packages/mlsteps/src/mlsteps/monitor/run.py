"""``monitor``: a window of the inference log assessed per model version, recorded as an MLflow run per version in
the experiment ``{project}-{environment}-monitoring`` (figures as metrics, the report and plots as artifacts)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsteps.config_sections import GATE_METRICS
from mlsteps.errors import UsageError
from mlsteps.monitor.assess import Assessment, assess_inputs, distribution, figures_as_metrics, judge
from mlsteps.monitor.reference import Reference, reference_for
from mlsteps.monitor.window import LogWindow
from mlsteps.storage import Storage

if TYPE_CHECKING:
    from mlsteps.config import Settings

ALERT_EXIT = 3  # a threshold crossed: what a scheduler acts on


@dataclass
class Monitored:
    """What monitor found in a window: an assessment per model version, and where each was recorded."""

    window: str
    location: str
    assessments: list[Assessment] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, report's artifact URI)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return ALERT_EXIT if any(a.alerts for a in self.assessments) else 0


def monitor(
    settings: Settings, since: datetime, until: datetime, labels: str | None = None, version: str | None = None
) -> Monitored:
    """Assess the window [since, until) of the environment's inference log; record and report it."""
    import pyarrow.dataset as ds

    from mlsteps.store import connect

    if not settings.serving.log.path:
        raise UsageError("serving.log.path is null: this environment keeps no inference log to monitor")
    location = settings.resolve(settings.serving.log.path)
    storage = Storage.for_settings(settings)
    span = f"{since:%Y-%m-%d %H:%M:%S} to {until:%Y-%m-%d %H:%M:%S} UTC"
    result = Monitored(span, location)
    flush = settings.serving.log.flush_seconds
    if until > datetime.now(until.tzinfo) - timedelta(seconds=flush):
        result.notes.append(
            f"rows of the last {flush:g} s may still be on their way to the log (serving.log.flush_seconds)"
        )
    window = LogWindow(location, since, until, storage)
    served = window.read(["model_name", "model_version"])
    if served.num_rows == 0:
        result.notes.append(
            f"the inference log at {location} holds no request received from {span}: nothing to judge "
            "(widen --since/--until, or check that the server logs: serving.log.path)"
        )
        return result
    counts = served.group_by(["model_name", "model_version"]).aggregate([([], "count_all")]).to_pylist()
    name = settings.model_name
    for group in counts:
        if group["model_name"] != name or (version and group["model_version"] != version):
            result.notes.append(
                f"{group['count_all']} logged rows of {group['model_name']} version {group['model_version']} left "
                + (
                    "out (--model-version)"
                    if group["model_name"] == name
                    else f"out: this environment's model is {name}"
                )
            )
    wanted = [g for g in counts if g["model_name"] == name and (not version or g["model_version"] == version)]
    if not wanted:
        raise UsageError(
            f"the inference log at {location} holds no row of {name}"
            + (f" version {version}" if version else "")
            + f" from {span}: {'; '.join(result.notes)}"
        )
    connect(settings)  # the model registry of the environment
    labelled = _read_labels(labels, storage) if labels else None
    for group in sorted(wanted, key=lambda g: int(g["model_version"]) if str(g["model_version"]).isdigit() else 0):
        reference = reference_for(name, str(group["model_version"]), storage)
        where = (ds.field("model_name") == name) & (ds.field("model_version") == reference.version)
        result.assessments.append(_assess(settings, window, where, reference, labelled, labels))
    _record(settings, result, window)
    return result


def _assess(
    settings: Settings, window: LogWindow, where: Any, reference: Reference, labels: Any, source: str | None
) -> Assessment:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    params, schema = settings.monitor, settings.dataset_schema
    requests = window.read(["row", "status", "latency_ms"], where)
    first = pc.or_kleene(pc.is_null(requests.column("row")), pc.equal(requests.column("row"), 1))
    per_request = requests.filter(pc.fill_null(first, True))
    status = per_request.column("status").to_numpy(zero_copy_only=False)
    latency = per_request.column("latency_ms").to_numpy(zero_copy_only=False).astype(float)
    scored = where & (ds.field("status") == 200)
    rows = window.read(["status"], scored).num_rows
    found = Assessment(
        reference.model, reference.version, reference.run_id, len(status), rows, judged=rows >= params.min_rows
    )
    found.metrics = {
        "requests": float(len(status)),
        "rows": float(rows),
        "error_rate": float(np.mean(status != 200)) if len(status) else 0.0,
    }
    from mlsteps.monitor.stats import percentiles

    found.metrics |= {f"latency_ms.{k}": v for k, v in percentiles(latency).items()}
    if rows:
        found.features = assess_inputs(window, scored, reference, schema, params)
        output = "output.prediction" if "output.prediction" in window.columns else None
        if output:
            current = window.column(output, scored)
            before = reference.holdout_predictions()
            kind = "category" if schema.is_classification else "number"
            if kind == "number":
                before = before.astype(float)
            found.prediction = distribution("prediction", kind, current, before, params.bins)
        if labels is not None and output:
            _live(found, window, scored, output, labels, source or "", reference, settings)
    if not found.judged:
        found.notes.append(
            f"only {rows} scored rows in the window (monitor.min_rows: {params.min_rows}): too few to judge; "
            "the figures are recorded, no alert is raised"
        )
        return found
    found.alerts = judge(found, params, GATE_METRICS[schema.task])
    return found


def _live(
    found: Assessment,
    window: LogWindow,
    scored: Any,
    output: str,
    labels: Any,
    source: str,
    reference: Reference,
    settings: Settings,
) -> None:
    from mlsteps.monitor.labels import join_labels, live_metrics

    schema, params = settings.dataset_schema, settings.monitor
    id_column = f"input.{schema.id_column}" if schema.id_column else None
    columns = ["request_id", "row", output] + ([id_column] if id_column and id_column in window.columns else [])
    logged = window.read(columns, scored).to_pandas()
    logged = logged.rename(columns={output: "prediction", **({id_column: "id"} if id_column else {})})
    joined = join_labels(logged, labels, schema, source)
    found.labelled_rows = len(joined)
    if joined.empty:
        found.notes.append(f"no row of the labels in {source} matches a logged row of this version")
        return
    found.live = live_metrics(joined["actual"], joined["prediction"], schema)
    found.holdout = {k: v for k, v in reference.metrics.items() if k in found.live}
    if len(joined) < params.min_rows:
        found.live_judged = False
        found.notes.append(
            f"only {len(joined)} labelled rows (monitor.min_rows: {params.min_rows}): live metrics shown, not judged"
        )


def _read_labels(uri: str, storage: Storage) -> Any:
    from mlsteps.errors import StorageError

    try:
        return storage.read_table(uri)
    except StorageError as exc:
        raise UsageError(f"the labels file {uri} cannot be read: {exc}") from exc


def _record(settings: Settings, result: Monitored, window: LogWindow) -> None:
    """An MLflow run per assessment in ``{project}-{environment}-monitoring``: figures, report, plots."""
    import mlflow

    from mlsteps.monitor.report import write_report
    from mlsteps.store import connect

    experiment = f"{settings.project}-{settings.environment}-monitoring"
    artifacts = settings.tracking.artifact_location
    if artifacts and artifacts.rstrip("/").endswith(settings.tracking.experiment):
        artifacts = artifacts.rstrip("/")[: -len(settings.tracking.experiment)] + experiment
    tracking = settings.tracking.model_copy(update={"experiment": experiment, "artifact_location": artifacts})
    experiment_id = connect(settings.model_copy(update={"tracking": tracking}))
    for found in result.assessments:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            write_report([found], result.window, folder)
            with mlflow.start_run(
                experiment_id=experiment_id, run_name=f"monitor {window.since:%Y-%m-%d %H:%M} v{found.version}"
            ) as run:
                mlflow.log_params(
                    {
                        "since": window.since.isoformat(),
                        "until": window.until.isoformat(),
                        "log": result.location,
                        "model": found.model,
                        "model_version": found.version,
                        "train_run_id": found.run_id,
                    }
                )
                mlflow.log_metrics(figures_as_metrics(found))
                mlflow.set_tags(
                    {
                        "monitor.verdict": "not judged" if not found.judged else "alert" if found.alerts else "ok",
                        "monitor.alerts": "; ".join(map(str, found.alerts))[:5000],
                    }
                )
                mlflow.log_artifacts(str(folder))
                result.runs.append((run.info.run_id, f"{run.info.artifact_uri}/report.html"))
