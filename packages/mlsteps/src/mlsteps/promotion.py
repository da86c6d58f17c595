"""The promotion policy: which registered version gets the alias (``@champion``) that predict and serving use.

``judge`` is the rule, a pure function; ``decide`` applies it to a candidate train_model evaluated, before it
is registered, and ``apply`` moves the alias once it is (the step names this module as its ``policy``, so editing
it never retrains a model); ``set_alias`` keeps the history on the versions; ``previous_champion`` is what
``promote --rollback`` goes back to.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlsteps.config import GATE_METRICS, GateParams
from mlsteps.errors import TrackingError, UsageError

if TYPE_CHECKING:
    from mlsteps.config import Settings
    from mlsteps.evaluation import Evaluation


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """Whether a candidate got the alias, and why."""

    promoted: bool
    name: str
    version: str
    alias: str
    previous: str | None
    reasons: list[str]
    candidate: dict[str, Any]
    baseline: dict[str, Any] | None
    dummy: dict[str, Any] | None = None
    champion_skipped: str = ""
    # What the candidate predicts, kept on its version: a later candidate of another task is not compared to it.
    task: str = ""
    labels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def version_tags(self) -> dict[str, str]:
        """What the registered version carries from the moment it exists."""
        tags = {
            "gate.decision": "promoted" if self.promoted else "rejected",
            "gate.reasons": "; ".join(self.reasons)[:4000],
            "gate.task": self.task,
            "gate.labels": json.dumps(self.labels),
        }
        return tags | ({"gate.champion_comparison": self.champion_skipped[:4000]} if self.champion_skipped else {})

    def summary(self) -> str:
        if self.promoted:
            before = f" (was version {self.previous})" if self.previous else ""
            return f"promoted version {self.version} to @{self.alias}{before}"
        kept = f"; @{self.alias} stays version {self.previous}" if self.previous else f"; no model has @{self.alias}"
        return f"version {self.version} not promoted: {'; '.join(self.reasons)}{kept}"


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the gate judges: the candidate's holdout metrics, and the baselines measured on the same holdout."""

    candidate: dict[str, float]
    dummy: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    # Why the champion was not compared (its inputs, task or labels differ from the candidate's, or too few holdout
    # rows were outside its training data), or "".
    champion_skipped: str = ""
    # The candidate's metrics on the rows the champion was scored on, when those are fewer than the holdout.
    candidate_vs_champion: dict[str, float] | None = None
    # What the comparison was made on, for the reasons ("" when on the whole holdout).
    fair_rows_note: str = ""


