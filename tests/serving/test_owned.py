"""Folders a live process owns: what a killed one left is found by the next, a live one's never."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from mlsteps.serving.owned import claim, dead, owned_folder, remove_dead

HOLD = (
    "import sys, time; from pathlib import Path; from mlsteps.serving.owned import claim; "
    "o = claim(Path(sys.argv[1]), 'x-'); print(o.path, flush=True); time.sleep(60)"
)


def test_a_killed_owners_folder_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    folder = Path(holder.stdout.readline().strip())
    (folder / "model.pkl").write_bytes(b"weights")
    mine = claim(tmp_path, "x-")

    kept = remove_dead(tmp_path, "x-")
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    removed = remove_dead(tmp_path, "x-")

    assert kept == 0 and removed == 1
    assert not folder.exists() and mine.path.is_dir()
    mine.release(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_an_owned_folder_goes_with_its_block_and_is_never_handled_twice(tmp_path: Path) -> None:
    with owned_folder(tmp_path, "m-") as folder:
        assert folder.is_dir() and folder.name.startswith("m-")
        assert list(dead(tmp_path, "m-")) == []
    assert not folder.exists()
