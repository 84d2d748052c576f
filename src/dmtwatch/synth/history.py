"""The therapies patients had before alemtuzumab (or are still on: natalizumab).

Drawn backwards from the index date: the last therapy (natalizumab for most, as in
report B), then up to three earlier ones, each dropped if it would start before MS onset.
The natalizumab exposure is kept separately because the labs need it (JCV index).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from dmtwatch.model.tables import DRUGS, STOP_REASONS
from dmtwatch.synth import rates as R
from dmtwatch.synth.cohort import Cohort
from dmtwatch.synth.days import NEVER, day_number, uniform_days
from dmtwatch.synth.streams import choose, stream

N_EARLIER = len(R.EARLIER_THERAPY_COUNT) - 1


def _codes(names: Iterable[str], vocabulary: tuple[str, ...]) -> np.ndarray:
    return np.array([vocabulary.index(x) for x in names], dtype=np.int8)


@dataclass(frozen=True)
class History:
    has_nat: np.ndarray  # a natalizumab exposure (before alemtuzumab, or ongoing)
    nat_start: np.ndarray
    nat_end: np.ndarray  # NEVER while ongoing
    jcv_positive: np.ndarray
    jcv_index: np.ndarray  # anti-JCV index at natalizumab start
    # one row per therapy: patient, drug (index into DRUGS), start, end, stop (-1 = none)
    p: np.ndarray
    drug: np.ndarray
    start: np.ndarray
    end: np.ndarray
    stop: np.ndarray


def draw_history(c: Cohort, seed: int) -> History:
    rng = stream(seed, "history")
    n = c.n
    t0 = c.index_day
    earliest = np.maximum(c.onset + 60, day_number(R.NATALIZUMAB_APPROVED))

    # natalizumab right before alemtuzumab, or ongoing for the natalizumab-only patients
    reason = choose(rng, R.NATALIZUMAB_STOP, n)
    low, high = np.array(list(R.NATALIZUMAB_DAYS.values())).T
    duration = uniform_days(rng, low[reason], high[reason], n)
    nat_end = t0 - uniform_days(rng, *R.WASHOUT_AFTER_NATALIZUMAB, n)
    nat_start = np.maximum(nat_end - duration, earliest)
    before = c.alem & (rng.random(n) < R.PRIOR_NATALIZUMAB_SHARE) & (nat_end - nat_start >= 28)
    has_nat = before | ~c.alem
    nat_start = np.where(c.alem, nat_start, t0).astype(np.int32)
    nat_end = np.where(c.alem, nat_end, NEVER).astype(np.int32)
    nat_stop = np.where(c.alem, _codes(R.NATALIZUMAB_STOP, STOP_REASONS)[reason], -1)

    # otherwise another therapy failed right before alemtuzumab
    other_drug = _codes(R.OTHER_LAST_THERAPY, DRUGS)[choose(rng, R.OTHER_LAST_THERAPY, n)]
    other_stop = _codes(R.OTHER_LAST_STOP, STOP_REASONS)[choose(rng, R.OTHER_LAST_STOP, n)]
    other_end = t0 - uniform_days(rng, *R.WASHOUT_AFTER_OTHER, n)
    other_start = np.maximum(other_end - uniform_days(rng, *R.LAST_OTHER_DAYS, n), c.onset + 60)
    other = c.alem & ~before & (other_end - other_start >= 28)

    p = [np.flatnonzero(has_nat), np.flatnonzero(other)]
    drug = [np.full(has_nat.sum(), DRUGS.index("natalizumab")), other_drug[other]]
    start = [nat_start[has_nat], other_start[other]]
    end = [nat_end[has_nat], other_end[other]]
    stop = [nat_stop[has_nat], other_stop[other]]

    # earlier therapies, walking back in time from the last one
    anchor = np.where(has_nat, nat_start, np.where(other, other_start, t0 - 60))
    count = rng.choice(N_EARLIER + 1, size=n, p=R.EARLIER_THERAPY_COUNT)
    earlier = _codes(R.EARLIER_THERAPY, DRUGS)
    reasons = _codes(R.EARLIER_STOP, STOP_REASONS)
    alive = np.ones(n, dtype=bool)
    for j in range(N_EARLIER):
        e = anchor - uniform_days(rng, *R.GAP_BETWEEN_THERAPIES, n)
        s = e - uniform_days(rng, *R.EARLIER_THERAPY_DAYS, n)
        d = earlier[choose(rng, R.EARLIER_THERAPY, n)]
        for name, (approved, fallback) in R.APPROVED_FROM.items():
            d = np.where(
                (d == DRUGS.index(name)) & (s < day_number(approved)), DRUGS.index(fallback), d
            )
        why = reasons[choose(rng, R.EARLIER_STOP, n)]
        why = np.where(
            (why == STOP_REASONS.index("pregnancy")) & ~c.female, STOP_REASONS.index("other"), why
        )
        alive &= (j < count) & (s >= c.onset + 60)
        p.append(np.flatnonzero(alive))
        drug.append(d[alive])
        start.append(s[alive])
        end.append(e[alive])
        stop.append(why[alive])
        anchor = s

    positive = (rng.random(n) < R.JCV_POSITIVE_SHARE) | (nat_stop == STOP_REASONS.index("pml_risk"))
    index = np.clip(
        np.exp(np.log(R.JCV_INDEX_MEDIAN) + R.JCV_INDEX_SIGMA * rng.normal(size=n)), 0.4, 4.5
    )
    index = np.where(
        nat_stop == STOP_REASONS.index("pml_risk"), rng.uniform(*R.JCV_INDEX_HIGH, n), index
    )
    index = np.where(positive, index, rng.uniform(*R.JCV_INDEX_NEGATIVE, n))

    return History(
        has_nat=has_nat,
        nat_start=nat_start,
        nat_end=nat_end,
        jcv_positive=positive,
        jcv_index=index,
        p=np.concatenate(p).astype(np.int32),
        drug=np.concatenate(drug).astype(np.int8),
        start=np.concatenate(start).astype(np.int32),
        end=np.concatenate(end).astype(np.int32),
        stop=np.concatenate(stop).astype(np.int8),
    )
