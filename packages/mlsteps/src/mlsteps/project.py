"""Where the project is: the folder that holds its ``config/`` and its steps under ``src/``.

The library is installed, the project is not: its root is ``PIPELINE_PROJECT_ROOT`` when set (``src/main.py``
sets it to the folder above itself), else the nearest folder from the working directory upwards with both a
``config/`` and a ``src/`` folder, else the working directory. Read once, with the standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def find_root(start: Path | None = None) -> Path:
    """The project's root folder (see the module's docstring)."""
    given = os.environ.get("PIPELINE_PROJECT_ROOT")
    if given:
        return Path(given).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "config").is_dir() and (folder / "src").is_dir():
            return folder
    return here


ROOT = find_root()
SRC = ROOT / "src"
# The project's steps are imported as ``src.<package>.<module>``: its root must be importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
