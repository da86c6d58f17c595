"""The quality gate, the champion alias, manual promotion and rollback, and predict's default model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.discovery import step_names
from mlsteps.errors import StepError
from mlsteps.pipeline import run_pipeline

from tests.helpers import scrubbed_env

STEPS = step_names()

pytestmark = pytest.mark.slow

NAME = "breast-cancer-local"
# A model that predicts the majority class for everything: f1 of the positive class is 0.
BAD = {"train_model": {"set_params": {"C": 1e-6}}}
# A weak but real model: one shallow tree.
WEAK = {"train_model": {"estimator": "random_forest", "set_params": {"n_estimators": 1, "max_depth": 1}}}
LOW_BAR = {"gate": {"thresholds": {"roc_auc": 0.5, "f1_score": 0.5}}}


def _merge(*parts: dict) -> dict:
    from mlsteps.config import deep_merge

    merged: dict = {}
    for part in parts:
        merged = deep_merge(merged, part)
    return merged


def _client(ws):
    from mlflow import MlflowClient

    return MlflowClient(ws.tracking_uri)


def _champion(ws) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(ws).get_model_version_by_alias(NAME, "champion").version)
    except MlflowException:
        return None


def _train(overrides: dict) -> str:
    result = run_pipeline(load_config("local", overrides=overrides), ["train_model"], force=["train_model"])
    return result.steps[0].notes[0]


def test_gate_promotes_better_keeps_champion_against_worse(workspace) -> None:
    run_pipeline(load_config("local"), ["make_data", "feat_data"])

    bad = _train(BAD)
    assert bad.startswith("version 1 not promoted")
    assert "f1_score" in bad
    assert _champion(workspace) is None

    weak = _train(_merge(WEAK, LOW_BAR))
    assert weak == "promoted version 2 to @champion"

    good = _train({})
    assert good == "promoted version 3 to @champion (was version 2)"

    worse = _train(_merge(WEAK, LOW_BAR))
    assert worse.startswith("version 4 not promoted")
    assert "baseline model" in worse
    assert _champion(workspace) == "3"

    client = _client(workspace)
    assert client.get_model_version(NAME, "3").tags["champion.previous_version"] == "2"
    assert client.get_model_version(NAME, "2").tags["champion.replaced_by"].startswith("3 at ")
    assert client.get_model_version(NAME, "4").tags["gate.decision"] == "rejected"
    rejected = client.search_runs(
        [client.get_experiment_by_name("breast-cancer-local").experiment_id],
        filter_string="tags.`gate.decision` = 'rejected'",
    )
    assert len(rejected) == 2
    decision = client.download_artifacts(rejected[0].info.run_id, "gate/decision.json")
    assert '"promoted": false' in Path(decision).read_text()


def test_predict_uses_the_champion_and_logs_it(workspace) -> None:
    first = run_pipeline(load_config("local"), list(STEPS))
    _train(_merge(WEAK, LOW_BAR))  # version 2: worse, not promoted

    again = run_pipeline(load_config("local"), ["predict"], force=["predict"])

    scored = pd.read_parquet(again.steps[0].outputs["predictions"])
    assert set(scored["model_version"]) == {"1"}
    assert set(scored["model_name"]) == {NAME}
    assert set(scored["model_run_id"]) == {first.step("train_model").run_id}
    assert set(scored["model_uri"]) == {f"models:/{NAME}@champion"}


def test_predict_without_a_champion_says_why(workspace) -> None:
    run_pipeline(load_config("local"), ["make_data", "feat_data"])
    _train(BAD)

    with pytest.raises(StepError) as caught:
        run_pipeline(load_config("local"), ["predict"])

    assert "no version of 'breast-cancer-local' holds the alias @champion" in str(caught.value)
    assert "promote" in str(caught.value)


def _cli(workspace, *args: str) -> subprocess.CompletedProcess:
    env = scrubbed_env(workspace.env())
    return subprocess.run(
        [sys.executable, "src/main.py", *args],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.long
def test_promote_and_rollback_by_hand(workspace) -> None:
    run_pipeline(load_config("local"), list(STEPS))
    _train(_merge(WEAK, LOW_BAR))  # version 2, rejected

    promoted = _cli(workspace, "promote", "--version", "2", "--reason", "canary")
    assert promoted.returncode == 0, promoted.stderr
    assert "@champion of 'breast-cancer-local' is now version 2 (was 1)" in promoted.stderr
    assert _champion(workspace) == "2"
    tags = _client(workspace).get_model_version(NAME, "2").tags
    assert tags["champion.promoted_by"] == "manual (promote command)"
    assert tags["champion.reason"] == "canary"

    rolled_back = _cli(workspace, "promote", "--rollback")
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert _champion(workspace) == "1"

    missing = _cli(workspace, "promote", "--version", "42")
    assert missing.returncode == 2
    assert "has no version 42" in missing.stderr
    both = _cli(workspace, "promote")
    assert both.returncode == 2
    assert "exactly one of --version N or --rollback" in both.stderr


@pytest.mark.long
def test_after_a_manual_promotion_the_summary_names_the_model_that_scored(workspace) -> None:
    run_pipeline(load_config("local"), list(STEPS))  # version 1: champion
    _train(_merge(WEAK, LOW_BAR))  # version 2, rejected
    assert _cli(workspace, "promote", "--version", "2").returncode == 0

    again = _cli(workspace)

    assert again.returncode == 0, again.stderr
    assert "= train_model reused run" in again.stderr  # train_model's note still says version 1 was promoted
    assert f"predict used model: models:/{NAME}@champion = version 2 of {NAME}" in again.stdout
