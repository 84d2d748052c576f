"""What the results are: every analyte at every visit, in its canonical unit.

The kinetics follow the published course after alemtuzumab: lymphocytes fall to a nadir
at one month and recover geometrically to the lower limit in about a year (S16),
leukocytes dip with them, neutrophils barely move (S44) except rare severe neutropenia
(S1), platelets stay normal except immune thrombocytopenia (S12), and thyroid function
turns abnormal in the thyroid-autoimmunity patients (S1, S49, S50). Each complication is
dated at the visit whose result shows it first, and that result is never lost. A urine
strip reads the same sample as the microscopy: it shows blood when the cell count does.

Patient traits are drawn once; visit values are drawn a chunk of visits at a time, which
keeps the temporaries small enough to stay in cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmtwatch.synth import rates as R
from dmtwatch.synth.cohort import N_COURSES, Cohort
from dmtwatch.synth.days import NEVER
from dmtwatch.synth.history import History
from dmtwatch.synth.lab_schedule import Visits
from dmtwatch.synth.streams import choose

URINE_BLOOD = tuple(R.URINE_BLOOD)
GRAVES, HYPOTHYROID, THYROIDITIS = range(3)


@dataclass(frozen=True)
class LabEvents:
    """The day each complication shows in the labs (NEVER if it does not, by `until`)."""

    itp_day: np.ndarray
    itp_nadir: np.ndarray
    thyroid_day: np.ndarray
    neutropenia_day: np.ndarray
    neutropenia_value: np.ndarray


@dataclass(frozen=True)
class Traits:
    """A patient's own levels: baselines, nadirs, recovery speed, thyroid course."""

    lymph_base: np.ndarray
    nadir: np.ndarray  # (n, courses)
    months_to_lln: np.ndarray  # (n, courses)
    plateau: np.ndarray
    neut_base: np.ndarray
    other_white: np.ndarray
    plt_base: np.ndarray
    creatinine: np.ndarray
    alt: np.ndarray
    ast: np.ndarray
    bilirubin: np.ndarray
    tsh: np.ndarray
    free_t4: np.ndarray
    graves_days: np.ndarray
    hypo_days: np.ndarray
    tpo_negative: np.ndarray
    tpo_positive: np.ndarray


@dataclass(frozen=True)
class VisitValues:
    values: dict[str, np.ndarray]  # test -> value at every visit (canonical unit)
    urine_blood: np.ndarray  # index into URINE_BLOOD
    protected: dict[str, np.ndarray]  # test -> visits whose result must not go missing
    thyroid_abnormal: np.ndarray  # visits in an abnormal thyroid phase (free T4 is taken)
    thyroid_event: np.ndarray  # the visit that shows the thyroid event first


def _lognormal(
    rng: np.random.Generator, median: float | np.ndarray, sigma: float, size: int | tuple
) -> np.ndarray:
    return np.exp(np.log(median) + sigma * rng.normal(size=size))


