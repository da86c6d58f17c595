"""What the server answers: the predictions (JSON, or CSV when asked), an error as MLflow's scoring server words
it (``error_code``, ``message``), and the refusals that stop a request before or instead of scoring."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from starlette.responses import Response

RETRY_AFTER_SECONDS = 1


class Refused(Exception):
    """A request answered with an error status, before or instead of scoring."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


def saturated(why: str) -> Refused:
    return Refused(
        503,
        "TEMPORARILY_UNAVAILABLE",
        f"the server is saturated: {why}; retry after {RETRY_AFTER_SECONDS} s",
        {"retry-after": str(RETRY_AFTER_SECONDS)},
    )


def too_big(limit: int) -> Refused:
    return Refused(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the body is over the limit of {limit / 1e6:g} MB (serving.max_body_mb): split the rows into smaller requests",
    )


def answer(outputs: Any, accept: str) -> Response:
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


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps({"error_code": code, "message": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
