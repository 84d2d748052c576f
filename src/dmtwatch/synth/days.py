"""Dates as day numbers (days since 1970-01-01, Arrow's date32), so all date arithmetic
over hundreds of thousands of patients is plain integer NumPy."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

NEVER = np.int32(2**30)  # "no such day": later than any real date, still fits int32
_EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """The day number of a calendar date."""
    return (d - _EPOCH).days


def uniform_days(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    """Whole numbers of days drawn uniformly from [low, high] (both may be arrays)."""
    return np.floor(rng.uniform(low, high + 1, size)).astype(np.int32)


def date_array(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow date32 array from day numbers; rows where `valid` is False are null."""
    days = np.asarray(days, dtype=np.int32)
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    return pa.array(days, type=pa.int32(), mask=mask).view(pa.date32())
