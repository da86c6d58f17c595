"""The project's own helpers, shared by its steps (the machinery is the library mlsteps, not here).

A step that imports a module from here has that module in its cache key: edit a helper, and the steps that use
it run again on the next run; the others are reused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def share(part: pd.Series, whole: pd.Series) -> pd.Series:
    """``part / whole``, missing (not infinite) where ``whole`` is 0: a ratio feature without division warnings."""
    return part.div(whole.where(whole != 0))
