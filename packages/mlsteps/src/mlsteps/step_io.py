"""A step run's I/O: its inputs loaded (tables, models, snapshots with their lineage) and its outputs saved
(tables into the catalog; a model logged, evaluated, registered, then judged by the step's policy)."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsteps import lineage, registry
from mlsteps.catalog import Catalog, Input
from mlsteps.config import Settings
from mlsteps.evaluation import CONFUSION_COUNTS, evaluate, score
from mlsteps.evaluation_log import log_evaluation
from mlsteps.refs import LoadedModel
from mlsteps.step import ModelOutput, StepOutput

if TYPE_CHECKING:
    from mlsteps.step import Step

Phase = Callable[[str], AbstractContextManager[None]]


@dataclass
class Saved:
    """What saving a step's outputs produced: each output's location and digest, and metrics and notes it added."""

    written: dict[str, Input] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def load_inputs(
    settings: Settings, catalog: Catalog, step: Step[Any], inputs: dict[str, Input], run_id: str, from_run: str | None
) -> tuple[dict[str, Any], dict[str, Input], dict[str, str]]:
    """The datasets ``step`` reads, loaded; snapshotted ones are stored content-addressed first, with a manifest.

    Returns the loaded objects, where each came from (a snapshot's location replaces its source's), and the
    params to log on the run (the snapshots' locations).
    """
    loaded: dict[str, Any] = {}
    sources = dict(inputs)
    files: dict[str, dict[str, Any]] = {}
    for name, source in inputs.items():
        if settings.dataset(name).kind == "model":
            ref = registry.describe_model(source.uri)
            model, schema = registry.load_model(source.uri, ref)
            loaded[name] = LoadedModel(model, schema, ref)
        elif name in step.snapshot:
            written, frame = catalog.snapshot(name, source, from_run)
            loaded[name], sources[name] = frame, Input(written.uri, written.sha256)
            files[name] = catalog.describe(frame, written, source)
        elif name in step.chunked:
            loaded[name] = catalog.load_chunks(name, source.uri)
        else:
            loaded[name] = catalog.load(name, source.uri)
    if not files:
        return loaded, sources, {}
    first = step.snapshot[0]  # the training data, by convention the first dataset snapshotted
    lineage.log_manifest({"run_id": run_id, "from_run": from_run, "training": first, "files": files})
    sample = _lineage_sample(loaded[first])
    lineage.log_input(lineage.dataset(sample, first, files[first]["uri"], files[first]["sha256"]), "training")
    return loaded, sources, {**{f"{name}_uri": f["uri"] for name, f in files.items()}, "from_run": from_run or ""}


def save_outputs(
    settings: Settings,
    catalog: Catalog,
    step: Step[Any],
    output: StepOutput,
    run_id: str,
    sources: dict[str, Input],
    phase: Phase = lambda _text: contextlib.nullcontext(),
) -> Saved:
    """Write what the runner returned: each name in ``step.writes``, nothing else."""
    unknown = sorted(set(output.outputs) - set(step.writes))
    missing = sorted(set(step.writes) - set(output.outputs))
    if unknown or missing:
        raise TypeError(
            f"step '{step.name}' declares writes={step.writes} but its runner returned "
            f"{sorted(output.outputs)}: return exactly the declared datasets"
        )
    saved = Saved()
    tables = {n: v for n, v in output.outputs.items() if not isinstance(v, ModelOutput)}
    if tables:
        with phase(f"writing {', '.join(tables)}"):
            written, lazy = catalog.save_all(tables, run_id, output.lazy_metrics)
        saved.written.update(written)
        saved.metrics.update({name: float(value) for name, value in (lazy or {}).items()})
    for name, value in output.outputs.items():
        if isinstance(value, ModelOutput):
            _save_model(settings, step, name, value, sources, saved, phase)
    return saved


def _lineage_sample(frame: Any) -> Any:
    """What MLflow's dataset record is made from: the frame, or a Dask frame's first partition (its schema; the
    digest and the source name the whole)."""
    from mlsteps.engine import is_dask

    return frame.get_partition(0).compute() if is_dask(frame) else frame


def trained_categories(settings: Settings, out: ModelOutput) -> dict[str, list[str]]:
    """The values each category input of the model may hold: the contract's ``allowed``, for a model input that
    is a category column of the raw data and holds only those values in its example and holdout (a feature step
    that recodes a column leaves it unchecked)."""
    columns = settings.dataset_schema.columns
    frames = [f for f in (out.example, out.evaluation_data) if hasattr(f, "columns")]
    known: dict[str, list[str]] = {}
    for name in getattr(out.example, "columns", []):
        spec = columns.get(str(name))
        if spec is None or spec.type != "category" or not spec.allowed:
            continue
        allowed = set(spec.allowed)
        if all(_distinct(f[name]) <= allowed for f in frames if name in f.columns):
            known[str(name)] = list(spec.allowed)
    return known


def _distinct(column: Any) -> set[str]:
    """A column's distinct values but nulls, as text (found before they are turned into text: one per value)."""
    import pandas as pd

    return {str(value) for value in pd.unique(column.dropna())}


def _save_model(
    settings: Settings,
    step: Step[Any],
    name: str,
    out: ModelOutput,
    sources: dict[str, Input],
    saved: Saved,
    phase: Phase,
) -> None:
    """Log, evaluate on the holdout (recorded as the run's ``evaluation`` input), register; then the policy."""
    registered_name = settings.dataset(name).name or name
    with phase("logging the model"):
        model_uri = registry.log_model(out.model, out.example, trained_categories(settings, out))
    model_id = registry.logged_model_id(model_uri)
    holdout = sources[out.evaluation_dataset]
    if out.predictions is not None:  # the dask engine: scored on the workers, only the predictions gathered
        from mlsteps.cluster_gate import ClusterHoldout, evaluate_scored

        sample = _lineage_sample(out.holdout)
        data = lineage.dataset(sample, out.evaluation_dataset, holdout.uri, holdout.digest.removeprefix("sha256:"))
        lineage.log_input(data, "evaluation", model_id)
        with phase(f"evaluating on {out.evaluation_dataset}"):
            evaluation = evaluate_scored(settings, out.predictions, settings.gate.evaluation_plots)
            log_evaluation(evaluation, data, model_id)
        gate_data: Any = ClusterHoldout(out.holdout, out.target_column, out.prepare, out.predictions)
    else:
        data = lineage.dataset(
            out.evaluation_data,
            out.evaluation_dataset,
            holdout.uri,
            holdout.digest.removeprefix("sha256:"),
            targets=out.target_column,
        )
        lineage.log_input(data, "evaluation", model_id)
        with phase(f"evaluating on {out.evaluation_dataset}"):
            frame = out.evaluation_data
            predictions = score(out.model, frame.drop(columns=[out.target_column]), frame[out.target_column])
            evaluation = evaluate(settings.dataset_schema, predictions, settings.gate.evaluation_plots)
            log_evaluation(evaluation, data, model_id)
        gate_data = data
    # The step's metrics (its parent run's too), as before the evaluation was computed here: without the counts.
    saved.metrics.update({k: v for k, v in evaluation.metrics.items() if k not in CONFUSION_COUNTS})
    # The policy decides before the version exists, so that the version carries its decision from the start.
    policy = importlib.import_module(step.policy) if step.policy else None
    with phase("judging against the baselines"):
        decision = (
            policy.decide(settings, registered_name, model_uri, evaluation, gate_data, out.train_target)
            if policy
            else None
        )
    version_uri = registry.register(model_uri, registered_name, tags=decision.version_tags() if decision else None)
    # Digests of a model: its URI (a logged model and a registered version never change).
    for key, uri in ((name, model_uri), (f"registered_{name}", version_uri)):
        saved.written[key] = Input(uri, uri)
    if policy:
        saved.notes.append(policy.apply(decision, version_uri.rsplit("/", 1)[1]))
        if getattr(decision, "promoted", False) and settings.deploy.on_promotion:
            from mlsteps.deploy.run import deploy_after_promotion

            with phase(f"deploying {version_uri} to SageMaker"):
                saved.notes.append(deploy_after_promotion(settings, version_uri))
