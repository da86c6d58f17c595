"""The changes a template's user makes, made for real: a new step, and a model named only by its import path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.discovery import step_names
from mlsteps.pipeline import run_pipeline

from tests.helpers import EXAMPLE_CONFIG, run_main, serving

pytestmark = pytest.mark.slow

NEW_STEP = '''"""report_model: the champion's predictions on the test split, summarised per true class."""

from collections.abc import Mapping
from typing import Any

from mlsteps.step import Step, StepContext, StepOutput, StepParams


class ReportModelParams(StepParams):
    # Probability above which a row counts as positive in the report.
    threshold: float = 0.5


def summarise(test: Any, probabilities: Any, threshold: float) -> Any:
    return test.assign(flagged=probabilities >= threshold).groupby("diagnosis", as_index=False)["flagged"].mean()


def run_report_model(ctx: StepContext[ReportModelParams], inputs: Mapping[str, Any]) -> StepOutput:
    loaded, test = inputs["model"], inputs["test"]
    probabilities = loaded.model.predict_proba(test[loaded.input_columns])[:, 1]
    report = summarise(test, probabilities, ctx.params.threshold)
    return StepOutput(outputs={"model_report": report}, metrics={"labels": float(len(report))})


STEP = Step(
    name="report_model",
    reads=("model", "test"),
    writes=("model_report",),
    params=ReportModelParams,
    run=run_report_model,
    headline=("labels",),
)
'''

CONFIG_SECTION = """
report_model:
  # Probability above which a row counts as positive in the report.
  threshold: 0.4
"""

ENTRY_POINT = """
  report_model:
    parameters:
      environment: {type: string, default: local}
    command: "python src/main.py --step report_model --environment {environment}"
"""


def _copy_of_the_project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXAMPLE_CONFIG, copy / "config")
    shutil.copy(REPO_ROOT / "MLproject", copy / "MLproject")
    return copy


@pytest.mark.long
def test_adding_a_step_touches_its_module_its_config_and_the_mlproject(workspace, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    project = _copy_of_the_project(tmp_path)
    # The files docs/steps.md's "Add a step" names, and nothing else.
    (project / "src" / "models" / "report_model.py").write_text(NEW_STEP)
    base = project / "config" / "base.yaml"
    text = base.read_text().replace("catalog:\n", "catalog:\n  model_report: {kind: per_run, path: reports}\n", 1)
    base.write_text(text + CONFIG_SECTION)
    (project / "MLproject").write_text((project / "MLproject").read_text() + ENTRY_POINT)

    env = {**workspace.env(), "PIPELINE_CONFIG_DIR": str(project / "config")}
    help_text = run_main("--help", env=env, cwd=project)
    first = run_main(env=env, cwd=project)
    second = run_main("--record", env=env, cwd=project)  # nothing changed: --record makes it ask MLflow

    assert "report_model" in help_text.stdout
    assert first.returncode == 0, first.stderr
    assert "ok report_model" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "= report_model reused run" in second.stderr
    client = MlflowClient(workspace.tracking_uri)
    experiment = client.get_experiment_by_name("breast-cancer-local").experiment_id
    runs = client.search_runs(
        [experiment], filter_string="tags.`pipeline.step` = 'report_model'", order_by=["attributes.start_time ASC"]
    )
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert all("mlflow.parentRunId" in r.data.tags for r in runs)
    assert runs[1].data.tags["pipeline.reused_from"] == runs[0].info.run_id
    report = pd.read_parquet(runs[0].data.tags["pipeline.output.model_report"])
    assert report["diagnosis"].tolist() == ["B", "M"]
    assert (
        str(workspace.data_root / "reports" / runs[0].info.run_id) in runs[0].data.tags["pipeline.output.model_report"]
    )


def test_a_model_named_by_import_path_in_an_overlay_trains_and_is_served(workspace, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, config)
    (config / "local.yaml").write_text(
        (config / "local.yaml").read_text()
        + """
train_model:
  estimator: extra_trees
  estimators:
    extra_trees: {class: sklearn.ensemble.ExtraTreesClassifier, params: {n_estimators: 50, max_depth: 4}}
"""
    )
    settings = load_config("local", config_dir=config)

    result = run_pipeline(settings, list(step_names()))

    by_step = {s.step: s for s in result.steps}
    import mlflow

    model = mlflow.sklearn.load_model(by_step["train_model"].outputs["registered_model"])
    assert type(model.named_steps["estimator"]).__name__ == "ExtraTreesClassifier"
    assert model.named_steps["estimator"].n_estimators == 50
    scored = pd.read_parquet(by_step["predict"].outputs["predictions"])
    features = settings.dataset_schema.features
    body = {"dataframe_split": {"columns": features, "data": scored[features].head(10).values.tolist()}}
    with serving({**workspace.env(), "PIPELINE_CONFIG_DIR": str(config)}, tmp_path / "serve.log") as url:
        answer = requests.post(
            url + "/invocations", data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=30
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == scored["prediction"].head(10).tolist()
