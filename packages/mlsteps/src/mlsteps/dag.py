"""The Airflow 3 DAG of a project: one task per step, all step runs under one MLflow parent run.

    start_parent_run -> <the project's steps, in order> -> end_parent_run

A project's ``dags/`` file is ``dag = build_dag(<project root>)``. `start_parent_run` opens the parent run and
hands its id to every other task through XCom; each step attaches its run to it (`--parent-run-id`) and takes its
inputs from the runs of the steps before it under that same parent (looked up in MLflow, not in shared files).
`end_parent_run` closes the parent, FAILED if any step failed.

PIPELINE_DAG_OPERATOR chooses how the steps run:
- `local` (default): BashOperator, `python src/main.py` on the Airflow worker, from the project's folder.
- `kubernetes`: KubernetesPodOperator, one pod per step from the pipeline image, each with the resources its
  step declares, so every step runs on a machine sized for it. Credentials come from the pod's service account
  (an IAM role), never from Airflow Variables or the DAG.

Other settings (environment variables of the scheduler and workers):
  PIPELINE_DAG_ENVIRONMENT    config environment (default: local)
  PIPELINE_DAG_PYTHON         interpreter with the project's dependencies (local; default: <project>/.venv/bin/python)
  PIPELINE_DAG_SCHEDULE       a cron expression or preset (default: none, triggered by hand)
  PIPELINE_IMAGE              image for the pods (kubernetes; default: mlflow-pipeline-template:latest)
  PIPELINE_K8S_NAMESPACE      namespace of the pods (default: ml-pipelines)
  PIPELINE_K8S_SERVICE_ACCOUNT service account of the pods, bound to the IAM role (default: mlflow-pipeline)

Standard library and Airflow only (this module is parsed in Airflow's environment, without pandas or MLflow): the
steps and their pods' resources are read from the steps' declarations without importing them.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from mlsteps.discovery import declarations

PARENT = "{{ ti.xcom_pull(task_ids='start_parent_run') }}"
# What each step's pod asks for (a step declares its `resources`); the parent-run tasks are light.
LIGHT = {"cpu": "250m", "memory": "512Mi"}
DEFAULT_RESOURCES = {"cpu": "1", "memory": "4Gi"}


def build_dag(project: Path, dag_id: str = "mlflow_pipeline") -> Any:
    """The project's DAG (an ``airflow.sdk.DAG``), from the steps declared under ``project/src``."""
    from airflow.sdk import DAG

    project = Path(project).resolve()
    found = declarations(project / "src")
    operator = os.environ.get("PIPELINE_DAG_OPERATOR", "local")
    environment = os.environ.get("PIPELINE_DAG_ENVIRONMENT", "local")
    python = os.environ.get("PIPELINE_DAG_PYTHON", str(project / ".venv" / "bin" / "python"))
    resources = {
        "start_parent_run": LIGHT,
        "end_parent_run": LIGHT,
        **{d.name: d.resources or DEFAULT_RESOURCES for d in found},
    }
    # Non-secret settings the pods get; the tracking URI and buckets come from config/<environment>.yaml.
    pod_env = {"PIPELINE_DAG_ENVIRONMENT": environment, "MLFLOW_LOGGING_LEVEL": "WARNING"}

    def arguments(task_id: str) -> list[str]:
        """The `src/main.py` arguments of a task."""
        if task_id == "start_parent_run":
            return ["parent-start", "--environment", environment]
        if task_id == "end_parent_run":
            return ["parent-end", "--environment", environment, "--run-id", PARENT]
        return ["--step", task_id, "--environment", environment, "--parent-run-id", PARENT]

    def task(task_id: str, **kwargs: Any) -> Any:
        if operator == "kubernetes":
            from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
            from kubernetes.client import models as k8s

            return KubernetesPodOperator(
                task_id=task_id,
                name=f"mlflow-pipeline-{task_id.replace('_', '-')}",
                namespace=os.environ.get("PIPELINE_K8S_NAMESPACE", "ml-pipelines"),
                image=os.environ.get("PIPELINE_IMAGE", "mlflow-pipeline-template:latest"),
                cmds=["python", "src/main.py"],
                arguments=arguments(task_id),
                env_vars=pod_env,
                service_account_name=os.environ.get("PIPELINE_K8S_SERVICE_ACCOUNT", "mlflow-pipeline"),
                container_resources=k8s.V1ResourceRequirements(requests=resources[task_id], limits=resources[task_id]),
                do_xcom_push=task_id == "start_parent_run",
                get_logs=True,
                on_finish_action="delete_pod",
                **kwargs,
            )
        if operator != "local":
            raise ValueError(f"PIPELINE_DAG_OPERATOR={operator!r}: use 'local' or 'kubernetes'")
        from airflow.providers.standard.operators.bash import BashOperator

        command = " ".join([python, "src/main.py", *arguments(task_id)])
        if task_id == "start_parent_run":
            command += " | tail -n 1"  # the run id is the last line: BashOperator pushes it to XCom
        return BashOperator(task_id=task_id, bash_command=command, cwd=str(project), **kwargs)

    with DAG(
        dag_id=dag_id,
        description=" -> ".join(d.name for d in found) + ", as nested MLflow runs",
        schedule=os.environ.get("PIPELINE_DAG_SCHEDULE") or None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["mlflow", "pipeline"],
    ) as dag:
        start = task("start_parent_run")
        steps = [task(d.name) for d in found]
        # Runs whatever happened above, so the parent run is always closed (FAILED if a step failed).
        end = task("end_parent_run", trigger_rule="all_done")
        start >> steps[0]
        for upstream, downstream in itertools.pairwise(steps):
            upstream >> downstream
        steps[-1] >> end
    return dag
