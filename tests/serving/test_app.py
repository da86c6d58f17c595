"""The scoring app over real HTTP (uvicorn on a free loopback port, in a thread) with a stub model: every
request shape, right and wrong, API keys, limits, and what reaches the inference log."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from mlsteps.config import InferenceLogParams
from mlsteps.refs import ModelRef
from mlsteps.serving.app import Scoring, build_app
from mlsteps.serving.auth import ApiKeys
from mlsteps.serving.inference_log import InferenceLog
from mlsteps.serving.log_files import read_inference_log

from tests.servers import free_port, wait_until

SCHEMA = {"a": "double", "n": "long", "plan": "string"}
REF = ModelRef("models:/stub/7", "stub", "7", "run-7")
KEY = "s3cret-key"
ROWS = [[0.2, 1, "x"], [0.9, 2, "y"], [0.7, 3, "x"]]
EXPECTED = [0, 1, 1]


class Threshold:
    """Predicts 1 when a > 0.5; refuses to run on rows the checks should have stopped."""

    delay = 0.0

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        assert list(frame.columns) == list(SCHEMA) and frame["a"].dtype == "float64"
        self.calls += 1
        time.sleep(self.delay)
        if (frame["n"] == 99).any():
            raise ValueError("the stub cannot score n=99")
        return (frame["a"] > 0.5).astype("int64").to_numpy()


@contextlib.contextmanager
def running(
    tmp_path: Path,
    keys: dict[str, str] | None = None,
    model: Threshold | None = None,
    timeout: float = 30.0,
    **limits: int,
) -> Iterator[str]:
    """The app on a free loopback port until the block ends (the inference log flushed when it does); ``limits``
    are Scoring's (max_inflight_requests, max_inflight_bytes, scoring_threads)."""
    import uvicorn

    params = InferenceLogParams(flush_seconds=60)
    log = InferenceLog(str(tmp_path / "log"), REF, params, SCHEMA, spool_dir=tmp_path / "spool")
    scoring = Scoring(model or Threshold(), SCHEMA, REF, ApiKeys(keys or {}), log, 1_000_000, timeout, **limits)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(scoring), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "app", timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(tmp_path_factory.mktemp("app")) as address:
        yield address


def _post(
    url: str, body: str | bytes | dict | list, content_type: str = "application/json", **headers: str
) -> requests.Response:
    data = json.dumps(body) if isinstance(body, dict | list) else body
    return requests.post(url + "/invocations", data=data, headers={"Content-Type": content_type, **headers}, timeout=30)


