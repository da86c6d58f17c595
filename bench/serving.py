"""Serving benchmark: `python src/main.py serve` against MLflow's own `mlflow models serve --env-manager local`,
on the same model, the same machine and the same requests.

    python bench/serving.py                              # the figures of docs/benchmarks.md (a few minutes)
    python bench/serving.py --requests 40 --seconds 3 --rounds 1 --batch-sizes 100,1000   # a quick look

It trains the example model once on a fresh tracking store, then starts three servers on free loopback ports,
one worker each: MLflow's, ours with the input checks only (inference log off, no API keys), and ours as
deployed (checks, the inference log and API keys on). Every request is the same JSON ``dataframe_split`` body,
which both servers accept, sent from one client over one kept-alive connection, and every answer is compared:
the servers must agree. Per server: p50 and p99 latency of 1-row requests, and rows per second for batches of
each size, over ``--rounds`` rounds taken in turn (each bounded by ``--requests`` and ``--seconds``). The
tables are printed, written to bench/serving_results.md, and with ``--docs`` (or ``--readme``, its old name)
into docs/benchmarks.md between its serving-benchmark markers. The target: ours as deployed costs at most 10% over
MLflow's at p50 and in throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests

from bench.run import base_env, machine_info, run
from tests.servers import Server, free_port, wait_until

KEY = "bench-api-key"
TARGET = 0.10  # the most ours as deployed may cost over MLflow's server, at p50 and in throughput
# The page whose serving-benchmark block --docs rewrites (the figures of the docs).
DOCS = "docs/benchmarks.md"
MARKERS = ("<!-- serving-benchmark:start -->", "<!-- serving-benchmark:end -->")
MODEL = "breast-cancer-local"


@dataclass
class Served:
    """A server under test and the wall times of its requests."""

    label: str
    port: int
    server: Server
    latencies: list[float] = field(default_factory=list)  # 1-row requests, seconds
    batches: dict[int, list[float]] = field(default_factory=dict)  # batch size -> seconds per request


def start(label: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Served:
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True
    )
    server = Server(f"http://127.0.0.1:{port}", proc)
    try:
        wait_until(lambda: requests.get(server.url + "/ping", timeout=2).status_code == 200, label, proc, 180)
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}:\n{log.read_text()[-3000:]}") from exc
    return Served(label, port, server)


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[float, bytes]:
    """One request on a kept-alive connection: its wall time in seconds and the answer."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    started = time.perf_counter()
    connection.request("POST", "/invocations", body, headers)
    response = connection.getresponse()
    answer = response.read()
    seconds = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {answer[:500]!r}")
    return seconds, answer


def measure(server: Served, body: bytes, count: int, seconds: float) -> list[float]:
    """Up to ``count`` requests, for at most ``seconds``; the wall time of each."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    deadline, times = time.monotonic() + seconds, []
    while len(times) < count and (not times or time.monotonic() < deadline):
        times.append(post(connection, body)[0])
    connection.close()
    return times


def answers(server: Served, payloads: dict[int, bytes]) -> dict[int, object]:
    """The server's predictions for every body, after 20 warm-up requests of one row."""
    measure(server, payloads[1], 20, 10)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    seen = {size: json.loads(post(connection, body)[1])["predictions"] for size, body in payloads.items()}
    connection.close()
    return seen


def bodies(sizes: list[int]) -> tuple[dict[int, bytes], list[str]]:
    """A dataframe_split body per batch size: rows of the example data, drawn with a fixed seed."""
    import pandas as pd

    raw = pd.read_csv(ROOT / "data" / "raw" / "breast_cancer.csv")
    features = [c for c in raw.columns if c not in ("sample_id", "diagnosis")]
    out = {}
    for size in sizes:
        rows = raw[features].sample(n=size, replace=size > len(raw), random_state=size)
        out[size] = json.dumps({"dataframe_split": {"columns": features, "data": rows.values.tolist()}}).encode()
    return out, features


