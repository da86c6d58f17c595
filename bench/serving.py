"""Serving benchmark: `python src/main.py serve` against MLflow's own `mlflow models serve --env-manager local`,
on the same model, the same machine and the same requests.

    python bench/serving.py                              # the figures of docs/benchmarks.md (about 10 minutes)
    python bench/serving.py --seconds 2 --rounds 1 --batch-sizes 100 --clients 1,4   # a quick look

It trains the example model once on a fresh tracking store, then starts three servers on free loopback ports,
one worker each: MLflow's, ours as deployed but with the inference log off (input checks and API keys), and ours
with the log on (local folder, default batching). Every request is a JSON ``dataframe_split`` body, which both
servers accept, and every answer is compared first: the servers must agree. Each cell of the table is a request
size (1 row and each of ``--batch-sizes``) and a number of clients (``--clients``), each client on its own
kept-alive connection sending its next request when the last one is answered, for ``--seconds`` (at most
``--requests`` requests in all) per server and round; the servers take turns, cell by cell, over ``--rounds``
rounds. Per cell and server: p50 and p99 latency and rows per second; then per cell the ratios log on / log off
and log on / MLflow. The tables are printed, written to bench/serving_results.md, and with ``--docs`` (or
``--readme``, its old name) into docs/benchmarks.md between its serving-benchmark markers.

The goals: with the log on, p99 at most 1.2x and throughput at least 0.9x those with it off, and p99 no worse than
MLflow's server, in every cell; ours as deployed at most 10% over MLflow's at 1-row p50 and in throughput.
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests

from bench.run import base_env, machine_info, run
from tests.servers import Server, free_port, wait_until

KEY = "bench-api-key"
TARGET = 0.10  # the most ours as deployed may cost over MLflow's server, at 1-row p50 and in throughput
LOG_P99 = 1.2  # with the log on, p99 at most this times p99 with it off, in every cell
LOG_THROUGHPUT = 0.9  # and throughput at least this times
# The page whose serving-benchmark block --docs rewrites (the figures of the docs).
DOCS = "docs/benchmarks.md"
MARKERS = ("<!-- serving-benchmark:start -->", "<!-- serving-benchmark:end -->")
MODEL = "breast-cancer-local"
MLFLOW, LOG_OFF, LOG_ON = "mlflow models serve", "serve, log off", "serve, log on"


@dataclass
class Served:
    """A server under test and the wall times of its requests."""

    label: str
    port: int
    server: Server
    # (rows per request, clients) -> every request's wall time (seconds), and the cell's rows and wall seconds
    latencies: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    work: dict[tuple[int, int], list[float]] = field(default_factory=dict)  # [rows answered, wall seconds]

    def record(self, cell: tuple[int, int], times: list[float], rows: int, wall: float) -> None:
        self.latencies.setdefault(cell, []).extend(times)
        done = self.work.setdefault(cell, [0.0, 0.0])
        done[0] += rows
        done[1] += wall

    def p(self, cell: tuple[int, int], q: int) -> float:
        """The q-th percentile latency of the cell, in ms."""
        return percentile(self.latencies[cell], q) * 1000

    def rows_per_second(self, cell: tuple[int, int]) -> float:
        rows, wall = self.work[cell]
        return rows / wall


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
    """Up to ``count`` requests on one connection, for at most ``seconds``; the wall time of each."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    deadline, times = time.monotonic() + seconds, []
    while len(times) < count and (not times or time.monotonic() < deadline):
        times.append(post(connection, body)[0])
    connection.close()
    return times


