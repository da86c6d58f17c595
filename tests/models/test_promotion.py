"""The gate's rule (a pure function): thresholds, the dummy baseline, the champion to beat, and the reasons."""

from __future__ import annotations

import pytest
from mlsteps.config import GateParams
from mlsteps.promotion import Evidence, GateDecision, judge

GATE = GateParams(thresholds={"roc_auc": 0.9}, min_improvement=0.01)
DUMMY = {"roc_auc": 0.5, "f1_score": 0.0}


def test_a_candidate_better_than_the_dummy_and_over_every_threshold_passes() -> None:
    passed, reasons = judge(Evidence({"roc_auc": 0.95, "f1_score": 0.85}, DUMMY), GATE, "binary")

    assert passed
    assert reasons == ["passed: better than the dummy baseline on roc_auc, f1_score, roc_auc >= 0.9"]


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ({"roc_auc": 0.85, "f1_score": 0.85}, ["roc_auc: 0.85 is below the threshold 0.9"]),
        ({"roc_auc": 0.95}, ["f1_score: the evaluation did not produce it"]),
        ({"roc_auc": 0.95, "f1_score": 0.0}, ["f1_score: 0 is no better than the dummy baseline's 0"]),
    ],
)
def test_every_failure_is_named(candidate: dict, expected: list[str]) -> None:
    assert judge(Evidence(candidate, DUMMY), GATE, "binary") == (False, expected)


def test_the_lift_over_the_dummy_can_be_asked_for() -> None:
    gate = GateParams(min_lift_over_dummy=0.2)

    passed, reasons = judge(Evidence({"roc_auc": 0.65, "f1_score": 0.5}, DUMMY), gate, "binary")

    assert not passed
    assert reasons == ["roc_auc: 0.65 is no better than the dummy baseline's 0.5 by more than 0.2"]


def test_against_a_champion_the_candidate_must_beat_it_by_the_margin() -> None:
    champion = {"roc_auc": 0.95, "f1_score": 0.85}

    better = judge(Evidence({"roc_auc": 0.97, "f1_score": 0.87}, DUMMY, champion, "3"), GATE, "binary")
    tie = judge(Evidence({"roc_auc": 0.955, "f1_score": 0.87}, DUMMY, champion, "3"), GATE, "binary")

    assert better == (
        True,
        ["passed: better than the dummy baseline on roc_auc, f1_score, roc_auc >= 0.9, better than version 3"],
    )
    assert tie == (False, ["roc_auc: 0.955 does not beat the baseline model (version 3) at 0.95 by at least 0.01"])


def test_without_a_fair_comparison_the_champion_stays_unless_the_config_says_promote() -> None:
    evidence = Evidence({"roc_auc": 0.93, "f1_score": 0.8}, DUMMY, None, "3", "version 3's inputs differ")

    kept = judge(evidence, GATE, "binary")
    promoted = judge(evidence, GATE.model_copy(update={"when_not_compared": "promote"}), "binary")

    assert kept == (
        False,
        [
            (
                "no fair comparison with version 3 (the champion), and gate.when_not_compared is keep: promote this "
                "version by hand (promote --version N) if it should replace it, or set gate.when_not_compared: promote"
            ),
            "champion not compared: version 3's inputs differ",
        ],
    )
    assert promoted == (
        True,
        [
            "passed: better than the dummy baseline on roc_auc, f1_score, roc_auc >= 0.9",
            "champion not compared: version 3's inputs differ",
        ],
    )


def test_the_champion_is_compared_with_the_candidates_metrics_on_the_same_rows() -> None:
    champion = {"roc_auc": 0.95, "f1_score": 0.85}
    on_the_whole_holdout = {"roc_auc": 0.99, "f1_score": 0.95}  # flattered by rows the champion was trained on
    on_the_fair_rows = {"roc_auc": 0.94, "f1_score": 0.86}
    note = "compared with version 3 on the 110 holdout rows it was not trained on (27 left out)"

    passed, reasons = judge(
        Evidence(on_the_whole_holdout, DUMMY, champion, "3", "", on_the_fair_rows, note), GATE, "binary"
    )

    assert not passed
    assert reasons == [
        "roc_auc: 0.94 does not beat the baseline model (version 3) at 0.95 by at least 0.01",
        note,
    ]


def test_error_metrics_of_a_regression_are_judged_the_other_way() -> None:
    gate = GateParams(thresholds={"root_mean_squared_error": 50.0})
    dummy = {"root_mean_squared_error": 70.0, "r2_score": 0.0}

    assert judge(Evidence({"root_mean_squared_error": 45.0, "r2_score": 0.5}, dummy), gate, "regression")[0]
    failed = judge(Evidence({"root_mean_squared_error": 72.0, "r2_score": -0.1}, dummy), gate, "regression")
    assert failed == (
        False,
        [
            "root_mean_squared_error: 72 is above the threshold 50",
            "root_mean_squared_error: 72 is no better than the dummy baseline's 70",
            "r2_score: -0.1 is no better than the dummy baseline's 0",
        ],
    )


def test_decision_summary_says_what_happened_to_the_alias() -> None:
    kept = GateDecision(False, "m", "4", "champion", "3", ["roc_auc: low"], {}, None)
    first = GateDecision(True, "m", "1", "champion", None, ["passed"], {}, None)

    assert kept.summary() == "version 4 not promoted: roc_auc: low; @champion stays version 3"
    assert first.summary() == "promoted version 1 to @champion"
