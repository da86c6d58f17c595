"""Planning: where each step's inputs come from, its cache key, and whether it runs or reuses an earlier run.

An input is, in order: what a step earlier in this pipeline wrote; an input file of the catalog (with its
fingerprint); a model (the version holding the gate's alias, resolved now); or what the newest finished run
of the step that writes it recorded (found through MLflow, never by listing folders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mlsteps import registry
from mlsteps.catalog import Catalog, Input
from mlsteps.config import Settings
from mlsteps.config_sources import COMMAND_LINE
from mlsteps.discovery import option_for, writers
from mlsteps.errors import ConfigError, PipelineError, UsageError
from mlsteps.hints import command
from mlsteps.lineage import load_manifest
from mlsteps.reuse.keys import CacheKey, code_digest, make_key
from mlsteps.runs import TAG_REUSED_FROM, Runs, step_digests, step_outputs

if TYPE_CHECKING:
    from mlsteps.step import Step


@dataclass(frozen=True)
class Decision:
    """What a step will do (dry run) or did, and why."""

    step: str
    action: Literal["run", "reuse"]
    reason: str
    cached_run_id: str | None = None


def recorded_outputs(run: Any) -> dict[str, Input]:
    """What a step run recorded that it wrote: each output's location and digest."""
    digests = step_digests(run)
    return {name: Input(uri, digests.get(name, uri)) for name, uri in step_outputs(run).items()}


@dataclass
class Planner:
    """Resolves inputs and decides run or reuse, for one pipeline run."""

    settings: Settings
    catalog: Catalog
    runs: Runs
    force: dict[str, str] = field(default_factory=dict)  # step -> why it must run
    from_run: str | None = None
    # Outputs of steps already done (or, when planning, to be reused) in this pipeline run.
    done: dict[str, dict[str, Input]] = field(default_factory=dict)

    def copy(self) -> Planner:
        return Planner(self.settings, self.catalog, self.runs, dict(self.force), self.from_run, dict(self.done))

    # -- inputs --------------------------------------------------------------------------------------------
    def inputs(self, step: Step[Any]) -> dict[str, Input]:
        for name in step.reads:  # a mistake in the command first, before the models and runs are looked up
            self._check_typed_path(name)
        if self.from_run and step.snapshot:
            files = load_manifest(self.from_run)["files"]
            snapshots = {name: Input(files[name]["uri"], files[name]["sha256"]) for name in step.snapshot}
        else:
            snapshots = {}
        return {name: snapshots.get(name) or self.dataset(name, step) for name in step.reads}

    def dataset(self, name: str, step: Step[Any]) -> Input:
        spec = self.settings.dataset(name)
        if spec.kind == "model":
            if self.runs.experiment_id is None:  # a dry run on an empty store: looking would create the store
                raise PipelineError(
                    f"no model to read: nothing has run in environment '{self.settings.environment}'"
                    " yet (its experiment does not exist)"
                )
            uri = spec.uri or registry.champion_uri(spec.name or "", self.settings.gate.alias)
            # An alias or "latest" is resolved now: the key changes when the alias moves.
            return Input(uri, registry.describe_model(uri).identity)
        if spec.kind == "input":
            source = self.catalog.source(name)
            if source is not None:
                return source
            if name in step.fallbacks:
                return self.dataset(step.fallbacks[name], step)
            raise ConfigError(f"catalog.{name}.path is not set, and step '{step.name}' needs it: set it in the config")
        return self.upstream(name)

    def _check_typed_path(self, name: str) -> None:
        """A file typed on the command line (``--input``) that does not exist is a usage error that names the
        option. A file the config names may not be there yet: the step reports it as a failure (exit 1)."""
        key = f"catalog.{name}.path"
        if self.settings.dataset(name).kind != "input" or self.settings.overrides.get(key) != COMMAND_LINE:
            return
        uri = self.settings.location(name)
        if uri is None or self.catalog.exists(uri):
            return
        given = option_for(key) or "the command line"
        raise UsageError(f"dataset '{uri}' does not exist: check the path given to {given}")

    def upstream(self, name: str) -> Input:
        """What the step that writes ``name`` wrote: in this pipeline run, else its newest finished run."""
        writer = writers().get(name)
        if writer is None:
            raise ConfigError(f"no step writes dataset '{name}': declare it in a step's writes, or make it an input")
        if writer in self.done:
            return self.done[writer][name]
        run = self.runs.latest_step_run(writer)
        env = self.settings.environment
        if run is None:
            raise PipelineError(
                f"no finished '{writer}' run in environment '{env}' to take '{name}' from: "
                f"run it first ({command('--step', writer, '--environment', env)})"
            )
        outputs = step_outputs(run)
        if name not in outputs:
            raise PipelineError(f"run {run.info.run_id} of '{writer}' recorded no output '{name}': re-run '{writer}'")
        return Input(outputs[name], step_digests(run).get(name, f"run:{run.info.run_id}"))

    # -- cache ---------------------------------------------------------------------------------------------
    def key(self, step: Step[Any], inputs: dict[str, Input]) -> CacheKey:
        """The step's cache key: its code, parameters and the resolved locations it writes to, the environment, and
        its inputs (by content; an input file also by location, so that data read elsewhere is never mistaken)."""
        params = {
            "params": self.settings.params(step.name).model_dump(mode="json"),
            "schema": self.settings.dataset_schema.model_dump(mode="json"),
            "catalog": {n: self.settings.dataset(n).model_dump(mode="json") for n in step.writes},
            "locations": {n: self.settings.location(n) for n in step.writes},
        }
        digests = {name: f"{i.uri} {i.digest}" if i.from_config else i.digest for name, i in inputs.items()}
        return make_key(step.name, self.settings.environment, code_digest(step.run.__module__), params, digests)

    def decide(self, step: Step[Any], key: CacheKey) -> Decision:
        if step.name in self.force:
            return Decision(step.name, "run", self.force[step.name])
        for run in self.runs.find_cached_runs(key.value):
            if all(self.catalog.exists(uri) for uri in step_outputs(run).values()):
                origin = run.data.tags.get(TAG_REUSED_FROM) or run.info.run_id
                return Decision(step.name, "reuse", "same code, parameters and inputs", origin)
        previous = self.runs.latest_step_run(step.name)
        if previous is None:
            return Decision(step.name, "run", "no earlier run")
        return Decision(step.name, "run", key.difference(previous.data.tags))

    def cached_outputs(self, run_id: str) -> dict[str, Input]:
        return recorded_outputs(self.runs.get_run(run_id))

    # -- the plan ------------------------------------------------------------------------------------------
    def plan(self, steps: list[Step[Any]]) -> list[Decision]:
        """What running ``steps`` would do, without starting a run or writing any data."""
        planned = self.copy()
        decisions: list[Decision] = []
        will_run: set[str] = set()
        producer = writers()
        for step in steps:
            depends = {producer[n] for n in (*step.reads, *step.fallbacks.values()) if n in producer}
            upstream = sorted(will_run & depends)
            if upstream:
                verb = "runs" if len(upstream) == 1 else "run"
                reason = f"input from {', '.join(upstream)}, which {verb} first (reused if its output is unchanged)"
                decision = Decision(step.name, "run", reason)
            else:
                decision = planned.decide(step, planned.key(step, planned.inputs(step)))
                if decision.action == "reuse" and decision.cached_run_id:
                    planned.done[step.name] = planned.cached_outputs(decision.cached_run_id)
            if decision.action == "run":
                will_run.add(step.name)
            decisions.append(decision)
        return decisions
