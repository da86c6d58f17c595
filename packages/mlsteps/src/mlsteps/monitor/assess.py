"""A window's figures for one model version, and the alerts they raise against the config's thresholds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlsteps.monitor import stats

if TYPE_CHECKING:
    from mlsteps.config_sections import MonitorParams
    from mlsteps.monitor.reference import Reference
    from mlsteps.monitor.window import LogWindow
    from mlsteps.schema import SchemaConfig

_NUMBERS = {"double", "float", "long", "integer"}


@dataclass
class Distribution:
    """One column's figures: drift against the reference, missing values, values outside the contract, and the
    shares per bin both sides (what its plot shows)."""

    name: str
    kind: str  # number or category
    psi: float | None
    missing: float
    missing_reference: float
    outside: float | None  # None: the contract says nothing about it
    bins: list[str]
    current: list[float]
    reference: list[float]


@dataclass
class Alert:
    metric: str  # the MLflow metric it is about
    value: float
    threshold: float
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Assessment:
    """Everything monitor found for one model version in the window."""

    model: str
    version: str
    run_id: str
    requests: int
    rows: int  # scored rows
    judged: bool
    metrics: dict[str, float] = field(default_factory=dict)
    features: list[Distribution] = field(default_factory=list)
    prediction: Distribution | None = None
    live: dict[str, float] = field(default_factory=dict)
    holdout: dict[str, float] = field(default_factory=dict)
    labelled_rows: int = 0
    live_judged: bool = True  # enough labelled rows to judge the live metrics
    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def distribution(name: str, kind: str, current: np.ndarray, reference: np.ndarray, bins: int) -> Distribution:
    """The drift and missing-value figures of one column (numbers: float64 with NaN; categories: objects)."""
    if kind == "number":
        edges = stats.number_bins(reference, bins)
        present = current[~np.isnan(current)]
        labels = _bin_labels(edges.edges)
        return Distribution(
            name,
            kind,
            stats.number_psi(edges, current),
            stats.missing_share(current),
            stats.missing_share(reference),
            None,
            labels,
            edges.shares(present).tolist() if len(present) else [0.0] * len(labels),
            edges.reference.tolist(),
        )
    now, before = stats.category_shares(current), stats.category_shares(reference)
    names = sorted(set(now) | set(before))
    return Distribution(
        name,
        kind,
        stats.category_psi(now, before),
        stats.missing_share(current),
        stats.missing_share(reference),
        None,
        names,
        [now.get(n, 0.0) for n in names],
        [before.get(n, 0.0) for n in names],
    )


def assess_inputs(
    window: LogWindow, where: Any, reference: Reference, schema: SchemaConfig, params: MonitorParams
) -> list[Distribution]:
    """Each model input's figures, read one column at a time (the log's ``input.<column>``)."""
    found = []
    for name, kind in reference.inputs.items():
        column = f"input.{name}"
        number = kind in _NUMBERS
        if column in window.columns:
            current = window.column(column, where)
        else:  # no request sent it
            rows = window.read(["status"], where).num_rows
            current = np.full(rows, np.nan) if number else np.full(rows, None, dtype=object)
        before = reference.column(name, params.reference_rows)
        figures = distribution(name, "number" if number else "category", current, before, params.bins)
        spec = schema.columns.get(name)
        if spec is not None and (spec.min is not None or spec.max is not None or spec.allowed):
            figures.outside = stats.outside_share(current, spec.min, spec.max, spec.allowed)
        found.append(figures)
    return found


def judge(found: Assessment, params: MonitorParams, more_is_better: dict[str, bool]) -> list[Alert]:
    """The alerts of an assessment's figures at the config's thresholds (a threshold of null: not judged)."""
    alerts: list[Alert] = []
    for f in found.features:
        if params.drift_psi is not None and f.psi is not None and f.psi > params.drift_psi:
            alerts.append(
                Alert(
                    f"drift.{f.name}.psi",
                    f.psi,
                    params.drift_psi,
                    f"{f.name}: drifted from the training data (PSI {f.psi:.2f} > {params.drift_psi:g})",
                )
            )
        rise = f.missing - f.missing_reference
        if params.missing_increase is not None and rise > params.missing_increase:
            alerts.append(
                Alert(
                    f"missing.{f.name}.share",
                    f.missing,
                    params.missing_increase,
                    f"{f.name}: {f.missing:.0%} of values missing (training data: {f.missing_reference:.0%}; "
                    f"allowed rise {params.missing_increase:g})",
                )
            )
        if params.out_of_contract is not None and f.outside is not None and f.outside > params.out_of_contract:
            alerts.append(
                Alert(
                    f"contract.{f.name}.share_outside",
                    f.outside,
                    params.out_of_contract,
                    f"{f.name}: {f.outside:.1%} of values outside the data contract (schema.columns.{f.name})",
                )
            )
    p = found.prediction
    if params.prediction_psi is not None and p is not None and p.psi is not None and p.psi > params.prediction_psi:
        alerts.append(
            Alert(
                "prediction.psi",
                p.psi,
                params.prediction_psi,
                f"predictions: drifted from the model's own on its holdout (PSI {p.psi:.2f} > {params.prediction_psi:g})",
            )
        )
    error_rate = found.metrics.get("error_rate", 0.0)
    if params.error_rate is not None and error_rate > params.error_rate:
        alerts.append(
            Alert(
                "error_rate",
                error_rate,
                params.error_rate,
                f"requests: {error_rate:.1%} refused or failed (allowed {params.error_rate:.1%})",
            )
        )
    p99 = found.metrics.get("latency_ms.p99")
    if params.latency_p99_ms is not None and p99 is not None and p99 > params.latency_p99_ms:
        alerts.append(
            Alert(
                "latency_ms.p99",
                p99,
                params.latency_p99_ms,
                f"latency: p99 {p99:.0f} ms (allowed {params.latency_p99_ms:g} ms)",
            )
        )
    if params.performance_drop is not None and found.live_judged:
        from mlsteps.monitor.labels import worse_by

        for name, live in found.live.items():
            holdout = found.holdout.get(name)
            if holdout is None or name not in more_is_better or np.isnan(live):
                continue
            worse = worse_by(live, holdout, more_is_better[name])
            if worse > params.performance_drop:
                alerts.append(
                    Alert(
                        f"live.{name}",
                        live,
                        params.performance_drop,
                        f"{name}: {live:.4g} on the labelled rows, {worse:.0%} worse than on the holdout "
                        f"({holdout:.4g}; allowed {params.performance_drop:.0%})",
                    )
                )
    return alerts


def figures_as_metrics(found: Assessment) -> dict[str, float]:
    """The MLflow metrics of an assessment: ``drift.<feature>.psi``, ``missing.<feature>.share``, ..."""
    out = dict(found.metrics)
    for f in found.features:
        if f.psi is not None:
            out[f"drift.{f.name}.psi"] = f.psi
        out[f"missing.{f.name}.share"] = f.missing
        if f.outside is not None:
            out[f"contract.{f.name}.share_outside"] = f.outside
    if found.prediction is not None and found.prediction.psi is not None:
        out["prediction.psi"] = found.prediction.psi
    out |= {f"live.{k}": v for k, v in found.live.items() if not np.isnan(v)}
    out |= {f"holdout.{k}": v for k, v in found.holdout.items()}
    if found.live:
        out["labelled_rows"] = float(found.labelled_rows)
    out["alerts"] = float(len(found.alerts))
    return out


def _bin_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["all"]
    shown = [f"{e:.4g}" for e in edges]
    return [f"< {shown[0]}", *(f"{a} to {b}" for a, b in itertools.pairwise(shown)), f">= {shown[-1]}"]
