"""Stable per-row keys, and choosing rows by them: the train/test split and the training sample, alike on both engines.

A row's key is a 64-bit hash of its id (of every column, without an id column), mixed with a seed. A split takes,
in each group (a class of the target when stratified, else all rows), the ``k`` rows with the smallest keys: which
side a row falls on depends on its own key and the group's threshold only, never on the order or the partitioning
of the rows, so the pandas engine and the Dask engine choose the same rows from the same data.

On pandas the thresholds are read from the sorted keys; on Dask in two passes over the partitions: a histogram of
each group's keys (their top 16 bits), then the keys of the one bin where each threshold falls, gathered and sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlsteps.engine import is_dask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ALL = "__all__"  # the one group when rows are not stratified
_BITS = 16  # histogram bins: 2**16 per group
_SHIFT = 64 - _BITS


def column_hash(column: pd.Series) -> np.ndarray:
    """A uint64 hash per value, equal for values ``duplicated`` takes as equal (NaN and NA alike, 0.0 and -0.0),
    and for the same number whatever its type (an id read as int64 by pandas and as float64 by another reader)."""
    import numpy as np
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if isinstance(column.dtype, pd.CategoricalDtype):  # each category hashed once, as its value would be
        categories = column.cat.categories.astype("object").to_numpy(dtype=object)
        hashed = pd.util.hash_array(np.append(categories, np.array([None], dtype=object)))
        return hashed[column.cat.codes.to_numpy()]  # code -1 (a missing value): the last, None's
    if is_numeric_dtype(column.dtype) or is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # + 0.0 turns -0.0 into 0.0
        values[np.isnan(values)] = np.nan  # one NaN for all
        return pd.util.hash_array(values)
    return pd.util.hash_array(column.to_numpy(dtype=object, na_value=None))


def row_hash(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:
    """A uint64 hash per row over ``columns`` (all, by default), column by column."""
    import numpy as np

    hashes = np.zeros(len(frame), dtype="uint64")
    for name in columns if columns is not None else frame.columns:
        hashes = hashes * np.uint64(1_000_003) + column_hash(frame[name])
    return hashes


def keys(frame: pd.DataFrame, columns: Sequence[str], seed: int) -> np.ndarray:
    """Each row's key: the hash of ``columns`` mixed with ``seed`` (splitmix64's finalizer: every bit of the hash
    and of the seed moves every bit of the key)."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = row_hash(frame, columns) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _groups(frame: pd.DataFrame, group: str | None) -> np.ndarray:
    import numpy as np

    if group is None:
        return np.full(len(frame), ALL, dtype=object)
    return frame[group].astype("object").where(frame[group].notna(), None).astype(str).to_numpy(dtype=object)


