"""The Airflow 3 DAG of a project: one task per step, all step runs under one MLflow parent run.

    start_parent_run -> <the project's steps, in order> -> end_parent_run

A second DAG, ``mlflow_monitoring`` (``build_monitoring_dag``), runs `monitor` on each day's inference log: its
task fails, visibly, when monitor exits 3 (a threshold crossed) or cannot read the log.

A project's ``dags/`` file is ``dag = build_dag(<project root>)`` and ``monitoring = build_monitoring_dag(...)``. `start_parent_run` opens the parent run and
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
  PIPELINE_MONITOR_SCHEDULE   the monitoring DAG's (default: @daily; each run judges its data interval)
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
# monitor reads the log a column at a time: a million rows take about 0.5 GB.
MONITOR_RESOURCES = {"cpu": "1", "memory": "2Gi"}
# The window a monitoring run judges: its data interval; a run triggered by hand (whose interval is empty, or
# absent) judges the day before it.
UNTIL = "(data_interval_end or dag_run.run_after)"
SINCE = (
    f"(data_interval_start if data_interval_start and data_interval_start < {UNTIL} "
    f"else {UNTIL} - macros.timedelta(days=1))"
)


def build_dag(project: Path, dag_id: str = "mlflow_pipeline") -> Any:
    """The project's DAG (an ``airflow.sdk.DAG``), from the steps declared under ``project/src``."""
    from airflow.sdk import DAG

    project = Path(project).resolve()
    found = declarations(project / "src")
    environment = os.environ.get("PIPELINE_DAG_ENVIRONMENT", "local")
    resources = {
        "start_parent_run": LIGHT,
        "end_parent_run": LIGHT,
        **{d.name: d.resources or DEFAULT_RESOURCES for d in found},
    }

    def arguments(task_id: str) -> list[str]:
        """The `src/main.py` arguments of a task."""
        if task_id == "start_parent_run":
            return ["parent-start", "--environment", environment]
        if task_id == "end_parent_run":
            return ["parent-end", "--environment", environment, "--run-id", PARENT]
        return ["--step", task_id, "--environment", environment, "--parent-run-id", PARENT]

    def task(task_id: str, **kwargs: Any) -> Any:
        return _operator(project, task_id, arguments(task_id), resources[task_id], **kwargs)

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


def build_monitoring_dag(project: Path, dag_id: str = "mlflow_monitoring") -> Any:
    """The monitoring DAG: one task, `monitor` on the inference log of the run's data interval (a day by default).
    Exit 3 (a threshold crossed) fails the task, as any non-zero exit does: the alert is a failed task, with the
    features and figures in its log."""
    from airflow.sdk import DAG

    project = Path(project).resolve()
    environment = os.environ.get("PIPELINE_DAG_ENVIRONMENT", "local")
    window = ["--since", f"{{{{ {SINCE}.isoformat() }}}}", "--until", f"{{{{ {UNTIL}.isoformat() }}}}"]
    with DAG(
        dag_id=dag_id,
        description="monitor: drift, data quality, errors and latency of the served model, from its inference log",
        schedule=os.environ.get("PIPELINE_MONITOR_SCHEDULE", "@daily") or None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["mlflow", "monitoring"],
    ) as dag:
        _operator(project, "monitor", ["monitor", "--environment", environment, *window], MONITOR_RESOURCES)
    return dag


def _operator(project: Path, task_id: str, arguments: list[str], resources: dict[str, str], **kwargs: Any) -> Any:
    """A task running ``python src/main.py ARGUMENTS``: on the Airflow worker (BashOperator) or in a pod of the
    pipeline's image (KubernetesPodOperator), as PIPELINE_DAG_OPERATOR says."""
    operator = os.environ.get("PIPELINE_DAG_OPERATOR", "local")
    environment = os.environ.get("PIPELINE_DAG_ENVIRONMENT", "local")
    if operator == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from kubernetes.client import models as k8s

        # Non-secret settings the pods get; the tracking URI and buckets come from config/<environment>.yaml.
        pod_env = {"PIPELINE_DAG_ENVIRONMENT": environment, "MLFLOW_LOGGING_LEVEL": "WARNING"}
        return KubernetesPodOperator(
            task_id=task_id,
            name=f"mlflow-pipeline-{task_id.replace('_', '-')}",
            namespace=os.environ.get("PIPELINE_K8S_NAMESPACE", "ml-pipelines"),
            image=os.environ.get("PIPELINE_IMAGE", "mlflow-pipeline-template:latest"),
            cmds=["python", "src/main.py"],
            arguments=arguments,
            env_vars=pod_env,
            service_account_name=os.environ.get("PIPELINE_K8S_SERVICE_ACCOUNT", "mlflow-pipeline"),
            container_resources=k8s.V1ResourceRequirements(requests=resources, limits=resources),
            do_xcom_push=task_id == "start_parent_run",
            get_logs=True,
            on_finish_action="delete_pod",
            **kwargs,
        )
    if operator != "local":
        raise ValueError(f"PIPELINE_DAG_OPERATOR={operator!r}: use 'local' or 'kubernetes'")
    from airflow.providers.standard.operators.bash import BashOperator

    python = os.environ.get("PIPELINE_DAG_PYTHON", str(project / ".venv" / "bin" / "python"))
    command = " ".join([python, "src/main.py", *arguments])
    if task_id == "start_parent_run":
        command += " | tail -n 1"  # the run id is the last line: BashOperator pushes it to XCom
    return BashOperator(task_id=task_id, bash_command=command, cwd=str(project), **kwargs)