def measure_cell(server: Served, body: bytes, clients: int, count: int, seconds: float) -> tuple[list[float], float]:
    """``clients`` connections sending ``body`` side by side, each its next request when its last is answered, for
    at most ``seconds`` (at most ``count`` requests in all, at least one each); every request's wall time, and the
    wall time from the first request sent to the last answer."""
    times: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
            start.wait()
            deadline = time.monotonic() + seconds
            while len(times[i]) < max(1, count // clients) and (not times[i] or time.monotonic() < deadline):
                times[i].append(post(connection, body)[0])
            connection.close()
        except BaseException as exc:  # noqa: BLE001  (said by the caller)
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{server.label}: {errors[0]}")
    return [t for each in times for t in each], wall


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
    keys = env | {"PIPELINE_API_KEYS_SHA256": hashlib.sha256(KEY.encode()).hexdigest()}
    log_off = keys | {"PIPELINE__SERVING__LOG__PATH": "null"}
    log_on = keys | {"PIPELINE__SERVING__LOG__PATH": str(work / "inference-log")}
    servers = []
    try:
        servers.append(
            start(
                MLFLOW,
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
            (LOG_OFF, ports[1], log_off),
            (LOG_ON, ports[2], log_on),
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


def report(servers: list[Served], cells: list[tuple[int, int]], args: argparse.Namespace) -> list[str]:
    mlflow, off, on = servers

    def verdict(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines = [
        "### Serving: `python src/main.py serve` against `mlflow models serve --env-manager local`",
        "",
        *[f"- {line}" for line in machine_info()],
        (
            f"- one worker per server; per cell, each client on its own kept-alive connection; JSON `dataframe_split` "
            f"bodies; {args.rounds} round(s) of at most {args.seconds:g} s ({args.requests} requests) per cell and "
            "server, the servers taking turns cell by cell; `serve` with API keys on, the inference log off or on "
            "(a local folder, default batching)"
        ),
        (
            f"- load average over the last minute when the measurements ended: {os.getloadavg()[0]:.1f} (other "
            "processes share the machine: the servers are compared with each other, round by round)"
        ),
        "",
        "Latency p50 / p99 in ms, throughput in rows per second:",
        "",
        "| rows per request | clients | "
        + " | ".join(f"{s.label}: p50 | p99 | rows/s" for s in servers)
        + " | requests per server |",
        "|---|---|" + "---|---|---|" * len(servers) + "---|",
    ]
    for cell in cells:
        lines.append(
            f"| {cell[0]:,} | {cell[1]} | "
            + " | ".join(f"{s.p(cell, 50):.2f} | {s.p(cell, 99):.2f} | {s.rows_per_second(cell):,.0f}" for s in servers)
            + f" | {min(len(s.latencies[cell]) for s in servers):,} |"
        )
    lines += [
        "",
        (
            f"Goals per cell: with the log on, p99 at most {LOG_P99}x and throughput at least {LOG_THROUGHPUT}x those "
            "with it off; p99 no worse than MLflow's server (log on / MLflow at most 1.0x)."
        ),
        "",
        (
            "| rows per request | clients | log on / off: p99 | met? | log on / off: rows/s | met? "
            "| log on / MLflow: p50 | log on / MLflow: p99 | met? | log on / MLflow: rows/s |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        p99_log = on.p(cell, 99) / off.p(cell, 99)
        thr_log = on.rows_per_second(cell) / off.rows_per_second(cell)
        p99_mlflow = on.p(cell, 99) / mlflow.p(cell, 99)
        lines.append(
            f"| {cell[0]:,} | {cell[1]} | {p99_log:.2f}x | {verdict(p99_log <= LOG_P99)} | {thr_log:.2f}x | "
            f"{verdict(thr_log >= LOG_THROUGHPUT)} | {on.p(cell, 50) / mlflow.p(cell, 50):.2f}x | {p99_mlflow:.2f}x "
            f"| {verdict(p99_mlflow <= 1.0)} | {on.rows_per_second(cell) / mlflow.rows_per_second(cell):.2f}x |"
        )
    one = (1, 1)
    p50 = on.p(one, 50) / mlflow.p(one, 50) - 1
    lines += [
        "",
        "| target: `serve` as deployed (checks, log, keys) costs at most 10% over MLflow's server | result | met? |",
        "|---|---|---|",
        f"| p50 latency, 1 row, 1 client | {p50:+.1%} | {verdict(p50 <= TARGET)} |",
    ]
    for cell in cells:
        if cell[0] > 1 and cell[1] == 1:
            # time per row, ours over MLflow's: the cost in throughput
            cost = mlflow.rows_per_second(cell) / on.rows_per_second(cell) - 1
            lines.append(
                f"| throughput, batches of {cell[0]:,} rows, 1 client (time per row) | {cost:+.1%} | "
                f"{verdict(cost <= TARGET)} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell, server and round, at most")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per cell, server and round, at most")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the servers take turns in each")
    parser.add_argument("--batch-sizes", default="100,10000", help="rows per request besides 1")
    parser.add_argument("--clients", default="1,4", help="clients side by side, each on its own connection")
    parser.add_argument("--out", default=str(ROOT / "bench" / "serving_results.md"))
    parser.add_argument("--docs", "--readme", action="store_true", help=f"also write the tables into {DOCS}")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",") if s]
        clients = [int(c) for c in args.clients.split(",") if c]
    except ValueError:
        parser.error("--batch-sizes and --clients take whole numbers separated by commas (100,10000)")
    if not clients or min(clients) < 1 or min(sizes, default=1) < 1 or args.rounds < 1 or args.requests < 1:
        parser.error("--clients, --batch-sizes, --rounds and --requests take whole numbers of at least 1")
    cells = [(size, n) for size in [1, *sizes] for n in clients]
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
                for i, cell in enumerate(cells):
                    turn = (r + i) % len(servers)
                    for server in servers[turn:] + servers[:turn]:
                        times, wall = measure_cell(server, payloads[cell[0]], cell[1], args.requests, args.seconds)
                        server.record(cell, times, cell[0] * len(times), wall)
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for served in servers:
                served.server.stop()
    lines = report(servers, cells, args)
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
