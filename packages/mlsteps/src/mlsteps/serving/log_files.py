"""The inference log's files: the table of a batch of requests (``log_frame``), the spool's Arrow IPC files (written
whole or not at all), and the Parquet log read back (``read_inference_log``). ``mlsteps.serving.inference_log``
decides when they are written; this module only says what they hold.

Files go to ``<location>/date=<YYYY-MM-DD>/<UTC time>-<id>.parquet``, one row per scored row (a refused request
is one row with its error): ``request_id``, ``row`` (from 1), ``received_at`` (UTC), ``latency_ms``,
``status``, ``error``, ``client`` (the API key's label), ``model_uri``, ``model_name``, ``model_version``,
``model_run_id``, then ``input.<column>`` and ``output.<name>``.
"""

from __future__ import annotations

import contextlib
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
    """One request, as the server saw it."""

    request_id: str
    received_at: datetime
    latency_ms: float
    status: int
    client: str | None = None
    inputs: pd.DataFrame | None = None
    outputs: Any = None
    error: str | None = None

    @property
    def rows(self) -> int:
        return 1 if self.inputs is None else len(self.inputs)


def write_spool_file(frame: pd.DataFrame, path: Path) -> int:
    """``frame`` as an Arrow IPC file at ``path``, whole or not at all (fsynced, then renamed); its size."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with open(tmp, "wb") as handle:
            with pa.ipc.new_file(handle, table.schema) as writer:
                writer.write_table(table)
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
    return path.stat().st_size


def read_spool_file(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all().to_pandas()


def counts_of(path: Path) -> tuple[int, int]:
    """(requests, rows) of a spool file, from its name ``<seq>-<requests>q-<rows>r.arrow``."""
    _, requests, rows = path.stem.split("-")
    return int(requests.rstrip("q")), int(rows.rstrip("r"))


def log_frame(batch: list[Entry], model: ModelRef) -> pd.DataFrame:
    """The log's rows for ``batch``: one per scored row, one per refused request, in the batch's order.

    Built by columns for the whole batch (one concat of the inputs, one of the outputs, the request's fields
    repeated per row), not a frame per entry: about 0.1 ms an entry instead of 2.5 ms of the GIL serving needs."""
    counts = np.array([e.rows for e in batch], dtype=np.int64)
    total = int(counts.sum())
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    scored = [i for i, e in enumerate(batch) if e.inputs is not None]

    def repeated(values: list[Any]) -> np.ndarray:
        return np.repeat(np.array(values, dtype=object), counts)

    row = pd.array(np.arange(total) - np.repeat(starts, counts) + 1, dtype="Int64")
    if len(scored) < len(batch):
        row[np.repeat([e.inputs is None for e in batch], counts)] = pd.NA
    frame = pd.DataFrame(
        {
            "request_id": repeated([e.request_id for e in batch]),
            "row": row,
            "received_at": pd.to_datetime(np.repeat([pd.Timestamp(e.received_at) for e in batch], counts), utc=True),
            "latency_ms": np.repeat(np.array([e.latency_ms for e in batch], dtype=float), counts),
            "status": np.repeat(np.array([e.status for e in batch], dtype=np.int16), counts),
            "error": repeated([e.error for e in batch]),
            "client": repeated([e.client for e in batch]),
            "model_uri": model.uri,
            "model_name": model.name,
            "model_version": model.version,
            "model_run_id": model.run_id,
        }
    )
    if not scored:
        return frame
    # The scored rows' positions in the frame; a refused request's row gets no inputs or outputs.
    positions = np.concatenate([np.arange(starts[i], starts[i] + counts[i]) for i in scored])
    inputs = pd.concat([batch[i].inputs for i in scored], ignore_index=True)
    outputs = pd.concat([_outputs(batch[i].outputs) for i in scored], ignore_index=True)
    parts = [inputs.add_prefix("input."), outputs.add_prefix("output.")]
    if len(scored) < len(batch):
        parts = [part.set_axis(positions).reindex(range(total)) for part in parts]
    return pd.concat([frame, *parts], axis=1)


def _outputs(outputs: Any) -> pd.DataFrame:
    if isinstance(outputs, pd.DataFrame):
        return outputs
    return pd.DataFrame({"prediction": np.asarray(outputs).tolist()})


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


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[_FIRST + [c for c in frame.columns if c not in _FIRST]]


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
    return pd.concat(frames, ignore_index=True).sort_values(["received_at", "request_id", "row"], ignore_index=True)
