"""Partitioned Parquet datasets: a folder of files written by the workers, each digested, and a manifest.

A partitioned dataset is written as ``<folder>/part-00000.parquet``, ``part-00001.parquet``, ... and then
``<folder>/_manifest.json``: every file's name, SHA-256, size and rows, in partition order. The manifest is written
last, so a dataset exists once it is complete; its URI is the folder's, ending in ``/``, and its digest the SHA-256
of the manifest's bytes (which name every file's): a change to any file is seen as a change to the dataset.

A snapshot of such a dataset is its files stored content-addressed (``<snapshots>/<sha256>.parquet``, once per
content) and a manifest of those files stored the same way (``<snapshots>/<sha256>.json``): the URI of that
manifest names the exact data, and every file is verified against its name when it is read again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps.errors import DataValidationError, StorageError

if TYPE_CHECKING:
    import pandas as pd

    from mlsteps.storage import Storage, WrittenFile

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class Manifest:
    """A partitioned dataset's files: each entry {name, sha256, bytes, rows}, names relative to ``folder``."""

    folder: str
    files: list[dict[str, Any]]

    @property
    def uris(self) -> list[str]:
        return [self.folder + f["name"] for f in self.files]

    @property
    def rows(self) -> int:
        return sum(int(f["rows"]) for f in self.files)

    def text(self) -> bytes:
        return json.dumps({"format": "parquet", "rows": self.rows, "files": self.files}, sort_keys=True).encode()


def is_partitioned(uri: str) -> bool:
    """Whether ``uri`` names a partitioned dataset: its folder (ending in ``/``) or a snapshot's manifest."""
    return uri.endswith(("/", ".json"))


def manifest_uri(uri: str) -> str:
    return uri if uri.endswith(".json") else uri + MANIFEST


def read_manifest(storage: Storage, uri: str) -> Manifest:
    """The manifest of the partitioned dataset at ``uri`` (its folder, or a snapshot manifest's own URI)."""
    where = manifest_uri(uri)
    if not storage.exists(where):
        raise StorageError(
            f"partitioned dataset '{uri}' has no {where.rsplit('/', 1)[-1]}: it was not written completely "
            "(re-run the step that writes it)"
        )
    fs, path = storage.filesystem(where)
    with fs.open(path, "rb") as handle:
        data = json.loads(handle.read())
    return Manifest(where.rsplit("/", 1)[0] + "/", list(data["files"]))


def parts(frame: Any) -> list[Any]:
    """A Dask frame's partitions as ``dask.delayed`` objects whose tasks are shared with every other call on a frame
    made from the same input: train and test split from one clean dataset read it once when written together, and
    metrics over the written partitions (``StepOutput.lazy_metrics``) are computed from the same tasks. (Dask's
    graph optimization would fuse each frame's tasks apart, reading the input once per frame.)"""
    return list(frame.to_delayed(optimize_graph=False))


def _write_part(storage: Storage, frame: pd.DataFrame, uri: str) -> dict[str, Any]:
    """On a worker: one partition as a Parquet file (atomically, digested as it is written)."""
    written = storage.write_table(frame.reset_index(drop=True), uri)
    return {"name": uri.rsplit("/", 1)[-1], "sha256": written.sha256, "bytes": written.size, "rows": len(frame)}


def write_datasets(
    storage: Storage, frames: dict[str, tuple[Any, str]], extra: Any = None
) -> tuple[dict[str, WrittenFile], Any]:
    """Write each Dask frame of ``frames`` ({name: (frame, folder URI ending in /)}) as a partitioned dataset, all
    in one computation (datasets computed from the same input read it once); then each one's manifest. ``extra``,
    a ``dask.delayed`` result (metrics over the same partitions), is computed in the same pass.

    Returns each dataset's manifest as written (its SHA-256 is the dataset's digest), and ``extra`` computed.
    """
    import dask

    worker_storage = storage.portable()
    if not frames:
        return {}, (dask.compute(extra)[0] if extra is not None else None)
    tasks, names = [], []
    for name, (frame, folder) in frames.items():
        for index, part in enumerate(parts(frame)):
            tasks.append(dask.delayed(_write_part)(worker_storage, part, f"{folder}part-{index:05d}.parquet"))
            names.append(name)
    try:
        *results, computed = dask.compute(*tasks, extra)
    except BaseException:
        for _frame, folder in frames.values():  # nothing half-written: the files of the parts that were written
            _remove(storage, folder)
        raise
    written: dict[str, WrittenFile] = {}
    for name, (_frame, folder) in frames.items():
        files = [r for n, r in zip(names, results, strict=True) if n == name]
        manifest = Manifest(folder, files)
        written[name] = storage.write_bytes(manifest.text(), folder + MANIFEST)
        logger.info("wrote %s (%d files, %d rows)", folder, len(files), manifest.rows)
    return written, computed