def judge(evidence: Evidence, gate: GateParams, task: str) -> tuple[bool, list[str]]:
    """The gate's rule: every threshold reached; on every gated metric, better than the dummy baseline by more
    than ``gate.min_lift_over_dummy`` and, with a comparable champion, better than it by at least
    ``gate.min_improvement``. Returns (passed, reasons)."""
    more = GATE_METRICS[task]
    failures = []

    def worse(value: float, than: float, margin: float, strict: bool) -> bool:
        """Whether ``value`` fails to beat ``than`` by ``margin`` (``strict``: a tie fails too)."""
        better_is_more = more[metric]
        target = than + margin if better_is_more else than - margin
        if better_is_more:
            return value <= target if strict else value < target
        return value >= target if strict else value > target

    for metric, threshold in gate.thresholds.items():
        value = evidence.candidate.get(metric)
        if value is not None and worse(value, threshold, 0.0, strict=False):
            failures.append(
                f"{metric}: {value:.4g} is {'below' if more[metric] else 'above'} the threshold {threshold:g}"
            )
    for metric in dict.fromkeys([*gate.gated(task), *gate.thresholds]):
        value = evidence.candidate.get(metric)
        if value is None:
            failures.append(f"{metric}: the evaluation did not produce it")
            continue
        dummy = (evidence.dummy or {}).get(metric)
        if dummy is not None and metric in gate.gated(task) and worse(value, dummy, gate.min_lift_over_dummy, True):
            failures.append(
                f"{metric}: {value:.4g} is no better than the dummy baseline's {dummy:.4g}"
                + (f" by more than {gate.min_lift_over_dummy:g}" if gate.min_lift_over_dummy else "")
            )
        base = (evidence.champion or {}).get(metric)
        ours = (evidence.candidate_vs_champion or evidence.candidate).get(metric)
        compared = metric in gate.gated(task)
        if base is not None and ours is not None and compared and worse(ours, base, gate.min_improvement, False):
            failures.append(
                f"{metric}: {ours:.4g} does not beat the baseline model (version "
                f"{evidence.champion_version}) at {base:.4g} by at least {gate.min_improvement:g}"
            )
    notes = [f"champion not compared: {evidence.champion_skipped}"] if evidence.champion_skipped else []
    notes += [evidence.fair_rows_note] if evidence.fair_rows_note else []
    if evidence.champion_skipped and evidence.champion_version and gate.when_not_compared == "keep":
        failures.append(
            f"no fair comparison with version {evidence.champion_version} (the champion), and "
            "gate.when_not_compared is keep: promote this version by hand (promote --version N) if it should "
            "replace it, or set gate.when_not_compared: promote"
        )
    if failures:
        return False, failures + notes
    parts = [f"better than the dummy baseline on {', '.join(gate.gated(task))}"] if evidence.dummy else []
    parts += [f"{m} {'>=' if more[m] else '<='} {v}" for m, v in gate.thresholds.items()]
    if evidence.champion is not None:
        parts.append(f"better than version {evidence.champion_version}")
    return True, [f"passed: {', '.join(parts) or 'no rule applies'}", *notes]


def decide(
    settings: Settings,
    name: str,
    candidate_uri: str,
    evaluation: Evaluation,
    evaluation_data: Any,
    train_target: Any,
) -> GateDecision:
    """Judge a candidate (evaluated, not yet registered) against the thresholds, a dummy model fitted on the same
    training target, and the current alias holder (each evaluated on the same holdout in a nested run). The
    pipeline registers the candidate with the decision's tags, then calls ``apply``: no registered version is ever
    without its decision.

    ``evaluation``: the candidate's (``mlsteps.evaluation``), with its predictions; ``evaluation_data``: the MLflow
    dataset of the holdout they were made on (features and target, in the same row order)."""

    from mlsteps.cluster_gate import ClusterHoldout, decide_on_cluster

    if isinstance(evaluation_data, ClusterHoldout):  # the dask engine: the holdout stays on the cluster
        return decide_on_cluster(settings, name, candidate_uri, evaluation, evaluation_data, train_target)
    from mlsteps.baselines import evaluate_baseline, fit_dummy, log_baseline
    from mlsteps.evaluation import evaluate
    from mlsteps.registry import alias_version, describe_model, load_model
    from mlsteps.runs import nested_run

    gate, schema, env = settings.gate, settings.dataset_schema, settings.environment
    holdout = evaluation_data.df
    with nested_run("dummy_baseline", "baseline", env, {"gate.baseline": "dummy"}):
        # Its metrics only: the plots of a model that scores every row alike say nothing.
        dummy = evaluate_baseline(fit_dummy(schema, train_target), evaluation_data, schema, plots=False)
    champion = alias_version(name, gate.alias)
    baseline, skipped, candidate_fair, note = None, "", None, ""
    if champion is not None:
        skipped = _incomparable(name, champion, candidate_uri, schema)
    if champion is not None and not skipped:
        fair, why = _rows_outside_training(name, champion, holdout)
        kept = 0 if fair is None else int(fair.sum())
        if fair is None:
            skipped = why
        elif kept < gate.min_fair_rows:
            skipped = (
                f"only {kept} of the {len(holdout)} holdout rows were not in version {champion}'s training data "
                f"(gate.min_fair_rows: {gate.min_fair_rows}): the split changed since it was trained"
            )
        else:
            data = evaluation_data
            if kept < len(holdout):
                data = _subset(evaluation_data, holdout.loc[fair])
                note = (
                    f"compared with version {champion} on the {kept} holdout rows it was not trained on "
                    f"({len(holdout) - kept} left out)"
                )
                with nested_run("candidate_on_fair_rows", "baseline", env, {"gate.baseline": "candidate"}):
                    on_fair_rows = evaluate(schema, evaluation.predictions.rows(fair), plots=False)
                    log_baseline(on_fair_rows, data)
                    candidate_fair = on_fair_rows.metrics
            try:
                with nested_run(f"{gate.alias}_baseline", "baseline", env, {"gate.baseline_version": champion}):
                    uri = f"models:/{name}/{champion}"
                    model, _ = load_model(uri, describe_model(uri))
                    baseline = evaluate_baseline(model, data, schema, gate.evaluation_plots)
            except Exception as exc:  # noqa: BLE001  (a champion that cannot score this holdout: an older task, untagged)
                baseline, candidate_fair, note = None, None, ""
                skipped = f"version {champion} could not be scored on this holdout ({type(exc).__name__}: {exc})"[:500]
    return gate_decision(settings, name, evaluation.metrics, dummy, baseline, champion, skipped, candidate_fair, note)


