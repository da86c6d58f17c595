"""The scoring server's app: SageMaker's and MLflow's contract (GET /ping, POST /invocations), strict about inputs.

- ``/ping`` (and ``/health``): 200 once the model is loaded; never asks for a key (SageMaker's health check).
- ``/invocations``: ``text/csv`` with or without a header line, or ``application/json`` (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``). The rows are checked against the model's input schema
  (``src/models/input_checks.py``): a request that does not fit gets 400, naming the row, the column and what
  was expected, and nothing of it is scored. The answer is MLflow's: ``{"predictions": [...]}``, or with
  ``Accept: text/csv`` SageMaker's CSV (one prediction a line), with the request's id in the ``x-request-id``
  header (the client's, when it is 1 to 128 letters, digits and ``._:-``; else a new one). A body over ``serving.max_body_mb`` gets 413, a request slower
  than ``serving.timeout_seconds`` 504, and, when API keys are configured, one without a valid key 401.
- ``/stats``: the inference log's counts, dropped rows included (behind the API key, when there are keys).

Every ``/invocations`` request that passes the key check goes to the inference log, off the request path; every
request, refused ones included, gets a line in the access log (logger ``mlsteps.serving.access``: status,
request id, the key's label, never the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlsteps.csv_input import frame_from_csv
from mlsteps.input_checks import InputError, frame_from_json
from mlsteps.refs import ModelRef
from mlsteps.serving.auth import ApiKeys
from mlsteps.serving.inference_log import Entry, InferenceLog

logger = logging.getLogger(__name__)
access = logging.getLogger("mlsteps.serving.access")

CONTENT_TYPES = ("text/csv", "application/json")
# A client's request id is taken when it looks like one (it is echoed back and logged).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class Scoring:
    """What the app serves, and how."""

    model: Any  # anything with predict(DataFrame): an MLflow pyfunc model
    schema: dict[str, str]  # the model's inputs: column name -> type, in order
    ref: ModelRef
    keys: ApiKeys
    log: InferenceLog | None
    max_body_bytes: int
    timeout_seconds: float


class Refused(Exception):
    """A request answered with an error status, before or instead of scoring."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


