"""The gate's rule (a pure function): thresholds, the champion to beat, and what the reasons say."""

from __future__ import annotations

import pytest

from src.lib.config import GateParams
from src.models.promotion import GateDecision, judge

GATE = GateParams(thresholds={"roc_auc": 0.9, "f1_score": 0.8}, min_improvement=0.01)


def test_a_candidate_over_every_threshold_without_champion_passes() -> None:
    passed, reasons = judge({"roc_auc": 0.95, "f1_score": 0.85}, None, GATE)

    assert passed
    assert reasons == ["passed: roc_auc >= 0.9, f1_score >= 0.8"]


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ({"roc_auc": 0.85, "f1_score": 0.85}, ["roc_auc: 0.85 is below the threshold 0.9"]),
        ({"roc_auc": 0.95}, ["f1_score: the evaluation did not produce it"]),
        ({"roc_auc": 0.5, "f1_score": 0.1}, ["roc_auc: 0.5 is below the threshold 0.9",
                                            "f1_score: 0.1 is below the threshold 0.8"]),
    ],
)
def test_every_failed_threshold_is_named(candidate: dict, expected: list[str]) -> None:
    assert judge(candidate, None, GATE) == (False, expected)


def test_against_a_champion_the_candidate_must_beat_it_by_the_margin() -> None:
    champion = {"roc_auc": 0.95, "f1_score": 0.85}

    better = judge({"roc_auc": 0.97, "f1_score": 0.87}, champion, GATE, champion="3")
    tie = judge({"roc_auc": 0.955, "f1_score": 0.87}, champion, GATE, champion="3")

    assert better == (True, ["passed: roc_auc >= 0.9, f1_score >= 0.8, and better than version 3"])
    assert tie == (False, ["roc_auc: 0.955 does not beat the baseline model (version 3) at 0.95 by at least 0.01"])


def test_a_metric_where_less_is_better_is_judged_the_other_way() -> None:
    gate = GateParams(thresholds={"log_loss": 0.3}, min_improvement=0.05)

    assert judge({"log_loss": 0.2}, {"log_loss": 0.3}, gate, "1")[0]
    assert judge({"log_loss": 0.4}, None, gate) == (False, ["log_loss: 0.4 is above the threshold 0.3"])
    assert not judge({"log_loss": 0.28}, {"log_loss": 0.3}, gate, "1")[0]


def test_decision_summary_says_what_happened_to_the_alias() -> None:
    kept = GateDecision(False, "m", "4", "champion", "3", ["roc_auc: low"], {}, None)
    first = GateDecision(True, "m", "1", "champion", None, ["passed"], {}, None)

    assert kept.summary() == "version 4 not promoted: roc_auc: low; @champion stays version 3"
    assert first.summary() == "promoted version 1 to @champion"
