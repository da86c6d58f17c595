"""Ten million rows on one machine: the whole pipeline, a step per process, on a synthetic CSV of ~3 GB.

    python bench/large.py [--rows 10000000] [--max-train-rows 1000000] [--out bench/large_results.md]

The CSV is generated a chunk of rows at a time (generation holds one chunk, never the whole frame); the config
is the synthetic data's (bench/synthetic.py) with ``train_model.max_train_rows`` set, so that training fits on a
sample while evaluation and prediction take every row. Each step runs in a process of its own
(``python src/main.py --step X``), which records its peak resident memory (bench/peak_rss.py) and its memory when
the step starts reading its inputs (bench/start_rss.py): the peak less the start is what the step's data took.
Prints a Markdown table and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ["make_data", "feat_data", "train_model", "predict"]


def write_csv(path: Path, rows: int, chunk_rows: int) -> float:
    """``rows`` synthetic rows into ``path``, ``chunk_rows`` at a time; the MiB the whole frame would take in
    pandas (the sum over the chunks, as ``memory_usage(deep=True)`` counts it)."""
    from bench.synthetic import make_frame

    frame_mib = 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        for index, start in enumerate(range(0, rows, chunk_rows)):
            chunk = make_frame(min(chunk_rows, rows - start), seed=index)
            chunk["row_id"] += start  # ids stay unique across chunks
            frame_mib += chunk.memory_usage(deep=True).sum() / 2**20
            chunk.to_csv(handle, index=False, header=index == 0)
    return frame_mib


def write_large_config(folder: Path, raw_name: str, max_train_rows: int | None) -> Path:
    """The synthetic data's config, with the training sample set."""
    from bench.synthetic import write_config

    config_dir = write_config(ROOT / "config" / "base.yaml", folder, raw_name)
    base = config_dir / "base.yaml"
    config = yaml.safe_load(base.read_text())
    config["train_model"]["max_train_rows"] = max_train_rows
    base.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_dir


def run_step(step: str, env: dict[str, str], scratch: Path) -> tuple[float, float, float]:
    """Run one step in a process of its own: wall seconds, peak RSS and RSS at the step's start (MiB)."""
    peak, start = scratch / f"{step}.peak", scratch / f"{step}.start"
    cmd = [sys.executable, "bench/peak_rss.py", str(peak), "bench/start_rss.py", str(start), "src/main.py"]
    began = time.perf_counter()
    done = subprocess.run(
        [*cmd, "--step", step], check=False, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    return seconds, float(peak.read_text()), float(start.read_text())


def recorded(tracking_uri: str) -> tuple[dict[str, float], dict[str, str]]:
    """Each step's own duration (from its MLflow run) and the params of train_model's run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], filter_string="tags.`pipeline.kind` = 'step'"
    )
    seconds = {r.data.tags["pipeline.step"]: (r.info.end_time - r.info.start_time) / 1000 for r in runs}
    train = next(r for r in runs if r.data.tags["pipeline.step"] == "train_model")
    return seconds, dict(train.data.params)


def machine() -> str:
    import pandas as pd
    import sklearn

    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kib = int(meminfo.read_text().split()[1])
        memory = f", {total_kib / 2**20:.0f} GiB RAM"
    return (
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}\n"
        f"- python {platform.python_version()}; pandas {pd.__version__}, scikit-learn {sklearn.__version__}"
    )


def bench(rows: int, chunk_rows: int, max_train_rows: int | None, work: Path) -> str:
    config_dir = work / "config"
    data = work / "data"
    raw = data / "raw" / "synthetic.csv"
    began = time.perf_counter()
    frame_mib = write_csv(raw, rows, chunk_rows)
    generated = time.perf_counter() - began
    write_large_config(config_dir, raw.name, max_train_rows)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINE_"))}
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PIPELINE_CONFIG_DIR": str(config_dir),
        "PIPELINE_DATA_ROOT": str(data),
        "PIPELINE_TRACKING_URI": tracking,
        "MLFLOW_TRACKING_URI": tracking,
        # Remembered digests and up-to-date states stay in the work folder, not the project's .pipeline/.
        "PIPELINE_STATE_DIR": str(work / "state"),
    }
    measured = {step: run_step(step, env, work) for step in STEPS}
    own, params = recorded(tracking)
    lines = [
        "## Ten million rows on one machine (`make bench-large`)",
        "",
        machine(),
        (
            f"- {rows:,} rows, a CSV of {raw.stat().st_size / 2**20:,.0f} MiB (generated in {generated:.0f} s, "
            f"{chunk_rows:,} rows at a time); the raw frame would take {frame_mib:,.1f} MiB in pandas"
        ),
        (
            f"- train_model fitted on {int(params['train_rows']):,} of {int(params['train_rows_available']):,} "
            f"training rows ({params['train_sample']}; train_model.max_train_rows: {max_train_rows}); evaluated on "
            f"{int(params['test_rows']):,} test rows"
        ),
        (
            "- each step in a process of its own; start = its RSS when it starts reading its inputs (interpreter and "
            "libraries)"
        ),
        "",
        (
            "| step | own time (s) | process (s) | peak RSS (MiB) | RSS at start (MiB) | peak above start (MiB) "
            "| above start / raw frame |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for step in STEPS:
        wall, peak, start = measured[step]
        lines.append(
            f"| {step} | {own.get(step, float('nan')):.1f} | {wall:.1f} | {peak:,.0f} | {start:,.0f} "
            f"| {peak - start:,.0f} | {(peak - start) / frame_mib:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the synthetic CSV")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows generated at a time")
    parser.add_argument(
        "--max-train-rows", type=int, default=1_000_000, help="train_model.max_train_rows (0: every row)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "large_results.md")
    parser.add_argument("--work", type=Path, default=None, help="folder for the data and runs (default: a temp one)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-large-", dir=args.work))
    try:
        text = bench(args.rows, args.chunk_rows, args.max_train_rows or None, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
