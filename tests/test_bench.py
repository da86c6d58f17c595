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


def _bench(script: str, out: Path, *args: str, timeout: float) -> str:
    """Run ``bench/<script> ARGS --out OUT`` from the repo root; the tables it wrote into ``out``, which it must
    also have printed (a failure shows the end of stderr)."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--out", str(out)],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert text in done.stdout
    return text


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


# One synthetic size for each table (the example's row is the same code on other data): minutes, not ten. The two
# tables are two tests, so that the suite's two workers can run them side by side.
@pytest.mark.long
def test_benchmark_prints_the_overhead_table_and_the_start_up(tmp_path: Path) -> None:
    out = tmp_path / "results.md"

    text = _bench(
        "run.py",
        out,
        "--no-example",
        "--sizes",
        "600",
        "--scaling-sizes",
        "",
        "--repeats",
        "1",
        timeout=1200,
    )
    assert re.search(r"machine: \S+, \d+ CPUs", text)
    assert "mlflow 3." in text
    overhead_rows = [line for line in text.splitlines() if line.startswith(("| example", "| synthetic"))]
    assert [row.split("|")[1].strip() for row in overhead_rows] == ["synthetic 600 rows"]
    for row in overhead_rows:
        cells = _cells(row)
        assert len(cells) == 15
        # plain, MLflow script, first run, up-to-date re-run, --record re-run, chained: seconds
        assert all(float(cells[i]) > 0 for i in (1, 2, 3, 6, 9, 11))
        assert all(cells[i].endswith("x") for i in (4, 5, 8, 12)) and cells[7].endswith("%") and cells[10].endswith("%")
        # the first run's ratios in CPU time
        assert all(float(cells[i].rstrip("x")) > 0 for i in (13, 14))
        # the up-to-date re-run is a fraction of the first run; the ratios are those of the printed seconds
        assert float(cells[6]) < float(cells[3])
        assert float(cells[4].rstrip("x")) == pytest.approx(float(cells[3]) / float(cells[2]), abs=0.02)
    assert re.search(r"`python src/main.py --help`: \d+\.\d\d s", text)


@pytest.mark.long
def test_only_the_overhead_table_with_the_load_of_the_machine(tmp_path: Path) -> None:
    out = tmp_path / "results.md"

    text = _bench(
        "run.py",
        out,
        "--only-overhead",
        "--no-example",
        "--sizes",
        "600",
        "--no-chained",
        "--repeats",
        "1",
        timeout=600,
    )

    rows = [line for line in text.splitlines() if line.startswith("| synthetic")]
    assert [_cells(row)[0] for row in rows] == ["synthetic 600 rows"]
    assert _cells(rows[0])[11:13] == ["-", "-"]  # no `mlflow run` per step
    assert "### Scaling" not in text and "### Start-up" not in text
    assert re.search(r"load average \(1, 5, 15 min\) at the start: [\d.]+, [\d.]+, [\d.]+", text)
    assert re.search(r"load average \(1, 5, 15 min\) at the end: [\d.]+, [\d.]+, [\d.]+", text)


@pytest.mark.long
def test_benchmark_prints_the_scaling_table(tmp_path: Path) -> None:
    out = tmp_path / "results.md"

    text = _bench(
        "run.py",
        out,
        "--no-example",
        "--no-overhead",
        "--scaling-sizes",
        "600",
        "--repeats",
        "1",
        timeout=1200,
    )
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

    text = _bench(
        "serving.py",
        out,
        *("--requests", "40", "--seconds", "1", "--rounds", "1", "--batch-sizes", "100", "--clients", "1,2"),
        timeout=900,
    )
    cells = [(1, 1), (1, 2), (100, 1), (100, 2)]
    figures = [_cells(line) for line in text.splitlines() if re.match(r"\| [\d,]+ \| \d+ \| [\d.]+ \| ", line)]
    ratios = [_cells(line) for line in text.splitlines() if re.match(r"\| [\d,]+ \| \d+ \| [\d.]+x \| ", line)]
    assert [(int(c[0]), int(c[1])) for c in figures] == cells
    assert [(int(c[0]), int(c[1])) for c in ratios] == cells
    for row in figures:
        # three servers: p50, p99, rows/s each; then the requests each server answered
        values = [float(c.replace(",", "")) for c in row[2:]]
        assert len(values) == 10 and all(v > 0 for v in values)
        for server in range(3):
            p50, p99 = values[3 * server], values[3 * server + 1]
            assert p50 <= p99
    for fig, row in zip(figures, ratios, strict=True):
        # log on / off p99, met?, log on / off rows/s, met?, log on / MLflow p50, p99, met?, rows/s: from the figures
        assert len(row) == 10
        # (columns: MLflow's p50, p99, rows/s at 2-4, log off's at 5-7, log on's at 8-10)
        assert float(row[2].rstrip("x")) == pytest.approx(float(fig[9]) / float(fig[6]), rel=0.03, abs=0.01)
        assert float(row[4].rstrip("x")) == pytest.approx(
            float(fig[10].replace(",", "")) / float(fig[7].replace(",", "")), rel=0.03, abs=0.01
        )
        assert all(row[i] in ("yes", "**no**") for i in (3, 5, 8))
    verdicts = [line for line in text.splitlines() if line.startswith(("| p50", "| throughput"))]
    assert len(verdicts) == 2  # 1-row p50, and throughput at 100 rows with 1 client
    assert all(re.search(r"\| [+-]\d+\.\d% \| (yes|\*\*no\*\*) \|$", line) for line in verdicts)


@pytest.mark.long
def test_large_benchmark_runs_every_step_on_a_generated_csv_and_a_training_sample(tmp_path: Path) -> None:
    out = tmp_path / "large.md"

    text = _bench(
        "large.py",
        out,
        "--rows",
        "3000",
        "--chunk-rows",
        "1000",
        "--max-train-rows",
        "500",
        "--work",
        str(tmp_path),
        timeout=900,
    )
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


@pytest.mark.long
def test_dask_benchmark_runs_both_engines_side_by_side_and_prints_the_targets(tmp_path: Path) -> None:
    out = tmp_path / "dask.md"

    text = _bench(
        "dask_bench.py",
        out,
        "--rows",
        "0",
        "--compare-rows",
        "2000",
        "--partition-rows",
        "1000",
        "--max-train-rows",
        "500",
        "--workers",
        "1",
        "--memory-limit",
        "1GB",
        "--work",
        str(tmp_path),
        timeout=900,
    )
    assert "- 2,000 rows: 2 Parquet files" in text
    assert "train_model fits on 500 of 1600 training rows (stratified" in text
    rows = [line for line in text.splitlines() if line.startswith("| 2,000 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["pandas", "dask"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(float(c.replace(",", "")) > 0 for c in cells[2:])
    assert re.search(
        r"- dask / pandas time at 2,000 rows: [\d.,]+ s / [\d.,]+ s = \d+\.\d\dx \(target: at most 1\.3x\)", text
    )
