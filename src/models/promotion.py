"""The promotion policy: which registered version gets the alias (``@champion``) that predict and serving use.

``judge`` is the rule, a pure function; ``decide`` applies it to a candidate train_model evaluated, before it
is registered, and ``apply`` moves the alias once it is (the step names this module as its ``policy``, so editing
it never retrains a model); ``set_alias`` keeps the history on the versions; ``previous_champion`` is what
``promote --rollback`` goes back to.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from src.lib.config import GATE_METRICS, GateParams
from src.lib.errors import PipelineError, TrackingError

if TYPE_CHECKING:
    from src.lib.config import Settings


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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def version_tags(self) -> dict[str, str]:
        """What the registered version carries from the moment it exists."""
        return {"gate.decision": "promoted" if self.promoted else "rejected",
                "gate.reasons": "; ".join(self.reasons)[:4000]}

    def summary(self) -> str:
        if self.promoted:
            before = f" (was version {self.previous})" if self.previous else ""
            return f"promoted version {self.version} to @{self.alias}{before}"
        kept = f"; @{self.alias} stays version {self.previous}" if self.previous else f"; no model has @{self.alias}"
        return f"version {self.version} not promoted: {'; '.join(self.reasons)}{kept}"


def judge(candidate: dict[str, float], baseline: dict[str, float] | None, gate: GateParams,
          champion: str | None = None) -> tuple[bool, list[str]]:
    """The gate's rule. Every gated metric must reach its threshold; with a champion (``baseline``, measured on the
    same holdout), it must also beat it by at least ``gate.min_improvement``. Returns (passed, reasons)."""
    failures = []
    for metric, threshold in gate.thresholds.items():
        more_is_better = GATE_METRICS[metric]
        value = candidate.get(metric)
        if value is None:
            failures.append(f"{metric}: the evaluation did not produce it")
            continue
        if (value < threshold) if more_is_better else (value > threshold):
            failures.append(f"{metric}: {value:.4g} is {'below' if more_is_better else 'above'} the threshold "
                            f"{threshold:g}")
        if baseline is None or baseline.get(metric) is None:
            continue
        base = float(baseline[metric])
        target = base + gate.min_improvement if more_is_better else base - gate.min_improvement
        if (value < target) if more_is_better else (value > target):
            failures.append(f"{metric}: {value:.4g} does not beat the baseline model (version {champion}) at "
                            f"{base:.4g} by at least {gate.min_improvement:g}")
    if failures:
        return False, failures
    parts = [f"{m} {'>=' if GATE_METRICS[m] else '<='} {v}" for m, v in gate.thresholds.items()]
    against = f", and better than version {champion}" if champion else ""
    return True, [f"passed: {', '.join(parts)}{against}"]


def decide(settings: Settings, name: str, evaluation: Any, evaluation_data: Any) -> GateDecision:
    """Judge a candidate (evaluated, not yet registered) against the thresholds and the current alias holder,
    evaluated on the same holdout in a nested run. The pipeline registers the candidate with the decision's tags,
    then calls ``apply``: no registered version is ever without its decision."""
    import mlflow

    from src.lib.evaluation import evaluate
    from src.lib.registry import alias_version
    from src.lib.runs import nested_run

    gate = settings.gate
    champion = alias_version(name, gate.alias)
    baseline = None
    if champion is not None:
        with nested_run(f"{gate.alias}_baseline", "baseline", settings.environment,
                        {"gate.baseline_version": champion}):
            baseline = evaluate(f"models:/{name}/{champion}", evaluation_data).metrics
    passed, reasons = judge(evaluation.metrics, baseline, gate, champion)
    verdict = "promoted" if passed else "rejected"
    mlflow.set_tags({"gate.decision": verdict, "gate.reasons": "; ".join(reasons)[:4000]})
    return GateDecision(
        promoted=passed, name=name, version="", alias=gate.alias, previous=champion, reasons=reasons,
        candidate={m: evaluation.metrics.get(m) for m in gate.thresholds},
        baseline={m: baseline.get(m) for m in gate.thresholds} if baseline else None,
    )


def apply(decision: GateDecision, version: str) -> str:
    """Give the registered candidate the alias if it passed; log the decision on the run. Its one-line summary."""
    import mlflow

    decision = dataclasses.replace(decision, version=version)
    if decision.promoted:
        run = mlflow.active_run()
        set_alias(decision.name, version, decision.alias, by=f"pipeline run {run.info.run_id}" if run else "pipeline",
                  reason="; ".join(decision.reasons))
    mlflow.log_dict(decision.to_dict(), "gate/decision.json")
    return decision.summary()


def set_alias(name: str, version: str, alias: str, by: str, reason: str) -> str | None:
    """Move ``alias`` to ``version``, recording on both versions who held it before and why it moved."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from src.lib.registry import alias_version

    client = MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise TrackingError(f"model '{name}' has no version {version}: see the registered versions in mlflow ui") \
            from exc
    previous = alias_version(name, alias)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_registered_model_alias(name, alias, version)
    for key, value in {f"{alias}.previous_version": previous or "none", f"{alias}.promoted_at": now,
                       f"{alias}.promoted_by": by, f"{alias}.reason": reason[:4000]}.items():
        client.set_model_version_tag(name, version, key, value)
    if previous and previous != version:
        client.set_model_version_tag(name, previous, f"{alias}.replaced_by", f"{version} at {now}")
    return previous


def previous_champion(name: str, alias: str) -> str:
    """The version that held ``alias`` before the current holder (what a rollback gives it back to)."""
    from mlflow import MlflowClient

    from src.lib.registry import alias_version

    current = alias_version(name, alias)
    if current is None:
        raise PipelineError(f"no version of '{name}' holds @{alias}: nothing to roll back")
    previous = MlflowClient().get_model_version(name, current).tags.get(f"{alias}.previous_version", "none")
    if previous == "none":
        raise PipelineError(f"version {current} was the first @{alias} of '{name}': there is nothing to roll back to")
    return str(previous)
