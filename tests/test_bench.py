"""The benchmark runs end to end on tiny sizes and prints every figure (no timing is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT
from mlsteps.discovery import step_names

pytestmark = pytest.mark.slow


def _bench(script: str, *args: str, timeout: float) -> str:
    """Run ``bench/<script>`` with ``args`` from the repo root; its stdout (a failure shows the end of stderr)."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


# One synthetic size for each table (the example's row is the same code on other data): minutes, not ten. The two
# tables are two tests, so that the suite's two workers can run them side by side.
@pytest.mark.long
def test_benchmark_prints_the_overhead_table_and_the_start_up(tmp_path: Path) -> None:
    out = tmp_path / "results.md"

    stdout = _bench(
        "run.py",
        "--no-example",
        "--sizes",
        "600",
        "--scaling-sizes",
        "",
        "--repeats",
        "1",
        "--out",
        str(out),
        timeout=1200,
    )
    text = out.read_text()
    assert text in stdout
    assert re.search(r"machine: \S+, \d+ CPUs", text)
    assert "mlflow 3." in text
    overhead_rows = [line for line in text.splitlines() if line.startswith(("| example", "| synthetic"))]
    assert [row.split("|")[1].strip() for row in overhead_rows] == ["synthetic 600 rows"]
    for row in overhead_rows:
        cells = _cells(row)
        assert len(cells) == 13
        # plain, MLflow script, first run, up-to-date re-run, --record re-run, chained: seconds
        assert all(float(cells[i]) > 0 for i in (1, 2, 3, 6, 9, 11))
        assert all(cells[i].endswith("x") for i in (4, 5, 8, 12)) and cells[7].endswith("%") and cells[10].endswith("%")
        # the up-to-date re-run is a fraction of the first run; the ratios are those of the printed seconds
        assert float(cells[6]) < float(cells[3])
        assert float(cells[4].rstrip("x")) == pytest.approx(float(cells[3]) / float(cells[2]), abs=0.02)
    assert re.search(r"`python src/main.py --help`: \d+\.\d\d s", text)


@pytest.mark.long
def test_benchmark_prints_the_scaling_table(tmp_path: Path) -> None:
    out = tmp_path / "results.md"

    stdout = _bench(
        "run.py",
        "--no-example",
        "--no-overhead",
        "--scaling-sizes",
        "600",
        "--repeats",
        "1",
        "--out",
        str(out),
        timeout=1200,
    )
    text = out.read_text()
    assert text in stdout
    scaling_rows = [line for line in text.splitlines() if re.match(r"\| 600 \|", line)]
    assert len(scaling_rows) == 1
    for row in scaling_rows:
        cells = _cells(row)
        assert len(cells) == 12
        assert all(float(c) > 0 for c in cells[2:6])
        # each step's peak and, in brackets, the part of it above the process's memory at the step's start
        peaks = [re.fullmatch(r"(\d+) \((\d+)\)", c) for c in cells[6:10]]
        assert all(m and 0 < int(m[2]) < int(m[1]) for m in peaks), cells[6:10]
        assert cells[10].endswith("x") and cells[11].endswith("x")
        assert float(cells[11].rstrip("x")) < float(cells[10].rstrip("x"))  # above start: less than the whole peak


@pytest.mark.long
def test_serving_benchmark_prints_every_figure_and_the_target(tmp_path: Path) -> None:
    out = tmp_path / "serving.md"

    stdout = _bench(
        "serving.py",
        "--requests",
        "10",
        "--seconds",
        "2",
        "--rounds",
        "1",
        "--batch-sizes",
        "100,500",
        "--out",
        str(out),
        timeout=900,
    )
    text = out.read_text()
    assert text in stdout
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    for label in ("mlflow models serve", "serve, checks only", "serve, checks + log + keys"):
        cells = [c.strip() for c in rows[label].strip("|").split("|")]
        assert len(cells) == 5
        assert all(float(c.replace(",", "")) > 0 for c in cells[1:])
    verdicts = [line for line in text.splitlines() if line.startswith(("| p50", "| throughput"))]
    assert len(verdicts) == 3
    assert all(re.search(r"\| [+-]\d+\.\d% \| (yes|no) \|$", line) for line in verdicts)


@pytest.mark.long
def test_large_benchmark_runs_every_step_on_a_generated_csv_and_a_training_sample(tmp_path: Path) -> None:
    out = tmp_path / "large.md"

    stdout = _bench(
        "large.py",
        "--rows",
        "3000",
        "--chunk-rows",
        "1000",
        "--max-train-rows",
        "500",
        "--out",
        str(out),
        "--work",
        str(tmp_path),
        timeout=900,
    )
    text = out.read_text()
    assert text in stdout
    assert re.search(r"- 3,000 rows, a CSV of \d+ MiB .* the raw frame would take \d+\.\d MiB in pandas", text)
    # 3,000 rows, 20% held out: the model fits on the stratified sample, evaluation takes every test row.
    assert "fitted on 500 of 2,400 training rows (stratified; train_model.max_train_rows: 500)" in text
    assert "evaluated on 600 test rows" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert [row.split("|")[1].strip() for row in rows] == list(step_names())
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 7
        seconds, wall, peak, start, above = (float(c.replace(",", "")) for c in cells[1:6])
        assert 0 < seconds < wall
        assert 0 < start < peak
        assert above == pytest.approx(peak - start, abs=1)
        assert cells[6].endswith("x")
    assert list(tmp_path.iterdir()) == [out]  # the data and runs are removed