def _csv(rows: list[list], header: list[str] | None = None) -> str:
    lines = ([",".join(header)] if header else []) + [",".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


RECORDS = [dict(zip(SCHEMA, row, strict=True)) for row in ROWS]
RIGHT = {
    "csv without a header (SageMaker)": (_csv(ROWS), "text/csv"),
    "csv with a header, any order": (_csv([[r[2], r[0], r[1]] for r in ROWS], ["plan", "a", "n"]), "text/csv"),
    "csv, charset given": (_csv(ROWS), "text/csv; charset=utf-8"),
    "dataframe_split": ({"dataframe_split": {"columns": list(SCHEMA), "data": ROWS}}, "application/json"),
    "dataframe_records": ({"dataframe_records": RECORDS}, "application/json"),
    "instances as records": ({"instances": RECORDS}, "application/json"),
    "instances as rows": ({"instances": ROWS}, "application/json"),
    "inputs as columns": (
        {"inputs": {"a": [0.2, 0.9, 0.7], "n": [1, 2, 3], "plan": ["x", "y", "x"]}},
        "application/json",
    ),
}


@pytest.mark.parametrize(("body", "content_type"), list(RIGHT.values()), ids=list(RIGHT))
def test_every_request_shape_is_scored_alike(url: str, body, content_type: str) -> None:
    answer = _post(url, body, content_type)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": EXPECTED}
    assert len(answer.headers["x-request-id"]) == 32


WRONG = {
    "csv row with a value too many": (
        _csv([ROWS[0], [5.0, *ROWS[1]]]),
        "text/csv",
        400,
        "row 2 (line 2): 4 values, expected 3",
    ),
    "csv row with a value too few": (
        _csv([ROWS[0], ROWS[1][:2]]),
        "text/csv",
        400,
        "row 2 (line 2): 2 values, expected 3",
    ),
    "csv with a header, a row too short": (
        _csv([ROWS[0][:2]], list(SCHEMA)),
        "text/csv",
        400,
        "row 1 (line 2): 2 values, expected 3",
    ),
    "csv value of the wrong type": (
        _csv([ROWS[0], [0.9, "two", "y"]]),
        "text/csv",
        400,
        "row 2, column 'n': expected a whole number (long), got 'two'",
    ),
    "csv unknown column": (
        _csv(ROWS, ["a", "n", "tier"]),
        "text/csv",
        400,
        "column 'plan' is missing; column 'tier' is not an input of the model",
    ),
    "json row too long": (
        {"dataframe_split": {"columns": list(SCHEMA), "data": [[*ROWS[0], 1]]}},
        "application/json",
        400,
        "row 1: 4 values, expected 3",
    ),
    "json wrong type": (
        {"dataframe_records": [{**RECORDS[0], "a": "high"}]},
        "application/json",
        400,
        "row 1, column 'a': expected a number (double), got 'high'",
    ),
    "json unknown column": (
        {"dataframe_records": [{**RECORDS[0], "tier": 1}]},
        "application/json",
        400,
        "row 1: column 'tier' is not an input of the model",
    ),
    "json instances too short": ({"instances": [ROWS[0][:2]]}, "application/json", 400, "row 1: 2 values, expected 3"),
    "malformed json": ('{"dataframe_split": ', "application/json", 400, "the body is not valid JSON"),
    "json of an unknown shape": ({"data": ROWS}, "application/json", 400, "exactly one of the keys"),
    "empty body": ("", "text/csv", 400, "the body is empty: there are no rows to score"),
    "blank lines only": ("\n\n", "text/csv", 400, "there are no rows to score"),
    "not utf-8": (b"\xff\xfe0.1,1,x\n", "text/csv", 400, "not UTF-8"),
    "body over the limit": ("0.1,1,x\n" * 200_000, "text/csv", 413, "over the limit of 1 MB"),
    "unsupported content type": (_csv(ROWS), "text/plain", 415, "content type 'text/plain' is not served"),
    "unsupported charset": (_csv(ROWS), "text/csv; charset=latin-1", 415, "is not served"),
}


@pytest.mark.parametrize(("body", "content_type", "status", "message"), list(WRONG.values()), ids=list(WRONG))
def test_wrong_requests_are_refused_with_what_to_fix(
    url: str, body, content_type: str, status: int, message: str
) -> None:
    answer = _post(url, body, content_type)

    assert answer.status_code == status, answer.text
    assert answer.json()["error_code"] in ("BAD_REQUEST", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE")
    assert message in answer.json()["message"]
    assert "predictions" not in answer.json()


def test_a_model_failure_is_a_500_that_says_so(url: str) -> None:
    answer = _post(url, {"instances": [[0.1, 99, "x"]]})

    assert answer.status_code == 500
    assert (
        "the model failed on rows that passed the input checks: ValueError: the stub cannot score n=99"
        in answer.json()["message"]
    )


def test_ping_and_only_post_on_invocations(url: str) -> None:
    assert requests.get(url + "/ping", timeout=10).status_code == 200
    assert requests.get(url + "/health", timeout=10).status_code == 200
    assert requests.get(url + "/invocations", timeout=10).status_code == 405


def test_a_slow_request_gets_504(tmp_path: Path) -> None:
    slow = Threshold()
    slow.delay = 1.0
    with running(tmp_path, model=slow, timeout=0.2) as address:
        answer = _post(address, {"instances": ROWS})

    assert answer.status_code == 504
    assert "longer than 0.2 s" in answer.json()["message"]


def test_api_keys_guard_invocations_and_stats_but_not_ping(tmp_path: Path) -> None:
    keys = {hashlib.sha256(KEY.encode()).hexdigest(): "team-a"}
    with running(tmp_path, keys=keys) as address:
        ping = requests.get(address + "/ping", timeout=10)
        anonymous = _post(address, {"instances": ROWS})
        wrong = _post(address, {"instances": ROWS}, Authorization="Bearer not-the-key")
        stats_anonymous = requests.get(address + "/stats", timeout=10)
        bearer = _post(address, {"instances": ROWS}, Authorization=f"Bearer {KEY}")
        header = _post(address, _csv(ROWS), "text/csv", **{"x-api-key": KEY, "x-request-id": "mine-1"})
        stats = requests.get(address + "/stats", headers={"x-api-key": KEY}, timeout=10)
    table = read_inference_log(str(tmp_path / "log"))

    assert ping.status_code == 200
    assert anonymous.status_code == 401 and wrong.status_code == 401 and stats_anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <key>" in anonymous.json()["message"]
    assert bearer.json() == header.json() == {"predictions": EXPECTED}
    assert header.headers["x-request-id"] == "mine-1"
    assert stats.json()["model"]["version"] == "7"
    # Refused (401) requests are not logged; the two scored ones are, with the key's label, never the key.
    assert table.groupby("request_id").size().to_dict() == {bearer.headers["x-request-id"]: 3, "mine-1": 3}
    assert set(table["client"]) == {"team-a"}
    assert KEY not in table.to_string()


def test_the_log_holds_scored_and_refused_requests_with_the_model_version(tmp_path: Path) -> None:
    with running(tmp_path) as address:
        scored = _post(address, _csv(ROWS), "text/csv")
        refused = _post(address, _csv([ROWS[0][:2]]), "text/csv")
    table = read_inference_log(str(tmp_path / "log"))

    rows = table[table["request_id"] == scored.headers["x-request-id"]]
    assert rows["row"].tolist() == [1, 2, 3]
    assert rows["input.a"].tolist() == [0.2, 0.9, 0.7] and rows["input.plan"].tolist() == ["x", "y", "x"]
    assert rows["output.prediction"].tolist() == EXPECTED
    assert (rows["latency_ms"] > 0).all() and set(rows["status"]) == {200}
    assert set(table["model_version"]) == {"7"} and set(table["model_name"]) == {"stub"}
    bad = table[table["request_id"] == refused.headers["x-request-id"]].iloc[0]
    assert bad["status"] == 400 and "row 1 (line 1): 2 values, expected 3" in bad["error"]


def test_accept_text_csv_gets_one_prediction_a_line(url: str) -> None:
    as_csv = _post(url, _csv(ROWS), "text/csv", Accept="text/csv")
    as_json = _post(url, _csv(ROWS), "text/csv", Accept="application/json, text/csv")

    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == "".join(f"{value}\n" for value in EXPECTED)
    assert as_json.json() == {"predictions": EXPECTED}


@pytest.mark.parametrize("given", ["x" * 129, "id with spaces", "<script>", ""])
def test_a_request_id_that_does_not_look_like_one_is_replaced(url: str, given: str) -> None:
    answer = _post(url, _csv(ROWS), "text/csv", **{"x-request-id": given})

    assert answer.status_code == 200
    assert answer.headers["x-request-id"] != given and len(answer.headers["x-request-id"]) == 32


def test_json_nested_too_deeply_is_a_400(url: str) -> None:
    answer = _post(url, "[" * 100_000, "application/json")

    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["message"]


def test_every_request_refused_ones_too_gets_an_access_log_line_without_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = {hashlib.sha256(KEY.encode()).hexdigest(): "team-a"}
    with caplog.at_level("INFO", logger="mlsteps.serving.access"), running(tmp_path, keys=keys) as address:
        _post(address, {"instances": ROWS}, Authorization="Bearer not-the-key", **{"x-request-id": "refused-1"})
        _post(address, {"instances": ROWS}, Authorization=f"Bearer {KEY}", **{"x-request-id": "scored-1"})

    lines = [r.getMessage() for r in caplog.records if r.name == "mlsteps.serving.access"]
    assert any(" 401 " in line and "request=refused-1 client=-" in line for line in lines), lines
    assert any(" 200 " in line and "request=scored-1 client=team-a" in line for line in lines), lines
    assert not [line for line in lines if KEY in line or "not-the-key" in line]


def _later(seconds: float, call, *args, **kwargs) -> threading.Thread:
    """``call`` in a thread of its own after ``seconds``; its answer lands in the thread's ``answer``."""

    def run() -> None:
        time.sleep(seconds)
        thread.answer = call(*args, **kwargs)  # type: ignore[attr-defined]

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_requests_beyond_max_inflight_requests_get_503_and_ping_says_saturated(tmp_path: Path) -> None:
    slow = Threshold()
    slow.delay = 0.6
    with running(tmp_path, model=slow, max_inflight_requests=1) as address:
        first = _later(0, _post, address, {"instances": ROWS})
        time.sleep(0.2)
        ping = requests.get(address + "/ping", timeout=10)
        refused = _post(address, {"instances": ROWS}, **{"x-request-id": "refused-1"})
        first.join()
        ping_after = requests.get(address + "/ping", timeout=10)
        stats = requests.get(address + "/stats", timeout=10).json()["load"]
    table = read_inference_log(str(tmp_path / "log"))

    assert first.answer.status_code == 200  # type: ignore[attr-defined]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert (
        "1 requests are in flight in this worker, its limit (serving.max_inflight_requests)"
        in (refused.json()["message"])
    )
    # /ping stays 200 (SageMaker would replace an instance failing it) and says so in its body.
    assert ping.status_code == 200 and ping.json()["saturated"] is True and ping.json()["inflight_requests"] == 1
    assert ping_after.status_code == 200 and ping_after.json()["saturated"] is False
    assert stats["refused_503"]["max_inflight_requests"] == 1 and stats["inflight_requests"] == 0
    logged = table[table["request_id"] == "refused-1"].iloc[0]
    assert logged["status"] == 503 and "serving.max_inflight_requests" in logged["error"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_beyond_max_inflight_bytes_get_503_before_they_are_read(tmp_path: Path, chunked: bool) -> None:
    body = _csv(ROWS * 200).encode()  # 3.2 kB
    with running(tmp_path, max_inflight_bytes=2_000) as address:
        small = _post(address, _csv(ROWS), "text/csv")
        big = _post(address, iter([body[:1000], body[1000:]]) if chunked else body, "text/csv")  # type: ignore[arg-type]
        stats = requests.get(address + "/stats", timeout=10).json()["load"]

    assert small.status_code == 200
    assert big.status_code == 503 and big.headers["retry-after"] == "1", big.text
    assert "over its limit of 0.002 MB (serving.max_inflight_mb)" in big.json()["message"]
    assert stats["refused_503"]["max_inflight_mb"] == 1 and stats["inflight_mb"] == 0


def test_timed_out_scoring_starts_no_further_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlsteps.serving import app

    parse = app.rows_of

    def slow_parse(*args, **kwargs):
        time.sleep(0.5)
        return parse(*args, **kwargs)

    monkeypatch.setattr(app, "rows_of", slow_parse)
    model = Threshold()
    with running(tmp_path, model=model, timeout=0.2) as address:
        answer = _post(address, {"instances": ROWS})
        busy = requests.get(address + "/stats", timeout=10).json()["load"]
        time.sleep(0.6)
        stats = requests.get(address + "/stats", timeout=10).json()["load"]

    assert answer.status_code == 504
    assert "its rows were still being parsed and checked" in answer.json()["message"]
    # The thread was still parsing when the 504 went out, and held its place until then; it never called the model.
    assert busy["scoring_abandoned"] == 1 and busy["inflight_requests"] == 1
    assert model.calls == 0
    assert stats["scoring_stopped_after_timeout"] == 1 and stats["scoring_threads_busy"] == 0
    assert stats["inflight_requests"] == 0


def test_a_request_that_waited_for_a_busy_thread_gets_503_and_is_never_scored(tmp_path: Path) -> None:
    slow = Threshold()
    slow.delay = 1.0
    with running(tmp_path, model=slow, timeout=0.3, scoring_threads=1) as address:
        first = _later(0, _post, address, {"instances": ROWS})
        time.sleep(0.1)
        waited = _post(address, {"instances": ROWS})
        first.join()
        time.sleep(1.0)
        after = _post(address, {"instances": ROWS})

    assert first.answer.status_code == 504  # type: ignore[attr-defined]
    assert waited.status_code == 503 and waited.headers["retry-after"] == "1"
    assert "all 1 scoring threads of this worker stayed busy" in waited.json()["message"]
    assert "nothing of it was scored" in waited.json()["message"]
    assert after.status_code == 504  # the model is slower than the timeout, but its thread was free again
    assert slow.calls == 2  # the first and the last request: never the one that waited
