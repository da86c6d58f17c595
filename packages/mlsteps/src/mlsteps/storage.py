"""The one I/O layer: read and write datasets by URI, local paths and ``s3://`` alike (through fsspec).

Writes are atomic: the bytes go to a temporary file first and appear under the final name only when complete
(a local rename, or a single S3 upload that S3 makes visible only once it has finished).
Credentials come from the standard AWS chain; ``AWS_ENDPOINT_URL`` points at an S3-compatible store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsteps.errors import StorageError
from mlsteps.local_files import hash_file, missing_folders, remove_empty, write_parquet
from mlsteps.reuse.local import DigestCache
from mlsteps.storage_errors import is_auth_error, is_transient, storage_error
from mlsteps.tables import CsvOptions, read_chunks, read_frame
from mlsteps.uris import is_remote, local_path, suffix_or_empty, table_suffix

if TYPE_CHECKING:
    import fsspec
    import pandas as pd

logger = logging.getLogger(__name__)

_CHUNK = 8 * 1024 * 1024
# Rows converted to Arrow at a time when a frame is written as Parquet (one row group each): the frame is never
# held twice, as pandas and as Arrow.
PARQUET_SLICE_ROWS = 500_000


@dataclass(frozen=True)
class WrittenFile:
    """What a write produced: where, how many bytes, and their SHA-256."""

    uri: str
    sha256: str
    size: int


@dataclass
class Storage:
    """Reads and writes datasets by URI. One instance per environment (it carries the AWS profile/region)."""

    profile: str | None = None
    region: str | None = None
    # S3 requests: bounded, so that a dead endpoint is reported in seconds, not minutes.
    connect_timeout: float = 3.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    # The S3 endpoint; None: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL of this process (a copy sent to Dask workers
    # carries the client's, so that a worker never falls back to AWS's own endpoint).
    endpoint_url: str | None = None
    # Called as uploads progress: (uri, bytes sent, bytes in all).
    on_upload: Callable[[str, int, int], None] | None = field(default=None, repr=False)
    _filesystems: dict[str, Any] = field(default_factory=dict, repr=False)
    # Local fingerprints by (path, size, mtime): a pipeline plans, then runs, and must not hash a large file twice.
    _digests: DigestCache = field(default_factory=DigestCache, repr=False)

    @classmethod
    def for_settings(cls, settings: Any) -> Storage:
        """The storage of an environment: its AWS profile, region, timeouts and attempts."""
        aws = settings.aws
        return cls(
            profile=aws.profile,
            region=aws.region,
            connect_timeout=aws.connect_timeout,
            read_timeout=aws.read_timeout,
            max_attempts=aws.max_attempts,
        )

    def portable(self) -> Storage:
        """A copy to send to Dask workers: the same settings and endpoint, no callback, filesystems or digests."""
        settings = (self.profile, self.region, self.connect_timeout, self.read_timeout, self.max_attempts)
        return Storage(*settings, endpoint_url=self._endpoint())

    def _endpoint(self) -> str | None:
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")

    def options(self, uri: str) -> dict[str, Any]:
        """fsspec ``storage_options`` for ``uri`` (what Dask's readers take): for S3, the profile, region, endpoint."""
        if not uri.startswith("s3://"):
            return {}
        options: dict[str, Any] = {"profile": self.profile} if self.profile else {}
        if self.region:
            options["client_kwargs"] = {"region_name": self.region}
        endpoint = self._endpoint()
        return options | ({"endpoint_url": endpoint} if endpoint else {})

    # -- filesystems -------------------------------------------------------------------------------------------
    def filesystem(self, uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem for a URI and the path inside it."""
        protocol = uri.split("://", 1)[0] if "://" in uri else "file"
        if protocol not in self._filesystems:
            self._filesystems[protocol] = self._make_filesystem(protocol)
        fs = self._filesystems[protocol]
        return fs, fs._strip_protocol(uri) if protocol != "file" else os.path.abspath(local_path(uri))

    def _make_filesystem(self, protocol: str) -> fsspec.AbstractFileSystem:
        import fsspec

        if protocol == "s3":
            options: dict[str, Any] = {
                # One filesystem per Storage: credentials are looked up afresh, not taken from another instance.
                "skip_instance_cache": True,
                # Transient errors (throttling, 5xx, dropped connections) are retried with backoff by botocore,
                # a bounded number of times; s3fs's own retries are bounded the same way.
                "config_kwargs": {
                    "connect_timeout": self.connect_timeout,
                    "read_timeout": self.read_timeout,
                    "retries": {"max_attempts": self.max_attempts, "mode": "standard"},
                },
            }
            if self.profile:
                options["profile"] = self.profile
            if self.region:
                options["client_kwargs"] = {"region_name": self.region}
            endpoint = self._endpoint()
            if endpoint:
                options["endpoint_url"] = endpoint
            fs = fsspec.filesystem("s3", **options)
            fs.retries = 1  # botocore retries (above); s3fs's own loop on top would multiply the attempts
            return fs
        try:
            return fsspec.filesystem(protocol)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"no filesystem for '{protocol}://' URIs: {exc}") from exc

    # -- reading -----------------------------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        fs, path = self.filesystem(uri)
        return self._call(uri, "check", fs.exists, path)

    def read_table(self, uri: str, columns: list[str] | None = None, csv: CsvOptions | None = None) -> pd.DataFrame:
        """Read a CSV or Parquet dataset (chosen by extension)."""
        suffix = self._readable(uri)
        fs, path = self.filesystem(uri)
        with self._parsing(uri, suffix), fs.open(path, "rb") as handle:
            return read_frame(handle, uri, suffix, csv, columns)

    def read_chunks(self, uri: str, rows: int, csv: CsvOptions | None = None) -> Iterator[pd.DataFrame]:
        """Read a CSV or Parquet dataset ``rows`` rows at a time: a file larger than memory is never held whole.

        The file is checked to exist now; it is opened, and its problems reported (as ``read_table`` reports
        them), as the chunks are taken.
        """
        suffix = self._readable(uri)
        fs, path = self.filesystem(uri)

        def chunks() -> Iterator[pd.DataFrame]:
            with self._parsing(uri, suffix), fs.open(path, "rb") as handle:
                yield from read_chunks(handle, uri, suffix, rows, csv)

        return chunks()

    def _readable(self, uri: str) -> str:
        """The table format of ``uri``, once it is known to be a file."""
        suffix = table_suffix(uri)
        fs, path = self.filesystem(uri)
        if not self._call(uri, "check", fs.exists, path):
            raise StorageError(f"dataset '{uri}' does not exist: check data.root and the dataset path in the config")
        if self._call(uri, "check", fs.isdir, path):
            raise StorageError(f"dataset '{uri}' is a folder, not a file: point the catalog entry at the file in it")
        return suffix

    @contextlib.contextmanager
    def _parsing(self, uri: str, suffix: str) -> Iterator[None]:
        """Failures to read or parse a table, as a StorageError that names the file and the problem."""
        import pandas as pd

        try:
            yield
        except pd.errors.EmptyDataError as exc:
            raise StorageError(f"dataset '{uri}' is empty: it has no header and no rows") from exc
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
            if isinstance(exc, PermissionError | FileNotFoundError) or is_auth_error(exc) or is_transient(exc):
                raise storage_error(uri, "read", exc) from exc
            raise StorageError(f"dataset '{uri}' cannot be parsed as {suffix[1:]}: {exc}") from exc

    def fingerprint(self, uri: str) -> str:
        """A digest of an object's content: SHA-256 of local files; for S3, the ETag and size (no download)."""
        if not is_remote(uri):
            return self._local_fingerprint(uri)
        fs, path = self.filesystem(uri)
        info = self._call(uri, "read", fs.info, path)
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
        if not etag:
            return "sha256:" + self.sha256(uri)
        return f"etag:{etag}:{info.get('size')}"

    def _local_fingerprint(self, uri: str) -> str:
        # Hashed again only when the file's size, mtime or inode changed since any earlier run (mlsteps.reuse.local).
        return self._digests.digest(local_path(uri), lambda: "sha256:" + self.sha256(uri))

    def sha256(self, uri: str) -> str:
        """SHA-256 of an object's bytes, streamed."""
        fs, path = self.filesystem(uri)
        digest = hashlib.sha256()
        if not self._call(uri, "check", fs.exists, path):
            raise StorageError(f"dataset '{uri}' does not exist: check data.root and the dataset path in the config")
        try:
            with fs.open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except Exception as exc:
            raise storage_error(uri, "read", exc) from exc
        return digest.hexdigest()

    # -- writing -----------------------------------------------------------------------------------------------
    def write_table(self, df: pd.DataFrame | Any, uri: str) -> WrittenFile:
        """Write a DataFrame as Parquet or CSV (by extension), atomically; an Arrow table too (the inference log's,
        written as it is, without a pandas frame on the way)."""
        import pyarrow as pa

        if isinstance(df, pa.Table):
            import pyarrow.parquet as pq

            table = df
            if table_suffix(uri) != ".parquet":
                return self.write_table(table.to_pandas(), uri)
            written = self._write_via(uri, lambda tmp: pq.write_table(table, tmp))
            logger.info(
                "wrote %s (%d rows, %d columns, %s bytes)", uri, table.num_rows, table.num_columns, written.size
            )
            return written
        if table_suffix(uri) == ".parquet":
            written = self._write_via(uri, lambda tmp: write_parquet(df, tmp, PARQUET_SLICE_ROWS))
        else:
            written = self._write_via(uri, lambda tmp: df.to_csv(tmp, index=False))
        logger.info("wrote %s (%d rows, %d columns, %s bytes)", uri, len(df), df.shape[1], f"{written.size:,}")
        return written

    def write_bytes(self, data: bytes, uri: str) -> WrittenFile:
        """Write raw bytes atomically."""
        return self._write_via(uri, lambda tmp: Path(tmp).write_bytes(data))

    def snapshot_file(self, source: str, sha: str, folder: str, suffix: str = ".parquet") -> WrittenFile:
        """Store a copy of the file ``source``, whose SHA-256 is ``sha``, content-addressed under ``folder``
        (``<sha><suffix>``), once; streamed, never held in memory. A stored copy that no longer matches its name
        is written again; a source whose bytes change while being copied is refused (nothing is stored)."""
        uri = folder.rstrip("/") + f"/{sha}{suffix}"
        if self.exists(uri):
            if self.sha256(uri) == sha:
                logger.info("snapshot %s already stored", uri)
                fs, path = self.filesystem(uri)
                return WrittenFile(uri=uri, sha256=sha, size=int(self._call(uri, "check", fs.info, path)["size"]))
            logger.warning("snapshot %s was damaged (its content no longer matches its name): writing it again", uri)
        src_fs, src_path = self.filesystem(source)

        def copy(tmp: str) -> None:
            digest = hashlib.sha256()
            with src_fs.open(src_path, "rb") as reader, open(tmp, "wb") as writer:
                while chunk := reader.read(_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
            if digest.hexdigest() != sha:
                raise StorageError(
                    f"'{source}' changed while it was being copied to {uri}: run again once nothing writes to it"
                )

        written = self._write_via(uri, copy)
        logger.info("stored snapshot %s (%s bytes)", uri, f"{written.size:,}")
        return written

    def ensure_writable(self, uri: str) -> None:
        """Fail early, with the reason, if nothing can be written under the folder ``uri``."""
        probe = uri.rstrip("/") + f"/.write-probe-{uuid.uuid4().hex}"
        self.write_bytes(b"", probe)
        fs, path = self.filesystem(probe)
        self._call(probe, "delete", fs.rm_file, path)

    def _write_via(self, uri: str, writer: Callable[[str], object]) -> WrittenFile:
        """Let ``writer`` fill a temp file, hash it, then move it to ``uri`` in one step (or upload it whole)."""
        fs, path = self.filesystem(uri)
        local = not is_remote(uri)
        tmp_dir = os.path.dirname(path) if local else None
        # The folders this write makes (a run's <run id>/, say): removed again when the write fails.
        made = missing_folders(tmp_dir) if tmp_dir else []
        try:
            if tmp_dir:
                os.makedirs(tmp_dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix_or_empty(uri), dir=tmp_dir)
            os.close(fd)
        except OSError as exc:
            remove_empty(made)
            raise storage_error(uri, "write", exc) from exc
        try:
            writer(tmp)
            sha, size = hash_file(tmp)
            if local:
                os.replace(tmp, path)
            else:
                self._call(uri, "write", self._upload, fs, tmp, path, uri, size)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            remove_empty(made)
            if isinstance(exc, OSError):
                raise storage_error(uri, "write", exc) from exc
            raise
        return WrittenFile(uri=uri, sha256=sha, size=size)

    def _upload(self, fs: Any, tmp: str, path: str, uri: str, size: int) -> None:
        from fsspec.callbacks import Callback

        report = self.on_upload
        if report is None:
            fs.put_file(tmp, path)
            return

        def sent(value: int) -> None:
            report(uri, value, size)

        class _Sent(Callback):
            def call(self, *args: Any, **kwargs: Any) -> None:
                sent(int(self.value))

        fs.put_file(tmp, path, callback=_Sent(size=size))

    # -- errors ------------------------------------------------------------------------------------------------
    def _call(self, uri: str, verb: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except StorageError:
            raise
        except Exception as exc:
            raise storage_error(uri, verb, exc) from exc
