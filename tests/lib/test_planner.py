"""The planner and the cache decisions, on an in-memory catalog with a throwaway tracking store (seconds a test)."""

from __future__ import annotations

import pandas as pd
import pytest
from mlsteps.errors import ConfigError, PipelineError, StepError
from mlsteps.pipeline import plan_pipeline, run_pipeline

# Each test runs the pipeline (on fsspec's memory filesystem, a throwaway tracking store): seconds each.
pytestmark = pytest.mark.slow

DATA_STEPS = ["make_data", "feat_data"]


def _actions(decisions) -> dict[str, str]:
    return {d.step: d.action for d in decisions}


def test_nothing_run_yet_plans_to_run_with_the_reason(memory_workspace) -> None:
    with pytest.raises(PipelineError) as caught:
        plan_pipeline(memory_workspace.settings(), ["feat_data"])

    assert "no finished 'make_data' run" in str(caught.value)
    plan = plan_pipeline(memory_workspace.settings(), DATA_STEPS)
    assert [(d.step, d.action, d.reason) for d in plan] == [
        ("make_data", "run", "no earlier run"),
        ("feat_data", "run", "input from make_data, which runs first (reused if its output is unchanged)"),
    ]


def test_unchanged_inputs_are_reused_and_a_changed_parameter_reruns(memory_workspace) -> None:
    first = run_pipeline(memory_workspace.settings(), DATA_STEPS)

    same = plan_pipeline(memory_workspace.settings(), DATA_STEPS)
    changed = plan_pipeline(memory_workspace.settings(feat_data={"test_size": 0.3}), DATA_STEPS)

    assert _actions(same) == {"make_data": "reuse", "feat_data": "reuse"}
    assert [d.cached_run_id for d in same] == [s.run_id for s in first.steps]
    assert _actions(changed) == {"make_data": "reuse", "feat_data": "run"}
    assert changed[1].reason == "parameters changed since the last run"


def test_changed_raw_data_reruns_everything_below(memory_workspace) -> None:
    run_pipeline(memory_workspace.settings(), DATA_STEPS)
    raw = pd.read_csv(memory_workspace.data_root + "/raw/breast_cancer.csv")
    memory_workspace.write_raw(raw.iloc[:-5])

    plan = plan_pipeline(memory_workspace.settings(), DATA_STEPS)

    assert [(d.action, d.reason) for d in plan] == [
        ("run", "inputs changed since the last run"),
        ("run", "input from make_data, which runs first (reused if its output is unchanged)"),
    ]


def test_force_and_deleted_outputs_rerun(memory_workspace) -> None:
    import fsspec

    first = run_pipeline(memory_workspace.settings(), DATA_STEPS)

    forced = plan_pipeline(memory_workspace.settings(), DATA_STEPS, force=["feat_data"])
    fsspec.filesystem("memory").rm(first.step("feat_data").outputs["test"])
    gone = plan_pipeline(memory_workspace.settings(), DATA_STEPS)

    assert [(d.action, d.reason) for d in forced] == [
        ("reuse", "same code, parameters and inputs"),
        ("run", "forced with --force"),
    ]
    assert [(d.action, d.reason) for d in gone] == [
        ("reuse", "same code, parameters and inputs"),
        ("run", "the cached run's outputs are gone"),
    ]


def test_a_reused_step_records_a_child_run_pointing_at_the_original(memory_workspace) -> None:
    from mlflow import MlflowClient

    first = run_pipeline(memory_workspace.settings(), DATA_STEPS)
    second = run_pipeline(memory_workspace.settings(), DATA_STEPS)

    assert [s.reused_from for s in second.steps] == [s.run_id for s in first.steps]
    assert [s.outputs for s in second.steps] == [s.outputs for s in first.steps]
    child = MlflowClient(memory_workspace.tracking_uri).get_run(second.step("feat_data").run_id)
    assert child.data.tags["pipeline.reused_from"] == first.step("feat_data").run_id
    assert child.data.tags["mlflow.parentRunId"] == second.parent_run_id
    assert child.info.status == "FINISHED"


def test_outputs_are_per_run_files_in_the_memory_catalog(memory_workspace) -> None:
    result = run_pipeline(memory_workspace.settings(), DATA_STEPS)

    make_data, feat_data = result.steps
    assert make_data.outputs == {"clean": f"{memory_workspace.data_root}/interim/{make_data.run_id}/clean.parquet"}
    train = pd.read_parquet(feat_data.outputs["train"])
    test = pd.read_parquet(feat_data.outputs["test"])
    assert (len(train), len(test)) == (455, 114)
    assert set(train.columns) == {"sample_id", "diagnosis", *memory_workspace.settings().dataset_schema.features}


def test_bad_raw_data_fails_the_step_and_writes_nothing(memory_workspace) -> None:
    import fsspec

    raw = pd.read_csv(memory_workspace.data_root + "/raw/breast_cancer.csv")
    memory_workspace.write_raw(raw.drop(columns=["mean_area"]))

    with pytest.raises(StepError) as caught:
        run_pipeline(memory_workspace.settings(), DATA_STEPS)

    assert caught.value.step == "make_data"
    assert "missing column: 'mean_area'" in str(caught.value)
    assert not fsspec.filesystem("memory").glob(memory_workspace.data_root.removeprefix("memory://") + "/**/*.parquet")


def test_an_unset_input_without_fallback_is_a_config_error(memory_workspace) -> None:
    settings = memory_workspace.settings(catalog={"raw": {"path": None}})

    with pytest.raises(ConfigError) as caught:
        plan_pipeline(settings, ["make_data"])

    assert "catalog.raw.path is not set" in str(caught.value)


def test_outputs_at_another_data_root_are_never_reused(memory_workspace, monkeypatch) -> None:
    import fsspec

    first = run_pipeline(memory_workspace.settings(), ["make_data"])
    other = memory_workspace.data_root + "-other"
    fsspec.filesystem("memory").copy(
        memory_workspace.data_root + "/raw/breast_cancer.csv", other + "/raw/breast_cancer.csv"
    )
    monkeypatch.setenv("PIPELINE_DATA_ROOT", other)
    elsewhere = run_pipeline(memory_workspace.settings(), ["make_data"])
    monkeypatch.setenv("PIPELINE_DATA_ROOT", memory_workspace.data_root)
    back = plan_pipeline(memory_workspace.settings(), ["make_data"])

    assert elsewhere.steps[0].reused_from is None
    assert elsewhere.steps[0].outputs["clean"].startswith(other + "/")
    assert [(d.action, d.cached_run_id) for d in back] == [("reuse", first.steps[0].run_id)]