def train(work: Path) -> dict[str, str]:
    """The example pipeline on a fresh workspace: version 1 of the model is the champion."""
    (work / "data" / "raw").mkdir(parents=True)
    os.link(ROOT / "data" / "raw" / "breast_cancer.csv", work / "data" / "raw" / "breast_cancer.csv")
    env = base_env() | {
        "PIPELINE_DATA_ROOT": str(work / "data"),
        "PIPELINE_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "PIPELINE_STATE_DIR": str(work / "state"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    run([sys.executable, "src/main.py"], env)
    return env


def start_servers(env: dict[str, str], work: Path) -> list[Served]:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    ports = [free_port() for _ in range(3)]
    plain = env | {"PIPELINE__SERVING__LOG__PATH": "null"}
    deployed = env | {
        "PIPELINE__SERVING__LOG__PATH": str(work / "inference-log"),
        "PIPELINE_API_KEYS_SHA256": hashlib.sha256(KEY.encode()).hexdigest(),
    }
    servers = []
    try:
        servers.append(
            start(
                "mlflow models serve",
                [
                    mlflow,
                    "models",
                    "serve",
                    "-m",
                    f"models:/{MODEL}/1",
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(ports[0]),
                ],
                env,
                ports[0],
                work / "mlflow.log",
            )
        )
        for label, port, server_env in (
            ("serve, checks only", ports[1], plain),
            ("serve, checks + log + keys", ports[2], deployed),
        ):
            servers.append(
                start(
                    label,
                    [sys.executable, "src/main.py", "serve", "--port", str(port)],
                    server_env,
                    port,
                    work / f"serve-{port}.log",
                )
            )
    except Exception:
        for served in servers:
            served.server.stop()
        raise
    return servers


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(servers: list[Served], sizes: list[int], args: argparse.Namespace) -> list[str]:
    base, deployed = servers[0], servers[-1]
    lines = [
        "### Serving: `python src/main.py serve` against `mlflow models serve --env-manager local`",
        "",
        *[f"- {line}" for line in machine_info()],
        (
            f"- one worker per server, one client on one kept-alive connection, JSON `dataframe_split` bodies; "
            f"{args.rounds} round(s) of at most {args.requests} requests or {args.seconds:g} s per figure"
        ),
        (
            f"- load average over the last minute when the measurements ended: {os.getloadavg()[0]:.1f} (other "
            "processes share the machine: the servers are compared with each other, round by round)"
        ),
        "",
        "| server | 1 row p50 (ms) | 1 row p99 (ms) | " + " | ".join(f"{s:,} rows: rows/s" for s in sizes) + " |",
        "|---|---|---|" + "---|" * len(sizes),
    ]
    for s in servers:
        p50, p99 = percentile(s.latencies, 50) * 1000, percentile(s.latencies, 99) * 1000
        lines.append(
            f"| {s.label} | {p50:.2f} | {p99:.2f} | "
            + " | ".join(f"{size * len(s.batches[size]) / sum(s.batches[size]):,.0f}" for size in sizes)
            + " |"
        )
    p50 = percentile(deployed.latencies, 50) / percentile(base.latencies, 50) - 1
    lines += [
        "",
        "| target: checks + log + keys cost at most 10% over MLflow's server | result | met? |",
        "|---|---|---|",
        f"| p50 latency, 1 row | {p50:+.1%} | {'yes' if p50 <= TARGET else 'no'} |",
    ]
    for size in sizes:
        # time per row, ours over MLflow's: the cost in throughput
        cost = (sum(deployed.batches[size]) / len(deployed.batches[size])) / (
            sum(base.batches[size]) / len(base.batches[size])
        ) - 1
        lines.append(
            f"| throughput, batches of {size:,} rows (time per row) | {cost:+.1%} | "
            f"{'yes' if cost <= TARGET else 'no'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per figure and round, at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per figure and round, at most")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the servers take turns in each")
    parser.add_argument("--batch-sizes", default="100,10000", help="rows per request for the throughput figures")
    parser.add_argument("--out", default=str(ROOT / "bench" / "serving_results.md"))
    parser.add_argument("--docs", "--readme", action="store_true", help=f"also write the tables into {DOCS}")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    payloads, _ = bodies([1, *sizes])

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        work = Path(tmp)
        servers = start_servers(train(work), work)
        try:
            agreed = [answers(server, payloads) for server in servers]  # also warms each server up
            for server, seen in zip(servers[1:], agreed[1:], strict=True):
                if seen != agreed[0]:
                    raise RuntimeError(f"{server.label} and {servers[0].label} disagree on the same rows")
            for r in range(args.rounds):
                for server in servers[r % len(servers) :] + servers[: r % len(servers)]:
                    server.latencies += measure(server, payloads[1], args.requests, args.seconds)
                    for size in sizes:
                        count = max(10, args.requests * 100 // (size * 4))
                        server.batches.setdefault(size, []).extend(measure(server, payloads[size], count, args.seconds))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for served in servers:
                served.server.stop()
    lines = report(servers, sizes, args)
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    if args.docs:
        page = ROOT / DOCS
        pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.DOTALL)
        if not pattern.search(page.read_text()):
            raise SystemExit(f"{DOCS} has no {MARKERS[0]} ... {MARKERS[1]} block to write the figures into")
        page.write_text(pattern.sub(lambda _: f"{MARKERS[0]}\n{text}{MARKERS[1]}", page.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