def gate_decision(
    settings: Settings,
    name: str,
    candidate: dict[str, float],
    dummy: dict[str, float],
    baseline: dict[str, float] | None,
    champion: str | None,
    skipped: str,
    candidate_fair: dict[str, float] | None,
    note: str,
) -> GateDecision:
    """The rule applied to the evidence, tagged on the active run, as a decision (both engines' gates end here)."""
    import mlflow

    gate, schema = settings.gate, settings.dataset_schema
    evidence = Evidence(dict(candidate), dummy, baseline, champion, skipped, candidate_fair, note)
    passed, reasons = judge(evidence, gate, schema.task)
    verdict = "promoted" if passed else "rejected"
    tags = {"gate.decision": verdict, "gate.reasons": "; ".join(reasons)[:4000]}
    mlflow.set_tags(tags | ({"gate.champion_comparison": skipped[:4000]} if skipped else {}))
    metrics = [*gate.gated(schema.task), *gate.thresholds]
    return GateDecision(
        promoted=passed,
        name=name,
        version="",
        alias=gate.alias,
        previous=champion,
        reasons=reasons,
        candidate={m: candidate.get(m) for m in metrics},
        baseline={m: baseline.get(m) for m in metrics} if baseline else None,
        dummy={m: dummy.get(m) for m in metrics},
        champion_skipped=skipped,
        task=schema.task,
        labels=list(schema.labels) if schema.labels else None,
    )


def _incomparable(name: str, champion: str, candidate_uri: str, schema: Any) -> str:
    """Why the champion cannot be compared with the candidate at all (another task, label set or inputs), or ""."""
    from mlflow import MlflowClient

    from mlsteps.registry import model_inputs

    tags = MlflowClient().get_model_version(name, champion).tags
    if tags.get("gate.task") and tags["gate.task"] != schema.task:
        return f"version {champion} is a {tags['gate.task']} model, the candidate a {schema.task} one"
    labels = list(schema.labels) if schema.labels else None
    if "gate.labels" in tags and json.loads(tags["gate.labels"]) != labels:
        return f"version {champion} predicts the labels {tags['gate.labels']}, the candidate {json.dumps(labels)}"
    theirs, ours = model_inputs(f"models:/{name}/{champion}"), model_inputs(candidate_uri)
    if theirs != ours:
        return (
            f"version {champion}'s inputs differ from the candidate's (added: "
            f"{sorted(set(ours) - set(theirs))}, removed: {sorted(set(theirs) - set(ours))}, "
            f"changed: {sorted(c for c in set(ours) & set(theirs) if ours[c] != theirs[c])})"
        )
    return ""


