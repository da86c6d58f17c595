"""Airflow 3 DAG of this project: one task per step under one MLflow parent run (mlsteps.dag says how, and which
environment variables choose the operator, environment, schedule and image)."""

from pathlib import Path

from mlsteps.dag import build_dag

dag = build_dag(Path(__file__).resolve().parents[1])
