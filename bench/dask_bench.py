"""The whole pipeline on the dask engine (a LocalCluster), at 50 million rows, and side by side with the pandas
engine at 10 million.

    python bench/dask_bench.py [--rows 50000000] [--compare-rows 10000000] [--partition-rows 1000000]
                               [--max-train-rows 1000000] [--workers 2] [--memory-limit 2GB] [--docs]

The synthetic data (bench/synthetic.py: an id, 20 features of mixed types, a yes/no target) is written as a
folder of Parquet files, a partition at a time (the whole frame is never held). Each pipeline is one command,
``python src/main.py --engine ENGINE``, in a workspace of its own (data root, tracking store: the engines never
reuse each other's steps). While it runs, the resident memory of the command and of every process it started (the
LocalCluster's workers; its scheduler runs in the command's process) is sampled every 0.2 s and summed: the peak of
that sum is the memory of the whole run. Each step's time is its MLflow run's. The table is printed next to the
targets (at most 6 GB at the large size; the dask engine at most 1.3x the pandas engine's time at the compared
size) and written to bench/dask_results.md, with ``--docs`` into docs/benchmarks.md too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.large import machine, recorded

STEPS = ["make_data", "feat_data", "train_model", "predict"]
OUT = ROOT / "bench" / "dask_results.md"
DOCS = ROOT / "docs" / "benchmarks.md"
MARKERS = ("<!-- dask-benchmark:start -->", "<!-- dask-benchmark:end -->")
PEAK_TARGET_MIB = 6 * 1024
RATIO_TARGET = 1.3


def write_parquet_folder(folder: Path, rows: int, partition_rows: int) -> tuple[float, float]:
    """``rows`` synthetic rows as ``folder/part-NNNNN.parquet``, one partition at a time: the MiB the whole frame
    would take in pandas, and the MiB of the files."""
    from bench.synthetic import make_frame

    folder.mkdir(parents=True, exist_ok=True)
    frame_mib = 0.0
    for index, start in enumerate(range(0, rows, partition_rows)):
        part = make_frame(min(partition_rows, rows - start), seed=index)
        part["row_id"] += start  # ids stay unique across partitions
        frame_mib += part.memory_usage(deep=True).sum() / 2**20
        part.to_parquet(folder / f"part-{index:05d}.parquet", index=False)
    files_mib = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    return frame_mib, files_mib


def write_config(folder: Path, max_train_rows: int | None, workers: int, memory_limit: str, spill: Path) -> Path:
    """The synthetic data's config (bench/synthetic.py) reading the folder, with the sample and the cluster set."""
    from bench.synthetic import write_config as synthetic_config

    config_dir = synthetic_config(ROOT / "config" / "base.yaml", folder, "synthetic")
    base = config_dir / "base.yaml"
    config = yaml.safe_load(base.read_text())
    config["train_model"]["max_train_rows"] = max_train_rows
    config["engine"].update(workers=workers, memory_limit=memory_limit, spill_dir=str(spill))
    base.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_dir


@dataclass
class Sampler:
    """The summed RSS of a process and all its descendants, sampled until stopped; the peak of the sum."""

    pid: int
    peak_mib: float = 0.0
    processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue  # ended between the listing and the reading
            self.peak_mib = max(self.peak_mib, total / 2**20)
            self.processes = max(self.processes, len(tree))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Measured:
    rows: int
    engine: str
    seconds: float
    steps: dict[str, float]
    peak_mib: float
    processes: int
    params: dict[str, str]


