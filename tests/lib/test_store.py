"""The tracking store: a damaged SQLite file is named as such; looking without creating leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlsteps.config import load_config
from mlsteps.errors import TrackingError
from mlsteps.store import connect, owner_is_gone, process_identity


def test_a_damaged_sqlite_store_is_named_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 100)
    settings = load_config("local", env={"PIPELINE_TRACKING_URI": f"sqlite:///{db}"})

    with pytest.raises(TrackingError) as caught:
        connect(settings)

    assert f"the SQLite file {db} is damaged" in str(caught.value)
    assert "move it aside" in str(caught.value)


def test_looking_without_creating_leaves_no_store_behind(tmp_path: Path) -> None:
    settings = load_config("local", env={"PIPELINE_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})

    assert connect(settings, create=False) is None
    assert list(tmp_path.iterdir()) == []


def test_a_process_identity_tells_a_live_owner_from_an_ended_one() -> None:
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(child.pid)
    child.wait()

    assert owner_is_gone(process_identity(os.getpid())) is False
    assert owner_is_gone(identity) is True
    # Another boot or PID namespace: this process cannot tell, so it must not close the run.
    assert owner_is_gone("another-boot/4026531836/1/100") is None
