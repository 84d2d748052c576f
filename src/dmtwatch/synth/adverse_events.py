"""The adverse_events table: infections by follow-up year (S51), recorded infusion
reactions (S47), and the complications the labs and MRI show: thyroid autoimmunity,
immune thrombocytopenia, severe neutropenia and CNS inflammation."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from dmtwatch.model.tables import AE_CATEGORIES, AE_OUTCOMES
from dmtwatch.synth import rates as R
from dmtwatch.synth.cns_inflammation import CnsCases
from dmtwatch.synth.cohort import N_COURSES, Cohort
from dmtwatch.synth.days import NEVER, date_array, uniform_days
from dmtwatch.synth.frames import Columns, concat, ints, ordered_unique, strings, take
from dmtwatch.synth.lab_values import GRAVES, HYPOTHYROID, LabEvents
from dmtwatch.synth.streams import choose, stream

THYROID_TERMS = ("Basedow's disease", "Hypothyroidism", "Thyroiditis")  # MedDRA PTs
OTHER_TERMS = ("Immune thrombocytopenia", "Neutropenia", "Central nervous system inflammation")
TERMS = (
    *R.INFECTION_TERMS,
    *(t for t in R.SERIOUS_INFECTION_TERMS if t not in R.INFECTION_TERMS),
    *R.INFUSION_REACTION_TERMS,
    *THYROID_TERMS,
    *OTHER_TERMS,
)


def _codes(names: Iterable[str]) -> np.ndarray:
    return np.array([TERMS.index(t) for t in names], dtype=np.int16)


def _events(
    p: np.ndarray,
    day: np.ndarray,
    term: np.ndarray | int,
    category: str,
    serious: np.ndarray | bool,
    grade: np.ndarray | int,
    outcome: np.ndarray | int,
    resolved: np.ndarray | int,
) -> Columns:
    """Rows of one kind of event; scalars apply to every row."""
    k = len(p)
    return {
        "p": np.asarray(p, dtype=np.int32),
        "day": np.asarray(day, dtype=np.int32),
        "term": np.broadcast_to(np.asarray(term, dtype=np.int16), k).copy(),
        "category": np.full(k, AE_CATEGORIES.index(category), dtype=np.int8),
        "serious": np.broadcast_to(np.asarray(serious, dtype=bool), k).copy(),
        "grade": np.broadcast_to(np.asarray(grade, dtype=np.int32), k).copy(),
        "outcome": np.broadcast_to(np.asarray(outcome, dtype=np.int8), k).copy(),
        "resolved": np.broadcast_to(np.asarray(resolved, dtype=np.int32), k).copy(),
    }


RECOVERED = AE_OUTCOMES.index("recovered")
RECOVERING = AE_OUTCOMES.index("recovering")
NOT_RECOVERED = AE_OUTCOMES.index("not_recovered")


def _infections(c: Cohort, rng: np.random.Generator) -> Columns:
    """Per follow-up year, counts with P(>= 1) as published by year (S51).

    Counts are Poisson given a patient's frailty Z ~ Gamma(1, 1), so P(>= 1 in a year)
    = 1 - 1 / (1 + rate): rate = p / (1 - p) gives each year's published share."""
    t0 = c.index_day
    years = int(max(0, (c.until - t0.min()) // 365)) + 1
    yearly = np.array(R.INFECTION_YEARLY + (R.INFECTION_YEARLY[-1],) * years)[:years]
    natalizumab = R.INFECTION_NATALIZUMAB_YEARLY
    rate = np.where(c.alem[:, None], yearly / (1 - yearly), natalizumab / (1 - natalizumab))
    shape = R.INFECTION_FRAILTY_SHAPE
    rate = rate * rng.gamma(shape, 1.0 / shape, c.n)[:, None]
    start = t0[:, None] + 365 * np.arange(years)
    span = np.clip(c.until + 1 - start, 0, 365)
    count = rng.poisson(rate * span / 365.0)
    p, y = np.repeat(np.indices(count.shape).reshape(2, -1), count.ravel(), axis=1)
    k = len(p)
    day = start[p, y] + np.floor(rng.random(k) * span[p, y]).astype(np.int32)
    serious = rng.random(k) < R.INFECTION_SERIOUS
    mild = _codes(R.INFECTION_TERMS)[choose(rng, R.INFECTION_TERMS, k)]
    severe = _codes(R.SERIOUS_INFECTION_TERMS)[choose(rng, R.SERIOUS_INFECTION_TERMS, k)]
    # vulvovaginal candidiasis is for women only
    mild = np.where(
        (mild == TERMS.index("Vulvovaginal candidiasis")) & ~c.female[p],
        TERMS.index("Oral candidiasis"),
        mild,
    )
    grade = np.where(serious, 3, rng.integers(1, 3, k))
    lasted = np.where(serious, uniform_days(rng, 10, 35, k), uniform_days(rng, 3, 21, k))
    return _events(
        p,
        day,
        np.where(serious, severe, mild),
        "infection",
        serious,
        grade,
        RECOVERED,
        day + lasted,
    )


def _infusion_reactions(c: Cohort, rng: np.random.Generator) -> Columns:
    p, s = np.nonzero(
        c.course_given & (rng.random((c.n, N_COURSES)) < R.INFUSION_REACTION_RECORDED)
    )
    k = len(p)
    days = np.array(R.COURSE_DAYS)[s]
    day = c.course_start[p, s] + np.floor(rng.random(k) * days).astype(np.int32)
    serious = rng.random(k) < R.INFUSION_REACTION_SERIOUS
    term = _codes(R.INFUSION_REACTION_TERMS)[choose(rng, R.INFUSION_REACTION_TERMS, k)]
    grade = np.where(serious, 3, rng.integers(1, 3, k))
    return _events(
        p, day, term, "infusion_reaction", serious, grade, RECOVERED, day + rng.integers(0, 3, k)
    )


def _thyroid(c: Cohort, ev: LabEvents, rng: np.random.Generator) -> Columns:
    p = np.flatnonzero(ev.thyroid_day != NEVER)
    kind = c.thyroid_kind[p]
    k = len(p)
    serious = rng.random(k) < np.fromiter(R.THYROID_SERIOUS.values(), dtype=float)[kind]
    grade = np.where(serious, 3, np.where(kind == 2, 1, 2))
    day = ev.thyroid_day[p]
    # Graves' and hypothyroidism need lasting treatment; thyroiditis passes in ~6 months
    outcome = np.where(
        kind == GRAVES, RECOVERING, np.where(kind == HYPOTHYROID, NOT_RECOVERED, RECOVERED)
    )
    resolved = np.where(kind == 2, day + 2 * R.THYROIDITIS_PHASE_DAYS, NEVER)
    return _events(
        p, day, _codes(THYROID_TERMS)[kind], "thyroid", serious, grade, outcome, resolved
    )


def _itp(ev: LabEvents) -> Columns:
    p = np.flatnonzero(ev.itp_day != NEVER)
    nadir = ev.itp_nadir[p]
    grade = np.select([nadir < 25, nadir < 50, nadir < 75], [4, 3, 2], 1)
    day = ev.itp_day[p]
    return _events(
        p,
        day,
        TERMS.index("Immune thrombocytopenia"),
        "autoimmune",
        True,
        grade,
        RECOVERED,
        day + 90,
    )


def _neutropenia(ev: LabEvents) -> Columns:
    p = np.flatnonzero(ev.neutropenia_day != NEVER)
    grade = np.where(ev.neutropenia_value[p] < 0.5, 4, 3)
    day = ev.neutropenia_day[p]
    return _events(p, day, TERMS.index("Neutropenia"), "other", True, grade, RECOVERED, day + 30)


def _cns(cns: CnsCases) -> Columns:
    return _events(
        cns.p,
        cns.onset,
        TERMS.index("Central nervous system inflammation"),
        "cns_inflammation",
        True,
        3,
        RECOVERED,
        cns.follow_up_mri,
    )


def build_adverse_events(c: Cohort, ev: LabEvents, cns: CnsCases, seed: int) -> pa.Table:
    rng = stream(seed, "adverse_events")
    fragments = [
        _cns(cns),
        _itp(ev),
        _neutropenia(ev),
        _thyroid(c, ev, rng),
        _infusion_reactions(c, rng),
        _infections(c, rng),
    ]
    rows = concat(fragments)
    rows["rank"] = np.repeat(np.arange(len(fragments)), [len(f["p"]) for f in fragments])
    rows = take(rows, np.flatnonzero(rows["day"] <= c.until))
    rows = ordered_unique(rows, ("p", "day", "term"), ("rank",))
    # not yet resolved on `until`: still recovering, no resolution date
    open_ = rows["resolved"] > c.until
    outcome = np.where(open_ & (rows["outcome"] == RECOVERED), RECOVERING, rows["outcome"])
    return pa.table(
        {
            "patient_id": c.ids.take(pa.array(rows["p"])),
            "onset_date": date_array(rows["day"]),
            "term": strings(TERMS, rows["term"]),
            "category": strings(AE_CATEGORIES, rows["category"]),
            "serious": pa.array(rows["serious"], type=pa.bool_()),
            "grade": ints(rows["grade"]),
            "outcome": strings(AE_OUTCOMES, outcome),
            "resolution_date": date_array(rows["resolved"], ~open_),
        }
    )
