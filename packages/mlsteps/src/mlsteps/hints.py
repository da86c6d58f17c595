"""Commands the messages suggest, written so that they work as printed: the interpreter (and its tools) of the
virtualenv running now, not a bare ``python`` or ``mlflow`` that may be another environment without the project's
libraries. Standard library only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlsteps.project import ROOT


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (``.venv/bin/python``), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def command(*args: str) -> str:
    """The project's command line with ``args``: ``.venv/bin/python src/main.py ARGS``."""
    main = _shown(ROOT / "src" / "main.py")
    return " ".join([_shown(Path(sys.executable)), main, *args])


def tool(name: str, *args: str) -> str:
    """A command-line tool of the running virtualenv (``.venv/bin/mlflow ui``), else its bare name."""
    path = Path(sys.executable).parent / name
    return " ".join([_shown(path) if os.access(path, os.X_OK) else name, *args])
