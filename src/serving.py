"""Serving: MLflow's own scoring server (/ping, /invocations) for the champion, as SageMaker calls it.

SageMaker sends ``text/csv`` as rows of raw feature values with no header line, while MLflow's scoring server
reads the first CSV line as column names. ``HeaderlessCsv`` adds the model's column names to such a request and
changes nothing else: JSON (``dataframe_split``, ``dataframe_records``, ...) and CSV with a header pass through.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def with_header(body: bytes, names: list[str]) -> bytes:
    """``body`` with the column names as its first line, unless its first line already names columns."""
    first_line = body.lstrip().split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    cells = {cell.strip().strip('"') for cell in first_line.split(",")}
    if cells & set(names):
        return body
    return (",".join(names) + "\n").encode() + body.lstrip()


class HeaderlessCsv:
    """ASGI middleware: give header-less ``text/csv`` bodies of /invocations the model's column names."""

    def __init__(self, app: Callable[..., Awaitable[None]], names: list[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_csv_invocation(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = with_header(b"".join(chunks), self.names)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": headers}, replay, send)

    @staticmethod
    def _is_csv_invocation(scope: Scope) -> bool:
        if scope.get("type") != "http" or scope.get("path") != "/invocations":
            return False
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"").decode().lower()
        return content_type.startswith("text/csv")


def build_app(model_uri: str) -> HeaderlessCsv:
    """MLflow's scoring server app for ``model_uri``, accepting header-less CSV as well."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(model_uri)
    names = model.metadata.get_input_schema().input_names()
    return HeaderlessCsv(scoring_server.init(model), names)



def serve_model(settings: Any, model_uri: str | None, host: str, port: int) -> None:
    """Serve ``model_uri`` (default: the version holding the gate's alias) until Ctrl-C."""
    import uvicorn

    from src.lib.console import err
    from src.lib.registry import champion_uri, describe_model
    from src.lib.store import connect

    connect(settings)
    model_uri = model_uri or settings.dataset("model").uri or champion_uri(settings.model_name, settings.gate.alias)
    ref = describe_model(model_uri)
    app = build_app(model_uri)
    err.print(f"serving {model_uri} (version {ref.version or '-'}) on http://{host}:{port}  "
              "(GET /ping, POST /invocations; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
