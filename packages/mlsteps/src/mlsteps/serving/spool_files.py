"""The inference log's spool files: what a server keeps of its requests until the log's process has shipped them.

A spool file holds a batch of requests as they came: per request its fields, its body (the rows) and its outputs'
bytes, with the model and input schema that served them; whole or not at all (fsynced under a temporary name,
then renamed). Writing one costs the server a few microseconds per request, whatever its size: reading the rows
back and building the log's table is the work of the log's own process (``mlsteps.serving.log_shipper``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsteps.input_checks import ModelInputs
from mlsteps.refs import ModelRef
from mlsteps.serving.log_files import Entry

_MAGIC = b"mlsteps-inference-spool-1\n"
SPOOL_SUFFIX = ".spool"


def spool_name(seq: int, requests: int, rows: int, oldest: float) -> str:
    """``<seq>-<requests>q-<rows>r-<oldest, epoch ms>t.spool``: what the log's process needs, without reading it."""
    return f"{seq:012d}-{requests}q-{rows}r-{int(oldest * 1000)}t{SPOOL_SUFFIX}"


def spool_counts(name: str) -> tuple[int, int, float]:
    """(requests, rows, oldest arrival as epoch seconds) of a spool file's name (an ``.arrow`` file of an earlier
    version has no time: 0)."""
    parts = Path(name).stem.split("-")
    oldest = int(parts[3].rstrip("t")) / 1000 if len(parts) > 3 else 0.0
    return int(parts[1].rstrip("q")), int(parts[2].rstrip("r")), oldest


def write_spool_records(batch: list[Entry], model: ModelRef, schema: Mapping[str, str], path: Path) -> int:
    """``batch`` as one spool file at ``path``, whole or not at all; its size. Each scored request is kept as its
    body and its outputs' bytes: a few microseconds of the server's time per request, whatever its size (building
    the log's table, hundreds of times that, is the log process's work)."""
    items, blobs = [], []
    for e in batch:
        body, content_type = b"", ""
        meta: Any = None
        outputs = b""
        if e.inputs is not None:
            body, content_type = (e.body, e.content_type) if e.body is not None else _as_json(e.inputs)
            meta, outputs = _encode_outputs(e.outputs)
        items.append(
            [e.request_id, e.received_at.isoformat(), e.latency_ms, e.status, e.client, e.error, content_type,
             len(body), meta, len(outputs)]
        )  # fmt: skip
        blobs += [body, outputs]
    keep = list(getattr(schema, "keep", ()))
    header = json.dumps({"model": asdict(model), "schema": dict(schema), "keep": keep, "entries": items}).encode()
    _write_whole(path, [_MAGIC, len(header).to_bytes(8, "little"), header, *blobs])
    return path.stat().st_size


def read_spool_records(path: Path) -> tuple[ModelRef, ModelInputs, list[tuple[Entry, bytes]]]:
    """A spool file's model, input schema (with the columns kept besides), and entries with their bodies (outputs
    decoded, inputs not yet read)."""
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError("not an inference log spool file")
    at = len(_MAGIC) + 8
    size = int.from_bytes(data[len(_MAGIC) : at], "little")
    header = json.loads(data[at : at + size])
    at += size
    entries = []
    for request_id, received, latency, status, client, error, content_type, body_size, meta, out_size in header[
        "entries"
    ]:
        body = data[at : at + body_size]
        at += body_size
        outputs = _decode_outputs(meta, data[at : at + out_size]) if meta is not None else None
        at += out_size
        entry = Entry(request_id, datetime.fromisoformat(received), latency, status, client, None, outputs, error)
        entry.content_type = content_type
        entries.append((entry, body))
    if at != len(data):
        raise ValueError(f"the spool file holds {len(data)} bytes, its entries {at}")
    return ModelRef(**header["model"]), ModelInputs(header["schema"], keep=header.get("keep", ())), entries


def _as_json(frame: pd.DataFrame) -> tuple[bytes, str]:
    """Rows given without their body (an entry built in code): as a JSON ``dataframe_split`` body."""
    split = frame.to_json(orient="split", index=False, date_format="iso")
    return f'{{"dataframe_split": {split}}}'.encode(), "application/json"


def _encode_outputs(outputs: Any) -> tuple[Any, bytes]:
    if isinstance(outputs, pd.DataFrame):
        metas, blobs = [], []
        for name in outputs.columns:
            meta, blob = _encode_array(outputs[name].to_numpy())
            metas.append([str(name), meta, len(blob)])
            blobs.append(blob)
        return {"frame": metas}, b"".join(blobs)
    meta, blob = _encode_array(np.asarray(outputs))
    return {"array": meta}, blob


def _encode_array(values: np.ndarray) -> tuple[dict[str, Any], bytes]:
    if values.dtype.kind in "biuf":  # numbers as their bytes
        return {"dtype": values.dtype.str, "shape": list(values.shape)}, np.ascontiguousarray(values).tobytes()
    return {"json": list(values.shape)}, json.dumps(values.tolist(), default=str).encode()


def _decode_outputs(meta: dict[str, Any], blob: bytes) -> Any:
    if "array" in meta:
        return _decode_array(meta["array"], blob)
    columns, at = {}, 0
    for name, column, size in meta["frame"]:
        columns[name] = _decode_array(column, blob[at : at + size])
        at += size
    return pd.DataFrame(columns)


def _decode_array(meta: dict[str, Any], blob: bytes) -> np.ndarray:
    if "json" in meta:
        values = json.loads(blob)
        if len(meta["json"]) != 1:
            return np.array(values, dtype=object)
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    return np.frombuffer(blob, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"])


def _write_whole(path: Path, parts: list[bytes]) -> None:
    """``parts`` into ``path``, whole or not at all: fsynced under a temporary name, renamed, the folder fsynced."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with open(tmp, "wb") as handle:
            handle.writelines(parts)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename too survives a power loss
    finally:
        os.close(folder)


def read_arrow_spool_file(path: Path) -> Any:
    """A spool file of an earlier version (``.arrow``: the log's table already built), as an Arrow table."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()
