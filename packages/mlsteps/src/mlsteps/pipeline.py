"""Chain the steps as nested MLflow runs under one parent run, reusing every step whose cache key is unchanged.

The steps and their order come from their declarations (``STEP = Step(...)`` in their modules; see
``mlsteps.discovery``). A step is reused when a FINISHED run of it exists with the same key (its code,
parameters, environment and the digests of its inputs) and that run's outputs still exist. A reused step still
gets a child run under the parent, tagged ``pipeline.reused_from`` with the run it reuses.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlsteps.catalog import Catalog, Input
from mlsteps.config import Settings
from mlsteps.discovery import load_steps, step_names
from mlsteps.engine import engine_session
from mlsteps.errors import ConfigError, DataValidationError, PipelineError, StepError, StorageUnreachable, UsageError
from mlsteps.lineage import load_manifest
from mlsteps.planner import Decision, Planner, recorded_outputs
from mlsteps.reuse.keys import CacheKey
from mlsteps.runs import TAG_NOTES, TAG_REUSED_FROM, Runs
from mlsteps.step import Step, StepContext
from mlsteps.step_io import load_inputs, save_outputs
from mlsteps.storage_errors import artifact_store_error

logger = logging.getLogger(__name__)

__all__ = ["Decision", "PipelineResult", "StepResult", "parse_steps", "plan_pipeline", "run_pipeline"]


@dataclass
class StepResult:
    """What one step did: its run, the URIs it wrote, its headline metrics, how long it took, whether reused."""

    step: str
    run_id: str
    outputs: dict[str, str]
    metrics: dict[str, float]
    seconds: float = 0.0
    reused_from: str | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    # What it read: {dataset: "<uri> <digest>"}; a model's digest names the version that was used.
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass
class PipelineResult:
    environment: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    def step(self, name: str) -> StepResult:
        """What the step ``name`` did in this run."""
        for result in self.steps:
            if result.step == name:
                return result
        raise KeyError(f"step '{name}' was not part of this run ({', '.join(s.step for s in self.steps)})")


class Reporter(Protocol):
    """Receives progress events (the CLI prints them)."""

    def step_started(self, step: str, index: int, total: int, reason: str) -> None: ...
    def phase(self, text: str) -> AbstractContextManager[None]: ...
    def update(self, text: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def step_failed(self, step: str, error: BaseException) -> None: ...


class _LogReporter:
    def step_started(self, step: str, index: int, total: int, reason: str) -> None:
        logger.info("step %d/%d: %s (%s)", index, total, step, reason)

    def phase(self, text: str) -> AbstractContextManager[None]:
        logger.info("  %s", text)
        return contextlib.nullcontext()

    def update(self, text: str) -> None:
        logger.debug("  %s", text)

    def step_finished(self, result: StepResult) -> None:
        logger.info("step %s done in %.1fs", result.step, result.seconds)

    def step_failed(self, step: str, error: BaseException) -> None:
        logger.info("step %s failed: %s", step, error)


def parse_steps(text: str) -> list[str]:
    """``all``, one step, or a comma list; returned in pipeline order."""
    order = step_names()
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or names == ["all"]:
        return list(order)
    unknown = [n for n in names if n not in order]
    if unknown:
        raise ConfigError(f"unknown step(s) {unknown}: choose 'all' or from {', '.join(order)} (comma-separated)")
    return [s for s in order if s in names]


def check_from_run(from_run: str | None, steps: list[str]) -> None:
    """--from-run replaces the output of the steps before the one that snapshots its inputs: refuse running them."""
    if not from_run:
        return
    all_steps = load_steps()
    trainers = [s.name for s in all_steps.values() if s.snapshot]
    order = list(all_steps)
    first = min((order.index(t) for t in trainers), default=len(order))
    replaced = [s for s in steps if order.index(s) < first]
    if replaced:
        raise UsageError(
            f"--from-run trains on a snapshot instead of {' and '.join(replaced)}'s output: use it with "
            f"--step {','.join(trainers)} (or add the steps after it, e.g. --step {','.join(trainers)},predict)"
        )


def _planner(settings: Settings, runs: Runs, force: Iterable[str], from_run: str | None) -> Planner:
    reasons = {step: "forced with --force" for step in force}
    if from_run:
        # Retraining from a snapshot is asked for explicitly: it always runs, never reuses a run.
        for step in load_steps().values():
            if step.snapshot:
                reasons[step.name] = f"retraining on the data snapshot of run {from_run} (--from-run)"
    return Planner(settings, Catalog(settings), runs, reasons, from_run)


def plan_pipeline(
    settings: Settings, steps: list[str], force: Iterable[str] = (), from_run: str | None = None
) -> list[Decision]:
    """What ``run_pipeline`` would do, step by step, without starting a run or writing any data."""
    runs = Runs(settings)
    runs.connect(create=False)  # a dry run leaves no trace: no experiment, no SQLite file
    planner = _planner(settings, runs, force, from_run)
    return planner.plan([load_steps()[s] for s in steps])


def pipeline_params(settings: Settings, steps: list[str]) -> dict[str, Any]:
    """The key parameters logged on a parent run: every step's scalar parameters, as ``<step>.<key>``."""
    params: dict[str, Any] = {"pipeline.environment": settings.environment, "pipeline.steps": ",".join(steps)}
    for name in step_names():
        for key, value in settings.params(name).model_dump(mode="json").items():
            if isinstance(value, dict) and key == "set_params":
                params |= {f"{name}.{key}.{k}": v for k, v in value.items()}
            elif not isinstance(value, dict | list):
                params[f"{name}.{key}"] = value
    return params


