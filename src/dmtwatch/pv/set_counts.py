"""Unique-report pair counts of :class:`ReportSets` by one sparse matrix product.

With D the 0/1 report x drug matrix and V the report x event one, (D^T V)[d, e] is the
number of reports naming both drug d and event e: the unique-report count of the pair,
because a report's pairs are all its drug-event combinations. The margins are column
sums, the expected counts products of them, so nothing runs per row of the long table.
Only reports with at least one drug and one event count (N, the margins, the strata),
as in the row-wise count of :mod:`dmtwatch.pv.counts`, where other reports have no row;
tests/test_pv_counts.py checks that both counts agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from numpy.typing import NDArray

from dmtwatch.pv.report_sets import ReportSets, incidence


def count_report_sets(
    sets: ReportSets, strata: Sequence[str] | None = None
) -> tuple[pa.Table, int]:
    """Pairs (drug, event, n, n_drug, n_event, n_total, expected) in (drug, event) order,
    and the number of reports counted, as :func:`dmtwatch.pv.counts.count_pairs` gives."""
    strata = list(strata or [])
    missing = [s for s in strata if s not in sets.strata]
    if missing:
        raise ValueError(f"no stratum column {', '.join(missing)} (have {sets.strata})")
    drug_names, drug_rank = _name_order(sets.drug_names)
    event_names, event_rank = _name_order(sets.event_names)
    n = sets.num_reports
    drugs = incidence(sets.drug_report, _recode(sets.drug, drug_rank), n, len(drug_names))
    events = incidence(sets.event_report, _recode(sets.event, event_rank), n, len(event_names))
    counted = (np.diff(drugs.indptr) > 0) & (np.diff(events.indptr) > 0)
    if not counted.all():
        drugs, events = drugs[counted], events[counted]
    n_total = int(counted.sum())
    n_drug = np.bincount(drugs.indices, minlength=len(drug_names)).astype(np.int64)
    n_event = np.bincount(events.indices, minlength=len(event_names)).astype(np.int64)

    pairs = drugs.T.tocsr() @ events  # drug x event: reports naming both
    pairs.sort_indices()
    pair_drug = np.repeat(np.arange(len(drug_names)), np.diff(pairs.indptr))
    pair_event = pairs.indices
    if strata:
        stratum = stratum_codes(sets.reports, strata)[counted]
        expected = _stratified_expected(drugs, events, stratum, pair_drug, pair_event)
    else:
        expected = n_drug[pair_drug].astype(np.float64) * n_event[pair_event] / max(n_total, 1)
    table = pa.table(
        {
            "drug": drug_names.take(pair_drug),
            "event": event_names.take(pair_event),
            "n": pairs.data.astype(np.int64),
            "n_drug": n_drug[pair_drug],
            "n_event": n_event[pair_event],
            "n_total": np.full(pair_drug.size, n_total, dtype=np.int64),
            "expected": expected,
        }
    )
    return table, n_total


def _name_order(names: pa.Array) -> tuple[pa.Array, NDArray[np.int32]]:
    """The distinct names in sort order (as ORDER BY gives them) and each code's place
    among them, so pairs come out sorted and two codes of one name count as one."""
    distinct = pc.unique(names)
    distinct = distinct.take(pc.sort_indices(distinct))
    return distinct, pc.index_in(names, value_set=distinct).to_numpy().astype(np.int32)


def _recode(codes: NDArray[np.int32], rank: NDArray[np.int32]) -> NDArray[np.int32]:
    """Codes into name order; no copy when they already are (sorted, distinct names)."""
    return codes if np.array_equal(rank, np.arange(rank.size)) else rank[codes]


def stratum_codes(reports: pa.Table, strata: Sequence[str]) -> NDArray[np.intp]:
    """One code per report for its combination of stratum values.

    A missing value is the empty string, as in the row-wise count (which coalesces to '').
    """
    key, space = np.zeros(reports.num_rows, dtype=np.int64), 1
    for name in strata:
        codes, size = _value_codes(reports[name])
        key, space = _compact(key * size + codes, space * size)
    return key.astype(np.intp)


def _compact(key: NDArray[np.int64], space: int) -> tuple[NDArray[np.int64], int]:
    """Keys renumbered 0..k-1 (k distinct), by a table when the key space is small."""
    if space <= 1 << 24:
        present = np.zeros(space, dtype=bool)
        present[key] = True
        number = np.cumsum(present) - 1
        return number[key], int(present.sum())
    codes, distinct = pd.factorize(key)
    return codes.astype(np.int64), len(distinct)


def _value_codes(column: pa.ChunkedArray) -> tuple[NDArray[np.int64], int]:
    """Codes of a column's values as text, via each chunk's distinct values."""
    known: dict[str, int] = {}
    parts = []
    for chunk in column.chunks:
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        labels = pc.fill_null(encoded.dictionary.cast(pa.string()), "").to_pylist()
        labels.append("")  # the missing value's place
        code_of_label = np.array([known.setdefault(v, len(known)) for v in labels])
        index = pc.fill_null(encoded.indices, len(labels) - 1).to_numpy()
        parts.append(code_of_label[index])
    codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return codes.astype(np.int64), max(len(known), 1)


def _stratified_expected(
    drugs: sp.csr_array,
    events: sp.csr_array,
    stratum: NDArray[np.intp],
    pair_drug: NDArray[np.intp],
    pair_event: NDArray[np.int32],
) -> NDArray[np.float64]:
    """E = sum over strata of n_drug,s x n_event,s / N_s for every pair (openEBGM's
    stratified expected count): per-stratum drug and event counts by bincount, then one
    gather over the pairs per stratum, so the cost is pairs x strata (a loop over strata,
    never over pairs). The count tables are built for a block of strata at a time, to
    bound their memory whatever the number of names and strata."""
    if pair_drug.size == 0:
        return np.zeros(0)
    n_strata = int(stratum.max()) + 1 if stratum.size else 1
    per_stratum = np.bincount(stratum, minlength=n_strata)
    drug_stratum = np.repeat(stratum, np.diff(drugs.indptr))
    event_stratum = np.repeat(stratum, np.diff(events.indptr))
    step = max(1, _TABLE_CELLS // max(drugs.shape[1], events.shape[1], 1))
    out = np.zeros(pair_drug.size)
    for lo in range(0, n_strata, step):
        hi = min(lo + step, n_strata)
        n_drug = _counts(drugs.indices, drug_stratum, lo, hi, drugs.shape[1])
        n_event = _counts(events.indices, event_stratum, lo, hi, events.shape[1])
        for s in range(lo, hi):
            if per_stratum[s]:
                out += n_drug[s - lo][pair_drug] * n_event[s - lo][pair_event] / per_stratum[s]
    return out


_TABLE_CELLS = 1 << 24  # cells of a block's stratum x name count table (128 MiB)


def _counts(
    codes: NDArray[np.int32], stratum: NDArray[np.intp], lo: int, hi: int, n_codes: int
) -> NDArray[np.int64]:
    """Reports per (stratum, code) for strata lo..hi-1: a (hi - lo) x n_codes table."""
    if lo > 0 or hi <= int(stratum.max()):
        keep = (stratum >= lo) & (stratum < hi)
        codes, stratum = codes[keep], stratum[keep]
    cells = np.bincount((stratum - lo) * n_codes + codes, minlength=(hi - lo) * n_codes)
    return cells.reshape(hi - lo, n_codes)
