"""Small helpers that turn column fragments (NumPy arrays) into sorted Arrow tables.

Every table except labs is built as a few fragments of rows (history, courses, rescue
therapy, ...) that are concatenated, ordered by patient and date, de-duplicated on the
contract's natural key and converted to Arrow with exact types.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

Columns = dict[str, np.ndarray]


def concat(fragments: Sequence[Columns]) -> Columns:
    """One set of columns from fragments that all have the same column names."""
    names = fragments[0].keys()
    return {k: np.concatenate([np.asarray(f[k]) for f in fragments]) for k in names}


def take(cols: Columns, index: np.ndarray) -> Columns:
    return {k: v[index] for k, v in cols.items()}


def ordered_unique(cols: Columns, keys: Sequence[str], order: Sequence[str] = ()) -> Columns:
    """Rows sorted by `keys` then `order`; of rows with equal `keys`, the first is kept.

    Fragments listed first win a tie (the sort is stable), so put the rows that must
    survive (e.g. a CNS case's MRI) in the first fragment."""
    sort_by = [cols[k] for k in reversed((*keys, *order))]
    index = np.lexsort(sort_by) if len(cols[keys[0]]) else np.arange(0)
    cols = take(cols, index)
    if len(index) > 1:
        same = np.ones(len(index) - 1, dtype=bool)
        for k in keys:
            same &= cols[k][1:] == cols[k][:-1]
        cols = take(cols, np.flatnonzero(np.r_[True, ~same]))
    return cols


def strings(vocabulary: Sequence[str], codes: np.ndarray) -> pa.Array:
    """Text from codes into `vocabulary`; negative codes are null."""
    codes = np.asarray(codes, dtype=np.int32)
    return pa.array(list(vocabulary), type=pa.string()).take(pa.array(codes, mask=codes < 0))


def ints(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~np.asarray(valid, dtype=bool)
    return pa.array(np.asarray(values, dtype=np.int32), type=pa.int32(), mask=mask)


def floats(values: np.ndarray) -> pa.Array:
    """Float64 with NaN as null."""
    return pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)
