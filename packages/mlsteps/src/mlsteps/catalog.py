"""The dataset catalog: every dataset by name (``catalog:`` in the config), read, written, digested, snapshotted.

Steps name datasets; this module turns a name into a location (``<root>/<path>/<run id>/<name>.parquet`` for
a per-run dataset, ``<root>/<path>/<sha256>.parquet`` for a content-addressed one) and does the I/O through
``mlsteps.storage``: local paths, ``s3://`` and fsspec's ``memory://`` (what the unit tests run on) alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps.config import Settings, join_uri
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
        return Input(uri, self.storage.fingerprint(uri), from_config=True)

    def output_uri(self, name: str, run_id: str) -> str:
        """Where a run writes dataset ``name``: a folder of its own, so runs never overwrite each other."""
        spec = self.settings.dataset(name)
        if spec.kind != "per_run":
            raise ConfigError(
                f"dataset '{name}' is {spec.kind}: a step can only write per_run datasets as tables "
                f"(set 'kind: per_run' under catalog.{name})"
            )
        return join_uri(join_uri(self.settings.location(name) or "", run_id), f"{name}.{spec.file_format}")

    def folders(self, names: list[str]) -> list[str]:
        """The folders the named datasets are written under (checked writable before a pipeline starts)."""
        kinds = ("per_run", "content_addressed")
        return sorted({self.settings.location(n) or "" for n in names if self.settings.dataset(n).kind in kinds})

    # -- I/O -----------------------------------------------------------------------------------------------
    def load(self, name: str, uri: str) -> pd.DataFrame:
        """Read a table of dataset ``name`` (its CSV options apply) from ``uri``."""
        from mlsteps.tables import CsvOptions

        csv = self.settings.dataset(name).csv
        return self.storage.read_table(uri, csv=CsvOptions(csv.sep, csv.encoding, csv.decimal))

    def load_chunks(self, name: str, uri: str) -> Iterator[pd.DataFrame]:
        """Read a table of dataset ``name`` from ``uri`` in chunks of its ``chunk_rows`` rows (one pass)."""
        from mlsteps.tables import CsvOptions

        spec = self.settings.dataset(name)
        csv = spec.csv
        return self.storage.read_chunks(uri, spec.chunk_rows, csv=CsvOptions(csv.sep, csv.encoding, csv.decimal))

    def save(self, name: str, frame: pd.DataFrame, run_id: str) -> Input:
        written = self.storage.write_table(frame, self.output_uri(name, run_id))
        return Input(written.uri, written.sha256)

    def exists(self, uri: str) -> bool:
        if uri.startswith(("models:/", "runs:/")):
            return True  # registry entries and logged models are immutable
        return self.storage.exists(uri)

    def snapshot(self, name: str, source: Input, from_run: str | None = None) -> tuple[WrittenFile, pd.DataFrame]:
        """Store the exact bytes of ``source`` content-addressed (once) and parse the frame from the stored copy.

        The bytes are streamed (hashed, then copied, the copy hashed again), never held in memory besides the
        frame. Bytes that no longer match the digest recorded when they were written are refused: ``from_run``
        names the run whose snapshot ``source`` is, for the message.
        """
        expected = source.digest.removeprefix("sha256:")
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
        return written, self.storage.read_table(written.uri)

    def describe(self, frame: Any, written: WrittenFile, source: Input) -> dict[str, Any]:
        """One file's entry in a snapshot manifest."""
        return {
            "uri": written.uri,
            "sha256": written.sha256,
            "bytes": written.size,
            "rows": len(frame),
            "columns": len(frame.columns),
            "schema": {c: str(t) for c, t in frame.dtypes.items()},
            "source": source.uri,
        }