def _rows_outside_training(name: str, champion: str, holdout: Any) -> tuple[Any, str]:
    """Which holdout rows are not rows of the champion's training data (its snapshot, by the columns both
    share), as a boolean array; or None and why they cannot be told."""
    import pandas as pd
    from mlflow import MlflowClient

    from mlsteps.errors import PipelineError as _Missing
    from mlsteps.lineage import load_manifest
    from mlsteps.storage import Storage

    run_id = MlflowClient().get_model_version(name, champion).run_id or ""
    try:
        manifest = load_manifest(run_id)
        # The dataset the champion was trained on (named by the manifest; before 0.2.0, the first one recorded).
        train = manifest["files"][manifest.get("training") or next(iter(manifest["files"]))]["uri"]
    except (_Missing, KeyError, StopIteration) as exc:
        return None, f"version {champion}'s training data is not recorded with its run ({exc})"
    from mlsteps import partitions

    storage = Storage()
    # A champion trained on the dask engine: its snapshot is a manifest of files.
    trained = partitions.read_whole(storage, train) if partitions.is_partitioned(train) else storage.read_table(train)
    columns = [c for c in holdout.columns if c in trained.columns]
    seen = set(pd.util.hash_pandas_object(trained[columns], index=False).tolist())
    inside = pd.util.hash_pandas_object(holdout[columns], index=False).isin(seen).to_numpy()
    return ~inside, ""


def _subset(data: Any, rows: Any) -> Any:
    """An MLflow dataset like ``data`` with only ``rows`` (a part of its frame)."""
    from mlflow.data.pandas_dataset import from_pandas

    return from_pandas(rows.reset_index(drop=True), name=data.name, targets=data.targets)


def apply(decision: GateDecision, version: str) -> str:
    """Give the registered candidate the alias if it passed; log the decision on the run. Its one-line summary."""
    import mlflow

    decision = dataclasses.replace(decision, version=version)
    if decision.promoted:
        run = mlflow.active_run()
        set_alias(
            decision.name,
            version,
            decision.alias,
            by=f"pipeline run {run.info.run_id}" if run else "pipeline",
            reason="; ".join(decision.reasons),
        )
    mlflow.log_dict(decision.to_dict(), "gate/decision.json")
    return decision.summary()


def set_alias(name: str, version: str, alias: str, by: str, reason: str) -> str | None:
    """Move ``alias`` to ``version``, recording on both versions who held it before and why it moved."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlsteps.registry import alias_version
    from mlsteps.store import is_missing

    client = MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if not is_missing(exc):
            raise TrackingError(
                f"cannot look up version {version} of model '{name}': {exc.message.splitlines()[0]}"
            ) from exc
        raise UsageError(f"model '{name}' has no version {version}: see the registered versions in mlflow ui") from exc
    previous = alias_version(name, alias)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_registered_model_alias(name, alias, version)
    for key, value in {
        f"{alias}.previous_version": previous or "none",
        f"{alias}.promoted_at": now,
        f"{alias}.promoted_by": by,
        f"{alias}.reason": reason[:4000],
    }.items():
        client.set_model_version_tag(name, version, key, value)
    if previous and previous != version:
        client.set_model_version_tag(name, previous, f"{alias}.replaced_by", f"{version} at {now}")
    return previous


def previous_champion(name: str, alias: str) -> str:
    """The version that held ``alias`` before the current holder (what a rollback gives it back to)."""
    from mlflow import MlflowClient

    from mlsteps.registry import alias_version

    current = alias_version(name, alias)
    if current is None:
        raise UsageError(f"no version of '{name}' holds @{alias}: nothing to roll back")
    previous = MlflowClient().get_model_version(name, current).tags.get(f"{alias}.previous_version", "none")
    if previous == "none":
        raise UsageError(f"version {current} was the first @{alias} of '{name}': there is nothing to roll back to")
    return str(previous)