def _noise(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    """Multiplicative visit-to-visit variation (float32: ample for lab noise, and fast)."""
    return np.exp(np.float32(sigma) * rng.standard_normal(size, dtype=np.float32))


def draw_traits(c: Cohort, rng: np.random.Generator) -> Traits:
    n = c.n
    to_lln = _lognormal(
        rng, R.LYMPHOCYTE_MONTHS_TO_LLN, R.LYMPHOCYTE_MONTHS_TO_LLN_SIGMA, (n, N_COURSES)
    )
    lymph_base = rng.uniform(*R.LYMPHOCYTE_BASELINE, n)
    (fm, fs), (mm, ms) = R.CREATININE_BASELINE
    creatinine = np.where(c.female, rng.normal(fm, fs, n), rng.normal(mm, ms, n))
    return Traits(
        lymph_base=lymph_base,
        nadir=rng.uniform(*R.LYMPHOCYTE_NADIR, (n, N_COURSES)),
        months_to_lln=np.clip(to_lln, 6.0, 36.0),
        plateau=np.maximum(1.1, lymph_base * rng.uniform(*R.LYMPHOCYTE_PLATEAU_OF_BASELINE, n)),
        neut_base=np.clip(_lognormal(rng, R.NEUTROPHIL_BASELINE_MEDIAN, 0.25, n), 2.2, 7.0),
        other_white=rng.uniform(*R.OTHER_WHITE_CELLS, n),
        plt_base=np.clip(rng.normal(*R.PLATELET_BASELINE, n), 160.0, 420.0),
        creatinine=np.clip(creatinine, 40.0, 130.0),
        alt=_lognormal(rng, np.where(c.female, *R.ALT_MEDIAN), 0.25, n),
        ast=_lognormal(rng, R.AST_MEDIAN, 0.2, n),
        bilirubin=_lognormal(rng, R.BILIRUBIN_MEDIAN, 0.35, n),
        tsh=np.clip(_lognormal(rng, R.TSH_MEDIAN, 0.35, n), 0.6, 3.2),
        free_t4=rng.uniform(*R.FREE_T4_NORMAL, n),
        graves_days=rng.integers(R.GRAVES_DAYS[0], R.GRAVES_DAYS[1] + 1, n),
        hypo_days=rng.integers(R.HYPOTHYROID_DAYS[0], R.HYPOTHYROID_DAYS[1] + 1, n),
        tpo_negative=rng.uniform(*R.TPO_NEGATIVE, n),
        tpo_positive=np.clip(_lognormal(rng, R.TPO_POSITIVE_MEDIAN, 0.8, n), 40.0, 2000.0),
    )


def _first_per_patient(mask: np.ndarray, v: Visits, n: int) -> np.ndarray:
    """For each patient, the day of the first visit where `mask` holds (NEVER if none)."""
    idx = np.flatnonzero(mask)
    if len(idx):
        idx = idx[np.r_[True, v.p[idx][1:] != v.p[idx][:-1]]]
    out = np.full(n, NEVER, dtype=np.int32)
    out[v.p[idx]] = v.day[idx]
    return out


def detect_events(c: Cohort, v: Visits, rng: np.random.Generator) -> LabEvents:
    """The visit (day) that first shows each patient's ITP, thyroid event, neutropenia."""
    p = v.p
    monthly = (v.seg >= 0) & (v.k >= 1)
    quarterly = monthly & (v.k % R.QUARTERLY_EVERY == 0)
    month = c.neutropenia_month[p]
    return LabEvents(
        itp_day=_first_per_patient(monthly & (v.day >= c.itp_onset[p]), v, c.n),
        itp_nadir=c.itp_nadir,
        thyroid_day=_first_per_patient(quarterly & (v.day >= c.thyroid_onset[p]), v, c.n),
        neutropenia_day=_first_per_patient((v.seg == 0) & (v.k == month) & (month > 0), v, c.n),
        neutropenia_value=rng.uniform(*R.SEVERE_NEUTROPENIA_VALUE, c.n),
    )


def visit_values(
    c: Cohort, h: History, tr: Traits, ev: LabEvents, v: Visits, rng: np.random.Generator
) -> VisitValues:
    m, p = len(v), v.p
    after = v.course >= 0
    at_itp = v.day == ev.itp_day[p]
    at_thyroid = v.day == ev.thyroid_day[p]
    at_neutro = v.day == ev.neutropenia_day[p]

    # lymphocytes: nadir at one month, geometric recovery to the LLN (S16), then a plateau
    course = np.maximum(v.course, 0)
    months = v.since / R.MONTH
    n0 = tr.nadir[p, course]
    growth = np.log(R.LYMPHOCYTE_LLN / n0) / (tr.months_to_lln[p, course] - 1.0)
    recovering = np.minimum(tr.plateau[p], n0 * np.exp(growth * np.maximum(months - 1.0, 0.0)))
    lymph = np.where(after, recovering, tr.lymph_base[p]) * _noise(rng, R.COUNT_NOISE, m)

    # neutrophils: a small transient dip (S44); rare severe neutropenia (S1)
    fade = np.exp(-np.maximum(months - 1.0, 0.0) / 1.5)
    dip = np.where(after, 1.0 - R.NEUTROPHIL_DIP * fade, 1.0)
    neut = np.maximum(tr.neut_base[p] * dip * _noise(rng, 0.1, m), R.NEUTROPHIL_FLOOR)
    neut = np.where(at_neutro, ev.neutropenia_value[p], neut)
    leuk = neut + lymph + tr.other_white[p] * _noise(rng, 0.05, m)

    # platelets: normal; ITP (S12) from its first visit, recovering on treatment
    base = tr.plt_base[p]
    plt = base * _noise(rng, 0.07, m)
    since_itp = v.day - ev.itp_day[p]
    in_itp = since_itp >= 0
    recovery = 0.5 ** (np.maximum(since_itp, 0) / R.MONTH / R.ITP_HALF_RECOVERY_MONTHS)
    plt = np.where(in_itp, base - (base - ev.itp_nadir[p]) * recovery, plt)

    # thyroid: Graves' more often than hypothyroidism (S49, S50), transient thyroiditis
    tsh = tr.tsh[p] * _noise(rng, 0.2, m)
    ft4 = tr.free_t4[p] * _noise(rng, 0.06, m)
    rel = v.day - ev.thyroid_day[p]
    kind = c.thyroid_kind[p]
    phase = R.THYROIDITIS_PHASE_DAYS
    graves = (rel >= 0) & (kind == GRAVES) & (rel < tr.graves_days[p])
    hypo = (rel >= 0) & (kind == HYPOTHYROID) & (rel < tr.hypo_days[p])
    itis_hyper = (rel >= 0) & (kind == THYROIDITIS) & (rel < phase)
    itis_hypo = (kind == THYROIDITIS) & (rel >= phase) & (rel < 2 * phase)
    u = rng.random(m)
    phases = (graves, hypo, itis_hyper, itis_hypo)
    for state, ((t_lo, t_hi), (f_lo, f_hi)) in zip(phases, R.THYROID_LABS.values(), strict=True):
        tsh = np.where(state, t_lo + u * (t_hi - t_lo), tsh)
        ft4 = np.where(state, f_hi - u * (f_hi - f_lo), ft4)  # low TSH with high free T4
    tpo = np.where(v.day >= c.tpo_day[p], tr.tpo_positive[p], tr.tpo_negative[p])
    tpo = tpo * _noise(rng, 0.15, m)

    # anti-JCV index on natalizumab, rising ~13% a year in positives (S83)
    years = np.maximum(v.day - h.nat_start[p], 0) / R.YEAR
    rise = np.where(h.jcv_positive[p], (1.0 + R.JCV_INDEX_GROWTH) ** years, 1.0)

    rbc = rng.poisson(R.URINE_RBC_MEAN, m).astype(float)
    rbc = np.where(rng.random(m) < R.URINE_RBC_HIGH_SHARE, rng.integers(5, 31, m), rbc)
    # the strip on the same sample: blood mostly when microscopy finds >= 3 cells/HPF
    strip = np.where(
        rbc >= 3, choose(rng, R.URINE_BLOOD_HAEMATURIA, m), choose(rng, R.URINE_BLOOD, m)
    )
    values = {
        "lymphocytes": lymph,
        "leukocytes": leuk,
        "neutrophils": neut,
        "platelets": plt,
        "creatinine": tr.creatinine[p] * _noise(rng, 0.05, m),
        "urine_rbc": rbc,
        "urine_protein": np.clip(_lognormal(rng, R.URINE_PROTEIN_MEDIAN, 0.5, m), 0.01, 1.0),
        "upcr": np.clip(_lognormal(rng, R.UPCR_MEDIAN, R.UPCR_SIGMA, m), 2.0, 100.0),
        "tsh": tsh,
        "free_t4": ft4,
        "tpo_ab": tpo,
        "alt": tr.alt[p] * _noise(rng, 0.2, m),
        "ast": tr.ast[p] * _noise(rng, 0.15, m),
        "bilirubin": tr.bilirubin[p] * _noise(rng, 0.2, m),
        "jcv_index": h.jcv_index[p] * rise * _noise(rng, 0.1, m),
    }
    protected = {
        "lymphocytes": (v.seg == 0) & (v.k == 1),  # report B: all lymphopenic at 1 month
        "neutrophils": at_neutro,
        "leukocytes": at_neutro,
        "platelets": at_itp,
        "tsh": at_thyroid,
        "free_t4": at_thyroid,
    }
    return VisitValues(
        values=values,
        urine_blood=strip,
        protected=protected,
        thyroid_abnormal=graves | hypo | itis_hyper | itis_hypo,
        thyroid_event=at_thyroid,
    )