def build_app(scoring: Scoring) -> Starlette:
    """The ASGI app serving ``scoring``; its inference log is started and flushed with the app's lifespan."""

    async def ping(_: Request) -> Response:
        return Response("\n", media_type="application/json")

    async def invocations(request: Request) -> Response:
        received_at, started = datetime.now(UTC), time.perf_counter()
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        entry = Entry(request_id, received_at, 0.0, 200)
        try:
            entry.client = _client(scoring.keys, request)
            body = await _body(request, scoring.max_body_bytes)
            entry.inputs, entry.outputs = await asyncio.wait_for(
                asyncio.to_thread(score, scoring, body, request.headers.get("content-type", "")),
                scoring.timeout_seconds,
            )
            response = _answer(entry.outputs, request.headers.get("accept", ""))
        except Refused as exc:
            entry.status, entry.error = exc.status, str(exc)
            response = _error(exc.status, exc.code, str(exc), exc.headers)
        except InputError as exc:
            entry.status, entry.error = 400, str(exc)
            response = _error(400, "BAD_REQUEST", str(exc))
        except TimeoutError:
            entry.status, entry.error = 504, f"not answered within {scoring.timeout_seconds:g} s"
            response = _error(
                504,
                "TIMEOUT",
                f"the request took longer than {scoring.timeout_seconds:g} s "
                "(serving.timeout_seconds, MODEL_SERVER_TIMEOUT): send fewer rows",
            )
        except Exception as exc:
            logger.exception("request %s: the model failed", request_id)
            entry.status, entry.error = 500, f"{type(exc).__name__}: {exc}"
            response = _error(
                500, "INTERNAL_ERROR", f"the model failed on rows that passed the input checks: {entry.error}"
            )
        response.headers["x-request-id"] = request_id
        entry.latency_ms = (time.perf_counter() - started) * 1000
        access.info(
            "POST /invocations %d %.1f ms request=%s client=%s from=%s",
            entry.status,
            entry.latency_ms,
            request_id,
            entry.client or "-",
            request.client.host if request.client else "-",
        )
        if scoring.log is not None and entry.status != 401:
            if entry.status != 200:
                entry.inputs = entry.outputs = None
            scoring.log.record(entry)
        return response

    async def stats(request: Request) -> Response:
        try:
            _client(scoring.keys, request)
        except Refused as exc:
            return _error(exc.status, exc.code, str(exc), exc.headers)
        counts = scoring.log.stats if scoring.log else {}
        return Response(
            json.dumps({"model": vars(scoring.ref), "inference_log": counts}), media_type="application/json"
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if scoring.log:
            scoring.log.start()
        try:
            yield
        finally:
            if scoring.log:
                from mlsteps.console import err

                c = await asyncio.to_thread(scoring.log.close)
                err.print(
                    f"inference log {scoring.log.location}: {c.requests_logged} request(s), {c.rows_logged} "
                    f"row(s) in {c.files_written} file(s); dropped: {c.requests_dropped} request(s), "
                    f"{c.rows_dropped} row(s)",
                    highlight=False,
                    soft_wrap=True,
                )

    return Starlette(
        routes=[
            Route("/ping", ping),
            Route("/health", ping),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/stats", stats),
        ],
        lifespan=lifespan,
    )


def score(scoring: Scoring, body: bytes, content_type: str) -> tuple[pd.DataFrame, Any]:
    """Check the rows of a request body, then score them: (the checked rows, the model's outputs)."""
    mime, *parameters = [part.strip().lower() for part in content_type.split(";")]
    if mime not in CONTENT_TYPES or any(p.replace(" ", "") not in ("charset=utf-8", "") for p in parameters):
        raise Refused(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"content type '{content_type}' is not served: send {' or '.join(CONTENT_TYPES)} (UTF-8)",
        )
    if not body.strip():
        raise InputError(["the body is empty: there are no rows to score"], "Send at least one row.")
    if mime == "text/csv":
        frame = frame_from_csv(body, scoring.schema)
    else:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InputError([f"the body is not valid JSON ({exc})"], "Send a JSON object.") from exc
        except RecursionError as exc:
            raise InputError(["the body's JSON is nested too deeply"], "Send rows as a flat JSON object.") from exc
        frame = frame_from_json(payload, scoring.schema)
    names = list(scoring.schema)
    frame = frame if list(frame.columns) == names else frame[names]
    return frame, scoring.model.predict(frame)


def _client(keys: ApiKeys, request: Request) -> str | None:
    """The label of the request's API key (None when keys are off); Refused 401 without a valid one."""
    if not keys.enabled:
        return None
    holder = keys.holder(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if holder is None:
        raise Refused(
            401,
            "UNAUTHENTICATED",
            "a valid API key is needed: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            {"www-authenticate": "Bearer"},
        )
    return holder


async def _body(request: Request, limit: int) -> bytes:
    """The request body, or Refused 413 as soon as it is known to be over ``limit`` bytes."""
    too_big = Refused(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the body is over the limit of {limit / 1e6:g} MB (serving.max_body_mb): split the rows into smaller requests",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(outputs: Any, accept: str) -> Response:
    """The predictions as JSON, or as CSV (one a line) when the client accepts text/csv and not JSON first."""
    wanted = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    if wanted and wanted[0] == "text/csv":
        if isinstance(outputs, pd.DataFrame):
            text = outputs.to_csv(index=False, header=False)
        else:
            text = "".join(f"{value}\n" for value in np.asarray(outputs).tolist())
        return Response(text, media_type="text/csv")
    return Response(json.dumps({"predictions": _jsonable(outputs)}), media_type="application/json")


def _jsonable(outputs: Any) -> Any:
    if isinstance(outputs, pd.DataFrame):
        return json.loads(outputs.to_json(orient="records"))
    return np.asarray(outputs).tolist()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps({"error_code": code, "message": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
