"""The inference log's files: the table of a batch of requests (``log_table``) and the Parquet log read back
(``read_inference_log``). The log's own process (``mlsteps.serving.log_shipper``) builds the table from the spool
(``mlsteps.serving.spool_files``) and decides when files are written; this module only says what they hold.

A batch stays in Arrow from the requests' columns to the Parquet file: no pandas frame is built on the way
(cheaper than pandas, measured when this work still ran in the server's process).

Files go to ``<location>/date=<YYYY-MM-DD>/<UTC time>-<id>.parquet``, one row per scored row (a refused request
is one row with its error): ``request_id``, ``row`` (from 1), ``received_at`` (UTC), ``latency_ms``,
``status``, ``error``, ``client`` (the API key's label), ``model_uri``, ``model_name``, ``model_version``,
``model_run_id``, then ``input.<column>`` and ``output.<name>``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsteps.refs import ModelRef
from mlsteps.storage import Storage


def default_spool_dir() -> Path:
    """``.pipeline/inference-log-spool`` (``PIPELINE_STATE_DIR``) when it can be written, else the temp dir's."""
    from mlsteps.reuse import state_dir

    preferred = state_dir() / "inference-log-spool"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK | os.X_OK):
            return preferred
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"mlsteps-inference-log-spool-{os.getuid()}"


def spool_root(spool_dir: str | Path, location: str) -> Path:
    """The spool folder of the log at ``location``: servers of other destinations never ship each other's."""
    return Path(spool_dir) / hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:16]


@dataclass
class Entry:
    """One request, as the server saw it: a scored one with its rows (``inputs``, checked) and the body they were
    read from, which is what the spool keeps (the log's process reads the rows from it again)."""

    request_id: str
    received_at: datetime
    latency_ms: float
    status: int
    client: str | None = None
    inputs: pd.DataFrame | None = None
    outputs: Any = None
    error: str | None = None
    body: bytes | None = None
    content_type: str = ""

    @property
    def rows(self) -> int:
        return 1 if self.inputs is None else len(self.inputs)


def concat_tables(tables: list[Any]) -> Any:
    """One Arrow table of ``tables``, in order; a column one lacks is null there, and types are widened where they
    differ (an int column in one request, float in another)."""
    import pyarrow as pa

    return pa.concat_tables(tables, promote_options="permissive")


def log_table(batch: list[Entry], model: ModelRef) -> Any:
    """The log's rows for ``batch`` as an Arrow table: one per scored row, one per refused request, in the batch's
    order; the request's fields repeated per row by Arrow's ``take``, the inputs and outputs of the scored
    requests concatenated in Arrow (a refused request's row has none)."""
    import pyarrow as pa

    counts = np.array([e.rows for e in batch], dtype=np.int64)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(batch)), counts)  # the entry of each row
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    refused = np.array([e.inputs is None for e in batch], dtype=bool)
    refused_row = refused[owner]
    take = pa.array(owner)

    def repeated(values: list[Any], kind: Any) -> Any:
        return pa.array(values, type=kind).take(take)

    def constant(value: str | None) -> Any:
        return pa.repeat(pa.scalar(value, type=pa.string()), total)

    columns: dict[str, Any] = {
        "request_id": repeated([e.request_id for e in batch], pa.string()),
        "row": pa.array(np.arange(total) - starts[owner] + 1, type=pa.int64(), mask=refused_row),
        "received_at": repeated([e.received_at for e in batch], pa.timestamp("ns", tz="UTC")),
        "latency_ms": pa.array(np.array([e.latency_ms for e in batch], dtype=float)[owner]),
        "status": pa.array(np.array([e.status for e in batch], dtype=np.int16)[owner]),
        "error": repeated([e.error for e in batch], pa.string()),
        "client": repeated([e.client for e in batch], pa.string()),
        "model_uri": constant(model.uri),
        "model_name": constant(model.name),
        "model_version": constant(model.version),
        "model_run_id": constant(model.run_id),
    }
    scored = [e for e in batch if e.inputs is not None]
    if scored:
        # One conversion to Arrow of all the inputs (a conversion per request costs about 2 ms whatever its size)
        inputs = _arrow(pd.concat([e.inputs for e in scored], ignore_index=True))
        outputs = _arrow(pd.concat([_output_frame(e.outputs) for e in scored], ignore_index=True))
        if len(scored) < len(batch):  # each row's position in the scored rows; a refused request's row: null
            position = np.zeros(total, dtype=np.int64)
            position[~refused_row] = np.arange(int((~refused_row).sum()))
            rows = pa.array(position, mask=refused_row)
            inputs, outputs = inputs.take(rows), outputs.take(rows)
        columns |= {f"input.{name}": inputs.column(name) for name in inputs.column_names}
        columns |= {f"output.{name}": outputs.column(name) for name in outputs.column_names}
    return pa.table(columns)


def log_frame(batch: list[Entry], model: ModelRef) -> pd.DataFrame:
    """``log_table`` as a pandas frame (``row`` an ``Int64`` column: empty for a refused request)."""
    frame = log_table(batch, model).to_pandas()
    frame["row"] = frame["row"].astype("Int64")
    return frame


def _arrow(frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def _output_frame(outputs: Any) -> pd.DataFrame:
    if isinstance(outputs, pd.DataFrame):
        return outputs
    values = np.asarray(outputs)
    # one value per row; a 2-D answer (one probability per class, say) is a list per row
    return pd.DataFrame({"prediction": values if values.ndim == 1 else list(values)})


_FIRST = [
    "request_id",
    "row",
    "received_at",
    "latency_ms",
    "status",
    "error",
    "client",
    "model_uri",
    "model_name",
    "model_version",
    "model_run_id",
]


def read_inference_log(location: str, storage: Storage | None = None) -> pd.DataFrame:
    """Every file of the log at ``location`` (a folder or s3:// prefix) as one table, oldest request first;
    each row names the model version that served it (``model_name``, ``model_version``, ``model_run_id``)."""
    storage = storage or Storage()
    fs, path = storage.filesystem(location)
    files = sorted(fs.glob(path.rstrip("/") + "/**/*.parquet")) if fs.exists(path) else []
    frames = []
    for name in files:
        with fs.open(name, "rb") as handle:
            frames.append(pd.read_parquet(handle))
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "received_at", "model_name", "model_version"])
    frame = pd.concat(frames, ignore_index=True)
    frame["row"] = frame["row"].astype("Int64")  # a refused request's row is empty: read as a float
    return frame.sort_values(["received_at", "request_id", "row"], ignore_index=True)
