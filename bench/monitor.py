"""Monitoring benchmark: `python src/main.py monitor` on a window of a synthetic inference log, against reading the
same window whole with pandas (what a notebook would do first).

    python bench/monitor.py --docs                 # 100k and 1M logged rows (about 3 minutes), into the docs
    python bench/monitor.py --rows 200000          # a quick look

It trains the example model on a fresh tracking store, then writes an inference log as `serve` writes it: files of
10,000 rows (serving.log.batch_rows) under date=<today>/, every row a training row drawn with replacement, scored
by version 1, one row per request. Per size: monitor's wall time and peak RSS (the whole command: start-up,
reading the training data, scoring the holdout, the report, the MLflow run), and the peak RSS of reading the
window into one pandas frame. The goal: 1 million logged rows in under 30 s, memory bounded by the columns read,
not by the window. Nothing here asserts it: the table is the result (also written to bench/monitor_results.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import machine_info
from bench.serving import train

FILE_ROWS = 10_000
DOCS = "docs/monitoring.md"
MARKERS = ("<!-- monitor-benchmark:start -->", "<!-- monitor-benchmark:end -->")
READ_WHOLE = """
import sys, pandas as pd
frame = pd.read_parquet(sys.argv[1])
print(len(frame), round(frame.memory_usage(deep=True).sum() / 2**20, 1))
"""


def write_log(work: Path, env: dict[str, str], rows: int) -> Path:
    """``rows`` logged rows of training data, scored by version 1, in files of FILE_ROWS rows."""
    import mlflow
    import numpy as np
    import pandas as pd

    mlflow.set_tracking_uri(env["PIPELINE_TRACKING_URI"])
    version = mlflow.MlflowClient().get_model_version("breast-cancer-local", "1")
    model = mlflow.sklearn.load_model("models:/breast-cancer-local/1")
    train = pd.read_parquet(next((work / "data" / "snapshots").glob("*.parquet")))
    features = [c for c in train.columns if c not in ("diagnosis", "sample_id")]
    log = work / "data" / "inference_log"
    shutil.rmtree(log, ignore_errors=True)
    now = datetime.now(UTC)
    day = log / f"date={now:%Y-%m-%d}"
    day.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pool = train[features].reset_index(drop=True)
    predictions = np.asarray(model.predict(pool))
    for start in range(0, rows, FILE_ROWS):
        n = min(FILE_ROWS, rows - start)
        pick = rng.integers(0, len(pool), n)
        frame = pd.DataFrame(
            {
                "request_id": [uuid.uuid4().hex for _ in range(n)],
                "row": np.ones(n, dtype=np.int64),
                "received_at": pd.Timestamp(now - timedelta(minutes=30)) + pd.to_timedelta(np.arange(n), unit="ms"),
                "latency_ms": rng.gamma(2.0, 3.0, n),
                "status": np.full(n, 200, dtype=np.int16),
                "error": pd.Series([None] * n, dtype=object),
                "client": pd.Series([None] * n, dtype=object),
                "model_uri": "models:/breast-cancer-local@champion",
                "model_name": "breast-cancer-local",
                "model_version": "1",
                "model_run_id": version.run_id,
            }
        )
        inputs = pool.iloc[pick].reset_index(drop=True).add_prefix("input.")
        frame = pd.concat([frame, inputs], axis=1).assign(**{"output.prediction": predictions[pick]})
        frame.to_parquet(day / f"{start:012d}.parquet", index=False)
    return log


def peak(command: list[str], env: dict[str, str], scratch: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of ``python bench/peak_rss.py OUT COMMAND``."""
    out = scratch / "peak.txt"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "bench/peak_rss.py", str(out), *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, float(out.read_text()), done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000", help="logged rows per window (comma list)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "monitor_results.md"))
    parser.add_argument("--docs", action="store_true", help=f"also write the table into {DOCS}, between its markers")
    args = parser.parse_args(argv)
    lines = [
        (
            "| logged rows | log on disk (MB) | monitor: seconds | monitor: peak RSS (MiB) | pandas, whole window: "
            "peak RSS (MiB) | the window as one frame (MiB) | verdict |"
        ),
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as scratch:
        work = Path(scratch)
        print("training the example model...", flush=True)
        env = train(work)
        reader = work / "read_whole.py"
        reader.write_text(READ_WHOLE)
        for rows in [int(r) for r in args.rows.split(",")]:
            print(f"writing {rows:,} logged rows...", flush=True)
            log = write_log(work, env, rows)
            size = sum(f.stat().st_size for f in log.rglob("*.parquet")) / 2**20
            seconds, monitor_peak, stdout = peak(["src/main.py", "monitor", "--since", "2h"], env, work)
            verdict = next((line.split(": ", 1)[1] for line in stdout.splitlines() if "(train run" in line), "?")
            _, pandas_peak, whole = peak([str(reader), str(log)], env, work)
            frame_mb = float(whole.split()[1])
            lines.append(
                f"| {rows:,} | {size:.0f} | {seconds:.1f} | {monitor_peak:.0f} | {pandas_peak:.0f} | {frame_mb:.0f} | "
                f"{verdict} |"
            )
            print(lines[-1], flush=True)
    table = "\n".join(["Monitoring benchmark; goal: 1M logged rows in under 30 s.", "", *machine_info(), "", *lines])
    print("\n" + table)
    Path(args.out).write_text(table + "\n")
    if args.docs:
        page = ROOT / DOCS
        text = page.read_text()
        start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
        page.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
