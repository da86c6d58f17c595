"""Serving for real: `python src/main.py serve` (and the image's entry script) as processes on free loopback
ports, with the champion the pipeline trained, API keys, and the inference log on disk and on an S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlsteps.serving.log_files import read_inference_log
from mlsteps.storage import Storage

from tests.helpers import run_main, serving
from tests.servers import AWS_TEST_ENV, FailingProxy, free_port, wait_until
from tests.template_fixtures import Champion

KEY = "team-a-secret-key"
ROWS = 25
BAD_VALUE = "row 2, column 'mean_radius': expected a number (double), got 'abc'"  # the same on every path


def _post(url: str, body: object, content_type: str = "application/json", **headers: str) -> requests.Response:
    data = json.dumps(body) if isinstance(body, dict) else body
    return requests.post(url + "/invocations", data=data, headers={"Content-Type": content_type, **headers}, timeout=60)


def _rows(champion: Champion) -> pd.DataFrame:
    return champion.predictions[champion.features].head(ROWS)


def _with_bad_value(champion: Champion) -> pd.DataFrame:
    rows = _rows(champion).head(3).astype(object)
    rows.iloc[1, 0] = "abc"
    return rows


@pytest.mark.slow
@pytest.mark.long
def test_every_request_shape_is_checked_scored_like_predict_and_logged(champion: Champion, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    secrets = tmp_path / "api-keys"
    secrets.write_text(f"{hashlib.sha256(KEY.encode()).hexdigest()} team-a\n")
    env = {
        **champion.env,
        "PIPELINE_API_KEYS_FILE": str(secrets),
        "PIPELINE__SERVING__LOG__PATH": str(tmp_path / "log"),
        "PIPELINE__SERVING__LOG__FLUSH_SECONDS": "0.2",
    }
    rows, features = _rows(champion), champion.features
    auth = {"Authorization": f"Bearer {KEY}"}
    shapes = {
        "csv without header": (rows.to_csv(index=False, header=False), "text/csv"),
        "csv with header": (rows[features[::-1]].to_csv(index=False), "text/csv"),
        "dataframe_split": ({"dataframe_split": {"columns": features, "data": rows.values.tolist()}}, None),
        "dataframe_records": ({"dataframe_records": rows.to_dict("records")}, None),
        "instances": ({"instances": rows.values.tolist()}, None),
    }
    extra_leading = "\n".join(
        f"{i}," + line for i, line in enumerate(rows.to_csv(index=False, header=False).splitlines())
    )
    wrong = {
        "a value too many (pandas would take it as the index)": (
            extra_leading,
            "text/csv",
            400,
            "row 1 (line 1): 31 values, expected 30",
        ),
        "a value too few": (
            rows.iloc[:, :-1].to_csv(index=False, header=False),
            "text/csv",
            400,
            "row 1 (line 1): 29 values, expected 30",
        ),
        "a wrong type": (_with_bad_value(champion).to_csv(index=False, header=False), "text/csv", 400, BAD_VALUE),
        "an unknown column": (
            {"dataframe_records": [{**rows.iloc[0].to_dict(), "age": 3}]},
            None,
            400,
            "row 1: column 'age' is not an input of the model",
        ),
        "an empty body": ("", "text/csv", 400, "there are no rows to score"),
        "a 10 MB body": ("1.0," * 2_500_000, "text/csv", 413, "over the limit of 6 MB"),
        "malformed JSON": ('{"instances": [[1.0, ', None, 400, "the body is not valid JSON"),
    }

    with serving(env, tmp_path / "serve.log") as url:
        ping = requests.get(url + "/ping", timeout=10)
        without_key = _post(url, shapes["instances"][0])
        answers = {
            name: _post(url, body, ctype or "application/json", **auth) for name, (body, ctype) in shapes.items()
        }
        refusals = {
            name: _post(url, body, ctype or "application/json", **auth) for name, (body, ctype, _, _) in wrong.items()
        }

    assert ping.status_code == 200
    assert without_key.status_code == 401
    expected = champion.predictions["prediction"].head(ROWS).tolist()
    for name, answer in answers.items():
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["predictions"] == expected, name
    for name, (_, _, status, message) in wrong.items():
        assert refusals[name].status_code == status, (name, refusals[name].text)
        assert message in refusals[name].json()["message"], name
    stderr = (tmp_path / "serve.log").read_text()
    assert f"models:/breast-cancer-local@champion (version 1) on {url}" in stderr
    assert "API keys on" in stderr
    table = read_inference_log(str(tmp_path / "log"))
    scored = table[table["status"] == 200]
    assert scored.groupby("request_id").size().tolist() == [ROWS] * len(shapes)
    assert scored["output.prediction"].tolist() == expected * len(shapes)
    assert scored["input.mean_radius"].tolist() == rows["mean_radius"].tolist() * len(shapes)
    assert sorted(table.loc[table["status"] != 200, "status"].tolist()) == [400] * 6 + [413]
    assert set(table["client"]) == {"team-a"}
    version = MlflowClient(champion.env["PIPELINE_TRACKING_URI"]).get_model_version("breast-cancer-local", "1")
    assert set(table["model_version"]) == {"1"} and set(table["model_run_id"]) == {version.run_id}


def _s3(url: str, bucket: str):
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    s3.create_bucket(Bucket=bucket)
    return s3


def _output(path: Path) -> str:
    """What the server printed, its lines unwrapped (Rich wraps the log's warnings at the terminal's width)."""
    return " ".join(path.read_text().split())


def _stats(url: str) -> dict[str, int]:
    return requests.get(url + "/stats", timeout=10).json()["inference_log"]


@pytest.mark.slow
def test_inference_log_on_s3_counts_what_a_full_spool_drops_and_is_flushed_on_stop(
    champion: Champion, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3(s3_server, "inference-log-test")
    location = "s3://inference-log-test/serving/log"
    env = {
        **champion.env,
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": s3_server,
        "PIPELINE__SERVING__LOG__PATH": location,
        # Nothing is shipped before the server stops, and the spool is full once it holds one file.
        "PIPELINE__SERVING__LOG__BATCH_ROWS": "1000",
        "PIPELINE__SERVING__LOG__FLUSH_SECONDS": "600",
        "PIPELINE__SERVING__LOG__MAX_SPOOL_MB": "0.000001",
        "PIPELINE__SERVING__LOG__SPOOL_DIR": str(tmp_path / "spool"),
    }
    body = {"dataframe_split": {"columns": champion.features, "data": _rows(champion).head(2).values.tolist()}}

    with serving(env, tmp_path / "serve.log") as url:
        answers = [_post(url, body)]
        wait_until(lambda: _stats(url)["rows_spooled"] == 2, "the first request spooled")
        answers += [_post(url, body) for _ in range(2)]
        wait_until(lambda: _stats(url)["requests_dropped"] == 2, "two requests dropped")
        stats = _stats(url)

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert stats["rows_dropped"] == 4 and stats["files_written"] == 0 and stats["rows_in_spool"] == 2
    stderr = _output(tmp_path / "serve.log")
    assert "the inference log's spool is full (serving.log.max_spool_mb = 1e-06)" in stderr
    assert f"inference log {location}: 1 request(s), 2 row(s) in 1 file(s); dropped: 2 request(s), 4 row(s)" in stderr
    for name, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    table = read_inference_log(location, Storage())
    assert table["request_id"].tolist() == [answers[0].headers["x-request-id"]] * 2
    assert set(table["model_name"]) == {"breast-cancer-local"} and set(table["model_version"]) == {"1"}
    assert list((tmp_path / "spool").rglob("*.arrow")) == []


@pytest.mark.slow
def test_a_killed_server_loses_no_answered_request_and_leaves_no_model_copy(champion: Champion, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"  # the servers' temp dir, where the model copy goes
    temp.mkdir()
    env = {
        **champion.env,
        "TMPDIR": str(temp),
        "PIPELINE__SERVING__LOG__PATH": str(tmp_path / "log"),
        # Nothing would be written before the kill without the spool (the default one, in PIPELINE_STATE_DIR).
        "PIPELINE__SERVING__LOG__FLUSH_SECONDS": "600",
    }
    body = {"dataframe_split": {"columns": champion.features, "data": _rows(champion).head(2).values.tolist()}}

    with serving(env, tmp_path / "killed.log", stop=signal.SIGKILL) as url:
        answers = [_post(url, body) for _ in range(50)]
        time.sleep(1.0)  # the bound: what was accepted in the last spool_seconds (0.2 s) may be lost
        shipped_before_the_kill = _stats(url)["rows_logged"]
    left_by_the_killed = sorted(p.name for p in temp.glob("*serve-model-*"))
    with serving(env, tmp_path / "next.log") as url:
        wait_until(lambda: _stats(url)["rows_logged"] == 100, "the killed server's rows shipped", timeout=60)
        recovered = _stats(url)["rows_recovered"]
        copies_while_the_next_serves = sorted(p.name for p in temp.glob("*serve-model-*"))

    assert all(a.status_code == 200 for a in answers)
    assert shipped_before_the_kill == 0
    table = read_inference_log(str(tmp_path / "log"))
    assert sorted(set(table["request_id"])) == sorted(a.headers["x-request-id"] for a in answers)
    assert len(table) == 100 and recovered == 100
    assert "found 100 row(s) a stopped server had not shipped" in _output(tmp_path / "next.log")
    assert len(left_by_the_killed) == 1  # what SIGKILL leaves...
    assert len(copies_while_the_next_serves) == 1 and copies_while_the_next_serves != left_by_the_killed  # ...goes
    assert list(temp.glob("*serve-model-*")) == []


@pytest.mark.slow
@pytest.mark.long
def test_an_s3_destination_failing_for_a_while_loses_nothing_once_it_heals(
    champion: Champion, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _s3(s3_server, "flaky-log")
    proxy = FailingProxy(s3_server)
    proxy.fail_writes("/date")  # the log's files, not the probe serve writes at start
    location = "s3://flaky-log/serving/log"
    env = {
        **champion.env,
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": proxy.url,
        "PIPELINE__SERVING__LOG__PATH": location,
        "PIPELINE__SERVING__LOG__FLUSH_SECONDS": "0.2",
    }
    body = {"dataframe_split": {"columns": champion.features, "data": _rows(champion).head(2).values.tolist()}}

    try:
        with serving(env, tmp_path / "serve.log") as url:
            answers = [_post(url, body) for _ in range(10)]
            wait_until(lambda: _stats(url)["write_failures"] >= 2, "two failed writes", timeout=60)
            failing = _stats(url)
            proxy.heal()
            wait_until(lambda: _stats(url)["rows_logged"] == 20, "the spool shipped", timeout=90)
            healed = _stats(url)
    finally:
        proxy.close()

    assert all(a.status_code == 200 for a in answers)
    assert failing["rows_logged"] == 0 and failing["rows_in_spool"] == 20 and failing["rows_dropped"] == 0
    assert healed["rows_in_spool"] == 0 and healed["rows_dropped"] == 0 and proxy.failed >= 2
    stderr = _output(tmp_path / "serve.log")
    assert "an inference log file could not be written to s3://flaky-log/" in stderr
    assert "row(s) wait in the spool" in stderr
    for name, value in {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    table = read_inference_log(location, Storage())
    assert sorted(set(table["request_id"])) == sorted(a.headers["x-request-id"] for a in answers)
    assert len(table) == 20


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local folder under a file", "S3 bucket that does not exist"])
def test_serve_refuses_to_start_when_its_inference_log_cannot_be_written(
    s3_server: str, tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("")
    location = str(tmp_path / "a-file" / "log") if where.startswith("local") else "s3://no-such-bucket/log"
    env = {
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": s3_server,
        "PIPELINE_DATA_ROOT": str(tmp_path),
        "PIPELINE_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",  # never reached: serve stops before
        "PIPELINE__SERVING__LOG__PATH": location,
    }

    done = run_main("serve", "--port", str(free_port()), env=env, timeout=120)

    assert done.returncode == 1, done.stderr
    message = done.stderr.replace("\n", " ")
    assert f"the inference log cannot be written to {location} (serving.log.path)" in message
    assert "PIPELINE__SERVING__LOG__PATH" in message
    assert not (tmp_path / "mlflow.db").exists()  # refused before the model is even looked for


@pytest.mark.slow
@pytest.mark.long
def test_exported_model_is_served_by_the_entry_script_like_sagemaker(champion: Champion, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    exported = run_main("export-model", "--out", str(archive), env=champion.env)
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "opt" / "ml" / "model", filter="data")
    assert "MLmodel" in names and "registered_model_meta" in names  # at the root, as SageMaker unpacks it
    env = {
        "PIPELINE_SERVE_HOST": "127.0.0.1",
        "PIPELINE_MODEL_DIR": str(tmp_path / "opt" / "ml" / "model"),
        # A tracking server that does not exist (dev: local never takes a remote one): the model in the folder
        # needs none.
        "PIPELINE_ENVIRONMENT": "dev",
        "PIPELINE_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
        "MODEL_SERVER_WORKERS": "2",
        "PIPELINE__SERVING__LOG__PATH": "null",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    rows = _rows(champion)

    with serving(env, tmp_path / "serve.log", entry=["sh", "docker-entrypoint.sh", "serve"]) as url:
        answers = [_post(url, rows.to_csv(index=False, header=False), "text/csv") for _ in range(4)]

    assert "exported models:/breast-cancer-local@champion (version 1" in exported.stderr
    assert all(a.status_code == 200 for a in answers), answers[0].text
    assert answers[0].json()["predictions"] == champion.predictions["prediction"].head(ROWS).tolist()
    stderr = (tmp_path / "serve.log").read_text()
    assert "serving models:/breast-cancer-local/1 (version 1)" in stderr and "2 worker(s)" in stderr


@pytest.mark.slow
def test_two_workers_share_the_requests_of_kept_alive_connections(champion: Champion, tmp_path: Path) -> None:
    """A burst of 32 connections while one worker cannot run (stopped with SIGSTOP for a moment, as when a burst
    comes while it is busy), then 8 requests on each kept-alive connection: both workers answer a fair share.
    Before, the workers took connections from one shared socket and the one that woke first accepted every
    connection of the burst: all 256 requests went to one worker, the other stayed idle."""
    import collections
    import http.client

    rows = _rows(champion).head(1).values.tolist()
    body = json.dumps({"dataframe_split": {"columns": champion.features, "data": rows}})
    env = {**champion.env, "PIPELINE__SERVING__LOG__PATH": "null"}
    seen: set[int] = set()

    def both_workers_answered() -> bool:  # on fresh connections, each its own
        seen.add(requests.get(url + "/ping", timeout=10).json()["worker"])
        return len(seen) == 2

    def ask(connection: http.client.HTTPConnection, method: str, path: str, data: str | None = None) -> bytes:
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        content = answer.read()
        assert answer.status == 200, content
        return content

    with serving(env, tmp_path / "serve.log", "--workers", "2") as url:
        wait_until(both_workers_answered, "both workers answering /ping", timeout=120)
        connections = [
            http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60) for _ in range(32)
        ]
        os.kill(min(seen), signal.SIGSTOP)
        try:
            for connection in connections:
                connection.connect()  # the kernel completes the handshake: no worker needs to run for it
            time.sleep(0.5)  # the worker that runs accepts what it is given meanwhile
        finally:
            os.kill(min(seen), signal.SIGCONT)
        ports = [c.sock.getsockname()[1] for c in connections]
        workers = [json.loads(ask(c, "GET", "/ping"))["worker"] for c in connections]
        answered: collections.Counter[int] = collections.Counter()
        for _ in range(8):
            for connection, pid in zip(connections, workers, strict=True):
                ask(connection, "POST", "/invocations", body)
                answered[pid] += 1
        still = [json.loads(ask(c, "GET", "/ping"))["worker"] for c in connections]
        kept = [c.sock.getsockname()[1] for c in connections]
        for connection in connections:
            connection.close()

    print(f"\nrequests per worker over 32 kept-alive connections: {dict(answered)}")
    assert kept == ports and still == workers  # every request of a connection went over it, to one worker
    assert set(answered) <= seen and sum(answered.values()) == 256
    # The kernel spreads 32 connections like coin flips: below 20% for one worker has odds of about 1 in 2,000.
    assert min(answered[pid] for pid in seen) >= 0.2 * 256, dict(answered)


@pytest.mark.slow
def test_a_multi_worker_server_keeps_its_port_to_itself_and_replaces_a_killed_worker(
    champion: Champion, tmp_path: Path
) -> None:
    """Each worker has its own SO_REUSEPORT socket, which another server of the same user could join: a second
    `serve --workers 2` on the port is refused (exit 2) instead. A worker killed while it serves is replaced, and
    stopping the server stops every worker."""
    env = {**champion.env, "PIPELINE__SERVING__LOG__PATH": "null"}
    seen: set[int] = set()

    def workers_answering(count: int) -> Callable[[], bool]:
        def check() -> bool:
            seen.add(requests.get(url + "/ping", timeout=10).json()["worker"])
            return len(seen) == count

        return check

    with serving(env, tmp_path / "serve.log", "--workers", "2") as url:
        wait_until(workers_answering(2), "both workers answering /ping", timeout=120)
        first = set(seen)
        second = run_main("serve", "--workers", "2", "--port", url.rsplit(":", 1)[1], env=env, timeout=120)
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        wait_until(workers_answering(3), "a worker replacing the killed one", timeout=120)
        replacement = seen - first

    assert second.returncode == 2, second.stderr
    port = url.rsplit(":", 1)[1]
    assert f"port {port} of 127.0.0.1 is in use by another process" in " ".join(second.stderr.split())
    said = _output(tmp_path / "serve.log")
    assert f"(pid {killed}) was killed by SIGKILL (the OOM killer, or kill -9): starting another" in said
    assert [pid for pid in first | replacement if Path(f"/proc/{pid}").exists()] == []  # the server waited for them


@pytest.mark.slow
def test_export_to_s3(champion: Champion, s3_server: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="model-exports")

    done = run_main(
        "export-model",
        "--out",
        "s3://model-exports/champion/model.tar.gz",
        env={**champion.env, **AWS_TEST_ENV, "AWS_ENDPOINT_URL": s3_server},
    )

    assert done.returncode == 0, done.stderr
    head = s3.head_object(Bucket="model-exports", Key="champion/model.tar.gz")
    assert head["ContentLength"] > 1000


@pytest.mark.slow
@pytest.mark.long
def test_predict_input_with_a_bad_value_names_row_and_column(champion: Champion, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    _with_bad_value(champion).to_csv(bad, index=False)
    ragged = tmp_path / "ragged.csv"
    lines = _rows(champion).head(3).to_csv(index=False).splitlines()
    ragged.write_text("\n".join([lines[0], lines[1], lines[2] + ",0.5", lines[3]]) + "\n")

    wrong_type = run_main("--step", "predict", "--input", str(bad), env=champion.env)
    wrong_width = run_main("--step", "predict", "--input", str(ragged), env=champion.env)

    assert wrong_type.returncode == 1 and BAD_VALUE in wrong_type.stderr.replace("\n", " ")
    assert wrong_width.returncode == 1
    assert "row 2 (line 3): 31 values, expected 30" in wrong_width.stderr.replace("\n", " ")


@pytest.mark.slow
def test_serve_without_a_champion_fails_clearly(workspace) -> None:
    done = run_main("serve", "--port", str(free_port()), env=workspace.env(), timeout=120)

    assert done.returncode == 1
    assert "holds the alias @champion" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PIPELINE__SERVING__REQUIRE_API_KEYS": "true"}, "serving.require_api_keys is true"),
        ({"PIPELINE_API_KEYS_SHA256": "plain-text-key"}, "PIPELINE_API_KEYS_SHA256 (item 1) is not a SHA-256 digest"),
    ],
)
def test_serve_refuses_to_start_with_missing_or_malformed_keys(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = run_main("serve", "--port", str(free_port()), env={"PIPELINE_DATA_ROOT": str(tmp_path), **env}, timeout=120)

    assert done.returncode == 2
    assert message in done.stderr.replace("\n", " ")
    assert "plain-text-key" not in done.stderr


def _large_csv(champion: Champion, megabytes: float) -> bytes:
    """Rows of the champion's inputs repeated to about ``megabytes`` of CSV (no header)."""
    block = champion.predictions[champion.features].to_csv(index=False, header=False)
    return (block * max(1, int(megabytes * 1e6 // len(block)))).encode()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.slow
def test_one_row_requests_are_answered_while_large_ones_time_out(champion: Champion, tmp_path: Path) -> None:
    """Timeout 0.3 s, 24 large requests in flight: one-row requests sent meanwhile get 200 (or 503 when the server
    is saturated), never a 504 for work they never got to do (before: 23 x 504 and one 200 over 1.91 s, and 4 of
    20 one-row requests got 504, queued behind scoring nobody waited for any more). The issue's 0.1 s is too short
    on two shared cores: with another test process busy, even an idle server's one-row answer took longer."""
    import collections
    import time
    from concurrent.futures import ThreadPoolExecutor

    env = {**champion.env, "PIPELINE__SERVING__TIMEOUT_SECONDS": "0.3", "PIPELINE__SERVING__LOG__PATH": "null"}
    large, one_row = _large_csv(champion, 5.7), _rows(champion).head(1).to_csv(index=False, header=False)

    with serving(env, tmp_path / "serve.log") as url, ThreadPoolExecutor(28) as pool:
        # Warmed up first: a process's first predictions, in each new thread, can take longer than the timeout.
        for _ in range(3):
            list(pool.map(lambda _: _post(url, one_row, "text/csv"), range(8)))
        warm = [_post(url, one_row, "text/csv").status_code for _ in range(3)]
        started = time.perf_counter()
        larges = [pool.submit(_post, url, large, "text/csv") for _ in range(24)]

        def one_rows() -> list[requests.Response]:  # four clients, one request each 10 ms, while the large ones run
            answers = [_post(url, one_row, "text/csv")]
            while not all(f.done() for f in larges) or len(answers) < 5:
                time.sleep(0.01)
                answers.append(_post(url, one_row, "text/csv"))
            return answers

        clients = [pool.submit(one_rows) for _ in range(4)]
        meanwhile = [answer for client in clients for answer in client.result()]
        busy = time.perf_counter() - started
        after = [_post(url, one_row, "text/csv").status_code for _ in range(5)]
        stats = requests.get(url + "/stats", timeout=10).json().get("load")

    large_statuses = collections.Counter(f.result().status_code for f in larges)
    small_statuses = collections.Counter(a.status_code for a in meanwhile)
    print(f"\n24 large requests: {dict(large_statuses)} over {busy:.2f} s; one-row meanwhile: {dict(small_statuses)}")
    print(f"load after: {stats}")
    assert set(small_statuses) <= {200, 503}, [a.text for a in meanwhile if a.status_code != 200]
    assert all(a.headers["retry-after"] == "1" for a in meanwhile if a.status_code == 503)
    assert set(large_statuses) <= {503, 504}
    assert warm == [200] * 3 and after == [200] * 5
    assert stats["inflight_requests"] == 0 and stats["inflight_mb"] == 0 and stats["scoring_threads_busy"] == 0


@pytest.mark.slow
def test_a_flood_of_large_bodies_is_refused_before_it_is_read(champion: Champion, tmp_path: Path) -> None:
    """96 concurrent 5.7 MB bodies against serving.max_inflight_mb 24: the excess gets 503 with Retry-After and
    the server's memory stays within a few times the limit (before: every body was read, 346 -> 982 MiB)."""
    import collections
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    env = {**champion.env, "PIPELINE__SERVING__MAX_INFLIGHT_MB": "24", "PIPELINE__SERVING__LOG__PATH": "null"}
    body = _large_csv(champion, 5.7)
    process: list = []
    with serving(env, tmp_path / "serve.log", process=process) as url:
        pid = process[0].pid
        _post(url, body, "text/csv")  # warmed up: the first large request's buffers are the baseline
        baseline, peak, done = _rss_mib(pid), [0.0], threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mib(pid))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(96) as pool:
            answers = list(pool.map(lambda _: _post(url, body, "text/csv"), range(96)))
        done.set()
        watcher.join()
        stats = requests.get(url + "/stats", timeout=10).json()["load"]

    statuses = collections.Counter(a.status_code for a in answers)
    growth = peak[0] - baseline
    print(f"\n96 x {len(body) / 1e6:.1f} MB: {dict(statuses)}; RSS {baseline:.0f} MiB -> peak {peak[0]:.0f} MiB")
    print(f"load after: {stats}")
    assert set(statuses) == {200, 503} and statuses[503] >= 48
    refused = [a for a in answers if a.status_code == 503]
    assert all(a.headers["retry-after"] == "1" for a in refused)
    assert "serving.max_inflight_mb" in refused[0].json()["message"]
    # 24 MB of bodies held at most: with their parsed rows and answers, a few times that, never the 550 MB sent.
    assert growth < 24 * 4 + 64, f"RSS grew by {growth:.0f} MiB"
