"""Storage on the local filesystem (S3 is exercised against a real S3-speaking server in the S3 tests)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.errors import StorageError
from mlsteps.storage import Storage
from mlsteps.storage_errors import artifact_store_error, storage_error


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0, None], "b": ["x", "y", "z"]})


@pytest.mark.parametrize("name", ["t.parquet", "t.csv"])
def test_round_trip_and_digest(tmp_path: Path, frame: pd.DataFrame, name: str) -> None:
    uri = str(tmp_path / "nested" / "folder" / name)

    written = Storage().write_table(frame, uri)
    back = Storage().read_table(uri)

    assert written.sha256 == hashlib.sha256(Path(uri).read_bytes()).hexdigest()
    assert written.size == Path(uri).stat().st_size
    assert Storage().sha256(uri) == written.sha256
    assert back["a"].tolist()[:2] == [1.0, 2.0]
    assert back["b"].tolist() == ["x", "y", "z"]


def test_write_leaves_no_temp_file(tmp_path: Path, frame: pd.DataFrame) -> None:
    Storage().write_table(frame, str(tmp_path / "t.parquet"))

    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]


def test_failed_write_keeps_the_previous_file_whole(tmp_path: Path, frame: pd.DataFrame) -> None:
    uri = str(tmp_path / "t.parquet")
    Storage().write_table(frame, uri)
    before = Path(uri).read_bytes()
    unwritable = pd.DataFrame({"a": [object()]})  # pyarrow cannot serialise a bare object

    with pytest.raises(ValueError):  # pyarrow's ArrowInvalid: what matters is what is left on disk
        Storage().write_table(unwritable, uri)

    assert Path(uri).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]


def test_missing_file_names_the_uri(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        Storage().read_table(str(tmp_path / "nope.csv"))

    assert "nope.csv" in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_empty_file_is_reported_as_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")

    with pytest.raises(StorageError) as caught:
        Storage().read_table(str(tmp_path / "empty.csv"))

    assert "is empty" in str(caught.value)


def test_unknown_extension_is_refused(tmp_path: Path, frame: pd.DataFrame) -> None:
    with pytest.raises(StorageError) as caught:
        Storage().write_table(frame, str(tmp_path / "t.xlsx"))

    assert ".parquet or .csv" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere, so permissions cannot be tested as root")
def test_unwritable_folder_is_reported(tmp_path: Path, frame: pd.DataFrame) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)

    with pytest.raises(StorageError) as caught:
        Storage().write_table(frame, str(locked / "t.parquet"))

    assert "cannot write" in str(caught.value)


def test_write_below_a_file_is_reported(tmp_path: Path, frame: pd.DataFrame) -> None:
    (tmp_path / "a_file").write_text("x")

    with pytest.raises(StorageError) as caught:
        Storage().write_table(frame, str(tmp_path / "a_file" / "t.parquet"))

    assert "cannot write" in str(caught.value)
    assert "a_file" in str(caught.value)


def test_a_folder_where_a_file_should_be_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "raw.csv"
    folder.mkdir()

    with pytest.raises(StorageError) as caught:
        Storage().read_table(str(folder))

    assert "is a folder, not a file" in str(caught.value)


def test_a_full_disk_is_said_so() -> None:
    import errno

    error = storage_error("/data/x.parquet", "write", OSError(errno.ENOSPC, "No space left on device"))

    assert "the disk is full" in str(error)


def test_a_failing_artifact_store_is_named_and_other_errors_are_not_taken_for_it() -> None:
    from botocore.exceptions import ConnectionClosedError
    from mlflow.exceptions import MlflowException
    from mlsteps.errors import StorageUnreachable

    # What MLflow raises when a server with proxied artifacts answers 500 to every retry of an upload.
    proxied = MlflowException(
        "API request to http://127.0.0.1:5050/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/MLmodel "
        "failed with exception HTTPConnectionPool(host='127.0.0.1', port=5050): Max retries exceeded with url: "
        "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/MLmodel (Caused by ResponseError('too many 500 "
        "error responses'))"
    )
    direct = ConnectionClosedError(endpoint_url="http://127.0.0.1:9000/bucket/1/abc/artifacts/model/MLmodel")

    named = artifact_store_error(proxied)
    assert isinstance(named, StorageUnreachable)
    assert "the tracking server at http://127.0.0.1:5050 could not store an artifact" in str(named)
    assert "S3" in str(named) and "Traceback" not in str(named)
    assert isinstance(artifact_store_error(direct), StorageUnreachable)
    assert "the S3 endpoint cannot be reached" in str(artifact_store_error(direct))
    # A missing run or a 404 is not the artifact store failing; nor is a step's own error.
    assert artifact_store_error(MlflowException("Run 'abc' not found")) is None
    assert artifact_store_error(MlflowException("API request to http://h/api/2.0/mlflow-artifacts/x: 404")) is None
    assert artifact_store_error(ValueError("could not convert string to float: 'No'")) is None
    down = "API request to http://h:5050/api/2.0/mlflow-artifacts/artifacts/1/5003/x failed with exception Max retries"
    assert artifact_store_error(MlflowException(down + " exceeded (Caused by NewConnectionError: refused)")) is None


def test_a_failed_write_leaves_no_folder_of_its_own_behind(tmp_path: Path) -> None:
    target = tmp_path / "processed" / "run-1" / "train.parquet"
    (tmp_path / "processed").mkdir()

    with pytest.raises(Exception):  # noqa: B017 - what pyarrow raises for an object it cannot store
        Storage().write_table(pd.DataFrame({"a": [object()]}), str(target))

    assert list((tmp_path / "processed").iterdir()) == []  # neither run-1/ nor a temp file


def test_a_damaged_snapshot_is_written_again(tmp_path: Path) -> None:
    import hashlib

    storage = Storage()
    source = tmp_path / "source.parquet"
    source.write_bytes(b"exact bytes")
    sha = hashlib.sha256(b"exact bytes").hexdigest()
    first = storage.snapshot_file(str(source), sha, str(tmp_path / "snapshots"))
    Path(first.uri).write_bytes(b"other bytes")

    again = storage.snapshot_file(str(source), sha, str(tmp_path / "snapshots"))

    assert again.uri == first.uri
    assert Path(again.uri).read_bytes() == b"exact bytes"


def test_uploads_report_the_bytes_sent() -> None:
    import uuid

    sent: list[tuple[int, int]] = []
    storage = Storage(on_upload=lambda uri, done, total: sent.append((done, total)))

    written = storage.write_bytes(b"x" * 5000, f"memory://upload-{uuid.uuid4().hex}/blob.bin")

    assert written.size == 5000
    assert sent and sent[-1] == (5000, 5000)


def test_a_table_read_in_chunks_is_the_table_read_whole(tmp_path: Path) -> None:
    uri = str(tmp_path / "t.csv")
    frame = pd.DataFrame({"a": [1.5, 2.0, None, 4.0, 5.0], "b": list("vwxyz"), "c": [1, 2, 3, 4, 5]})
    Storage().write_table(frame, uri)

    chunks = list(Storage().read_chunks(uri, rows=2))

    assert [len(c) for c in chunks] == [2, 2, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks), Storage().read_table(uri))


def test_a_row_of_the_wrong_width_is_named_before_any_chunk(tmp_path: Path) -> None:
    from mlsteps.errors import DataValidationError

    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4\n5\n6,7\n")

    with pytest.raises(DataValidationError) as caught:
        next(Storage().read_chunks(str(path), rows=1))

    assert "row 3 (line 4): 1 values, expected 2" in str(caught.value)


def test_a_parquet_file_written_in_slices_reads_back_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq
    from mlsteps import storage

    monkeypatch.setattr(storage, "PARQUET_SLICE_ROWS", 3)
    uri = str(tmp_path / "t.parquet")
    frame = pd.DataFrame(
        {
            "a": pd.array([1, None, 3, 4, 5, 6, 7], dtype="Int64"),
            "b": pd.Categorical(list("xyxzzyx")),
            "c": [None, "p", "q", None, "r", "s", "t"],
            "d": [0.5, 1.5, None, 2.5, 3.5, 4.5, 5.5],
        }
    )

    Storage().write_table(frame, uri)

    assert pq.ParquetFile(uri).num_row_groups == 3
    pd.testing.assert_frame_equal(Storage().read_table(uri), frame)
    pd.testing.assert_frame_equal(pd.concat(Storage().read_chunks(uri, rows=2), ignore_index=True), frame)


def test_a_file_snapshot_is_stored_once_by_content_and_mended_when_damaged(tmp_path: Path) -> None:
    source = tmp_path / "train.parquet"
    source.write_bytes(b"PAR1 some bytes PAR1")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    folder = str(tmp_path / "snapshots")

    first = Storage().snapshot_file(str(source), sha, folder)
    again = Storage().snapshot_file(str(source), sha, folder)
    Path(first.uri).write_bytes(b"damaged")
    mended = Storage().snapshot_file(str(source), sha, folder)

    assert first.uri == str(tmp_path / "snapshots" / f"{sha}.parquet")
    assert (first.sha256, first.size) == (sha, source.stat().st_size)
    assert again == first
    assert mended == first
    assert Path(first.uri).read_bytes() == source.read_bytes()


def test_a_source_that_does_not_match_its_digest_leaves_no_snapshot(tmp_path: Path) -> None:
    source = tmp_path / "train.parquet"
    source.write_bytes(b"changed since it was hashed")
    folder = tmp_path / "snapshots"

    with pytest.raises(StorageError) as caught:
        Storage().snapshot_file(str(source), "0" * 64, str(folder))

    assert "changed while it was being copied" in str(caught.value)
    assert not folder.exists()  # not the snapshot, nor the folder the failed write made
