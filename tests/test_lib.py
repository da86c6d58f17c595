"""The project's own helpers (src/lib/)."""

from __future__ import annotations

import pandas as pd

from src.lib import share


def test_share_is_missing_where_the_whole_is_zero() -> None:
    result = share(pd.Series([1.0, 2.0, 3.0]), pd.Series([2.0, 0.0, 4.0]))

    assert result.iloc[0] == 0.5 and pd.isna(result.iloc[1]) and result.iloc[2] == 0.75