@dataclass
class Chooser:
    """Chooses, per group of ``group``'s values, the rows with the smallest keys (of ``columns``, seeded)."""

    frame: Any
    columns: list[str]
    group: str | None
    seed: int
    counts: dict[str, int] = field(init=False)
    _histograms: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np

        if is_dask(self.frame):
            import dask

            parts = self._needed().to_delayed()
            found = dask.compute(*[dask.delayed(_histogram)(p, self.columns, self.group, self.seed) for p in parts])
            merged: dict[str, Any] = {}
            for part in found:
                for name, counts in part.items():
                    merged[name] = merged[name] + counts if name in merged else counts
            self._histograms = merged
        else:
            self._histograms = _histogram(self.frame, self.columns, self.group, self.seed)
        self.counts = {name: int(np.sum(h)) for name, h in sorted(self._histograms.items())}

    def thresholds(self, wanted: dict[str, int]) -> tuple[dict[str, int | None], dict[str, int]]:
        """For each group, the key below which its ``wanted[group]`` smallest keys lie (None: every row), and how
        many rows lie below it (fewer than wanted only when keys tie at the threshold)."""
        import numpy as np

        bins: dict[str, tuple[int, int]] = {}  # group -> (bin holding the threshold, rows in the bins below it)
        limits: dict[str, int | None] = {}
        chosen: dict[str, int] = {}
        for name, k in wanted.items():
            total = self.counts.get(name, 0)
            if k >= total:
                limits[name], chosen[name] = None, total
                continue
            cumulative = np.cumsum(self._histograms[name])
            index = int(np.searchsorted(cumulative, k, side="right"))
            bins[name] = (index, int(cumulative[index - 1]) if index else 0)
        if bins:
            targets = {name: b for name, (b, _) in bins.items()}
            if is_dask(self.frame):
                import dask

                parts = self._needed().to_delayed()
                gathered = dask.compute(
                    *[dask.delayed(_keys_in_bins)(p, self.columns, self.group, self.seed, targets) for p in parts]
                )
            else:
                gathered = (_keys_in_bins(self.frame, self.columns, self.group, self.seed, targets),)
            for name, (_, below) in bins.items():
                in_bin = np.sort(np.concatenate([g.get(name, np.empty(0, "uint64")) for g in gathered]))
                limit = int(in_bin[wanted[name] - below])
                limits[name] = limit
                chosen[name] = below + int(np.searchsorted(in_bin, np.uint64(limit), side="left"))
        return limits, chosen

    def _needed(self) -> Any:
        """Only the columns the keys and groups are made of (a Parquet dataset reads no other)."""
        return self.frame[list(dict.fromkeys([*self.columns, *([self.group] if self.group else [])]))]

    def choose(self, limits: dict[str, int | None], chosen: bool = True) -> Any:
        """The rows below their group's threshold (``chosen=False``: the others), in their order (lazily on Dask)."""
        if is_dask(self.frame):
            return self.frame.map_partitions(_choose, self.columns, self.group, self.seed, limits, chosen)
        return _choose(self.frame, self.columns, self.group, self.seed, limits, chosen)


def _histogram(frame: pd.DataFrame, columns: list[str], group: str | None, seed: int) -> dict[str, Any]:
    import numpy as np

    top = (keys(frame, columns, seed) >> np.uint64(_SHIFT)).astype("int64")
    names = _groups(frame, group)
    return {str(name): np.bincount(top[names == name], minlength=1 << _BITS) for name in set(names.tolist())}


def _keys_in_bins(
    frame: pd.DataFrame, columns: list[str], group: str | None, seed: int, bins: dict[str, int]
) -> dict[str, Any]:
    import numpy as np

    values = keys(frame, columns, seed)
    top = (values >> np.uint64(_SHIFT)).astype("int64")
    names = _groups(frame, group)
    return {name: values[(names == name) & (top == b)] for name, b in bins.items()}


def _choose(
    frame: pd.DataFrame, columns: list[str], group: str | None, seed: int, limits: dict[str, int | None], chosen: bool
) -> pd.DataFrame:
    import numpy as np

    values = keys(frame, columns, seed)
    names = _groups(frame, group)
    below = np.zeros(len(frame), dtype=bool)
    for name, limit in limits.items():
        in_group = names == name
        below |= in_group if limit is None else in_group & (values < np.uint64(limit))
    return frame[below if chosen else ~below]


def allocate(counts: dict[str, int], total: int) -> dict[str, int]:
    """``total`` rows shared among the groups in proportion to their ``counts`` (largest remainders; each group
    with rows gets at least one while there are enough)."""
    rows = sum(counts.values())
    if rows == 0:
        return dict.fromkeys(counts, 0)
    exact = {name: total * n / rows for name, n in counts.items()}
    shares = {name: min(counts[name], int(value)) for name, value in exact.items()}
    for name in sorted(exact, key=lambda n: (shares[n] - exact[n], n)):
        if sum(shares.values()) >= total:
            break
        if shares[name] < counts[name]:
            shares[name] += 1
    for name, count in counts.items():
        if shares[name] == 0 and count and total >= len(counts):
            donor = max(shares, key=lambda n: shares[n])
            shares[donor] -= 1
            shares[name] = 1
    return shares
