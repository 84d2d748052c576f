"""The mri table: a scan before the first infusion (report B: most active), yearly scans
after it (on natalizumab: before it and yearly), a prompt contrast scan after most post-alemtuzumab relapses (report A) but not
all (what the CNS-MRI rule must catch), and the CNS-inflammation scans."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dmtwatch.synth import rates as R
from dmtwatch.synth.cns_inflammation import CnsCases
from dmtwatch.synth.cohort import Cohort
from dmtwatch.synth.days import date_array, uniform_days
from dmtwatch.synth.frames import Columns, concat, ints, ordered_unique, take
from dmtwatch.synth.history import History
from dmtwatch.synth.streams import stream


def _lesions(rng: np.random.Generator, share: float, mean: float, k: int) -> np.ndarray:
    """0 lesions, or in `share` of scans 1 + Poisson(mean)."""
    return np.where(rng.random(k) < share, 1 + rng.poisson(mean, k), 0).astype(np.int32)


def _scans(
    p: np.ndarray,
    day: np.ndarray,
    contrast: np.ndarray,
    new_t2: np.ndarray,
    gd: np.ndarray,
    spine: np.ndarray | None = None,
) -> Columns:
    k = len(p)
    return {
        "p": p.astype(np.int32),
        "day": day.astype(np.int32),
        "spine": np.zeros(k, dtype=bool) if spine is None else spine,
        "contrast": contrast,
        "new_t2": new_t2,
        "gd": gd,
        "ring": np.zeros(k, dtype=np.int32),
    }


def draw_mri(c: Cohort, h: History, relapses: Columns, cns: CnsCases, seed: int) -> Columns:
    rng = stream(seed, "mri")
    n, t0 = c.n, c.index_day
    alem = np.flatnonzero(c.alem)
    k = len(alem)

    # before the first infusion: most with new lesions, about half enhancing (report B)
    active = rng.random(k) < R.MRI_BEFORE_NEW_T2
    gd_share = np.where(active, 0.65, 0.15)  # overall ~ R.MRI_BEFORE_GD
    before_day = t0[alem] - uniform_days(rng, *R.MRI_BEFORE_FIRST_INFUSION, k)
    before = _scans(
        alem,
        before_day,
        np.ones(k, dtype=bool),
        np.where(active, 1 + rng.poisson(2.5, k), 0).astype(np.int32),
        np.where(rng.random(k) < gd_share, 1 + rng.poisson(1.5, k), 0).astype(np.int32),
    )
    spine = rng.random(k) < R.MRI_SPINE_SHARE
    spine_scan = _scans(
        alem[spine],
        before_day[spine],
        np.ones(spine.sum(), dtype=bool),
        rng.poisson(0.5, spine.sum()).astype(np.int32),
        _lesions(rng, 0.2, 0.3, spine.sum()),
        np.ones(spine.sum(), dtype=bool),
    )

    # yearly scans: after alemtuzumab, or on natalizumab from its start
    years = int(max(0, (c.until - t0.min()) // 365)) + 2
    y = np.arange(years)
    day = (
        t0[:, None]
        + 365 * y
        + rng.integers(-R.MRI_YEARLY_JITTER, R.MRI_YEARLY_JITTER + 1, (n, years))
    )
    valid = (day <= c.until) & (y > 0)
    p, yy = np.nonzero(valid)
    m = len(p)
    on_alem = c.alem[p]
    yearly = _scans(
        p,
        day[p, yy],
        rng.random(m) < R.MRI_CONTRAST,
        np.where(
            on_alem,
            _lesions(rng, R.MRI_AFTER_NEW_T2, 1.0, m),
            _lesions(rng, R.MRI_NATALIZUMAB_NEW_T2, 0.5, m),
        ),
        np.where(
            on_alem,
            _lesions(rng, R.MRI_AFTER_GD, 0.5, m),
            _lesions(rng, R.MRI_NATALIZUMAB_GD, 0.5, m),
        ),
    )

    # before natalizumab (PML surveillance baseline), for every natalizumab exposure
    q = np.flatnonzero(h.has_nat)
    before_natalizumab = _scans(
        q,
        h.nat_start[q] - uniform_days(rng, *R.MRI_BEFORE_NATALIZUMAB, len(q)),
        np.ones(len(q), dtype=bool),
        _lesions(rng, 0.6, 2.0, len(q)),
        _lesions(rng, 0.4, 1.0, len(q)),
    )

    # after a relapse on alemtuzumab: most get a prompt contrast scan
    post = (relapses["day"] >= t0[relapses["p"]]) & c.alem[relapses["p"]] & ~relapses["cns"]
    scanned = post & (rng.random(len(post)) < R.RELAPSE_MRI_SHARE)
    r = np.flatnonzero(scanned)
    after_relapse = _scans(
        relapses["p"][r],
        relapses["day"][r] + uniform_days(rng, *R.RELAPSE_MRI_WITHIN, len(r)),
        np.ones(len(r), dtype=bool),
        (1 + rng.poisson(1.5, len(r))).astype(np.int32),
        rng.poisson(1.2, len(r)).astype(np.int32),
    )

    fragments = [cns.scans(), after_relapse, before, spine_scan, yearly, before_natalizumab]
    rows = concat(fragments)
    rows["rank"] = np.repeat(np.arange(len(fragments)), [len(f["p"]) for f in fragments])
    rows = take(rows, np.flatnonzero(rows["day"] <= c.until))
    return ordered_unique(rows, ("p", "day", "spine"), ("rank",))


def mri_table(c: Cohort, rows: Columns) -> pa.Table:
    contrast = rows["contrast"]
    return pa.table(
        {
            "patient_id": c.ids.take(pa.array(rows["p"])),
            "date": date_array(rows["day"]),
            "region": pa.array(np.where(rows["spine"], "spine", "brain")),
            "contrast": pa.array(contrast, type=pa.bool_()),
            "new_t2": ints(rows["new_t2"]),
            "gd_enhancing": ints(rows["gd"], contrast),
            "ring_enhancing": ints(rows["ring"], contrast),
        }
    )
