"""Chain the steps as nested MLflow runs under one parent run, reusing every step whose cache key is unchanged.

A step is reused when a FINISHED run of it exists with the same key (its code, parameters, environment and the
digests of its inputs) and that run's outputs still exist. A reused step still gets a child run under the parent,
tagged ``pipeline.reused_from`` with the run it reuses, so every pipeline run shows all its steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from src.lib.cache import CacheKey, make_key
from src.lib.config import Settings
from src.lib.errors import PipelineError, StepError
from src.lib.storage import Storage
from src.lib.tracking import TAG_NOTES, TAG_REUSED_FROM, Tracker
from src.steps import COMMON_CODE, STEPS as STEP_SPECS
from src.steps import Input, Step, StepContext

if TYPE_CHECKING:
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

STEPS = tuple(STEP_SPECS)


@dataclass
class StepResult:
    """What one step did: its run, the URIs it wrote, its headline metrics, how long it took, whether reused."""

    step: str
    run_id: str
    outputs: dict[str, str]
    metrics: dict[str, float]
    seconds: float
    reused_from: str | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class PipelineResult:
    environment: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What a step will do (dry run) or did, and why."""

    step: str
    action: Literal["run", "reuse"]
    reason: str
    cached_run_id: str | None = None


class Reporter(Protocol):
    """Receives progress events (the CLI prints them)."""

    def step_started(self, step: str, index: int, total: int, reason: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def step_failed(self, step: str, error: BaseException) -> None: ...


class _LogReporter:
    def step_started(self, step: str, index: int, total: int, reason: str) -> None:
        logger.info("step %d/%d: %s (%s)", index, total, step, reason)

    def step_finished(self, result: StepResult) -> None:
        logger.info("step %s done in %.1fs", result.step, result.seconds)

    def step_failed(self, step: str, error: BaseException) -> None:
        logger.info("step %s failed: %s", step, error)


def parse_steps(text: str) -> list[str]:
    """``all``, one step, or a comma list; returned in pipeline order."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or names == ["all"]:
        return list(STEPS)
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise PipelineError(f"unknown step(s) {unknown}: choose 'all' or from {', '.join(STEPS)} (comma-separated)")
    return [s for s in STEPS if s in names]


def preflight(settings: Settings, steps: Iterable[str], storage: Storage) -> None:
    """Checks made before any run starts, so a bad setting fails in a second and nothing is half-written."""
    from src.models.train_model import build_model

    steps = list(steps)
    if "train_model" in steps:
        build_model(settings.train_model, settings.dataset_schema)  # raises ConfigError on a bad hyperparameter
    for folder in sorted({f for s in steps for f in STEP_SPECS[s].writes}):
        storage.ensure_writable(settings.data.uri(folder))  # type: ignore[arg-type]


class _Cache:
    """Finds reusable runs and says why a step must run."""

    def __init__(self, ctx: StepContext, force: set[str]) -> None:
        self.ctx = ctx
        self.force = {step: "forced with --force" for step in force}
        from_run = ctx.settings.train_model.from_run
        if from_run:
            # Retraining from a snapshot is asked for explicitly: it always trains, never reuses a run.
            self.force["train_model"] = f"retraining on the data snapshot of run {from_run} (--from-run)"

    def key(self, spec: Step, inputs: dict[str, Input]) -> CacheKey:
        settings = self.ctx.settings
        return make_key(
            spec.name,
            settings.environment,
            spec.code + COMMON_CODE,
            spec.params(settings),
            {name: i.digest for name, i in inputs.items()},
        )

    def decide(self, spec: Step, key: CacheKey) -> Decision:
        if spec.name in self.force:
            return Decision(spec.name, "run", self.force[spec.name])
        for run in self.ctx.tracker.find_cached_run(key.value):
            outputs = self.ctx.tracker.step_outputs(run)
            if all(self._exists(uri) for uri in outputs.values()):
                origin = run.data.tags.get(TAG_REUSED_FROM) or run.info.run_id
                return Decision(spec.name, "reuse", "same code, parameters and inputs", origin)
        previous = self.ctx.tracker.latest_step_run(spec.name)
        if previous is None:
            return Decision(spec.name, "run", "no earlier run")
        return Decision(spec.name, "run", key.difference(previous.data.tags))

    def _exists(self, uri: str) -> bool:
        if uri.startswith(("models:/", "runs:/")):
            return True  # registry entries and logged models are immutable
        return self.ctx.storage.exists(uri)


def plan_pipeline(settings: Settings, steps: list[str], force: Iterable[str] = ()) -> list[Decision]:
    """What ``run_pipeline`` would do, step by step, without starting a run or writing any data."""
    ctx = StepContext(settings, Storage(settings.aws.profile, settings.aws.region), Tracker(settings))
    ctx.tracker.connect()
    return _plan(ctx, set(force), steps)


def _plan(ctx: StepContext, force: set[str], steps: list[str]) -> list[Decision]:
    decisions: list[Decision] = []
    will_run: set[str] = set()
    planned = StepContext(ctx.settings, ctx.storage, ctx.tracker, done=dict(ctx.done))
    planning_cache = _Cache(planned, force)
    for step in steps:
        spec = STEP_SPECS[step]
        upstream_runs = sorted(will_run & spec.reads_from)
        if upstream_runs:
            verb = "runs" if len(upstream_runs) == 1 else "run"
            reason = f"input from {', '.join(upstream_runs)}, which {verb} first (reused if its output is unchanged)"
            decision = Decision(step, "run", reason)
        else:
            decision = planning_cache.decide(spec, planning_cache.key(spec, spec.inputs(planned)))
            if decision.action == "reuse":
                planned.done[step] = _cached_inputs(planned, decision.cached_run_id)
        if decision.action == "run":
            will_run.add(step)
        decisions.append(decision)
    return decisions


def _cached_inputs(ctx: StepContext, run_id: str | None) -> dict[str, Input]:
    from mlflow import MlflowClient

    run = MlflowClient().get_run(run_id)
    digests = ctx.tracker.step_digests(run)
    return {name: Input(uri, digests.get(name, uri)) for name, uri in ctx.tracker.step_outputs(run).items()}


def pipeline_params(settings: Settings, steps: list[str]) -> dict[str, Any]:
    """The key parameters logged on a parent run."""
    # Named after their config keys, so they never clash with the parameters `mlflow run` logs on the same run.
    return {
        "pipeline.environment": settings.environment,
        "pipeline.steps": ",".join(steps),
        "feat_data.test_size": settings.feat_data.test_size,
        "feat_data.seed": settings.feat_data.seed,
        "train_model.estimator": settings.train_model.estimator,
        "train_model.seed": settings.train_model.seed,
        **{f"train_model.hyperparameters.{k}": v for k, v in settings.train_model.estimator_params.items()},
    }


def run_pipeline(
    settings: Settings,
    steps: list[str],
    reporter: Reporter | None = None,
    force: Iterable[str] = (),
    extra_params: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> PipelineResult:
    """Run ``steps`` in order, each as a nested run under one parent run, reusing unchanged steps.

    With ``parent_run_id`` (a run opened by ``parent-start``), the steps attach to that run and leave it open:
    a scheduler runs each step as its own task and closes the parent at the end (``parent-end``).

    Raises:
        StepError: wrapping the first step's failure; its run and the parent run end FAILED.
    """
    reporter = reporter or _LogReporter()
    started = time.perf_counter()
    storage = Storage(profile=settings.aws.profile, region=settings.aws.region)
    tracker = Tracker(settings, parent_run_id=parent_run_id)
    experiment_id = tracker.connect()
    tracker.close_orphaned_runs()
    if settings.train_model.from_run and "train_model" in steps:
        tracker.load_snapshot_manifest(settings.train_model.from_run)  # a wrong run id fails before any run starts
    ctx = StepContext(settings=settings, storage=storage, tracker=tracker)
    force = set(force)
    cache = _Cache(ctx, force)
    # Check what the steps that will (or may) run need before any run starts; a fully reused pipeline skips this.
    try:
        to_run = [d.step for d in _plan(ctx, force, steps) if d.action == "run"]
    except PipelineError:
        to_run = list(steps)  # an input cannot be found yet: the step itself will say so
    preflight(settings, to_run, storage)
    params = {**pipeline_params(settings, steps), **(extra_params or {})}
    with tracker.pipeline_run(params) as parent:
        result = PipelineResult(
            environment=settings.environment,
            tracking_uri=settings.tracking.uri,
            experiment_id=parent.info.experiment_id or experiment_id,
            parent_run_id=parent.info.run_id,
        )
        for index, step in enumerate(steps, start=1):
            step_started = time.perf_counter()
            try:
                step_result = _run_step(ctx, cache, STEP_SPECS[step], reporter, index, len(steps))
            except Exception as exc:
                reporter.step_failed(step, exc)
                raise StepError(step, exc) from exc
            step_result.seconds = time.perf_counter() - step_started
            tracker.log_parent_metrics(parent.info.run_id, step, step_result.metrics)
            result.steps.append(step_result)
            reporter.step_finished(step_result)
        result.seconds = time.perf_counter() - started
    return result


def _run_step(ctx: StepContext, cache: _Cache, spec: Step, reporter: Reporter, index: int, total: int) -> StepResult:
    tracker = ctx.tracker
    inputs = spec.inputs(ctx)
    key = cache.key(spec, inputs)
    decision = cache.decide(spec, key)
    reporter.step_started(spec.name, index, total, decision.reason if decision.action == "run" else "reusing")
    if decision.action == "reuse":
        return _reuse_step(ctx, spec, key, decision)
    with tracker.step_run(spec.name) as run:
        tracker.set_tags({**key.tags(), "pipeline.run_reason": decision.reason})
        output = spec.run(ctx, run, inputs)
        tracker.log_outputs(output.outputs, output.digests)
        if output.notes:
            tracker.set_tags({TAG_NOTES: "\n".join(output.notes)[:4000]})
    ctx.done[spec.name] = {n: Input(uri, output.digests[n]) for n, uri in output.outputs.items()}
    return StepResult(spec.name, run.info.run_id, output.outputs, output.metrics, 0.0, reason=decision.reason,
                      notes=output.notes)


def _reuse_step(ctx: StepContext, spec: Step, key: CacheKey, decision: Decision) -> StepResult:
    """A child run that points at the reused run, with its outputs, digests and metrics."""
    from mlflow import MlflowClient

    cached: Run = MlflowClient().get_run(decision.cached_run_id)
    outputs = ctx.tracker.step_outputs(cached)
    digests = ctx.tracker.step_digests(cached)
    metrics = dict(cached.data.metrics)
    notes = [f"as decided then: {n}" for n in cached.data.tags.get(TAG_NOTES, "").splitlines() if n]
    with ctx.tracker.step_run(spec.name) as run:
        ctx.tracker.set_tags({**key.tags(), TAG_REUSED_FROM: cached.info.run_id})
        ctx.tracker.log_outputs(outputs, digests)
        ctx.tracker.log_metrics(metrics)
    ctx.done[spec.name] = {n: Input(uri, digests.get(n, uri)) for n, uri in outputs.items()}
    return StepResult(spec.name, run.info.run_id, outputs, metrics, 0.0, reused_from=cached.info.run_id,
                      reason=decision.reason, notes=notes)
