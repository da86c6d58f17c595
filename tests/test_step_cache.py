"""Step caching end to end: what re-runs, what is reused, and why."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.discovery import step_names
from mlsteps.pipeline import plan_pipeline, run_pipeline

from tests.helpers import scrubbed_env

STEPS = step_names()

pytestmark = pytest.mark.slow


def _status(result) -> dict[str, str]:
    return {s.step: ("reused" if s.reused_from else "ran") for s in result.steps}


def test_unchanged_rerun_reuses_every_step_under_a_new_parent(workspace) -> None:
    from mlflow import MlflowClient

    first = run_pipeline(load_config("local"), list(STEPS))
    second = run_pipeline(load_config("local"), list(STEPS))

    assert _status(second) == dict.fromkeys(STEPS, "reused")
    assert [s.reused_from for s in second.steps] == [s.run_id for s in first.steps]
    assert [s.outputs for s in second.steps] == [s.outputs for s in first.steps]
    client = MlflowClient(workspace.tracking_uri)
    children = client.search_runs(
        [second.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{second.parent_run_id}'"
    )
    assert len(children) == 4
    assert all(c.data.tags["pipeline.reused_from"] for c in children)
    assert client.get_run(second.parent_run_id).data.metrics["train_model/roc_auc"] > 0.95
    assert len(client.search_model_versions("name = 'breast-cancer-local'")) == 1


def test_parameter_change_reruns_that_step_and_below(workspace) -> None:
    run_pipeline(load_config("local"), list(STEPS))

    changed = run_pipeline(load_config("local", overrides={"feat_data": {"test_size": 0.3}}), list(STEPS))

    assert _status(changed) == {"make_data": "reused", "feat_data": "ran", "train_model": "ran", "predict": "ran"}
    assert changed.step("feat_data").reason == "parameters changed since the last run"


def test_model_parameter_change_keeps_the_data_steps(workspace) -> None:
    run_pipeline(load_config("local"), list(STEPS))

    changed = run_pipeline(load_config("local", overrides={"train_model": {"estimator": "random_forest"}}), list(STEPS))

    status = _status(changed)
    assert status == {"make_data": "reused", "feat_data": "reused", "train_model": "ran", "predict": status["predict"]}
    # predict scores with the champion: it re-runs only if the new model passed the gate and took the alias.
    promoted = changed.step("train_model").notes[0].startswith("promoted")
    assert status["predict"] == ("ran" if promoted else "reused")


def test_upstream_data_change_reruns_everything(workspace) -> None:
    run_pipeline(load_config("local"), list(STEPS))
    raw = workspace.data_root / "raw" / "breast_cancer.csv"
    pd.read_csv(raw).iloc[:-10].to_csv(raw, index=False)

    changed = run_pipeline(load_config("local"), list(STEPS))

    assert _status(changed) == dict.fromkeys(STEPS, "ran")
    assert changed.step("make_data").reason == "inputs changed since the last run"
    assert changed.step("make_data").metrics["clean_rows"] == 559


def test_force_reruns_named_steps_or_all(workspace) -> None:
    run_pipeline(load_config("local"), list(STEPS))

    named = run_pipeline(load_config("local"), list(STEPS), force=["feat_data"])
    everything = run_pipeline(load_config("local"), list(STEPS), force=STEPS)

    assert named.step("feat_data").reason == "forced with --force"
    assert _status(named)["make_data"] == "reused"
    # Same seed and same clean data: feat_data writes byte-identical splits, so train_model is reused.
    assert _status(named)["train_model"] == "reused"
    assert _status(everything) == dict.fromkeys(STEPS, "ran")


def test_deleted_outputs_are_rebuilt(workspace) -> None:
    first = run_pipeline(load_config("local"), list(STEPS))
    Path(first.step("make_data").outputs["clean"]).unlink()

    second = run_pipeline(load_config("local"), ["make_data"])

    assert _status(second) == {"make_data": "ran"}
    assert second.steps[0].reason == "the cached run's outputs are gone"
    assert Path(second.steps[0].outputs["clean"]).exists()


def test_dry_run_plans_without_running(workspace) -> None:
    from mlflow import MlflowClient

    run_pipeline(load_config("local"), list(STEPS))
    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name("breast-cancer-local").experiment_id
    before = len(client.search_runs([experiment]))

    plan = plan_pipeline(load_config("local", overrides={"train_model": {"seed": 5}}), list(STEPS))

    assert [(d.step, d.action) for d in plan] == [
        ("make_data", "reuse"),
        ("feat_data", "reuse"),
        ("train_model", "run"),
        ("predict", "run"),
    ]
    assert plan[2].reason == "parameters changed since the last run"
    assert "train_model, which runs first" in plan[3].reason
    assert len(client.search_runs([experiment])) == before


def test_predict_on_new_input_is_never_skipped(workspace) -> None:
    first = run_pipeline(load_config("local"), list(STEPS))
    test = pd.read_parquet(first.step("feat_data").outputs["test"])
    batch = workspace.root / "batch.csv"
    test.head(20).to_csv(batch, index=False)

    one = run_pipeline(
        load_config("local", overrides={"catalog": {"predict_input": {"path": str(batch)}}}), ["predict"]
    )
    test.head(30).to_csv(batch, index=False)  # same path, new content
    two = run_pipeline(
        load_config("local", overrides={"catalog": {"predict_input": {"path": str(batch)}}}), ["predict"]
    )

    assert _status(one) == _status(two) == {"predict": "ran"}
    assert len(pd.read_parquet(two.steps[0].outputs["predictions"])) == 30


def _copy_of_the_code(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for name in ("src", "config"):
        shutil.copytree(REPO_ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _run_main(repo: Path, workspace, *args: str) -> subprocess.CompletedProcess:
    env = scrubbed_env(workspace.env())
    return subprocess.run(
        [sys.executable, str(repo / "src" / "main.py"), *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
    )


def _line(step: str, log: str) -> str:
    """The line a step that ran printed in a log (not a terminal): "ok <step> in 0.3s (<why>)  <metrics>"."""
    return next(line for line in log.splitlines() if line.startswith(f"ok {step} in ")).split("  ")[0]


@pytest.mark.long
def test_code_change_reruns_the_changed_step_and_what_its_output_changes(workspace, tmp_path: Path) -> None:
    repo = _copy_of_the_code(tmp_path)
    first = _run_main(repo, workspace)
    assert first.returncode == 0, first.stderr

    # A change to make_data's code that does not change its output: make_data re-runs, the rest is reused.
    module = repo / "src" / "data" / "make_dataset.py"
    module.write_text(module.read_text() + "\n# a comment changes the code digest\n")
    cosmetic = _run_main(repo, workspace)
    # A change to feat_data's code that changes its output: feat_data and everything below re-run.
    features = repo / "src" / "features" / "build_features.py"
    features.write_text(features.read_text().replace("else None, params.seed)", "else None, params.seed + 1)"))
    real = _run_main(repo, workspace)

    assert cosmetic.returncode == 0, cosmetic.stderr
    assert _line("make_data", cosmetic.stderr).endswith("(code changed since the last run)")
    assert "= feat_data reused run" in cosmetic.stderr
    assert "= train_model reused run" in cosmetic.stderr
    assert real.returncode == 0, real.stderr
    assert "= make_data reused run" in real.stderr
    assert _line("feat_data", real.stderr).endswith("(code changed since the last run)")
    # train_model does not import feat_data's module: only its inputs changed.
    assert _line("train_model", real.stderr).endswith("(inputs changed since the last run)")


@pytest.mark.long
def test_an_unchanged_rerun_is_up_to_date_without_mlflow_and_record_still_records(workspace) -> None:
    from mlflow import MlflowClient

    from tests.helpers import run_main

    first = run_main(env=workspace.env())
    second = run_main(env=workspace.env())
    recorded = run_main("--record", env=workspace.env())
    workspace.data_root.joinpath("raw", "breast_cancer.csv").touch()  # same bytes, new mtime
    touched = run_main(env=workspace.env())

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("up to date: nothing changed since pipeline run")
    assert "= train_model" in second.stdout
    assert second.stderr == ""  # no step started
    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name("breast-cancer-local").experiment_id
    parents = client.search_runs([experiment], "attributes.run_name LIKE 'pipeline-%'")
    # first + --record + touched: the up-to-date run left no run behind
    assert recorded.returncode == 0, recorded.stderr
    assert "= train_model reused run" in recorded.stderr
    assert touched.returncode == 0, touched.stderr
    assert "up to date" not in touched.stdout  # the stat changed: the full check ran, and reused every step
    assert all(f"= {step} reused run" in touched.stderr for step in STEPS)
    assert len(parents) == 3, [p.data.tags for p in parents]
