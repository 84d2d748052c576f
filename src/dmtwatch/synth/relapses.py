"""The relapses table: a disease history, a very active year before the index date
(report B: ARR 2.5 on natalizumab), few relapses after alemtuzumab (S52-S55), and the
CNS-inflammation relapses of report A."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dmtwatch.model.tables import RELAPSE_SEVERITIES
from dmtwatch.synth import rates as R
from dmtwatch.synth.cns_inflammation import CnsCases
from dmtwatch.synth.cohort import N_COURSES, Cohort
from dmtwatch.synth.days import date_array
from dmtwatch.synth.frames import Columns, concat, ordered_unique, strings, take
from dmtwatch.synth.streams import choose, stream


def _poisson_days(
    rng: np.random.Generator, rate: np.ndarray, start: np.ndarray, stop: np.ndarray
) -> Columns:
    """Onsets of a Poisson process with `rate` a year on [start, stop) for every patient."""
    span = np.maximum(stop - start, 0)
    count = rng.poisson(rate * span / R.YEAR)
    p = np.repeat(np.arange(len(rate), dtype=np.int32), count)
    day = start[p] + np.floor(rng.random(len(p)) * span[p]).astype(np.int32)
    return {"p": p, "day": day.astype(np.int32)}


def draw_relapses(c: Cohort, cns: CnsCases, seed: int) -> Columns:
    """Relapse rows (p, day, confirmed, severity, cns) up to `until`, >= 30 days apart."""
    rng = stream(seed, "relapses")
    n, t0 = c.n, c.index_day
    year_before = t0 - 365
    first_attack = {"p": np.arange(n, dtype=np.int32), "day": c.onset}
    history_from = np.maximum(c.onset + R.RELAPSE_MIN_APART, t0 - R.HISTORY_YEARS * R.YEAR)
    history = _poisson_days(
        rng, np.full(n, R.ARR_HISTORY), history_from.astype(np.int32), year_before
    )
    active = rng.gamma(R.ARR_BEFORE_SHAPE, R.ARR_BEFORE / R.ARR_BEFORE_SHAPE, n)
    before = _poisson_days(rng, active, np.maximum(year_before, c.onset + 30), t0)
    after_rate = np.where(
        c.alem,
        rng.gamma(R.ARR_AFTER_SHAPE, R.ARR_AFTER / R.ARR_AFTER_SHAPE, n),
        R.ARR_ON_NATALIZUMAB,
    )
    after = _poisson_days(rng, after_rate, t0, np.full(n, c.until + 1, dtype=np.int32))
    # the CNS cases' own relapse stands for any drawn near it; none during a course
    # (an event within 3 days of an infusion would be a stroke alert, not a relapse)
    near = np.abs(after["day"] - c.cns_day[after["p"]]) <= 45
    for s in range(N_COURSES):
        start, end = c.course_start[after["p"], s], c.course_end[after["p"], s]
        near |= (after["day"] >= start) & (after["day"] <= end + 3)
    after = take(after, np.flatnonzero(~near))

    fragments = [cns.relapses() | {"cns": np.ones(len(cns.p), dtype=bool)}]
    for f in (first_attack, history, before, after):
        k = len(f["p"])
        fragments.append(
            f
            | {
                "confirmed": rng.random(k) >= R.RELAPSE_UNCONFIRMED,
                "severity": choose(rng, R.RELAPSE_SEVERITY, k),
                "cns": np.zeros(k, dtype=bool),
            }
        )
    rows = concat(fragments)
    rows["rank"] = np.r_[np.zeros(len(cns.p)), np.ones(len(rows["p"]) - len(cns.p))]
    rows = take(rows, np.flatnonzero(rows["day"] <= c.until))
    rows = ordered_unique(rows, ("p", "day"), ("rank",))
    for _ in range(3):  # a new relapse needs >= 30 days since the previous onset (S64)
        close = (rows["p"][1:] == rows["p"][:-1]) & (
            rows["day"][1:] - rows["day"][:-1] < R.RELAPSE_MIN_APART
        )
        drop = np.r_[False, close] & ~rows["cns"]
        rows = take(rows, np.flatnonzero(~drop))
    return rows


def relapses_table(c: Cohort, rows: Columns) -> pa.Table:
    return pa.table(
        {
            "patient_id": c.ids.take(pa.array(rows["p"])),
            "onset_date": date_array(rows["day"]),
            "confirmed": pa.array(rows["confirmed"], type=pa.bool_()),
            "severity": strings(RELAPSE_SEVERITIES, rows["severity"]),
        }
    )
