"""The edss table: a baseline score and one every 6-12 months, moving in 0.5 steps
(more improvement than worsening after alemtuzumab, S13/S55), with the lasting rise of a
CNS-inflammation case (report A)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dmtwatch.synth import rates as R
from dmtwatch.synth.cns_inflammation import CnsCases
from dmtwatch.synth.cohort import Cohort
from dmtwatch.synth.days import NEVER, date_array, uniform_days
from dmtwatch.synth.frames import concat, ordered_unique, take
from dmtwatch.synth.streams import stream


def _half_steps(
    rng: np.random.Generator, mean_sd: tuple[float, float], low: float, high: float, n: int
) -> np.ndarray:
    """Scores as whole numbers of half points (EDSS 3.5 -> 7)."""
    return np.clip(np.round(rng.normal(*mean_sd, n) * 2), low * 2, high * 2).astype(np.int32)


def build_edss(c: Cohort, cns: CnsCases, seed: int) -> pa.Table:
    rng = stream(seed, "edss")
    n = c.n
    first = c.index_day - uniform_days(rng, 0, 45, n)
    slots = int(max(0, (c.until - first.min()) // R.EDSS_EVERY[0])) + 2
    gaps = uniform_days(rng, *R.EDSS_EVERY, (n, slots))
    gaps[:, 0] = 0
    day = first[:, None] + np.cumsum(gaps, axis=1)

    base = np.where(
        c.spms,
        _half_steps(rng, R.EDSS_BASELINE_SPMS, 4.0, 7.5, n),
        _half_steps(rng, R.EDSS_BASELINE, 1.0, 6.5, n),
    )
    probs = np.where(
        c.spms[:, None],
        np.array(R.EDSS_STEP_SPMS),
        np.where(c.alem[:, None], np.array(R.EDSS_STEP), np.array(R.EDSS_STEP_NATALIZUMAB)),
    )
    u = rng.random((n, slots))
    step = np.where(
        u < probs[:, :1], -1, np.where(u < probs[:, :2].sum(axis=1, keepdims=True), 0, 1)
    )
    step[:, 0] = 0
    score = base[:, None] + np.cumsum(step, axis=1)
    # a CNS-inflammation case: +2 points, of which +1 lasts after ~4 months (report A)
    rise = (day >= c.cns_day[:, None]) * int(R.CNS_EDSS_LASTING * 2)
    rise += ((day >= c.cns_day[:, None]) & (day < c.cns_day[:, None] + 120)) * int(
        (R.CNS_EDSS_RISE - R.CNS_EDSS_LASTING) * 2
    )
    score = np.clip(score + rise, 0, 19)  # 0-9.5

    p, k = np.nonzero(day <= c.until)
    rows = {"p": p.astype(np.int32), "day": day[p, k].astype(np.int32), "half": score[p, k]}
    # the admission score of a CNS case, a few days after onset
    q = cns.p
    admitted = cns.onset + uniform_days(rng, 1, 4, len(q))
    last = (day[q] < cns.onset[:, None]).sum(axis=1) - 1  # the last score before onset
    before = np.where(last >= 0, score[q, np.maximum(last, 0)], base[q])
    extra = {"p": q, "day": admitted, "half": np.minimum(before + int(R.CNS_EDSS_RISE * 2), 19)}
    rows = concat([extra, rows])
    rows["rank"] = np.r_[np.zeros(len(q)), np.ones(len(p))]
    rows = take(rows, np.flatnonzero((rows["day"] <= c.until) & (rows["day"] != NEVER)))
    rows = ordered_unique(rows, ("p", "day"), ("rank",))
    return pa.table(
        {
            "patient_id": c.ids.take(pa.array(rows["p"])),
            "date": date_array(rows["day"]),
            "score": pa.array(rows["half"] / 2.0),
        }
    )
