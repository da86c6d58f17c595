"""Airflow 3 DAGs of this project: one task per step under one MLflow parent run, and a daily `monitor` of the
inference log that fails when a threshold is crossed (mlsteps.dag says how, and which environment variables choose
the operator, environment, schedules and image)."""

from pathlib import Path

from mlsteps.dag import build_dag, build_monitoring_dag

dag = build_dag(Path(__file__).resolve().parents[1])
monitoring = build_monitoring_dag(Path(__file__).resolve().parents[1])