def _remove(storage: Storage, folder: str) -> None:
    import contextlib

    fs, path = storage.filesystem(folder)
    with contextlib.suppress(Exception):  # the failure being raised is what the caller needs to see
        if fs.exists(path):
            fs.rm(path, recursive=True)


def read_dask(storage: Storage, uri: str, columns: list[str] | None = None) -> Any:
    """The partitioned dataset at ``uri`` as a Dask frame, a partition per file, in the manifest's order."""
    import dask.dataframe as dd

    manifest = read_manifest(storage, uri)
    return dd.read_parquet(manifest.uris, columns=columns, storage_options=storage.options(uri), split_row_groups=False)


def read_whole(storage: Storage, uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The partitioned dataset at ``uri`` as one pandas frame (the pandas engine reading a dask run's output)."""
    import pandas as pd

    frames = [storage.read_table(part, columns=columns) for part in read_manifest(storage, uri).uris]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def snapshot(storage: Storage, uri: str, expected: str, folder: str, what: str) -> WrittenFile:
    """Store the partitioned dataset at ``uri`` content-addressed under ``folder``: each file once (its bytes
    verified against the dataset's manifest while copied), then a manifest of the stored files. ``expected`` is
    the dataset's recorded digest (its manifest's SHA-256): a manifest that no longer matches it is refused, as is
    a file whose bytes no longer match the manifest. Returns the stored manifest (its URI names the snapshot).
    """
    actual = storage.sha256(manifest_uri(uri))
    if len(expected) == 64 and actual != expected:
        raise DataValidationError(
            f"the {what} data at '{uri}' changed after it was written (its manifest's SHA-256 is {actual}, "
            f"{expected} was recorded): re-run the step that wrote it (--force it), then train again"
        )
    source = read_manifest(storage, uri)
    stored = []
    for entry, part in zip(source.files, source.uris, strict=True):
        try:
            copy = storage.snapshot_file(part, entry["sha256"], folder, ".parquet")
        except StorageError as exc:
            raise DataValidationError(
                f"file '{part}' of the {what} data no longer matches its recorded SHA-256 ({exc}): re-run the step "
                "that wrote it (--force it), then train again"
            ) from exc
        stored.append({**entry, "name": copy.uri.rsplit("/", 1)[-1]})
    text = Manifest(folder.rstrip("/") + "/", stored).text()
    import hashlib

    sha = hashlib.sha256(text).hexdigest()
    target = folder.rstrip("/") + f"/{sha}.json"
    if storage.exists(target):
        return storage.snapshot_file(target, sha, folder, ".json")
    return storage.write_bytes(text, target)


def verify(storage: Storage, uri: str) -> None:
    """Every file of a partitioned dataset still matches the SHA-256 its manifest records (a snapshot read again)."""
    for entry, part in zip(read_manifest(storage, uri).files, read_manifest(storage, uri).uris, strict=True):
        actual = storage.sha256(part)
        if actual != entry["sha256"]:
            raise DataValidationError(
                f"snapshot file '{part}' was changed after it was stored: its SHA-256 is {actual}, its manifest "
                f"records {entry['sha256']}. Restore it from a backup (or a bucket version), or train on current data"
            )


def input_files(storage: Storage, uri: str) -> list[str] | None:
    """The table files of an input folder (CSV or Parquet, by name, without hidden or ``_`` files), in name order;
    None when ``uri`` is not a folder."""
    fs, path = storage.filesystem(uri)
    if not storage.exists(uri) or not fs.isdir(path):
        return None
    protocol = uri.split("://", 1)[0] + "://" if "://" in uri else ""
    found = []
    for item in sorted(fs.ls(path, detail=False)):
        name = str(item).rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith(("_", ".")) and name.lower().endswith((".csv", ".parquet")):
            found.append(f"{protocol}{item}" if protocol and not str(item).startswith(protocol) else str(item))
    suffixes = {f.rsplit(".", 1)[-1].lower() for f in found}
    if not found or len(suffixes) > 1:
        raise StorageError(
            f"input folder '{uri}' holds {'no' if not found else 'both CSV and Parquet'} table files: put the "
            "dataset's .csv or .parquet files (one kind) in it"
        )
    return found