def preflight(settings: Settings, steps: Iterable[str], catalog: Catalog) -> None:
    """Checks made before any run starts: the folders the steps will write into are writable; with
    ``deploy.on_promotion``, what a deployment needs is set."""
    all_steps = load_steps()
    written = [d for s in steps for d in (*all_steps[s].writes, *(("snapshots",) if all_steps[s].snapshot else ()))]
    for folder in catalog.folders(written):
        catalog.storage.ensure_writable(folder)
    if settings.deploy.on_promotion and any(all_steps[s].policy for s in steps):
        from mlsteps.deploy.settings import deploy_target

        deploy_target(settings)  # a champion the gate promotes is deployed: what that needs is set


def run_pipeline(
    settings: Settings,
    steps: list[str],
    reporter: Reporter | None = None,
    force: Iterable[str] = (),
    extra_params: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    from_run: str | None = None,
) -> PipelineResult:
    """Run ``steps`` in order, each as a nested run under one parent run, reusing unchanged steps.

    With ``parent_run_id`` (a run opened by ``parent-start``), the steps attach to that run and leave it open:
    a scheduler runs each step as its own task and closes the parent at the end (``parent-end``). With
    ``from_run``, the steps that snapshot their inputs train on that run's snapshot instead.

    Raises:
        StepError: wrapping the first step's failure; its run and the parent run end FAILED.
    """
    reporter = reporter or _LogReporter()
    started = time.perf_counter()
    runs = Runs(settings, parent_run_id=parent_run_id)
    experiment_id = runs.connect() or ""
    runs.close_orphaned_runs()
    if from_run:
        load_manifest(from_run)  # a wrong run id fails before any run starts
    planner = _planner(settings, runs, force, from_run)
    specs = [load_steps()[s] for s in steps]
    # Check what the steps that will (or may) run need before any run starts; a fully reused pipeline skips this.
    try:
        to_run = [d.step for d in planner.plan(specs) if d.action == "run"]
    except StorageUnreachable:
        raise  # nothing can run: say so now, before any run starts
    except PipelineError:
        to_run = list(steps)  # an input cannot be found yet: the step itself will say so
    preflight(settings, to_run, planner.catalog)
    with (
        engine_session(settings, needed=bool(to_run)) as engine,
        runs.pipeline_run({**pipeline_params(settings, steps), **engine.params(), **(extra_params or {})}) as parent,
    ):
        if engine.dashboard:
            getattr(reporter, "note", logger.info)(f"Dask dashboard: {engine.dashboard} ({engine.address})")
        result = PipelineResult(
            settings.environment, settings.tracking.uri, parent.info.experiment_id or experiment_id, parent.info.run_id
        )
        for index, spec in enumerate(specs, start=1):
            step_started = time.perf_counter()
            try:
                step_result = _run_step(planner, spec, reporter, index, len(specs))
            except Exception as exc:
                reporter.step_failed(spec.name, exc)
                if isinstance(exc, StepError):
                    raise
                raise StepError(spec.name, artifact_store_error(exc) or exc) from exc
            step_result.seconds = time.perf_counter() - step_started
            runs.log_parent_metrics(parent.info.run_id, spec.name, step_result.metrics)
            result.steps.append(step_result)
            reporter.step_finished(step_result)
        result.seconds = time.perf_counter() - started
    return result


