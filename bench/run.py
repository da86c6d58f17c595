"""Benchmarks: the pipeline against a plain script, cached re-runs, scaling, start-up, subprocess chaining.

    python bench/run.py                       # example data, 100k and 1M rows; scaling at 10k, 100k, 1M
    python bench/run.py --sizes 20000 --scaling-sizes 5000,20000 --repeats 1   # a quick look
    python bench/run.py --only-overhead --sizes 1000000 --no-chained --out overhead.md  # the first table only

Every figure is the median of --repeats runs, each on a fresh tracking store and data folder; the tables are
printed as Markdown and written to bench/results.md. Nothing here asserts a target: the figures are the result.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("make_data", "feat_data", "train_model", "predict")


@dataclass
class Workload:
    """A dataset and the config folder that describes it."""

    label: str
    rows: int
    config_dir: Path
    raw: Path  # the raw file, copied into every fresh data root
    frame_mb: float  # in-memory size of the raw frame (pandas, deep)


def run(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> float:
    """Run a command to completion; its wall time in seconds."""
    return run_timed(cmd, env, cwd)[0]


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float]:
    """Run a command to completion; its wall time and the CPU time (user + system) of it and its children, in
    seconds. Other work on the machine stretches the wall time much more than the CPU time."""
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, check=False, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_measuring_peak(args: list[str], env: dict[str, str], scratch: Path) -> tuple[float, float]:
    """Run ``python src/main.py ARGS``; its own peak RSS in MiB (bench/peak_rss.py) and its RSS when the step
    started reading its inputs (bench/start_rss.py: the interpreter and libraries, before any data)."""
    peak, start = scratch / "peak.txt", scratch / "start.txt"
    start.unlink(missing_ok=True)
    run([sys.executable, "bench/peak_rss.py", str(peak), "bench/start_rss.py", str(start), "src/main.py", *args], env)
    return float(peak.read_text()), float(start.read_text())


def base_env() -> dict[str, str]:
    # No tracking server, run or config of the caller's; their telemetry opt-out (make sets it) is kept.
    keep = ("MLFLOW_DISABLE_TELEMETRY",)
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("MLFLOW_", "PIPELINE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def fresh_workspace(workload: Workload, parent: Path) -> tuple[Path, dict[str, str]]:
    """A new data root holding the raw file, and a new SQLite tracking store."""
    folder = Path(tempfile.mkdtemp(dir=parent))
    (folder / "data" / "raw").mkdir(parents=True)
    os.link(workload.raw, folder / "data" / "raw" / workload.raw.name)
    env = base_env() | {
        "PIPELINE_CONFIG_DIR": str(workload.config_dir),
        "PIPELINE_DATA_ROOT": str(folder / "data"),
        "PIPELINE_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "PIPELINE_STATE_DIR": str(folder / "state"),
    }
    return folder, env


def prepare_workloads(sizes: list[int], include_example: bool, work: Path) -> list[Workload]:
    import pandas as pd

    from bench.synthetic import make_frame, write_config

    workloads = []
    if include_example:
        raw = ROOT / "data" / "raw" / "breast_cancer.csv"
        frame_mb = pd.read_csv(raw).memory_usage(deep=True).sum() / 2**20
        workloads.append(Workload("example (569 rows)", 569, ROOT / "config", raw, frame_mb))
    for rows in sizes:
        folder = work / f"synthetic-{rows}"
        frame = make_frame(rows)
        (folder / "source").mkdir(parents=True)
        raw = folder / "source" / "synthetic.csv"
        frame.to_csv(raw, index=False)
        config_dir = write_config(ROOT / "config" / "base.yaml", folder / "config", "synthetic.csv")
        workloads.append(
            Workload(f"synthetic {rows:,} rows", rows, config_dir, raw, frame.memory_usage(deep=True).sum() / 2**20)
        )
    return workloads


def step_seconds(env: dict[str, str]) -> dict[str, float]:
    """Each step's own duration, from its MLflow run (excludes process start-up)."""
    from mlflow import MlflowClient

    client = MlflowClient(env["PIPELINE_TRACKING_URI"])
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], filter_string="tags.`pipeline.kind` = 'step'"
    )
    return {r.data.tags["pipeline.step"]: (r.info.end_time - r.info.start_time) / 1000 for r in runs}


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_overhead(workload: Workload, repeats: int, work: Path, chained: bool) -> dict[str, float]:
    """Medians of: the plain script, the MLflow script, the pipeline's first run, its up-to-date re-run, its re-run
    with --record (every step's cache key checked in MLflow), and one `mlflow run` per step. Each repeat runs them
    side by side, the order turning, each on a fresh tracking store and data folder."""
    times: dict[str, list[float]] = {k: [] for k in ("plain", "mlflow", "first", "second", "record", "chained")}
    cpu: dict[str, list[float]] = {k: [] for k in ("plain", "mlflow", "first")}

    def timed(name: str, seconds: tuple[float, float]) -> None:
        times[name].append(seconds[0])
        cpu[name].append(seconds[1])

    def script(name: str) -> None:
        folder, env = fresh_workspace(workload, work)
        args = [str(workload.config_dir), str(folder / "data"), str(folder / "out")]
        timed(name, run_timed([sys.executable, str(ROOT / "bench" / f"{name}_script.py"), *args], env, cwd=folder))
        shutil.rmtree(folder)

    def pipeline() -> None:
        folder, env = fresh_workspace(workload, work)
        timed("first", run_timed([sys.executable, "src/main.py"], env))
        times["second"].append(run([sys.executable, "src/main.py"], env))
        times["record"].append(run([sys.executable, "src/main.py", "--record"], env))
        shutil.rmtree(folder)

    def per_step() -> None:
        folder, env = fresh_workspace(workload, work)
        total = 0.0
        for step in STEPS:
            # Started from the workspace: `mlflow run` creates the experiment with its artifacts under ./mlruns.
            command = ["-m", "mlflow", "run", str(ROOT), "-e", step, "--env-manager", "local"]
            total += run([sys.executable, *command, "--experiment-name", "chained"], env, cwd=folder)
        times["chained"].append(total)
        shutil.rmtree(folder)

    jobs = [lambda: script("plain"), lambda: script("mlflow"), pipeline]
    for i in range(repeats):
        for job in jobs[i % len(jobs) :] + jobs[: i % len(jobs)]:
            job()
        if chained:
            per_step()
    result = {k: median(v) if v else float("nan") for k, v in times.items()}
    return result | {f"{k}_cpu": median(v) for k, v in cpu.items()}


