"""The gate on the dask engine: the same rule and evidence as ``mlsteps.promotion``, with every model scored on
the workers and only its predictions gathered (``mlsteps.dask_scoring``).

The candidate was scored when it was trained; the dummy baseline needs no features (it predicts the training
prior, or mean); the champion is loaded here and sent to the workers, and scored on the holdout rows that were not in its own
training data (told apart by row hashes of its training snapshot, gathered as one array of 8 bytes a row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.config import Settings
    from mlsteps.promotion import GateDecision


@dataclass(frozen=True)
class ClusterHoldout:
    """The holdout as it stays on the cluster (a Dask frame), what turns a partition into a model's inputs, and
    what the candidate predicted for it (gathered: truth, prediction, probability_<class>)."""

    frame: Any
    target: str
    prepare: Callable[[Any], Any]
    scored: pd.DataFrame


def predictions_of(scored: pd.DataFrame) -> Any:
    """The gathered columns of ``score_holdout`` as ``mlsteps.evaluation.Predictions``."""
    from mlsteps.dask_scoring import TRUTH
    from mlsteps.evaluation import Predictions
    from mlsteps.scoring import PREDICTION, PROBABILITY

    prefix = f"{PROBABILITY}_"
    columns = [c for c in scored.columns if c.startswith(prefix)]
    probabilities = scored[columns].rename(columns=lambda c: c[len(prefix) :]) if columns else None
    return Predictions(scored[TRUTH].to_numpy(), scored[PREDICTION].to_numpy(), probabilities)


def evaluate_scored(settings: Settings, scored: pd.DataFrame, plots: bool) -> Any:
    """The evaluation (metrics, and plots when asked) of gathered predictions, as ``mlsteps.evaluation`` makes it."""
    from mlsteps.evaluation import evaluate

    return evaluate(settings.dataset_schema, predictions_of(scored), plots)


def _evaluated(settings: Settings, predictions: Any, plots: bool) -> dict[str, float]:
    """Evaluate and log on the active (nested) run, as a baseline's evaluation is logged on the pandas engine."""
    from mlsteps.evaluation import evaluate
    from mlsteps.evaluation_log import log_evaluation

    evaluation = evaluate(settings.dataset_schema, predictions, plots)
    log_evaluation(evaluation)
    return dict(evaluation.metrics)


def _dummy_predictions(settings: Settings, train_target: Any, truth: Any) -> Any:
    import numpy as np
    import pandas as pd

    from mlsteps.baselines import fit_dummy
    from mlsteps.evaluation import Predictions

    dummy = fit_dummy(settings.dataset_schema, train_target)
    X = np.zeros((len(truth), 1))
    probabilities = None
    if hasattr(dummy, "predict_proba"):
        probabilities = pd.DataFrame(dummy.predict_proba(X), columns=[str(c) for c in dummy.classes_])
    return Predictions(truth, dummy.predict(X), probabilities)


def _fair_masks(name: str, champion: str, holdout: ClusterHoldout) -> tuple[list[Any] | None, str]:
    """Per holdout partition, which rows were not in the champion's training data (its snapshot, by the columns
    both share); or None and why that cannot be told."""
    import dask
    import numpy as np
    from mlflow import MlflowClient

    from mlsteps import partitions
    from mlsteps.errors import PipelineError
    from mlsteps.lineage import load_manifest
    from mlsteps.row_keys import row_hash
    from mlsteps.storage import Storage

    run_id = MlflowClient().get_model_version(name, champion).run_id or ""
    try:
        manifest = load_manifest(run_id)
        train = manifest["files"][manifest.get("training") or next(iter(manifest["files"]))]["uri"]
    except (PipelineError, KeyError, StopIteration) as exc:
        return None, f"version {champion}'s training data is not recorded with its run ({exc})"
    storage = Storage()
    if partitions.is_partitioned(train):
        trained = partitions.read_dask(storage, train)
    else:
        import dask.dataframe as dd

        trained = dd.read_parquet(train, storage_options=storage.options(train))
    columns = [c for c in holdout.frame.columns if c in trained.columns]
    hashed = dask.compute(*[dask.delayed(row_hash)(p, columns) for p in trained.to_delayed()])
    seen = dask.delayed(np.unique(np.concatenate(hashed or [np.empty(0, "uint64")])), pure=True)
    masks = dask.compute(*[dask.delayed(_outside)(p, columns, seen) for p in holdout.frame.to_delayed()])
    return list(masks), ""


def _outside(part: Any, columns: list[str], seen: Any) -> Any:
    import numpy as np

    from mlsteps.row_keys import row_hash

    return ~np.isin(row_hash(part, columns), seen, assume_unique=False)


def decide_on_cluster(
    settings: Settings, name: str, candidate_uri: str, evaluation: Any, holdout: ClusterHoldout, train_target: Any
) -> GateDecision:
    """``mlsteps.promotion.decide`` for a holdout left on the cluster: the same nested baseline runs, evidence,
    rule, tags and decision."""
    import numpy as np

    from mlsteps.dask_scoring import score_holdout
    from mlsteps.promotion import _incomparable, gate_decision
    from mlsteps.registry import alias_version, load_model
    from mlsteps.runs import nested_run

    gate, schema, env = settings.gate, settings.dataset_schema, settings.environment
    candidate = predictions_of(holdout.scored)
    with nested_run("dummy_baseline", "baseline", env, {"gate.baseline": "dummy"}):
        dummy = _evaluated(settings, _dummy_predictions(settings, train_target, candidate.truth), plots=False)
    champion = alias_version(name, gate.alias)
    baseline, skipped, candidate_fair, note = None, "", None, ""
    if champion is not None:
        skipped = _incomparable(name, champion, candidate_uri, schema)
    if champion is not None and not skipped:
        masks, why = _fair_masks(name, champion, holdout)
        fair = int(sum(int(m.sum()) for m in masks)) if masks is not None else 0
        if masks is None:
            skipped = why
        elif fair < gate.min_fair_rows:
            skipped = (
                f"only {fair} of the {len(candidate)} holdout rows were not in version {champion}'s training data "
                f"(gate.min_fair_rows: {gate.min_fair_rows}): the split changed since it was trained"
            )
        else:
            keep = masks if fair < len(candidate) else None
            if keep is not None:
                note = (
                    f"compared with version {champion} on the {fair} holdout rows it was not trained on "
                    f"({len(candidate) - fair} left out)"
                )
                with nested_run("candidate_on_fair_rows", "baseline", env, {"gate.baseline": "candidate"}):
                    candidate_fair = _evaluated(settings, candidate.rows(np.concatenate(keep)), plots=False)
            try:
                model, _ = load_model(f"models:/{name}/{champion}")
                with nested_run(f"{gate.alias}_baseline", "baseline", env, {"gate.baseline_version": champion}):
                    scored = score_holdout(holdout.frame, model, holdout.prepare, holdout.target, keep)
                    baseline = _evaluated(settings, predictions_of(scored), gate.evaluation_plots)
            except Exception as exc:  # noqa: BLE001  (a champion that cannot score this holdout)
                baseline, candidate_fair, note = None, None, ""
                skipped = f"version {champion} could not be scored on this holdout ({type(exc).__name__}: {exc})"[:500]
    return gate_decision(settings, name, evaluation.metrics, dummy, baseline, champion, skipped, candidate_fair, note)
