"""The scoring server's app: SageMaker's and MLflow's contract (GET /ping, POST /invocations), strict about inputs.

- ``/ping`` (and ``/health``): 200 once the model is loaded; never asks for a key (SageMaker's health check).
- ``/invocations``: ``text/csv`` with or without a header line, or ``application/json`` (``dataframe_split``,
  ``dataframe_records``, ``instances``, ``inputs``). The rows are checked against the model's input schema
  (``src/models/input_checks.py``): a request that does not fit gets 400, naming the row, the column and what
  was expected, and nothing of it is scored. The answer is MLflow's: ``{"predictions": [...]}``, or with
  ``Accept: text/csv`` SageMaker's CSV (one prediction a line), with the request's id in the ``x-request-id``
  header (the client's, when it is 1 to 128 letters, digits and ``._:-``; else a new one). A body over ``serving.max_body_mb`` gets 413, a request slower
  than ``serving.timeout_seconds`` 504, and, when API keys are configured, one without a valid key 401.
- Work in flight is bounded per worker (``Load``): beyond ``serving.max_inflight_requests`` requests, or
  ``serving.max_inflight_mb`` of bodies (counted from Content-Length before the body is read), a request gets 503
  with ``Retry-After``; so does one that waited for a scoring thread for its whole timeout (nothing of it was
  scored). Scoring that outlives its 504 starts no further stage (the model is not called on rows parsed too
  late) and keeps its thread and budget until it ends, so what is counted is what is really held.
- ``/ping`` answers 200 while the model is loaded, saturated or not (a failing health check gets a SageMaker
  instance replaced), with the load in its body; ``/stats``: the same load and the inference log's counts,
  dropped rows included (behind the API key, when there are keys).

Every ``/invocations`` request that passes the key check goes to the inference log, off the request path; every
request, refused ones included, gets a line in the access log (logger ``mlsteps.serving.access``: status,
request id, the key's label, never the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlsteps.input_checks import InputError
from mlsteps.refs import ModelRef
from mlsteps.serving.answers import Refused, answer, error_response, saturated, too_big
from mlsteps.serving.auth import ApiKeys
from mlsteps.serving.bodies import rows_of
from mlsteps.serving.inference_log import InferenceLog
from mlsteps.serving.load import Expired, Held, Load, Progress
from mlsteps.serving.log_files import Entry

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
    max_inflight_requests: int = 64
    max_inflight_bytes: int = 96_000_000
    scoring_threads: int = min(32, (os.cpu_count() or 1) + 4)  # the size of asyncio's default thread pool


def build_app(scoring: Scoring) -> Starlette:
    """The ASGI app serving ``scoring``; its inference log is started and flushed with the app's lifespan."""
    load = Load()
    threads = asyncio.Semaphore(scoring.scoring_threads)

    async def ping(_: Request) -> Response:
        # 200 even when saturated: SageMaker takes a failing /ping for a broken instance (docs/serving.md).
        return Response(json.dumps({"status": "healthy", **load.report(scoring)}), media_type="application/json")

    async def scored(held: Held, body: bytes, content_type: str, deadline: float) -> tuple[pd.DataFrame, Any]:
        """Score in a thread of its own, within the request's deadline; TimeoutError when it is passed."""
        if threads.locked():
            try:
                await asyncio.wait_for(threads.acquire(), max(deadline - time.perf_counter(), 0))
            except TimeoutError:
                load.refused_busy += 1
                raise saturated(
                    f"all {scoring.scoring_threads} scoring threads of this worker stayed busy for the request's "
                    f"whole {scoring.timeout_seconds:g} s (serving.timeout_seconds), so nothing of it was scored"
                ) from None
        else:
            await threads.acquire()
        if time.perf_counter() > deadline:  # its body came too slowly (or the loop was busy): nothing is started
            threads.release()
            load.refused_late += 1
            raise _too_late(scoring, "it was waiting to be scored")
        load.scoring += 1
        abandoned = False
        progress = Progress(deadline)
        task = asyncio.ensure_future(asyncio.to_thread(score, scoring, body, content_type, progress))

        def done(finished: asyncio.Future) -> None:
            threads.release()
            load.scoring -= 1
            failure = None if finished.cancelled() else finished.exception()  # always retrieved
            if abandoned:
                load.abandoned -= 1
                load.stopped += isinstance(failure, Expired)
                held.release()

        task.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(deadline - time.perf_counter(), 0))
        except TimeoutError:
            if progress.stage == "done" or task.done():  # ended in time, noticed late (the loop was busy)
                return await task  # its answer, or its own error (400, 500)
            if not task.done():  # the thread goes on to the end of its stage; its budget is held until then
                abandoned, held.handed = True, True
                load.abandoned += 1
            raise Expired(progress.stage) from None
        except asyncio.CancelledError:
            if not task.done():  # the thread goes on to the end of its stage; its budget is held until then
                abandoned, held.handed = True, True
                load.abandoned += 1
            raise

    async def invocations(request: Request) -> Response:
        received_at, started = datetime.now(UTC), time.perf_counter()
        deadline = started + scoring.timeout_seconds
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        entry = Entry(request_id, received_at, 0.0, 200)
        held: Held | None = None
        try:
            entry.client = _client(scoring.keys, request)
            held = _admit(scoring, load, request)
            body = await _body(request, scoring, held, deadline)
            entry.content_type = request.headers.get("content-type", "")
            entry.inputs, entry.outputs = await scored(held, body, entry.content_type, deadline)
            entry.body = body
            response = answer(entry.outputs, request.headers.get("accept", ""))
        except Refused as exc:
            entry.status, entry.error = exc.status, str(exc)
            response = error_response(exc.status, exc.code, str(exc), exc.headers)
        except InputError as exc:
            entry.status, entry.error = 400, str(exc)
            response = error_response(400, "BAD_REQUEST", str(exc))
        except Expired as exc:
            if exc.args[0] == "waiting":  # its thread had not begun: the process was too busy to start it
                load.refused_late += 1
                late = _too_late(scoring, "its scoring thread was starting")
                entry.status, entry.error = late.status, str(late)
                response = error_response(late.status, late.code, str(late), late.headers)
            else:
                doing = "parsed and checked" if exc.args[0] == "parsing" else "scored by the model"
                entry.status, entry.error = 504, f"not answered within {scoring.timeout_seconds:g} s"
                response = error_response(
                    504,
                    "TIMEOUT",
                    f"the request took longer than {scoring.timeout_seconds:g} s (serving.timeout_seconds, "
                    f"MODEL_SERVER_TIMEOUT): its rows were still being {doing}; send fewer rows",
                )
        except Exception as exc:
            logger.exception("request %s: the model failed", request_id)
            entry.status, entry.error = 500, f"{type(exc).__name__}: {exc}"
            response = error_response(
                500, "INTERNAL_ERROR", f"the model failed on rows that passed the input checks: {entry.error}"
            )
        finally:
            if held is not None and not held.handed:
                held.release()
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
                entry.inputs = entry.outputs = entry.body = None
            scoring.log.record(entry)
        return response

    async def stats(request: Request) -> Response:
        try:
            _client(scoring.keys, request)
        except Refused as exc:
            return error_response(exc.status, exc.code, str(exc), exc.headers)
        counts = scoring.log.stats if scoring.log else {}
        return Response(
            json.dumps({"model": vars(scoring.ref), "load": load.report(scoring), "inference_log": counts}),
            media_type="application/json",
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if scoring.log:
            scoring.log.start()  # its work is in a process of its own: Python's switch interval is left as it is
        # What is loaded now (MLflow, scikit-learn, pandas, the model: millions of objects) stays for the server's
        # life: frozen, the garbage collector no longer walks it in each full collection, which would otherwise
        # stop every request in flight for tens of ms.
        gc.collect()
        gc.freeze()
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


def score(
    scoring: Scoring, body: bytes, content_type: str, progress: Progress | None = None
) -> tuple[pd.DataFrame, Any]:
    """Check the rows of a request body, then score them: (the checked rows, the model's outputs). Past
    ``progress.deadline``, no further stage starts (Expired)."""
    if progress:
        progress.next("parsing")
    mime, *parameters = [part.strip().lower() for part in content_type.split(";")]
    if mime not in CONTENT_TYPES or any(p.replace(" ", "") not in ("charset=utf-8", "") for p in parameters):
        raise Refused(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"content type '{content_type}' is not served: send {' or '.join(CONTENT_TYPES)} (UTF-8)",
        )
    frame = rows_of(body, mime, scoring.schema)
    if progress:
        progress.next("predicting")
    # A column kept with the rows (the id) is logged, never scored.
    outputs = scoring.model.predict(frame if len(frame.columns) == len(scoring.schema) else frame[list(scoring.schema)])
    if progress:
        progress.stage = "done"
    return frame, outputs


def _too_late(scoring: Scoring, when: str) -> Refused:
    return saturated(
        f"the request's {scoring.timeout_seconds:g} s (serving.timeout_seconds, MODEL_SERVER_TIMEOUT) had passed "
        f"while {when}, so nothing of it was scored"
    )


def _admit(scoring: Scoring, load: Load, request: Request) -> Held:
    """The request's share of the worker's load, or Refused (413, 503) before any of its body is read."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else 0
    if size > scoring.max_body_bytes:
        raise too_big(scoring.max_body_bytes)
    if load.requests >= scoring.max_inflight_requests:
        load.refused_requests += 1
        raise saturated(
            f"{load.requests} requests are in flight in this worker, its limit (serving.max_inflight_requests)"
        )
    if size and load.body_bytes + size > scoring.max_inflight_bytes:
        load.refused_bytes += 1
        raise saturated(_bytes_over(scoring, load, size))
    held = Held(load)
    held.take_bytes(size)
    return held


def _bytes_over(scoring: Scoring, load: Load, size: int) -> str:
    return (
        f"{load.body_bytes / 1e6:g} MB of request bodies are held in this worker, and this one ({size / 1e6:g} MB) "
        f"would take it over its limit of {scoring.max_inflight_bytes / 1e6:g} MB (serving.max_inflight_mb)"
    )


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


async def _body(request: Request, scoring: Scoring, held: Held, deadline: float) -> bytes:
    """The request body, or Refused 413 as soon as it is known to be over ``serving.max_body_mb``; 503 when a
    body sent without Content-Length outgrows what the worker may still hold, or when the request's deadline
    passes before the body is in (reading on could only end in a 504)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        if time.perf_counter() > deadline:
            held.load.refused_late += 1
            raise _too_late(scoring, "its body was still being read")
        size += len(chunk)
        if size > scoring.max_body_bytes:
            raise too_big(scoring.max_body_bytes)
        if size > held.bytes:  # more than declared: counted as it comes
            extra = size - held.bytes
            if held.load.body_bytes + extra > scoring.max_inflight_bytes:
                held.load.refused_bytes += 1
                raise saturated(_bytes_over(scoring, held.load, size))
            held.take_bytes(extra)
        chunks.append(chunk)
    return b"".join(chunks)
