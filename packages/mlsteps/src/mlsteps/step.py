"""What a step is: its declaration (``Step``), what its runner gets (``StepContext``) and returns (``StepOutput``).

A step module declares ``STEP = Step(name=..., reads=(...), writes=(...), params=..., run=...)`` next to its
pure transforms. ``reads`` and ``writes`` are dataset names of the catalog (``catalog:`` in the config); the
runner receives the datasets it reads as loaded objects (DataFrames, or a model) and returns what it writes.
It never sees a path, a bucket or MLflow: the pipeline reads, writes, digests, snapshots and tracks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from mlsteps.config import Settings

P = TypeVar("P", bound=BaseModel)


class Strict(BaseModel):
    """The one base of the config's models: unknown keys are rejected, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StepParams(Strict):
    """Base of every step's parameters model: its config section."""


class NoParams(StepParams):
    """For a step without a config section of its own."""


@dataclass(frozen=True)
class ModelOutput:
    """A fitted model a runner returns: the pipeline logs it (signature from ``example``), evaluates it on
    ``evaluation_data`` (features + ``target_column``; digest taken from the dataset named ``evaluation_dataset``),
    and registers it under the catalog entry's name. ``train_target`` is what baselines are fitted on.

    On the dask engine ``evaluation_data`` is None and ``predictions`` holds what the model predicted for every
    row of the holdout, scored on the workers (``mlsteps.dask_scoring.score_holdout``: the true values, the
    predictions and the class probabilities), with the holdout itself left on the cluster in ``holdout`` and
    ``prepare`` turning a partition of it into the model's inputs (the gate scores the champion with it)."""

    model: Any
    example: Any
    evaluation_data: Any
    target_column: str
    evaluation_dataset: str
    train_target: Any = None
    predictions: Any = None
    holdout: Any = None
    prepare: Any = None


@dataclass
class StepOutput:
    """What a runner returns: frames (or models) by catalog name, metrics, params to log, one-line notes."""

    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Text artifacts to log on the step's run ({artifact path: text}).
    texts: dict[str, str] = field(default_factory=dict)
    # On the dask engine: a ``dask.delayed`` result giving more metrics ({name: value}), computed with the outputs
    # in one pass over their partitions (built from ``mlsteps.partitions.parts(frame)`` of an output, it shares
    # its tasks).
    lazy_metrics: Any = None


@dataclass(frozen=True)
class StepContext(Generic[P]):
    """What a runner may use besides its inputs: the whole config and its own parameters."""

    settings: Settings
    params: P
    run_id: str
    # Where each dataset read was taken from ({name: URI}), for the runner to log.
    input_uris: Mapping[str, str] = field(default_factory=dict)
    # ``with ctx.phase("fitting"):`` tells the person watching what a long step is doing (a live line on a terminal).
    phase: Callable[[str], AbstractContextManager[None]] = lambda _text: contextlib.nullcontext()


@dataclass(frozen=True)
class Step(Generic[P]):
    """One step of the pipeline, declared once in the module of its transforms.

    Args:
        name: the step's name: ``--step`` choice, MLproject entry point, DAG task, config section.
        reads: catalog datasets it reads (literal tuple: read without importing the module).
        writes: catalog datasets it writes.
        params: its parameters model; the config section named after the step is validated against it.
        run: ``run(ctx, inputs) -> StepOutput``; ``inputs`` maps each name in ``reads`` to a loaded dataset.
        snapshot: datasets it reads that are stored content-addressed, with a manifest, before it runs (so the
            run can be traced to, and retrained from, its exact data with ``--from-run``).
        chunked: datasets it reads as an iterator of DataFrames of the catalog entry's ``chunk_rows`` rows each
            (one pass), not as one DataFrame: a file larger than memory is never held whole.
        headline: metrics shown in the console summary.
        resources: CPU and memory of the step's pod when the DAG runs it on Kubernetes.
        fallbacks: a dataset to read in place of one that is not set (``predict_input`` -> ``test``).
        options: command-line options that set keys of the step's config section (literal), e.g.
            ``{"--seed": {"key": "seed", "type": "int", "help": "..."}}``; a key starting with ``catalog.`` sets a
            catalog entry instead. Spec keys: key, help, type (str, int, float, or flag: on when given), multiple (``KEY=VALUE``
            pairs into a mapping), short (e.g. ``-p``), metavar. Steps may share a flag: it sets each one's key.
        policy: the module whose ``decide(settings, name, model_uri, evaluation, data, train_target)`` judges a
            model it wrote before it is registered (``evaluation``: an ``mlsteps.evaluation.Evaluation``, its
            metrics and predictions on the holdout ``data``, an MLflow dataset) and whose ``apply(decision,
            version)`` acts on it after (the quality gate). Named by string so that the policy's code is not part
            of the step's cache key.
    """

    name: str
    run: Callable[[StepContext[P], Mapping[str, Any]], StepOutput]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    params: type[P] = NoParams  # type: ignore[assignment]
    snapshot: tuple[str, ...] = ()
    chunked: tuple[str, ...] = ()
    headline: tuple[str, ...] = ()
    resources: dict[str, str] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: str | None = None
