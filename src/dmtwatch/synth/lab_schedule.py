"""When blood and urine are taken: one row per patient visit, in patient and date order.

A grid of (patient, segment, k) slots is filled at once and the valid slots kept:
segment -1 holds the anti-JCV index every ~6 months on natalizumab; segment c (0-2) holds
the baseline visit before alemtuzumab course c (k = 0) and the monthly visits after it
(k = 1, 2, ...) until the next course's baseline, 48 months after the last course, or
`until`. Flattening the grid in C order keeps every patient's visits in date order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from dmtwatch.synth import rates as R
from dmtwatch.synth.cohort import N_COURSES, Cohort
from dmtwatch.synth.days import NEVER, uniform_days
from dmtwatch.synth.history import History

SLOTS = 49  # k = 0..48: baseline + 48 monthly visits (or 49 JCV tests)


@dataclass(frozen=True)
class Visits:
    p: np.ndarray  # patient
    seg: np.ndarray  # -1 natalizumab (JCV), else alemtuzumab course 0-2
    k: np.ndarray  # 0 = baseline before the course, else months after it
    day: np.ndarray
    course: np.ndarray  # course whose after-effects apply (-1: none yet)
    since: np.ndarray  # days since the last infusion of that course

    def __len__(self) -> int:
        return len(self.p)

    def slice(self, start: int, stop: int) -> Visits:
        return Visits(*(getattr(self, f.name)[start:stop] for f in fields(self)))


def schedule_visits(c: Cohort, h: History, rng: np.random.Generator) -> Visits:
    n, k = c.n, np.arange(SLOTS, dtype=np.int32)
    day = np.empty((n, N_COURSES + 1, SLOTS), dtype=np.int32)
    ok = np.empty(day.shape, dtype=bool)

    # anti-JCV index: a baseline before natalizumab, then every ~6 months on it
    jitter = rng.integers(-7, 8, (n, SLOTS), dtype=np.int32)
    day[:, 0] = h.nat_start[:, None] + k * R.JCV_EVERY + jitter
    day[:, 0, 0] = h.nat_start - uniform_days(rng, *R.JCV_BEFORE_NATALIZUMAB, n)
    ok[:, 0] = h.has_nat[:, None] & (day[:, 0] <= np.minimum(h.nat_end, c.until)[:, None])

    baseline = c.course_start - uniform_days(rng, *R.BASELINE_BEFORE_COURSE, (n, N_COURSES))
    has_baseline = c.course_planned & (baseline <= c.until)
    has_baseline[:, 1:] &= c.course_given[:, :-1]
    # visits of a course stop a week before the next course's baseline
    stop = np.full((n, N_COURSES), NEVER, dtype=np.int32)
    stop[:, :-1] = np.where(has_baseline[:, 1:], baseline[:, 1:] - 7, NEVER)
    stop = np.minimum(stop, c.monitor_end[:, None])
    monthly = np.round(k * R.MONTH).astype(np.int32)
    jitter = rng.integers(
        -R.VISIT_JITTER, R.VISIT_JITTER + 1, (n, N_COURSES, SLOTS), dtype=np.int32
    )
    for s in range(N_COURSES):
        day[:, s + 1] = c.course_end[:, s, None] + monthly + jitter[:, s]
        day[:, s + 1, 0] = baseline[:, s]
        ok[:, s + 1] = c.course_given[:, s, None] & (day[:, s + 1] <= stop[:, s, None])
        ok[:, s + 1, 0] = has_baseline[:, s]

    p, seg, kk = np.nonzero(ok)
    p = p.astype(np.int32)
    seg = seg.astype(np.int8) - 1
    kk = kk.astype(np.int16)
    d = day[p, seg + 1, kk]

    # some patients miss several months in a row (never the first month after course 1)
    missed = (seg >= 0) & (kk >= 1) & (d >= c.gap_start[p]) & (d < c.gap_end[p])
    missed &= ~((seg == 0) & (kk == 1))
    keep = ~missed
    p, seg, kk, d = p[keep], seg[keep], kk[keep], d[keep]

    course = np.where(seg < 0, -1, np.where(kk >= 1, seg, seg - 1)).astype(np.int8)
    end = c.course_end[p, np.maximum(course, 0)]
    since = np.where(course >= 0, d - end, -1).astype(np.int32)
    return Visits(p=p, seg=seg, k=kk, day=d, course=course, since=since)