def _run_step(planner: Planner, spec: Step[Any], reporter: Reporter, index: int, total: int) -> StepResult:
    try:
        inputs = planner.inputs(spec)
        key = planner.key(spec, inputs)
        decision = planner.decide(spec, key)
    except PipelineError as exc:
        raise StepError(spec.name, exc, run_started=False) from exc
    reporter.step_started(spec.name, index, total, decision.reason if decision.action == "run" else "reusing")
    if decision.action == "reuse":
        return _reuse_step(planner, spec, key, decision, inputs)
    settings, runs = planner.settings, planner.runs
    planner.catalog.storage.on_upload = lambda uri, sent, total: reporter.update(
        f"uploading {uri.rsplit('/', 1)[-1]}: {sent / 1e6:.1f} of {total / 1e6:.1f} MB"
    )
    with runs.step_run(spec.name) as run:
        run_id = run.info.run_id
        runs.log(tags={**key.tags(), "pipeline.run_reason": decision.reason})
        with reporter.phase(f"reading {', '.join(inputs)}"):
            loaded, sources, params = load_inputs(settings, planner.catalog, spec, inputs, run_id, planner.from_run)
        ctx = StepContext(
            settings, settings.params(spec.name), run_id, {n: i.uri for n, i in inputs.items()}, phase=reporter.phase
        )
        try:
            with reporter.phase("running"):
                output = spec.run(ctx, loaded)
            loaded.clear()  # the inputs are let go before the outputs are written: the two are not held together
        except DataValidationError as exc:
            runs.log(texts={"validation/report.txt": exc.report or str(exc)})
            raise
        runs.log(params={**params, **output.params}, texts=output.texts)
        saved = save_outputs(settings, planner.catalog, spec, output, run_id, sources, reporter.phase)
        metrics, notes = {**output.metrics, **saved.metrics}, [*output.notes, *saved.notes]
        runs.log(metrics=metrics)
        runs.log_lineage(inputs, saved.written)
        if notes:
            runs.log(tags={TAG_NOTES: "\n".join(notes)[:4000]})
    planner.done[spec.name] = saved.written
    return StepResult(
        spec.name,
        run_id,
        {n: i.uri for n, i in saved.written.items()},
        metrics,
        reason=decision.reason,
        notes=notes,
        inputs=_described(inputs),
    )


def _described(inputs: Mapping[str, Input]) -> dict[str, str]:
    return {name: f"{i.uri} {i.digest}" for name, i in inputs.items()}


def _reuse_step(
    planner: Planner, spec: Step[Any], key: CacheKey, decision: Decision, inputs: dict[str, Input]
) -> StepResult:
    """A child run that points at the reused run, with its outputs, digests and metrics."""
    cached = planner.runs.get_run(decision.cached_run_id or "")
    written, metrics = recorded_outputs(cached), dict(cached.data.metrics)
    outputs = {n: i.uri for n, i in written.items()}
    notes = [f"as decided then: {n}" for n in cached.data.tags.get(TAG_NOTES, "").splitlines() if n]
    with planner.runs.step_run(spec.name) as run:
        planner.runs.log(tags={**key.tags(), TAG_REUSED_FROM: cached.info.run_id}, metrics=metrics)
        planner.runs.log_lineage(inputs, written)
    planner.done[spec.name] = written
    return StepResult(
        spec.name,
        run.info.run_id,
        outputs,
        metrics,
        reused_from=cached.info.run_id,
        reason=decision.reason,
        notes=notes,
        inputs=_described(inputs),
    )
