"""The library on a project of its own: fake steps in a temporary folder, run through the command line as a user runs
it (``mlsteps`` from the project's folder). Nothing here knows the template's example, its steps or its config."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

CONFIG = """\
project: fake
data: {root: data}
catalog:
  raw: {kind: input, path: raw/numbers.csv}
  doubled: {kind: per_run, path: interim}
  totals: {kind: per_run, path: processed}
schema:
  target: y
  task: regression
  columns: {x: {type: float}}
double: {factor: 2}
tracking: {uri: sqlite:///mlflow.db}
"""
LOCAL = "local_only: true\n"
DOUBLE = """
from mlsteps import Step, StepOutput, StepParams


class DoubleParams(StepParams):
    factor: int = 2


def run(ctx, inputs):
    raw = inputs["raw"]
    return StepOutput(outputs={"doubled": raw.assign(x=raw["x"] * ctx.params.factor)}, metrics={"rows": float(len(raw))})


STEP = Step(
    name="double",
    reads=("raw",),
    writes=("doubled",),
    params=DoubleParams,
    run=run,
    headline=("rows",),
    options={"--factor": {"key": "factor", "type": "int", "help": "what x is multiplied by."}},
)
"""
TOTAL = """
import pandas as pd
from mlsteps import DataValidationError, Step, StepOutput


def run(ctx, inputs):
    frame = inputs["{read}"]
    if (frame["x"] < 0).any():
        raise DataValidationError("x holds a negative value: the fake step refuses it")
    return StepOutput(outputs={"totals": pd.DataFrame({"x": [frame["x"].sum()]})})


STEP = Step(name="total", reads=("{read}",), writes=("totals",), run=run)
"""
# A step put between the two, as the docs say: it reads what `double` writes and writes what `total` reads.
SHIFT = """
from mlsteps import Step, StepOutput


def run(ctx, inputs):
    return StepOutput(outputs={"shifted": inputs["doubled"].assign(x=lambda f: f["x"] + 1)})


STEP = Step(name="shift", reads=("doubled",), writes=("shifted",), run=run)
"""


def _project(root: Path) -> Path:
    files = {
        "config/base.yaml": CONFIG,
        "config/local.yaml": LOCAL,
        "src/__init__.py": "",
        "src/steps/__init__.py": "",
        "src/steps/double.py": DOUBLE,
        "src/steps/total.py": TOTAL.replace("{read}", "doubled"),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    (root / "data" / "raw").mkdir(parents=True)
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.0]}).to_csv(root / "data/raw/numbers.csv", index=False)
    return root


def _mlsteps(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "MLFLOW_"))}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "PIPELINE_STATE_DIR": str(project / ".state")}
    return subprocess.run(
        [sys.executable, "-m", "mlsteps.cli", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _totals(project: Path) -> list[float]:
    """What each run of `total` wrote, oldest first."""
    written = sorted((project / "data/processed").glob("*/totals.parquet"), key=lambda p: p.stat().st_mtime_ns)
    return [pd.read_parquet(p)["x"].item() for p in written]


def _runs(project: Path) -> list[tuple[str, str]]:
    """(step, status) of every step run, oldest first."""
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute(
            "select t.value, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'pipeline.step' order by r.start_time"
        ).fetchall()


def test_steps_run_in_the_order_of_their_datasets_and_an_unchanged_rerun_is_up_to_date(tmp_path: Path) -> None:
    project = _project(tmp_path)

    first = _mlsteps(project)
    again = _mlsteps(project)
    changed = _mlsteps(project, "--factor", "3")

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0 and "up to date" in again.stdout
    assert changed.returncode == 0, changed.stderr
    assert _totals(project) == [12.0, 18.0]
    assert _runs(project) == [("double", "FINISHED"), ("total", "FINISHED")] * 2


def test_a_failing_step_exits_non_zero_with_its_message_and_its_run_failed(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "data/raw/numbers.csv").write_text("x,y\n1.0,0.0\n-5.0,1.0\n")

    failed = _mlsteps(project)

    assert failed.returncode != 0
    assert "x holds a negative value" in failed.stderr
    assert _runs(project) == [("double", "FINISHED"), ("total", "FAILED")]
    assert _totals(project) == []


def test_a_step_added_between_two_others_runs_between_them(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "config/base.yaml").write_text(
        CONFIG.replace("catalog:\n", "catalog:\n  shifted: {kind: per_run, path: interim}\n")
    )
    (project / "src/steps/shift.py").write_text(SHIFT)
    (project / "src/steps/total.py").write_text(TOTAL.replace("{read}", "shifted"))

    help_text = _mlsteps(project, "--help")
    run = _mlsteps(project)

    assert "a comma list of double, shift, total" in " ".join(help_text.stdout.split())
    assert run.returncode == 0, run.stderr
    assert _runs(project) == [("double", "FINISHED"), ("shift", "FINISHED"), ("total", "FINISHED")]
    assert _totals(project) == [15.0]  # (1 + 2 + 3) * 2, then + 1 on each of the three rows
