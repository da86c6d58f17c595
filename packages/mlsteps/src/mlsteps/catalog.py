"""The dataset catalog: every dataset by name (``catalog:`` in the config), read, written, digested, snapshotted.

Steps name datasets; this module turns a name into a location (``<root>/<path>/<run id>/<name>.parquet`` for
a per-run dataset, ``<root>/<path>/<sha256>.parquet`` for a content-addressed one) and does the I/O through
``mlsteps.storage``: local paths, ``s3://`` and fsspec's ``memory://`` (what the unit tests run on) alike.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps import partitions
from mlsteps.config import Settings, join_uri
from mlsteps.dask_io import read_input
from mlsteps.errors import ConfigError, DataValidationError
from mlsteps.hints import command
from mlsteps.storage import Storage, WrittenFile

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

SNAPSHOTS = "snapshots"  # the content-addressed catalog entry that snapshots go into


@dataclass(frozen=True)
class Input:
    """A version of a dataset or model: where it is and a digest of its content."""

    uri: str
    digest: str
    # True for a file read where the config says (not an output of a run): its location is part of the cache key.
    from_config: bool = False


class Catalog:
    """Datasets by name, for one environment's settings."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.settings = settings
        self.storage = storage or Storage.for_settings(settings)

    # -- locations -----------------------------------------------------------------------------------------
    def source(self, name: str) -> Input | None:
        """An input dataset's location and fingerprint; None when the config leaves it unset."""
        spec = self.settings.dataset(name)
        if spec.kind != "input":
            raise ConfigError(f"dataset '{name}' is {spec.kind}, not an input: a step writes it")
        uri = self.settings.location(name)
        if uri is None:
            return None
        files = partitions.input_files(self.storage, uri)
        if files is not None:  # a folder of files: each one's fingerprint, in order
            digest = ",".join(f"{f.rsplit('/', 1)[-1]}={self.storage.fingerprint(f)}" for f in files)
            return Input(uri, "files:" + hashlib.sha256(digest.encode()).hexdigest(), from_config=True)
        return Input(uri, self.storage.fingerprint(uri), from_config=True)

    @property
    def dask(self) -> bool:
        """Whether the run's engine is Dask: datasets are read as Dask frames, partitioned ones written as folders."""
        return self.settings.engine.kind == "dask"

    def output_uri(self, name: str, run_id: str) -> str:
        """Where a run writes dataset ``name``: a folder of its own, so runs never overwrite each other."""
        spec = self.settings.dataset(name)
        if spec.kind != "per_run":
            raise ConfigError(
                f"dataset '{name}' is {spec.kind}: a step can only write per_run datasets as tables "
                f"(set 'kind: per_run' under catalog.{name})"
            )
        folder = join_uri(self.settings.location(name) or "", run_id)
        if spec.partitioned and self.dask and spec.file_format == "parquet":
            return join_uri(folder, name) + "/"
        return join_uri(folder, f"{name}.{spec.file_format}")

    def folders(self, names: list[str]) -> list[str]:
        """The folders the named datasets are written under (checked writable before a pipeline starts)."""
        kinds = ("per_run", "content_addressed")
        return sorted({self.settings.location(n) or "" for n in names if self.settings.dataset(n).kind in kinds})

    # -- I/O -----------------------------------------------------------------------------------------------
    def load(self, name: str, uri: str) -> pd.DataFrame:
        """Read a table of dataset ``name`` (its CSV options apply) from ``uri``."""
        from mlsteps.tables import CsvOptions

        if self.dask:
            return read_input(self.settings, self.storage, name, uri)
        if partitions.is_partitioned(uri):
            return partitions.read_whole(self.storage, uri)
        csv = self.settings.dataset(name).csv
        options = CsvOptions(csv.sep, csv.encoding, csv.decimal)
        files = partitions.input_files(self.storage, uri)
        if files is not None:
            import pandas as pd

            return pd.concat([self.storage.read_table(f, csv=options) for f in files], ignore_index=True)
        return self.storage.read_table(uri, csv=options)

    def load_chunks(self, name: str, uri: str) -> Iterator[pd.DataFrame]:
        """Read a table of dataset ``name`` from ``uri`` in chunks of its ``chunk_rows`` rows (one pass)."""
        from mlsteps.tables import CsvOptions

        spec = self.settings.dataset(name)
        if self.dask:
            return read_input(self.settings, self.storage, name, uri)
        csv = spec.csv
        options = CsvOptions(csv.sep, csv.encoding, csv.decimal)
        files = partitions.input_files(self.storage, uri) if not partitions.is_partitioned(uri) else None
        if files is not None:  # a folder: its files one after another, each in chunks
            return (chunk for f in files for chunk in self.storage.read_chunks(f, spec.chunk_rows, csv=options))
        return self.storage.read_chunks(uri, spec.chunk_rows, csv=options)

    def save(self, name: str, frame: pd.DataFrame, run_id: str) -> Input:
        return self.save_all({name: frame}, run_id)[0][name]

    def save_all(self, frames: dict[str, Any], run_id: str, extra: Any = None) -> tuple[dict[str, Input], Any]:
        """Write each frame as its dataset; Dask frames of partitioned datasets all in one computation, with
        ``extra`` (a ``dask.delayed`` result over their partitions), returned computed."""
        from mlsteps.engine import is_dask

        saved: dict[str, Input] = {}
        partitioned = {}
        for name, frame in frames.items():
            uri = self.output_uri(name, run_id)
            if is_dask(frame) and partitions.is_partitioned(uri):
                partitioned[name] = (frame, uri)
                continue
            written = self.storage.write_table(frame.compute() if is_dask(frame) else frame, uri)
            saved[name] = Input(written.uri, written.sha256)
        manifests, computed = partitions.write_datasets(self.storage, partitioned, extra)
        for name, manifest in manifests.items():
            saved[name] = Input(partitioned[name][1], manifest.sha256)
        return {name: saved[name] for name in frames}, computed

    def exists(self, uri: str) -> bool:
        if uri.startswith(("models:/", "runs:/")):
            return True  # registry entries and logged models are immutable
        if partitions.is_partitioned(uri):
            return self.storage.exists(partitions.manifest_uri(uri))
        return self.storage.exists(uri)

    def snapshot(self, name: str, source: Input, from_run: str | None = None) -> tuple[WrittenFile, pd.DataFrame]:
        """Store the exact bytes of ``source`` content-addressed (once) and parse the frame from the stored copy.

        The bytes are streamed (hashed, then copied, the copy hashed again), never held in memory besides the
        frame. Bytes that no longer match the digest recorded when they were written are refused: ``from_run``
        names the run whose snapshot ``source`` is, for the message.
        """
        expected = source.digest.removeprefix("sha256:")
        if partitions.is_partitioned(source.uri):
            return self._snapshot_partitioned(name, source, expected, from_run)
        actual = self.storage.sha256(source.uri)
        if len(expected) == 64 and actual != expected:
            if from_run:
                raise DataValidationError(
                    f"the {name} snapshot of run {from_run} at '{source.uri}' was changed after that run: its "
                    f"SHA-256 is {actual}, the run recorded {expected}. Restore the file from a backup (or a bucket "
                    "version), retrain from another run's snapshot (--from-run), or train on current data "
                    f"({command()})"
                )
            raise DataValidationError(
                f"the {name} data at '{source.uri}' changed after it was written (its SHA-256 is {actual}, "
                f"{expected} was recorded): re-run the step that wrote it (--force it), then train again"
            )
        spec = self.settings.dataset(SNAPSHOTS)
        folder = self.settings.location(SNAPSHOTS) or ""
        written = self.storage.snapshot_file(source.uri, actual, folder, f".{spec.file_format}")
        if self.dask:
            return written, read_input(self.settings, self.storage, name, written.uri)
        return written, self.storage.read_table(written.uri)

    def _snapshot_partitioned(
        self, name: str, source: Input, expected: str, from_run: str | None
    ) -> tuple[WrittenFile, Any]:
        what = f"{name} snapshot of run {from_run}" if from_run else name
        folder = self.settings.location(SNAPSHOTS) or ""
        written = partitions.snapshot(self.storage, source.uri, expected, folder, what)
        if self.dask:
            return written, partitions.read_dask(self.storage, written.uri)
        return written, partitions.read_whole(self.storage, written.uri)

    def describe(self, frame: Any, written: WrittenFile, source: Input) -> dict[str, Any]:
        """One dataset's entry in a snapshot manifest (a Dask frame's rows are its manifest's)."""
        from mlsteps.engine import is_dask

        rows = partitions.read_manifest(self.storage, written.uri).rows if is_dask(frame) else len(frame)
        return {
            "uri": written.uri,
            "sha256": written.sha256,
            "bytes": written.size,
            "rows": rows,
            "columns": len(frame.columns),
            "schema": {c: str(t) for c, t in frame.dtypes.items()},
            "source": source.uri,
        }
