"""Copier task: copy the new project's data file into its data/raw/ folder.

Run by Copier's own Python (the project's dependencies are not installed yet), in the new project's folder, as
    python .copier/add_data.py DATA_FILE DESTINATION
where DESTINATION is the project folder as given to `copier copy`. A relative DATA_FILE is read from the folder
copier was started in. Not part of generated projects.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path


def started_in(project: Path, destination: str) -> Path | None:
    """The folder copier was started in: the one from which DESTINATION leads to this project."""
    given = Path(destination)
    if given.is_absolute():
        return Path(os.environ["PWD"]) if os.environ.get("PWD") else None
    candidates = [Path(os.environ["PWD"])] if os.environ.get("PWD") else []
    if ".." not in given.parts:
        candidates.append(project.parents[len(given.parts) - 1] if given.parts else project)
    return next((c for c in candidates if (c / given).resolve() == project.resolve()), None)


def add_data(data_file: str, destination: str, project: Path) -> Path:
    source = Path(data_file).expanduser()
    if not source.is_absolute():
        origin = started_in(project, destination)
        if origin is None:
            raise SystemExit(
                f"error: cannot tell which folder the relative data file '{data_file}' is in: give its absolute path"
            )
        source = origin / source
    if not source.is_file():
        raise SystemExit(
            f"error: the data file '{source}' does not exist or is not a file: check the path "
            "(a relative one is read from the folder copier was started in)"
        )
    folder = project / "data" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        shutil.copymode(source, tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: add_data.py DATA_FILE DESTINATION")
    written = add_data(sys.argv[1], sys.argv[2], Path.cwd())
    print(f"copied {sys.argv[1]} to {written.relative_to(Path.cwd())} ({written.stat().st_size:,} bytes)")
