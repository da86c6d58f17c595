"""Airflow 3 DAG: the pipeline, one task per step, all step runs under one MLflow parent run.

    start_parent_run -> make_data -> feat_data -> train_model -> predict -> end_parent_run

`start_parent_run` opens the parent run and hands its id to every other task through XCom; each step attaches
its run to it (`--parent-run-id`) and takes its inputs from the runs of the steps before it under that same
parent (looked up in MLflow, not in shared files). `end_parent_run` closes the parent, FAILED if any step failed.

PIPELINE_DAG_OPERATOR chooses how the steps run:
- `local` (default): BashOperator, `python src/main.py` on the Airflow worker, from this repo.
- `kubernetes`: KubernetesPodOperator, one pod per step from the pipeline image, each with the resources its
  step needs, so every step runs on a machine sized for it. Credentials come from the pod's service account
  (an IAM role), never from Airflow Variables or the DAG.

Other settings (environment variables of the scheduler and workers):
  PIPELINE_DAG_ENVIRONMENT    config environment (default: local)
  PIPELINE_DAG_PYTHON         interpreter with the project's dependencies (local; default: <repo>/.venv/bin/python)
  PIPELINE_DAG_SCHEDULE       a cron expression or preset (default: none, triggered by hand)
  PIPELINE_IMAGE              image for the pods (kubernetes; default: mlflow-pipeline-template:latest)
  PIPELINE_K8S_NAMESPACE      namespace of the pods (default: ml-pipelines)
  PIPELINE_K8S_SERVICE_ACCOUNT service account of the pods, bound to the IAM role (default: mlflow-pipeline)
"""

from __future__ import annotations

import itertools
import os
import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

REPO = Path(__file__).resolve().parents[1]
# The steps and their pods' resources come from the steps' own declarations, read without importing the project's
# libraries (this file is parsed in Airflow's environment).
sys.path.insert(0, str(REPO))
from src.lib.discovery import declarations

STEPS = tuple(d.name for d in declarations())
OPERATOR = os.environ.get("PIPELINE_DAG_OPERATOR", "local")
ENVIRONMENT = os.environ.get("PIPELINE_DAG_ENVIRONMENT", "local")
PYTHON = os.environ.get("PIPELINE_DAG_PYTHON", str(REPO / ".venv" / "bin" / "python"))
IMAGE = os.environ.get("PIPELINE_IMAGE", "mlflow-pipeline-template:latest")
NAMESPACE = os.environ.get("PIPELINE_K8S_NAMESPACE", "ml-pipelines")
SERVICE_ACCOUNT = os.environ.get("PIPELINE_K8S_SERVICE_ACCOUNT", "mlflow-pipeline")
PARENT = "{{ ti.xcom_pull(task_ids='start_parent_run') }}"

# What each step's pod asks for (a step declares its `resources`); the parent-run tasks are light.
LIGHT = {"cpu": "250m", "memory": "512Mi"}
RESOURCES = {
    "start_parent_run": LIGHT,
    "end_parent_run": LIGHT,
    **{d.name: d.resources or {"cpu": "1", "memory": "4Gi"} for d in declarations()},
}
# Non-secret settings the pods get; the tracking URI and buckets come from config/<environment>.yaml.
POD_ENV = {"PIPELINE_DAG_ENVIRONMENT": ENVIRONMENT, "MLFLOW_LOGGING_LEVEL": "WARNING"}


def _arguments(task_id: str) -> list[str]:
    """The `src/main.py` arguments of a task."""
    if task_id == "start_parent_run":
        return ["parent-start", "--environment", ENVIRONMENT]
    if task_id == "end_parent_run":
        return ["parent-end", "--environment", ENVIRONMENT, "--run-id", PARENT]
    return ["--step", task_id, "--environment", ENVIRONMENT, "--parent-run-id", PARENT]


def _task(task_id: str, **kwargs):
    if OPERATOR == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from kubernetes.client import models as k8s

        return KubernetesPodOperator(
            task_id=task_id,
            name=f"mlflow-pipeline-{task_id.replace('_', '-')}",
            namespace=NAMESPACE,
            image=IMAGE,
            cmds=["python", "src/main.py"],
            arguments=_arguments(task_id),
            env_vars=POD_ENV,
            service_account_name=SERVICE_ACCOUNT,
            container_resources=k8s.V1ResourceRequirements(requests=RESOURCES[task_id], limits=RESOURCES[task_id]),
            do_xcom_push=task_id == "start_parent_run",
            get_logs=True,
            on_finish_action="delete_pod",
            **kwargs,
        )
    if OPERATOR != "local":
        raise ValueError(f"PIPELINE_DAG_OPERATOR={OPERATOR!r}: use 'local' or 'kubernetes'")
    from airflow.providers.standard.operators.bash import BashOperator

    command = " ".join([PYTHON, "src/main.py", *_arguments(task_id)])
    if task_id == "start_parent_run":
        command += " | tail -n 1"  # the run id is the last line: BashOperator pushes it to XCom
    return BashOperator(task_id=task_id, bash_command=command, cwd=str(REPO), **kwargs)


with DAG(
    dag_id="mlflow_pipeline",
    description="make_data -> feat_data -> train_model -> predict, as nested MLflow runs",
    schedule=os.environ.get("PIPELINE_DAG_SCHEDULE") or None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlflow", "pipeline"],
) as dag:
    start = _task("start_parent_run")
    steps = [_task(step) for step in STEPS]
    # Runs whatever happened above, so the parent run is always closed (FAILED if a step failed).
    end = _task("end_parent_run", trigger_rule="all_done")
    start >> steps[0]
    for upstream, downstream in itertools.pairwise(steps):
        upstream >> downstream
    steps[-1] >> end
