"""Which installed distributions provide a top-level module, as ``importlib.metadata.packages_distributions``
maps it, found for one module at a time.

``packages_distributions()`` turns the file list of every installed distribution into path objects and parses
every distribution's metadata for its name (about 0.2 s here, paid by every run: the estimator's package is part
of the settings and of the model's requirements). ``providers`` reads the same files as text and parses the names
of the matching distributions only (about 0.01 s).
"""

from __future__ import annotations

import csv
import functools
from importlib.metadata import Distribution, distributions


def providers(module: str) -> list[str]:
    """The names of the installed distributions that provide the top-level module ``module`` (``sklearn`` ->
    ``["scikit-learn"]``), in the order ``packages_distributions`` lists them; [] for none."""
    return [str(dist.metadata["Name"]) for dist in _by_module().get(module, [])]


@functools.cache
def _by_module() -> dict[str, list[Distribution]]:
    """Top-level module -> the distributions providing it, from their file lists read as text, once."""
    found: dict[str, list[Distribution]] = {}
    for dist in distributions():
        for module in _top_level(dist):
            found.setdefault(module, []).append(dist)
    return found


def _top_level(dist: Distribution) -> set[str]:
    """The top-level modules of a distribution: its ``top_level.txt``, else those of its ``.py`` files (what
    ``importlib.metadata`` infers from them: a package's folder, or a module's name)."""
    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    record = dist.read_text("RECORD")
    paths = [row[0] for row in csv.reader(record.splitlines()) if row] if record is not None else dist.files or []
    return {
        path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")
        for path in map(str, paths)
        if path.endswith(".py")
    }
