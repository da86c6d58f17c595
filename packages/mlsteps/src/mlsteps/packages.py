"""Which installed distribution provides a top-level module: ``packages_distributions``, read once per process.

``importlib.metadata.packages_distributions()`` reads the file list of every installed distribution (about
0.3 s here); the estimator's package is asked for by every dump of the settings and by the model's requirements.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping


@functools.cache
def distributions() -> Mapping[str, list[str]]:
    """Top-level module name -> the distributions that provide it."""
    from importlib.metadata import packages_distributions

    return packages_distributions()
