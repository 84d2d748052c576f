"""Who the patients are and when things happen to them.

The per-patient draws that several tables share live here (demographics, alemtuzumab
courses, the monitoring window and which patients get which complication), so that the
labs, the adverse events and the treatments of a patient tell the same story.
All arrays have one entry per patient, in patient order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.synth import rates as R
from dmtwatch.synth.days import NEVER, day_number, uniform_days
from dmtwatch.synth.streams import choose, stream

N_COURSES = len(R.COURSE_DAYS)


@dataclass(frozen=True)
class Cohort:
    n: int
    until: int  # last day of data (day number)
    ids: pa.Array  # "P000001", ...
    alem: np.ndarray  # had alemtuzumab planned; the others are natalizumab-only
    female: np.ndarray
    birth: np.ndarray
    birth_precision: np.ndarray  # 0 full date, 1 YYYY-MM, 2 YYYY
    onset: np.ndarray  # MS onset
    spms: np.ndarray
    index_day: np.ndarray  # first alemtuzumab infusion; natalizumab start if natalizumab-only
    course_start: np.ndarray  # (n, 3) first infusion day of each (planned) course
    course_end: np.ndarray  # (n, 3) last infusion day
    course_planned: np.ndarray  # (n, 3)
    course_given: np.ndarray  # (n, 3) planned, previous given, and finished by `until`
    last_end: np.ndarray  # last infusion of the last course given (NEVER if none)
    monitor_end: np.ndarray  # last day of lab monitoring (-1 if none)
    cns: np.ndarray  # exacerbated CNS inflammation case (report A)
    cns_day: np.ndarray  # its onset (NEVER if none)
    itp_onset: np.ndarray  # immune thrombocytopenia starts (NEVER if none)
    itp_nadir: np.ndarray  # platelets at diagnosis, x10^9/L
    thyroid_kind: np.ndarray  # -1, or index into rates.THYROID_KINDS
    thyroid_onset: np.ndarray  # NEVER if none
    tpo_day: np.ndarray  # TPO antibodies positive from (NEVER if never)
    neutropenia_month: np.ndarray  # 0, or month 1/2 after course 1 with severe neutropenia
    gap_start: np.ndarray  # a stretch of missed monthly visits [gap_start, gap_end)
    gap_end: np.ndarray
    dipstick: np.ndarray  # urine also tested by strip (urine_blood) beside microscopy
    lab_site: np.ndarray  # which laboratory's reference ranges (0/1)


def patient_ids(n: int) -> pa.Array:
    """Pseudonymous ids P000001, P000002, ... (more digits beyond 999,999 patients)."""
    digits = pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise("P", pc.utf8_lpad(digits, 6, "0"), "")


def _months(x: np.ndarray | float) -> np.ndarray:
    return np.round(np.asarray(x) * R.MONTH).astype(np.int32)


def _ramped_days(rng: np.random.Generator, low: int, high: int, n: int) -> np.ndarray:
    """Days in [low, high] with a density rising linearly by FIRST_INFUSION_RAMP times."""
    a = R.FIRST_INFUSION_RAMP
    x = (np.sqrt(1.0 + a * (a + 2.0) * rng.random(n)) - 1.0) / a  # inverse CDF of 1 + a x
    return (low + np.floor(x * (high - low + 1))).astype(np.int32)


def draw_cohort(n: int, seed: int, until: int) -> Cohort:
    rng = stream(seed, "cohort")
    alem = rng.random(n) >= R.NATALIZUMAB_ONLY_SHARE
    female = rng.random(n) < R.FEMALE_SHARE
    first = _ramped_days(rng, *map(day_number, R.FIRST_INFUSION), n)
    nat_start = uniform_days(rng, *map(day_number, R.NATALIZUMAB_ONLY_START), n)
    index_day = np.where(alem, first, nat_start).astype(np.int32)
    age = rng.uniform(*R.AGE_AT_INDEX_YEARS, n)
    birth = (index_day - age * R.YEAR).astype(np.int32)
    birth_precision = rng.choice(3, size=n, p=R.BIRTH_DATE_PRECISION).astype(np.int8)
    disease = rng.uniform(*R.DISEASE_YEARS_AT_INDEX, n)
    onset = np.maximum(index_day - disease * R.YEAR, birth + R.MIN_AGE_AT_ONSET_YEARS * R.YEAR)
    onset = onset.astype(np.int32)
    spms = alem & (rng.random(n) < R.SPMS_SHARE)

    # alemtuzumab courses: 5 days, 3 days 12 months later, sometimes a third
    start = np.full((n, N_COURSES), NEVER, dtype=np.int32)
    end = np.full((n, N_COURSES), NEVER, dtype=np.int32)
    start[:, 0] = index_day
    end[:, 0] = index_day + R.COURSE_DAYS[0] - 1
    start[:, 1] = end[:, 0] + uniform_days(rng, *R.COURSE2_AFTER_COURSE1_END, n)
    end[:, 1] = start[:, 1] + R.COURSE_DAYS[1] - 1
    start[:, 2] = end[:, 1] + uniform_days(rng, *R.COURSE3_AFTER_COURSE2_END, n)
    end[:, 2] = start[:, 2] + R.COURSE_DAYS[2] - 1
    third = rng.random(n) < R.COURSE3_SHARE

    itp = alem & (rng.random(n) < R.ITP_SHARE)
    itp_onset = end[:, 0] + _months(rng.uniform(*R.ITP_ONSET_MONTHS, n))
    itp_onset = np.where(itp, itp_onset, NEVER).astype(np.int32)
    severe = rng.random(n) < R.ITP_SEVERE_SHARE
    itp_nadir = np.where(
        severe, rng.uniform(*R.ITP_NADIR_SEVERE, n), rng.uniform(*R.ITP_NADIR_OTHER, n)
    )

    kinds = choose(rng, R.THYROID_KINDS, n)
    thyroid = alem & (rng.random(n) < R.THYROID_SHARE)
    months = np.exp(
        np.log(R.THYROID_ONSET_MEDIAN_MONTHS) + R.THYROID_ONSET_SIGMA * rng.normal(size=n)
    )
    thyroid_onset = np.where(thyroid, index_day + _months(months), NEVER).astype(np.int32)
    tpo_first = np.fromiter(R.TPO_BEFORE_EVENT.values(), dtype=float)[kinds]
    tpo_before = thyroid & (rng.random(n) < tpo_first)
    tpo_lead = uniform_days(rng, *R.TPO_BEFORE_EVENT_DAYS, n)
    tpo_only = alem & ~thyroid & (rng.random(n) < R.TPO_ONLY_SHARE)
    tpo_only_months = np.exp(np.log(R.TPO_ONLY_MEDIAN_MONTHS) + 0.5 * rng.normal(size=n))
    tpo_only_day = index_day + _months(tpo_only_months)
    tpo_baseline = alem & (rng.random(n) < R.TPO_AT_BASELINE_SHARE)
    tpo_day = np.full(n, NEVER, dtype=np.int32)
    tpo_day = np.where(tpo_before, thyroid_onset - tpo_lead, tpo_day)
    tpo_day = np.where(tpo_only, tpo_only_day, tpo_day)
    tpo_day = np.where(tpo_baseline, index_day - 365, tpo_day).astype(np.int32)

    neutropenia = alem & (rng.random(n) < R.SEVERE_NEUTROPENIA_SHARE)
    neutropenia_month = np.where(neutropenia, rng.integers(1, 3, n), 0).astype(np.int8)

    gap = alem & (rng.random(n) < R.GAP_PATIENT_SHARE)
    gap_start = end[:, 0] + _months(rng.uniform(*R.GAP_START_MONTHS, n))
    gap_end = gap_start + _months(rng.integers(R.GAP_MONTHS[0], R.GAP_MONTHS[1] + 1, n))
    gap_start = np.where(gap, gap_start, NEVER).astype(np.int32)
    gap_end = np.where(gap, gap_end, NEVER).astype(np.int32)

    dipstick = rng.random(n) < R.URINE_DIPSTICK_SHARE
    lab_site = (rng.random(n) < 0.5).astype(np.int8)

    # the CNS-inflammation cases depend on `until` (their story must fit before it), so
    # they come from their own stream and every draw above stays the same for any `until`
    cns, cns_day = _cns_cases(seed, alem, index_day, until)

    planned = np.stack([alem, alem & ~cns, alem & ~cns & third], axis=1)
    given = planned & (end <= until)
    given = np.logical_and.accumulate(given, axis=1)
    last = np.where(given, end, -1).max(axis=1)
    last_end = np.where(last >= 0, last, NEVER).astype(np.int32)
    monitor_end = np.where(last >= 0, np.minimum(until, last + R.MONITORING_DAYS), -1)

    return Cohort(
        n=n,
        until=until,
        ids=patient_ids(n),
        alem=alem,
        female=female,
        birth=birth,
        birth_precision=birth_precision,
        onset=onset,
        spms=spms,
        index_day=index_day,
        course_start=start,
        course_end=end,
        course_planned=planned,
        course_given=given,
        last_end=last_end,
        monitor_end=monitor_end.astype(np.int32),
        cns=cns,
        cns_day=cns_day,
        itp_onset=itp_onset,
        itp_nadir=itp_nadir,
        thyroid_kind=np.where(thyroid, kinds, -1).astype(np.int8),
        thyroid_onset=thyroid_onset,
        tpo_day=tpo_day,
        neutropenia_month=neutropenia_month,
        gap_start=gap_start,
        gap_end=gap_end,
        dipstick=dipstick,
        lab_site=lab_site,
    )


def _cns_cases(
    seed: int, alem: np.ndarray, first: np.ndarray, until: int
) -> tuple[np.ndarray, np.ndarray]:
    """About 1% of alemtuzumab patients, at least one in a clinic of 50 or more."""
    rng = stream(seed, "cns")
    n = len(alem)
    onset = first + uniform_days(rng, *R.CNS_ONSET, n)
    eligible = np.flatnonzero(alem & (first + R.CNS_VISIBLE_AFTER <= until))
    k = int(rng.binomial(int(alem.sum()), R.CNS_SHARE))
    if n >= R.CNS_MIN_PATIENTS:
        k = max(k, 1)
    k = min(k, len(eligible))
    cns = np.zeros(n, dtype=bool)
    if k:
        cns[rng.choice(eligible, size=k, replace=False)] = True
    return cns, np.where(cns, onset, NEVER).astype(np.int32)
