"""The monitoring figures on small arrays: PSI of numbers and categories, missing values, the contract, moments."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from mlsteps.errors import UsageError
from mlsteps.monitor import stats
from mlsteps.monitor.window import parse_when

RNG = np.random.default_rng(7)
REFERENCE = RNG.normal(10, 2, 5000)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_fresh_sample_of_the_same_data_stays_under_the_default_threshold(seed: int) -> None:
    bins = stats.number_bins(REFERENCE, 10)
    sample = np.random.default_rng(seed).choice(REFERENCE, 300)
    value = stats.number_psi(bins, sample)
    assert value is not None and value < 0.1


def test_a_scaled_column_is_a_large_shift_and_a_small_nudge_is_not() -> None:
    bins = stats.number_bins(REFERENCE, 10)
    assert stats.number_psi(bins, REFERENCE * 3) > 5  # every value beyond the reference's top bin
    assert stats.number_psi(bins, REFERENCE + 0.05) < 0.01


def test_bins_have_equal_reference_shares_and_repeated_values_merge_into_fewer() -> None:
    bins = stats.number_bins(REFERENCE, 10)
    assert len(bins.reference) == 10
    assert np.allclose(bins.reference, 0.1, atol=0.002)
    few = stats.number_bins(np.array([0.0] * 80 + [1.0] * 20), 10)
    assert few.edges.tolist() == [1.0] and bins.reference.sum() == pytest.approx(1.0)
    assert few.reference.tolist() == [0.8, 0.2]
    assert stats.number_psi(few, np.array([1.0] * 100)) > 1


def test_missing_values_are_left_out_of_drift_and_counted_apart() -> None:
    bins = stats.number_bins(REFERENCE, 10)
    current = np.concatenate([REFERENCE[:200], np.full(100, np.nan)])
    assert stats.missing_share(current) == pytest.approx(1 / 3)
    assert stats.number_psi(bins, current) == pytest.approx(stats.number_psi(bins, REFERENCE[:200]))
    assert stats.number_psi(bins, np.full(10, np.nan)) is None
    assert stats.missing_share(np.array(["a", None, np.nan, "b"], dtype=object)) == 0.5


def test_a_category_never_seen_in_the_reference_is_a_bin_of_its_own() -> None:
    reference = stats.category_shares(np.array(["north"] * 50 + ["south"] * 50, dtype=object))
    same = stats.category_shares(np.array(["north"] * 48 + ["south"] * 52 + [None] * 5, dtype=object))
    assert same == {"north": 48 / 100, "south": 52 / 100}
    assert stats.category_psi(same, reference) < 0.01
    moved = stats.category_shares(np.array(["north"] * 50 + ["west"] * 50, dtype=object))
    assert stats.category_psi(moved, reference) > 1
    assert stats.category_psi({}, reference) is None


def test_values_outside_the_contract_are_counted() -> None:
    assert stats.outside_share(np.array([-1.0, 0.0, 5.0, 11.0, np.nan]), low=0, high=10) == 0.5
    assert stats.outside_share(np.array(["a", "b", "z", None], dtype=object), allowed=["a", "b"]) == pytest.approx(
        1 / 3
    )
    assert stats.outside_share(np.array([1.0, 2.0])) == 0.0


def test_percentiles_of_latency() -> None:
    assert stats.percentiles(np.arange(1, 101, dtype=float)) == pytest.approx({"p50": 50.5, "p95": 95.05, "p99": 99.01})
    assert stats.percentiles(np.array([np.nan])) == {}


NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", datetime(2026, 12, 4, 12, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
        ("30m", datetime(2026, 12, 5, 11, 30, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T06:30", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
        ("2026-12-01T08:30+02:00", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
        ("2026-12-01T06:30Z", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_a_moment_is_a_date_a_time_or_a_duration_before_now(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW, "--since") == expected


def test_a_moment_that_is_neither_says_what_is_accepted() -> None:
    with pytest.raises(UsageError) as raised:
        parse_when("yesterday", NOW, "--since")
    assert "--since 'yesterday' is not a moment" in str(raised.value)
    assert "24h" in str(raised.value)
