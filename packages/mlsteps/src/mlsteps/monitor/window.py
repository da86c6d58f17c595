"""The inference log of a time window, read as an Arrow dataset one column at a time: memory follows the
columns read, not the window's size (``mlsteps.serving.log_files`` says what the log's files hold)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlsteps.errors import StorageError, UsageError
from mlsteps.storage import Storage

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """A moment as UTC: an ISO date or date-time (a naive one is UTC), or a duration before ``now`` (``24h``,
    ``7d``, ``30m``); a UsageError naming ``option`` otherwise."""
    value = text.strip()
    found = _DURATION.match(value.lower())
    if found:
        return now - timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a moment: give an ISO date or date-time (2026-12-01, 2026-12-01T06:00, "
            "UTC unless it names its offset) or a duration before now (24h, 7d, 30m)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class LogWindow:
    """The rows of the log at ``location`` received in [since, until)."""

    def __init__(self, location: str, since: datetime, until: datetime, storage: Storage) -> None:
        import pyarrow as pa
        import pyarrow.dataset as ds
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        if until <= since:
            raise UsageError(f"the window ends ({until:%Y-%m-%d %H:%M}) before it starts ({since:%Y-%m-%d %H:%M})")
        self.location, self.since, self.until = location, since, until
        fs, path = storage.filesystem(location)
        if not fs.exists(path):
            raise UsageError(
                f"there is no inference log at {location}: `python src/main.py serve` (or the image on SageMaker) "
                "writes it there (serving.log.path); check the environment (-e) and that the server logs"
            )
        # Only the days of the window: the log's folders are date=YYYY-MM-DD (UTC) of when a file was written, so
        # the day after the window too (rows received before midnight, written after it).
        span = (until.date() - since.date()).days + 2
        days = [(since + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(span)]
        files = sorted(f for day in days for f in fs.glob(f"{path.rstrip('/')}/date={day}/*.parquet"))
        self.files = files
        filesystem = PyFileSystem(FSSpecHandler(fs))
        schemas = []
        for name in files:
            try:
                schemas.append(ds.dataset(name, filesystem=filesystem, format="parquet").schema)
            except (pa.ArrowInvalid, OSError) as exc:
                raise StorageError(
                    f"the inference log's file {name} cannot be read ({exc}): move it out of {location} (or delete "
                    "it) and run monitor again"
                ) from exc
        # Files written by servers of other requests may type a column differently (int here, float there).
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
        self.columns = list(schema.names)
        self._dataset = ds.dataset(files, schema=schema, filesystem=filesystem, format="parquet") if files else None
        self._filter = (ds.field("received_at") >= pa.scalar(since, pa.timestamp("ns", tz="UTC"))) & (
            ds.field("received_at") < pa.scalar(until, pa.timestamp("ns", tz="UTC"))
        )

    def read(self, columns: list[str], where: Any = None) -> Any:
        """An Arrow table of ``columns`` for the window's rows (and ``where``, a dataset expression)."""
        import pyarrow as pa

        if self._dataset is None:
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        condition = self._filter if where is None else self._filter & where
        try:
            return self._dataset.to_table(columns=columns, filter=condition)
        except (pa.ArrowInvalid, OSError) as exc:
            raise StorageError(
                f"the inference log at {self.location} cannot be read ({exc}): move the file it names out of the "
                "log (or delete it) and run monitor again"
            ) from exc

    def column(self, name: str, where: Any = None) -> np.ndarray:
        """One column of the window's rows as numpy (numbers as float64 with NaN for missing, else objects)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        values = self.read([name], where).column(name)
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type):
            return np.asarray(pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