def bench_scaling(workload: Workload, repeats: int, work: Path) -> dict[str, tuple[float, float, float]]:
    """Per step: its own duration (from MLflow), the peak RSS of a process running only that step, and that peak
    less the process's RSS when the step started reading its inputs."""
    seconds: dict[str, list[float]] = {s: [] for s in STEPS}
    rss: dict[str, list[float]] = {s: [] for s in STEPS}
    above: dict[str, list[float]] = {s: [] for s in STEPS}
    for _ in range(repeats):
        folder, env = fresh_workspace(workload, work)
        for step in STEPS:
            peak, start = run_measuring_peak(["--step", step], env, folder)
            rss[step].append(peak)
            above[step].append(peak - start)
        for step, value in step_seconds(env).items():
            seconds[step].append(value)
        shutil.rmtree(folder)
    return {s: (median(seconds[s]), median(rss[s]), median(above[s])) for s in STEPS}


def bench_startup(repeats: int) -> float:
    return median([run([sys.executable, "src/main.py", "--help"], base_env()) for _ in range(max(5, repeats))])


def machine_info() -> list[str]:
    memory = "unknown"
    try:
        with open("/proc/meminfo") as handle:
            memory = f"{int(handle.readline().split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    packages = ", ".join(f"{p} {version(p)}" for p in ("mlflow", "scikit-learn", "pandas", "pyarrow", "pandera"))
    return [
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {memory} RAM, {platform.system()} {platform.release()}",
        f"python {platform.python_version()}; {packages}",
    ]


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="synthetic sizes for overhead and caching")
    parser.add_argument("--scaling-sizes", default="10000,100000,1000000,5000000", help="synthetic sizes for scaling")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--no-example", action="store_true", help="skip the example dataset")
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead, caching and chaining table")
    parser.add_argument("--no-chained", action="store_true", help="skip the `mlflow run` per step figure (slow)")
    parser.add_argument(
        "--only-overhead",
        action="store_true",
        help="only the first table (first run against the scripts, re-runs) for the example and --sizes",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.md"), help="Markdown file for the tables")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    scaling_sizes = [] if args.only_overhead else [int(s) for s in args.scaling_sizes.split(",") if s]

    lines = [
        "## Benchmark results",
        "",
        *[f"- {line}" for line in machine_info()],
        f"- medians of {args.repeats} run(s); each run on a fresh tracking store and data folder",
        f"- load average (1, 5, 15 min) at the start: {load_average()}",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        all_sizes = sorted(set(scaling_sizes) | (set() if args.no_overhead else set(sizes)))
        workloads = {w.rows: w for w in prepare_workloads(all_sizes, not args.no_example, work)}

        lines += [
            "### First run against an MLflow script and a plain script; re-runs; subprocess chaining",
            "",
            (
                "Wall times in seconds, each a median; ratios to the MLflow script (the same MLflow work in one "
                "unstructured run: `bench/mlflow_script.py`) and to the plain script (no MLflow: "
                "`bench/plain_script.py`). The last two columns are the same first-run ratios in CPU time (user + "
                "system, medians), which other work on the machine stretches far less than wall time."
            ),
            "",
            (
                "| data | plain script | MLflow script | pipeline, first run | first / MLflow script | first / plain | "
                "up-to-date re-run | re-run / first | re-run / MLflow script | re-run --record | --record / first "
                "| `mlflow run` per step | chained / first | first / MLflow script, CPU | first / plain, CPU |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rows in [] if args.no_overhead else ([569] if not args.no_example else []) + sizes:
            w = workloads[rows]
            r = bench_overhead(w, args.repeats, work, chained=not args.no_chained)
            lines.append(
                f"| {w.label} | {r['plain']:.2f} | {r['mlflow']:.2f} | {r['first']:.2f} | "
                f"{ratio(r['first'], r['mlflow'])} | {ratio(r['first'], r['plain'])} | {r['second']:.2f} | "
                f"{r['second'] / r['first']:.1%} | {ratio(r['second'], r['mlflow'])} | {r['record']:.2f} | "
                f"{r['record'] / r['first']:.0%} | "
                + ("- | - |" if args.no_chained else f"{r['chained']:.1f} | {ratio(r['chained'], r['first'])} |")
                + f" {ratio(r['first_cpu'], r['mlflow_cpu'])} | {ratio(r['first_cpu'], r['plain_cpu'])} |"
            )
            print(lines[-1], flush=True)

        if args.only_overhead:
            return _finish(lines, args.out)
        lines += [
            "",
            (
                "### Scaling: each step's own time (from its MLflow run) and the peak RSS of a process "
                "running only that step"
            ),
            "",
            "| rows | raw frame in memory (MiB) | "
            + " | ".join(f"{s} (s)" for s in STEPS)
            + " | "
            + " | ".join(f"{s} peak (above start), MiB" for s in STEPS)
            + " | worst peak / frame | worst peak above start / frame |",
            "|---|---|" + "---|" * (2 * len(STEPS) + 2),
        ]
        for rows in scaling_sizes:
            w = workloads[rows]
            r = bench_scaling(w, args.repeats, work)
            worst = max(rss for _, rss, _ in r.values())
            worst_above = max(above for _, _, above in r.values())
            lines.append(
                f"| {rows:,} | {w.frame_mb:.1f} | "
                + " | ".join(f"{r[s][0]:.2f}" for s in STEPS)
                + " | "
                + " | ".join(f"{r[s][1]:.0f} ({r[s][2]:.0f})" for s in STEPS)
                + f" | {worst / w.frame_mb:.2f}x | {worst_above / w.frame_mb:.2f}x |"
            )
            print(lines[-1], flush=True)

        startup = bench_startup(args.repeats)
        lines += ["", "### Start-up", "", f"`python src/main.py --help`: {startup:.2f} s", ""]
        print(lines[-2], flush=True)

    return _finish(lines, args.out)


def _finish(lines: list[str], out: str) -> int:
    # Other processes on the machine slow every figure alike; the load says how busy it was.
    lines = [*lines, "", f"- load average (1, 5, 15 min) at the end: {load_average()}", ""]
    text = "\n".join(lines)
    Path(out).write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
