"""Verdict-frame columns as numpy arrays, without copying what need not be copied.

Why a module: episodes and order correlation both turn ten million rows of a verdict
frame into integer arrays; done naively (``to_numpy`` on a categorical or an Arrow
column, ``pd.to_datetime`` and ``as_unit`` on times) each step materialises ten million
Python objects or another 80 MB copy, which is most of an analysis' peak memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
#: NaT as an int64 (numpy's and pandas' missing time).
NAT = np.iinfo(np.int64).min


def codes(values: pd.Series) -> tuple[np.ndarray, list[object]]:
    """Integer codes of a column (``-1`` for missing) and the values they stand for.

    Why: comparing ten million strings costs seconds; a categorical hashes each value
    once, and the work after it is on integers and on the few distinct values.  A column
    that is already categorical (:func:`analysis.verdicts.compact_verdicts`) is not
    hashed again, and its codes stay as narrow as they are (int8 for a few values)."""
    cat = pd.Categorical(values)
    return np.asarray(cat.codes), list(cat.categories)


def utc_times(column: pd.Series) -> tuple[np.ndarray, int]:
    """The times as int64 in the column's own unit (UTC), and nanoseconds per unit.

    A column of UTC datetimes (what verdict frames hold) is read as a view of its data;
    anything else is parsed first.  Scale only what is kept (:func:`in_ns`)."""
    if not isinstance(column.dtype, pd.DatetimeTZDtype):
        column = pd.to_datetime(column, utc=True)
    utc = column.dt.tz_convert(None).to_numpy()  # a view: datetime64[unit], no zone
    return utc.view(np.int64), _NS_PER_UNIT[column.dt.unit]


def in_ns(times: np.ndarray, per_unit: int) -> np.ndarray:
    """``times`` (a copy the caller owns) scaled to nanoseconds in place, NaT kept."""
    if per_unit != 1:
        nat = times == NAT
        times *= per_unit
        times[nat] = NAT
    return times
