"""The figures of a monitoring window, as pure functions of arrays: no I/O, no MLflow.

Drift is the population stability index (PSI) of the current values against the reference's, on bins made from
the reference: for a number, its quantiles (``bins`` of them, fewer when values repeat); for a category, its
values (each value the reference lacks in a bin of its own). PSI = sum over bins of (c - r) * ln(c / r), with
c and r the shares of the current and reference values in the bin (a share of 0 counts as 0.0001, so that a bin
one side lacks gives a large, finite figure). Usual readings: below 0.1 no shift, 0.1 to 0.25 a moderate one,
above 0.25 a large one.

Why PSI and not a statistical test (Kolmogorov-Smirnov, chi-squared): a test's p-value answers "is there any
difference", and with the thousands of rows a day of a served model it says yes to differences too small to
matter; PSI measures how large the shift is, the same way at 300 rows or at a million, and one threshold fits
every feature. Its noise on a fresh sample of the same data is about (bins - 1) / rows (0.03 at 300 rows and 10
bins), well under the default threshold of 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FLOOR = 1e-4  # the share a bin with no values counts as


@dataclass(frozen=True)
class Bins:
    """Reference bins of a number: inner edges (values below the first edge fall in bin 0) and the reference's
    share in each bin."""

    edges: np.ndarray
    reference: np.ndarray

    def shares(self, values: np.ndarray) -> np.ndarray:
        """The share of ``values`` (no NaN) in each bin."""
        counts = np.bincount(np.searchsorted(self.edges, values, side="right"), minlength=len(self.edges) + 1)
        return counts / max(len(values), 1)


def number_bins(reference: np.ndarray, bins: int) -> Bins:
    """Bins of equal reference share, from its quantiles; repeated quantiles (a column of few values) merge."""
    values = reference[~np.isnan(reference)]
    if len(values) == 0:
        return Bins(np.array([]), np.array([1.0]))
    inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="lower"))
    # searchsorted(side="right") puts a value equal to an edge above it: the quantiles' own values go up.
    edges = inner[inner > values.min()] if len(inner) else inner
    empty = Bins(edges, np.array([]))
    return Bins(edges, empty.shares(values))


def psi(current: np.ndarray, reference: np.ndarray) -> float:
    """PSI of two share vectors over the same bins."""
    c = np.maximum(current, FLOOR)
    r = np.maximum(reference, FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def number_psi(bins: Bins, current: np.ndarray) -> float | None:
    """PSI of the non-missing ``current`` numbers on the reference's bins (None: no value to judge)."""
    values = current[~np.isnan(current)]
    if len(values) == 0:
        return None
    return psi(bins.shares(values), bins.reference)


def category_shares(values: np.ndarray) -> dict[str, float]:
    """The share of each value (as text) among the non-missing ``values``."""
    present = values[~pd.isna(values)].tolist()  # None and NaN are missing
    if not present:
        return {}
    names, counts = np.unique(np.array([str(v) for v in present]), return_counts=True)
    return {str(n): float(c) / len(present) for n, c in zip(names, counts, strict=True)}


def category_psi(current: dict[str, float], reference: dict[str, float]) -> float | None:
    """PSI over the union of both sides' values (a value the reference never held is a bin of its own)."""
    if not current:
        return None
    names = sorted(set(current) | set(reference))
    return psi(np.array([current.get(n, 0.0) for n in names]), np.array([reference.get(n, 0.0) for n in names]))


def missing_share(values: np.ndarray) -> float:
    """The share of missing values (None or NaN)."""
    if len(values) == 0:
        return 0.0
    if values.dtype.kind == "f":
        return float(np.isnan(values).mean())
    return float(pd.isna(values).mean())


def outside_share(
    values: np.ndarray, low: float | None = None, high: float | None = None, allowed: list[str] | None = None
) -> float:
    """The share of non-missing ``values`` outside [low, high] or not among ``allowed`` (the data contract)."""
    if values.dtype.kind in "fiu":
        present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
        if len(present) == 0:
            return 0.0
        outside = np.zeros(len(present), dtype=bool)
        if low is not None:
            outside |= present < low
        if high is not None:
            outside |= present > high
        if allowed is not None:
            outside |= ~np.isin(present.astype(str), allowed)
        return float(outside.mean())
    texts = [str(v) for v in values[~pd.isna(values)].tolist()]
    if not texts or allowed is None:
        return 0.0
    known = set(allowed)
    return sum(t not in known for t in texts) / len(texts)


def percentiles(values: np.ndarray, points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., ...}`` of the non-missing values (empty when there are none)."""
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return {}
    return {f"p{p}": float(v) for p, v in zip(points, np.percentile(present, points), strict=True)}