def run_pipeline(engine: str, config_dir: Path, work: Path, rows: int) -> Measured:
    """``python src/main.py --engine ENGINE`` in a workspace of its own under ``work``, its process tree sampled."""
    workspace = work / engine
    data = workspace / "data"
    data.mkdir(parents=True)
    (data / "raw").symlink_to(config_dir.parent / "data" / "raw", target_is_directory=True)
    tracking = f"sqlite:///{workspace / 'mlflow.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "MLFLOW_"))},
        "PIPELINE_CONFIG_DIR": str(config_dir),
        "PIPELINE_DATA_ROOT": str(data),
        "PIPELINE_TRACKING_URI": tracking,
        "PIPELINE_STATE_DIR": str(workspace / "state"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "src/main.py", "--engine", engine, "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sampler = Sampler(process.pid)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    _, stderr = process.communicate()
    seconds = time.perf_counter() - began
    sampler.stop()
    thread.join()
    if process.returncode != 0:
        raise RuntimeError(f"the {engine} pipeline at {rows:,} rows failed:\n{stderr.decode(errors='replace')[-3000:]}")
    steps, params = recorded(tracking)
    return Measured(rows, engine, seconds, steps, sampler.peak_mib, sampler.processes, params)


def table(results: list[Measured]) -> str:
    header = "| rows | engine | " + " | ".join(f"{s} (s)" for s in STEPS)
    lines = [header + " | command (s) | peak RSS, all processes (MiB) | processes |"]
    lines.append("|---" * (len(STEPS) + 5) + "|")
    for r in results:
        steps = " | ".join(f"{r.steps.get(s, float('nan')):,.1f}" for s in STEPS)
        lines.append(f"| {r.rows:,} | {r.engine} | {steps} | {r.seconds:,.1f} | {r.peak_mib:,.0f} | {r.processes} |")
    return "\n".join(lines)


def verdicts(results: list[Measured], large: int, compare: int) -> list[str]:
    """The targets next to what was measured."""
    lines = []
    at_large = [r for r in results if r.rows == large and r.engine == "dask"]
    if at_large:
        peak = at_large[0].peak_mib
        met = "met" if peak <= PEAK_TARGET_MIB else "NOT met"
        lines.append(
            f"- peak memory of the dask run at {large:,} rows: {peak / 1024:.2f} GiB (target: at most 6 GiB): {met}"
        )
    pair = {r.engine: r for r in results if r.rows == compare}
    if {"pandas", "dask"} <= set(pair):
        ratio = pair["dask"].seconds / pair["pandas"].seconds
        met = "met" if ratio <= RATIO_TARGET else "NOT met"
        lines.append(
            f"- dask / pandas time at {compare:,} rows: {pair['dask'].seconds:,.1f} s / {pair['pandas'].seconds:,.1f} s "
            f"= {ratio:.2f}x (target: at most {RATIO_TARGET}x): {met}"
        )
        steps = ", ".join(
            f"{s} {pair['dask'].steps.get(s, 0) / max(pair['pandas'].steps.get(s, 1e-9), 1e-9):.2f}x" for s in STEPS
        )
        lines.append(f"- per step (dask / pandas): {steps}")
    return lines


def bench(args: argparse.Namespace, work: Path) -> str:
    results: list[Measured] = []
    notes = []
    sizes = [(args.compare_rows, ["pandas", "dask"]), (args.rows, ["dask"])]
    for rows, engines in [(n, e) for n, e in sizes if n]:
        case = work / f"rows-{rows}"
        began = time.perf_counter()
        frame_mib, files_mib = write_parquet_folder(case / "data" / "raw" / "synthetic", rows, args.partition_rows)
        notes.append(
            f"- {rows:,} rows: {rows // args.partition_rows + bool(rows % args.partition_rows)} Parquet files, "
            f"{files_mib:,.0f} MiB, written in {time.perf_counter() - began:,.0f} s a partition at a time; the raw "
            f"frame would take {frame_mib:,.0f} MiB in pandas"
        )
        config_dir = write_config(
            case / "config", args.max_train_rows or None, args.workers, args.memory_limit, case / "spill"
        )
        for engine in engines:
            print(f"running the {engine} engine on {rows:,} rows ...", file=sys.stderr, flush=True)
            results.append(run_pipeline(engine, config_dir, case, rows))
            print(table(results), file=sys.stderr, flush=True)
        shutil.rmtree(case)  # tens of GB at 50M rows: the data, its outputs and snapshots, before the next size
    trained = results[-1].params
    notes.append(
        f"- train_model fits on {trained.get('train_rows')} of {trained.get('train_rows_available')} training rows "
        f"({trained.get('train_sample')}; max_train_rows {args.max_train_rows:,}), evaluates on all "
        f"{trained.get('test_rows')} test rows"
    )
    notes.append(
        f"- LocalCluster: {args.workers} worker processes, memory_limit {args.memory_limit} each, 1 thread each; "
        "the scheduler in the command's process"
    )
    try:
        load = os.getloadavg()
        notes.append(f"- load average when it ended (1, 5, 15 min): {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}")
    except OSError:
        pass
    return "\n".join(
        [
            "### The dask engine: 50 million rows, and side by side with pandas (`make bench-dask`)",
            "",
            machine(),
            *notes,
            "",
            table(results),
            "",
            *verdicts(results, args.rows, args.compare_rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000_000, help="rows of the dask-only run (0: none)")
    parser.add_argument("--compare-rows", type=int, default=10_000_000, help="rows of the side-by-side runs (0: none)")
    parser.add_argument("--partition-rows", type=int, default=1_000_000, help="rows per Parquet file")
    parser.add_argument("--max-train-rows", type=int, default=1_000_000, help="train_model.max_train_rows (0: all)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--memory-limit", default="2GB", help="memory limit of each worker")
    parser.add_argument("--out", type=Path, default=OUT, help="where the Markdown goes")
    parser.add_argument("--work", type=Path, default=None, help="folder for the data and runs (default: a temp dir)")
    parser.add_argument("--docs", action="store_true", help=f"also write the figures into {DOCS.name}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dask-bench-", dir=args.work) as folder:
        text = bench(args, Path(folder))
    print(text)
    args.out.write_text(text)
    if args.docs:
        page = DOCS.read_text()
        start, end = page.index(MARKERS[0]) + len(MARKERS[0]), page.index(MARKERS[1])
        DOCS.write_text(page[:start] + "\n" + text + page[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
