"""Digests remembered by file stat across runs: hashed once, hashed again when size, mtime or inode change."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from mlsteps.reuse.local import DigestCache


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    calls: list[str] = []

    def digest_of(path: Path):
        def compute() -> str:
            calls.append(str(path))
            return hashlib.sha256(path.read_bytes()).hexdigest()

        return compute

    return calls, digest_of


def test_a_file_is_hashed_once_across_processes_while_its_stat_holds(tmp_path: Path, counted) -> None:
    calls, digest_of = counted
    data = tmp_path / "raw.csv"
    data.write_text("a\n1\n")

    first = DigestCache().digest(str(data), digest_of(data))
    again = DigestCache().digest(str(data), digest_of(data))  # a new process: read from the state file

    assert first == again == hashlib.sha256(b"a\n1\n").hexdigest()
    assert calls == [str(data)]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p.write_text("a\n2\n"), id="same size, new content and mtime"),
        pytest.param(lambda p: os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9)), id="mtime only"),
        pytest.param(
            lambda p: (p.with_suffix(".new").write_text("a\n3\n"), os.replace(p.with_suffix(".new"), p)),
            id="replaced (new inode)",
        ),
    ],
)
def test_any_stat_change_hashes_the_file_again(tmp_path: Path, counted, change) -> None:
    calls, digest_of = counted
    data = tmp_path / "raw.csv"
    data.write_text("a\n1\n")
    DigestCache().digest(str(data), digest_of(data))

    change(data)
    value = DigestCache().digest(str(data), digest_of(data))

    assert len(calls) == 2
    assert value == hashlib.sha256(data.read_bytes()).hexdigest()


def test_a_corrupt_cache_file_is_only_a_miss(tmp_path: Path, counted) -> None:
    calls, digest_of = counted
    data = tmp_path / "raw.csv"
    data.write_text("a\n1\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "digests.json").write_text("[broken")

    assert DigestCache().digest(str(data), digest_of(data)) == hashlib.sha256(b"a\n1\n").hexdigest()
    assert len(calls) == 1
