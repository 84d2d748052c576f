"""Every threshold and window edge of the protocols: just below, at and just above it.

Each case is one patient; all cases live in one clinic, checked once at AS_OF (the engine
compiles its queries per run, about 5 s, so one clinic per case would take minutes). The
rules are per patient, so patients cannot see each other. Numbers come from the loaded
protocol and lab catalogue: a changed threshold or window moves these boundaries with it.
The patient id is the case id, so a failure names the case.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.protocols.schema import load_protocol
from tests.clinic import alemtuzumab_course, day, findings, lab, write_clinic

ALEM = load_protocol("alemtuzumab")
NTZ = load_protocol("natalizumab")
CAT = lab_catalogue().tests
AS_OF = dt.date(2024, 6, 30)
D0 = day(AS_OF, -200)  # day 0 (first infusion) of the lab, thyroid and relapse cases
POST = day(D0, 30)  # a result after alemtuzumab
UNITS = {t: CAT[t].unit for t in CAT}


@dataclass(frozen=True)
class Case:
    id: str  # also the patient id
    rows: dict[str, list[dict]]
    code: str
    severity: str | None  # None: no finding of this code
    grade: int | None = None
    test: str | None = None  # the finding's `test` (schedule item, liver analyte)
    date: dt.date | None = None  # the finding's date
    text: tuple[str, ...] = ()  # phrases the detail must contain
    bug: str | None = None  # a known engine bug: the case is xfail(strict)


@dataclass
class Rows:
    """The rows of one patient, built up table by table."""

    pid: str
    tables: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))

    def course(self, start: dt.date, days: int = 5, n: int = 1) -> Rows:
        self.tables["treatments"].append(alemtuzumab_course(self.pid, start, days, n))
        return self

    def drug(self, drug: str, start: dt.date, end: dt.date | None = None) -> Rows:
        row = {"patient_id": self.pid, "drug": drug, "start_date": start, "end_date": end}
        self.tables["treatments"].append(row)
        return self

    def lab(self, date: dt.date, test: str, value: object, unit: str | None = None, **kw) -> Rows:
        self.tables["labs"].append(
            lab(self.pid, date, test, value, UNITS[test] if unit is None else unit, **kw)
        )
        return self

    def relapse(self, onset: dt.date, confirmed: bool = True) -> Rows:
        self.tables["relapses"].append(
            {"patient_id": self.pid, "onset_date": onset, "confirmed": confirmed}
        )
        return self

    def mri(
        self,
        date: dt.date,
        region: str = "brain",
        contrast: bool | None = True,
        ring: int | None = None,
    ) -> Rows:
        gd = None if ring is None else max(ring, 1)
        row = {
            "patient_id": self.pid,
            "date": date,
            "region": region,
            "contrast": contrast,
            "gd_enhancing": gd,
            "ring_enhancing": ring,
        }
        self.tables["mri"].append(row)
        return self


def case(id: str, build, code: str, severity: str | None, **kw) -> Case:
    """A case whose rows are made by `build(Rows(id))`."""
    return Case(id, dict(build(Rows(id)).tables), code, severity, **kw)


def params(cases: list[Case]) -> list:
    return [
        pytest.param(
            c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
        )
        for c in cases
    ]


# --- CTCAE grading ------------------------------------------------------------------------


def rule(test: str):
    return next(r for r in ALEM.grading if r.test == test)


def cut(test: str, grade: int, kind: str) -> float:
    return getattr(rule(test).grades[grade], kind)


def lln(test: str) -> float:
    return CAT[test].ref_low * cut(test, 1, "below_lln")


def uln(test: str, grade: int) -> float:
    return CAT[test].ref_high * cut(test, grade, "above_uln")


def graded(
    test: str,
    value: float,
    grade: int | None,
    *,
    base: float | None = None,
    **kw,
) -> Case:
    """One result at POST (and a baseline on day -10), expected to grade `grade` (None: none)."""
    r = rule(test)

    def build(p: Rows) -> Rows:
        p.course(D0)
        if base is not None:
            p.lab(day(D0, -10), test, base)
        return p.lab(POST, test, value, **kw)

    extra = "".join(f"-{k}{v}" for k, v in kw.items()) + (
        f"-baseline{base}" if base is not None else ""
    )
    severity = None if grade is None else r.severity[grade]
    return case(
        f"{test}-{value}{extra}-grade{grade or 0}",
        build,
        r.code,
        severity,
        grade=grade,
        test=test,
    )


def base_edges(test: str, base: float, grade: int, kind: str, grades: tuple) -> list[Case]:
    """Edges of a `kind` x baseline criterion of `grade`, for a baseline of `base`."""
    return edges(test, base * cut(test, grade, kind), grades, 0.01, base=base)


def edges(test: str, threshold: float, grades: tuple, eps: float, **kw) -> list[Case]:
    """Values threshold - eps, threshold, threshold + eps and their expected grades."""
    return [
        graded(test, round(threshold + d, 6), g, **kw)
        for d, g in zip((-eps, 0, eps), grades, strict=True)
    ]


LOW_GRADES = [
    # lymphocytes: LLN (catalogue default, then the lab's own ref_low), then 0.8 / 0.5 / 0.2
    *edges("lymphocytes", lln("lymphocytes"), (1, None, None), 0.01),
    *edges("lymphocytes", 1.2, (1, None, None), 0.01, ref_low=1.2),
    graded("lymphocytes", 0.95, None, ref_low=0.9),  # below the default LLN, above the lab's own
    *edges("lymphocytes", cut("lymphocytes", 2, "below"), (2, 1, 1), 0.01),
    *edges("lymphocytes", cut("lymphocytes", 3, "below"), (3, 2, 2), 0.01),
    *edges("lymphocytes", cut("lymphocytes", 4, "below"), (4, 3, 3), 0.01),
    # leukocytes: LLN 4.0, then 3.0 / 2.0 / 1.0
    *edges("leukocytes", lln("leukocytes"), (1, None, None), 0.1),
    *edges("leukocytes", 3.5, (1, None, None), 0.1, ref_low=3.5),
    *edges("leukocytes", cut("leukocytes", 2, "below"), (2, 1, 1), 0.1),
    *edges("leukocytes", cut("leukocytes", 3, "below"), (3, 2, 2), 0.1),
    *edges("leukocytes", cut("leukocytes", 4, "below"), (4, 3, 3), 0.1),
    # neutrophils: the default LLN (2.0) lies above the grade-2 cut, so grade 1 exists without
    # the lab's own limit; then the lab's own, then 1.5 / 1.0 / 0.5
    *edges("neutrophils", lln("neutrophils"), (1, None, None), 0.01),
    *edges("neutrophils", 1.8, (1, None, None), 0.01, ref_low=1.8),
    *edges("neutrophils", cut("neutrophils", 2, "below"), (2, 1, 1), 0.01),
    *edges("neutrophils", cut("neutrophils", 3, "below"), (3, 2, 2), 0.01),
    *edges("neutrophils", cut("neutrophils", 4, "below"), (4, 3, 3), 0.01),
    # platelets: LLN 150, then 75 / 50 / 25
    *edges("platelets", lln("platelets"), (1, None, None), 1),
    *edges("platelets", 140, (1, None, None), 1, ref_low=140),
    *edges("platelets", cut("platelets", 2, "below"), (2, 1, 1), 1),
    *edges("platelets", cut("platelets", 3, "below"), (3, 2, 2), 1),
    *edges("platelets", cut("platelets", 4, "below"), (4, 3, 3), 1),
]

CREATININE_BASE = 50.0  # normal, and 1.5 x it is still below the ULN (82, women)
ALT_BAD_BASE = 60.0  # above the ALT ULN 40: an abnormal baseline
HIGH_GRADES = [
    # creatinine: 1.0 / 1.5 / 3.0 / 6.0 x ULN (catalogue default for women, then the lab's own)
    *edges("creatinine", uln("creatinine", 1), (None, None, 1), 0.01),
    *edges("creatinine", uln("creatinine", 2), (1, 1, 2), 0.01),
    *edges("creatinine", uln("creatinine", 3), (2, 2, 3), 0.01),
    *edges("creatinine", uln("creatinine", 4), (3, 3, 4), 0.01),
    *edges("creatinine", 90, (None, None, 1), 0.01, ref_high=90),
    # creatinine: 1.5 / 3.0 x baseline (the last result on or before day 0), even below the ULN
    *base_edges("creatinine", CREATININE_BASE, 2, "above_baseline", (None, None, 2)),
    *base_edges("creatinine", CREATININE_BASE, 3, "above_baseline", (2, 2, 3)),
    # ALT with a normal baseline: 1 / 3 / 5 / 20 x ULN (40 U/L)
    *edges("alt", uln("alt", 1), (None, None, 1), 0.01),
    *edges("alt", uln("alt", 2), (1, 1, 2), 0.01),
    *edges("alt", uln("alt", 3), (2, 2, 3), 0.01),
    *edges("alt", uln("alt", 4), (3, 3, 4), 0.01),
    graded("alt", 100, 1, base=CAT["alt"].ref_high),  # a baseline at the ULN is still normal
    # ALT with an abnormal baseline: the ULN cuts switch off, multiples of the baseline count
    graded("alt", 80, None, base=ALT_BAD_BASE),  # above the ULN, below 1.5 x the baseline
    # grade 1 against an abnormal baseline starts at 1.5 x baseline, inclusive
    *base_edges("alt", ALT_BAD_BASE, 1, "at_least_abnormal_baseline", (None, 1, 1)),
    *base_edges("ast", ALT_BAD_BASE, 1, "at_least_abnormal_baseline", (None, 1, 1)),
    *base_edges("alt", ALT_BAD_BASE, 2, "above_abnormal_baseline", (1, 1, 2)),
    *base_edges("alt", ALT_BAD_BASE, 3, "above_abnormal_baseline", (2, 2, 3)),
    *base_edges("alt", ALT_BAD_BASE, 4, "above_abnormal_baseline", (3, 3, 4)),
    # AST and bilirubin share the rule shape; their ULN and the 1.5 x ULN bilirubin cut
    *edges("ast", uln("ast", 2), (1, 1, 2), 0.01),
    *edges("bilirubin", uln("bilirubin", 1), (None, None, 1), 0.01),
    *edges("bilirubin", uln("bilirubin", 2), (1, 1, 2), 0.01),
    *base_edges("bilirubin", 30, 1, "above_abnormal_baseline", (None, None, 1)),
]


def _cases_day0_and_as_of() -> list[Case]:
    lym = rule("lymphocytes")
    low = 0.1  # grade 4
    return [
        case(
            "day0-result-is-baseline-not-graded",
            lambda p: p.course(D0).lab(D0, "lymphocytes", low),
            lym.code,
            None,
        ),
        case(
            "day1-result-graded",
            lambda p: p.course(D0).lab(day(D0, 1), "lymphocytes", low),
            lym.code,
            lym.severity[4],
            grade=4,
        ),
        case(
            "result-on-as-of-counts",
            lambda p: p.course(D0).lab(POST, "lymphocytes", 0.9).lab(AS_OF, "lymphocytes", low),
            lym.code,
            lym.severity[4],
            grade=4,
        ),
        case(
            "result-after-as-of-ignored",
            lambda p: (
                p.course(D0).lab(POST, "lymphocytes", 0.9).lab(day(AS_OF, 1), "lymphocytes", low)
            ),
            lym.code,
            lym.severity[1],
            grade=1,
        ),
        case(
            "latest-result-graded-worst-in-detail",
            lambda p: (
                p.course(D0).lab(POST, "lymphocytes", low).lab(day(POST, 31), "lymphocytes", 0.9)
            ),
            lym.code,
            lym.severity[1],
            grade=1,
            text=("worst grade since the first infusion: 4",),
        ),
        case(
            "creatinine-baseline-is-last-before-day0",
            lambda p: (
                p.course(D0)
                .lab(day(D0, -20), "creatinine", 100)
                .lab(D0, "creatinine", 60)
                .lab(POST, "creatinine", 95)
            ),
            "LAB-CREATININE",
            rule("creatinine").severity[2],
            grade=2,
            text=("baseline 60)",),
        ),
        case(
            "creatinine-earlier-low-baseline-not-used",
            lambda p: (
                p.course(D0)
                .lab(day(D0, -20), "creatinine", 50)
                .lab(day(D0, -5), "creatinine", 80)
                .lab(POST, "creatinine", 78)
            ),
            "LAB-CREATININE",
            None,
        ),
        case(
            "creatinine-result-after-day0-is-not-baseline",
            lambda p: p.course(D0).lab(day(D0, 1), "creatinine", 50).lab(POST, "creatinine", 78),
            "LAB-CREATININE",
            None,
        ),
    ]


def _cases_liver_worst() -> list[Case]:
    alt, ast = rule("alt"), rule("ast")
    return [
        case(
            "liver-alt-grade2-beats-ast-grade1",
            lambda p: (
                p.course(D0).lab(POST, "alt", uln("alt", 2) + 1).lab(POST, "ast", uln("ast", 1) + 1)
            ),
            "LAB-LIVER",
            alt.severity[2],
            grade=2,
            test="alt",
        ),
        case(
            "liver-ast-grade4-beats-alt-grade3-same-day",
            lambda p: (
                p.course(D0).lab(POST, "alt", uln("alt", 3) + 1).lab(POST, "ast", uln("ast", 4) + 1)
            ),
            "LAB-LIVER",
            ast.severity[4],
            grade=4,
            test="ast",
        ),
        case(
            "liver-ast-grade4-beats-later-alt-grade3",
            lambda p: (
                p.course(D0)
                .lab(POST, "ast", uln("ast", 4) + 1)
                .lab(day(POST, 1), "alt", uln("alt", 3) + 1)
            ),
            "LAB-LIVER",
            ast.severity[4],
            grade=4,
            test="ast",
        ),
    ]


GRADE_CASES = LOW_GRADES + HIGH_GRADES + _cases_day0_and_as_of() + _cases_liver_worst()


# --- units --------------------------------------------------------------------------------


def _unit_pairs() -> list[tuple[Case, Case]]:
    def pair(name: str, test: str, a: tuple, b: tuple, grade: int | None) -> tuple[Case, Case]:
        """`a` and `b`: (value, unit, extra lab columns in that unit)."""
        r = rule(test)
        sev = None if grade is None else r.severity[grade]

        def mk(suffix: str, value: float, unit: str, kw: dict | None = None) -> Case:
            build = lambda p: p.course(D0).lab(POST, test, value, unit, **(kw or {}))  # noqa: E731
            return case(f"units-{name}-{suffix}", build, r.code, sev, grade=grade)

        return mk("canonical", *a), mk("converted", *b)

    return [
        pair("lymphocytes-150-cells-per-uL", "lymphocytes", (0.15, "10*9/L"), (150, "cells/uL"), 4),
        pair(
            "lymphocytes-200-per-uL-at-grade4-cut", "lymphocytes", (0.2, "10*9/L"), (200, "/uL"), 3
        ),
        pair("lymphocytes-199-per-mm3", "lymphocytes", (0.199, "10*9/L"), (199, "/mm3"), 4),
        pair(
            "lymphocytes-ref-low-in-cells",
            "lymphocytes",
            (1.19, "10*9/L", {"ref_low": 1.2}),
            (1190, "cells/uL", {"ref_low": 1200}),
            1,
        ),
        pair("platelets-74000-per-uL", "platelets", (74, "10*9/L"), (74000, "/uL"), 2),
        # 132.63 umol/L is above 1.5 x the default upper limit for women (82)
        pair("creatinine-1.5-mg-per-dL", "creatinine", (132.63, "umol/L"), (1.5, "mg/dL"), 2),
        pair(
            "creatinine-0.082-mmol-per-L-at-ULN",
            "creatinine",
            (82, "umol/L"),
            (0.082, "mmol/L"),
            None,
        ),
    ]


UNIT_PAIRS = _unit_pairs()
UNIT_CASES = [
    # values as reported: converted ones rounded with the lab's own beside them; a value in
    # the canonical unit in the lab's own digits, so one just above a limit reads above it
    case(
        "units-creatinine-0.97-mg-per-dL-as-reported",
        lambda p: p.course(D0).lab(POST, "creatinine", 0.97, "mg/dL"),
        "LAB-CREATININE",
        rule("creatinine").severity[1],
        grade=1,
        text=("Creatinine 85.8 umol/L (reported as 0.97 mg/dL) on",),
    ),
    case(
        "units-creatinine-just-above-limit-own-digits",
        lambda p: p.course(D0).lab(POST, "creatinine", round(CAT["creatinine"].ref_high + 0.01, 2)),
        "LAB-CREATININE",
        rule("creatinine").severity[1],
        grade=1,
        text=(f"Creatinine {CAT['creatinine'].ref_high + 0.01:.2f} umol/L on",),
    ),
    case(
        "units-creatinine-1.5-mg-per-dL-detail",
        lambda p: p.course(D0).lab(POST, "creatinine", 1.5, "mg/dL", ref_high=1.2),
        "LAB-CREATININE",
        rule("creatinine").severity[1],
        grade=1,
        text=("Creatinine 133 umol/L", "upper limit 106"),
    ),
    case(
        "units-creatinine-at-1.5x-lab-ULN-in-mg-per-dL",
        lambda p: p.course(D0).lab(POST, "creatinine", 1.95, "mg/dL", ref_high=1.3),
        "LAB-CREATININE",
        rule("creatinine").severity[1],
        grade=1,
    ),
    case(
        "units-free-t4-ng-per-dL-escalates-hypo",
        lambda p: p.course(D0).lab(POST, "tsh", 8).lab(POST, "free_t4", 0.7, "ng/dL"),
        "THY-HYPO",
        "high",
        text=("free T4 9.01 pmol/L (reported as 0.7 ng/dL) (below range)",),
    ),
]


# --- thyroid flags ------------------------------------------------------------------------


def flag(code: str):
    return next(f for f in ALEM.flags if f.code == code)


def _thyroid_cases() -> list[Case]:
    hypo, hyper, tpo = flag("THY-HYPO"), flag("THY-HYPER"), flag("THY-TPO")
    tsh_hi, tsh_lo = CAT["tsh"].ref_high, CAT["tsh"].ref_low
    ft4_lo, ft4_hi = CAT["free_t4"].ref_low, CAT["free_t4"].ref_high
    win = hypo.companion.within_days
    assert hyper.companion.within_days == win

    def tsh(v, ft4=None, ft4_day=0, **kw):
        def build(p: Rows) -> Rows:
            p.course(D0).lab(POST, "tsh", v, **kw)
            return p if ft4 is None else p.lab(day(POST, ft4_day), "free_t4", ft4)

        return build

    high, low = tsh_hi + 4, tsh_lo / 4  # clearly out of range
    return [
        case("hypo-tsh-just-below-ULN", tsh(round(tsh_hi - 0.01, 6)), "THY-HYPO", None),
        case("hypo-tsh-at-ULN", tsh(tsh_hi), "THY-HYPO", None),
        case(
            "hypo-tsh-just-above-ULN",
            tsh(round(tsh_hi + 0.01, 6)),
            "THY-HYPO",
            hypo.severity,
            text=("not measured within",),
        ),
        case(
            "hypo-tsh-above-default-below-lab-ULN",
            tsh(tsh_hi + 0.5, ref_high=tsh_hi + 1),
            "THY-HYPO",
            None,
        ),
        case(
            "hypo-ft4-just-below-LLN-escalates",
            tsh(high, round(ft4_lo - 0.01, 6)),
            "THY-HYPO",
            hypo.escalated_severity,
            text=("below range",),
        ),
        case(
            "hypo-ft4-at-LLN-not-escalated",
            tsh(high, ft4_lo),
            "THY-HYPO",
            hypo.severity,
            text=("within range",),
        ),
        case(
            "hypo-ft4-low-window-days-before",
            tsh(high, ft4_lo - 2, -win),
            "THY-HYPO",
            hypo.escalated_severity,
        ),
        case(
            "hypo-ft4-low-window-days-after",
            tsh(high, ft4_lo - 2, win),
            "THY-HYPO",
            hypo.escalated_severity,
        ),
        case(
            "hypo-ft4-low-window+1-days-before-ignored",
            tsh(high, ft4_lo - 2, -win - 1),
            "THY-HYPO",
            hypo.severity,
            text=(f"not measured within {win} days",),
        ),
        case(
            "hypo-ft4-low-window+1-days-after-ignored",
            tsh(high, ft4_lo - 2, win + 1),
            "THY-HYPO",
            hypo.severity,
        ),
        case("hypo-ft4-at-ULN-not-excluded", tsh(high, ft4_hi), "THY-HYPO", hypo.severity),
        case(
            "hypo-ft4-just-above-ULN-excludes", tsh(high, round(ft4_hi + 0.01, 6)), "THY-HYPO", None
        ),
        case(
            "hypo-ft4-high-window+1-days-away-not-excluding",
            tsh(high, ft4_hi + 5, win + 1),
            "THY-HYPO",
            hypo.severity,
        ),
        case(
            "hypo-nearest-ft4-wins",
            lambda p: (
                p.course(D0)
                .lab(POST, "tsh", high)
                .lab(day(POST, -10), "free_t4", ft4_lo - 2)
                .lab(day(POST, 2), "free_t4", ft4_lo + 5)
            ),
            "THY-HYPO",
            hypo.severity,
            text=("within range",),
        ),
        case(
            "hypo-ft4-after-as-of-ignored",
            lambda p: (
                p.course(D0)
                .lab(day(AS_OF, -2), "tsh", high)
                .lab(day(AS_OF, 1), "free_t4", ft4_lo - 2)
            ),
            "THY-HYPO",
            hypo.severity,
        ),
        case(
            "hypo-tsh-on-day0-ignored",
            lambda p: p.course(D0).lab(D0, "tsh", high),
            "THY-HYPO",
            None,
        ),
        case(
            "hypo-latest-tsh-normal",
            lambda p: p.course(D0).lab(POST, "tsh", high).lab(day(POST, 30), "tsh", tsh_hi - 1),
            "THY-HYPO",
            None,
        ),
        case("hyper-tsh-at-LLN", tsh(tsh_lo), "THY-HYPER", None),
        case("hyper-tsh-just-below-LLN", tsh(round(tsh_lo - 0.01, 6)), "THY-HYPER", hyper.severity),
        case("hyper-tsh-just-above-LLN", tsh(round(tsh_lo + 0.01, 6)), "THY-HYPER", None),
        case(
            "hyper-ft4-just-above-ULN-escalates",
            tsh(low, round(ft4_hi + 0.01, 6)),
            "THY-HYPER",
            hyper.escalated_severity,
            text=("above range",),
        ),
        case("hyper-ft4-at-ULN-not-escalated", tsh(low, ft4_hi), "THY-HYPER", hyper.severity),
        case("hyper-ft4-at-LLN-not-excluded", tsh(low, ft4_lo), "THY-HYPER", hyper.severity),
        case(
            "hyper-ft4-just-below-LLN-excludes",
            tsh(low, round(ft4_lo - 0.01, 6)),
            "THY-HYPER",
            None,
        ),
        case(
            "hyper-ft4-high-window-days-before",
            tsh(low, ft4_hi + 5, -win),
            "THY-HYPER",
            hyper.escalated_severity,
        ),
        case(
            "hyper-ft4-high-window+1-days-before",
            tsh(low, ft4_hi + 5, -win - 1),
            "THY-HYPER",
            hyper.severity,
        ),
        case(
            "tpo-at-ULN",
            lambda p: p.course(D0).lab(POST, "tpo_ab", CAT["tpo_ab"].ref_high),
            "THY-TPO",
            None,
        ),
        case(
            "tpo-just-above-ULN",
            lambda p: p.course(D0).lab(POST, "tpo_ab", round(CAT["tpo_ab"].ref_high + 0.01, 6)),
            "THY-TPO",
            tpo.severity,
        ),
        case(
            "tpo-on-day0-ignored",
            lambda p: p.course(D0).lab(D0, "tpo_ab", CAT["tpo_ab"].ref_high * 10),
            "THY-TPO",
            None,
        ),
    ]


THYROID_CASES = _thyroid_cases()


# --- schedule: MON-OVERDUE ----------------------------------------------------------------


def _overdue_edges() -> list[Case]:
    """For every schedule item: days past due = grace, grace + 1, grace + escalate, + 1."""
    out = []
    for protocol in (ALEM, NTZ):
        for item in (i for i in protocol.schedule if i.interval_days is not None):
            g, e = item.grace_days, item.escalate_after_days
            for label, k, sev in (
                ("grace", g, None),
                ("grace+1", g + 1, "routine"),
                ("grace+escalate", g + e, "routine"),
                ("grace+escalate+1", g + e + 1, "high"),
            ):
                due = day(AS_OF, -k)
                clock = day(due, -item.interval_days)
                if protocol is ALEM:  # the clock starts on the last day of the course
                    build = lambda p, c=clock: p.course(day(c, -4))  # noqa: E731
                else:  # the clock starts with the exposure, still going on
                    build = lambda p, c=clock: p.drug("natalizumab", c)  # noqa: E731
                out.append(
                    case(
                        f"{protocol.id}-{item.id}-due+{label}",
                        build,
                        "MON-OVERDUE",
                        sev,
                        test=item.id,
                        date=due if sev else None,
                    )
                )
    return out


def _item(protocol, item_id: str):
    return next(i for i in protocol.schedule if i.id == item_id)


def _overdue_cases() -> list[Case]:
    cbc, uri = _item(ALEM, "cbc"), _item(ALEM, "urinalysis")
    jcv = _item(NTZ, "jcv_index")
    old = day(AS_OF, -400)  # a course whose clock has long run out
    ok = day(AS_OF, -cbc.interval_days - cbc.grace_days)  # done on this day: not yet overdue
    late = day(ok, -1)  # done on this day: overdue by grace + 1

    def cbc_on(p: Rows, when: dict) -> Rows:
        for test in cbc.tests:
            if when.get(test) is not None:
                p.lab(when[test], test, 5 if test != "platelets" else 250)
        return p

    every = lambda d: dict.fromkeys(cbc.tests, d)  # noqa: E731
    end_monitoring = ALEM.therapy.monitoring_days_after_end
    tail = NTZ.therapy.monitoring_days_after_end
    return [
        case(
            "cbc-all-done-at-edge",
            lambda p: cbc_on(p.course(old), every(ok)),
            "MON-OVERDUE",
            None,
            test="cbc",
        ),
        case(
            "cbc-all-done-a-day-earlier",
            lambda p: cbc_on(p.course(old), every(late)),
            "MON-OVERDUE",
            "routine",
            test="cbc",
            date=day(late, cbc.interval_days),
        ),
        case(
            "cbc-require-all-one-test-missing",
            lambda p: cbc_on(p.course(old), {**every(ok), "platelets": None}),
            "MON-OVERDUE",
            "high",
            test="cbc",
            date=day(old, 4 + cbc.interval_days),
        ),
        case(
            "cbc-require-all-least-recent-test-counts",
            lambda p: cbc_on(p.course(old), {**every(ok), "platelets": late}),
            "MON-OVERDUE",
            "routine",
            test="cbc",
            date=day(late, cbc.interval_days),
        ),
        case(
            "cbc-done-after-as-of-ignored",
            lambda p: cbc_on(p.course(day(late, -4)), every(day(AS_OF, 1))),
            "MON-OVERDUE",
            "routine",
            test="cbc",
            date=day(late, cbc.interval_days),
        ),
        # the urinalysis needs urine cell counts: protein or dipstick alone is not one
        case(
            "urinalysis-cell-count-at-edge",
            lambda p: p.course(old).lab(
                day(AS_OF, -uri.interval_days - uri.grace_days), "urine_rbc", 1
            ),
            "MON-OVERDUE",
            None,
            test="urinalysis",
        ),
        case(
            "urinalysis-protein-alone-does-not-count",
            lambda p: p.course(old).lab(
                day(AS_OF, -uri.interval_days - uri.grace_days), "urine_protein", 0.1
            ),
            "MON-OVERDUE",
            "high",
            test="urinalysis",
            date=day(old, 4 + uri.interval_days),
        ),
        case(
            "urinalysis-dipstick-alone-does-not-count",
            lambda p: (
                p.course(old)
                .lab(day(AS_OF, -300), "urine_rbc", 1)
                .lab(
                    day(AS_OF, -uri.interval_days - uri.grace_days),
                    "urine_blood",
                    "negative",
                    "",
                )
            ),
            "MON-OVERDUE",
            "high",
            test="urinalysis",
            date=day(AS_OF, -300 + uri.interval_days),
        ),
        # the monitoring tail: as-of on the last monitored day still counts, the day after not
        case(
            "cbc-last-day-of-monitoring",
            lambda p: p.course(day(AS_OF, -end_monitoring - 4)),
            "MON-OVERDUE",
            "high",
            test="cbc",
            text=(f"monitoring continues until {AS_OF}",),
        ),
        case(
            "cbc-day-after-monitoring-ends",
            lambda p: p.course(day(AS_OF, -end_monitoring - 5)),
            "MON-OVERDUE",
            None,
            test="cbc",
        ),
        # course 2 restarts the clock for tests done in its baseline window or since, and
        # the monitoring tail; a test last done long before is overdue from its own interval
        case(
            "cbc-course1-only-cbc-after-it",
            lambda p: cbc_on(p.course(day(AS_OF, -700)), every(day(AS_OF, -300))),
            "MON-OVERDUE",
            "high",
            test="cbc",
            date=day(AS_OF, -300 + cbc.interval_days),
        ),
        case(
            "cbc-course2-does-not-forgive-an-old-test",
            lambda p: cbc_on(p.course(day(AS_OF, -700)), every(day(AS_OF, -300))).course(
                day(ok, -4), n=2
            ),
            "MON-OVERDUE",
            "high",
            test="cbc",
            date=day(AS_OF, -300 + cbc.interval_days),
        ),
        case(
            "cbc-course2-baseline-in-window-restarts-clock-at-edge",
            lambda p: cbc_on(
                p.course(day(AS_OF, -700)), every(day(ok, -4 - cbc.baseline_days))
            ).course(day(ok, -4), n=2),
            "MON-OVERDUE",
            None,
            test="cbc",
        ),
        case(
            "cbc-course2-baseline-a-day-before-window-does-not",
            lambda p: cbc_on(
                p.course(day(AS_OF, -700)), every(day(ok, -4 - cbc.baseline_days - 1))
            ).course(day(ok, -4), n=2),
            "MON-OVERDUE",
            "high",
            test="cbc",
            date=day(ok, -4 - cbc.baseline_days - 1 + cbc.interval_days),
        ),
        case(
            "cbc-course2-restarts-clock-day-after-edge",
            lambda p: cbc_on(p.course(day(AS_OF, -700)), every(day(late, -10))).course(
                day(late, -4), n=2
            ),
            "MON-OVERDUE",
            "routine",
            test="cbc",
            date=day(late, cbc.interval_days),
        ),
        case(
            "cbc-course2-after-as-of-ignored",
            lambda p: p.course(old).course(day(AS_OF, 1), n=2),
            "MON-OVERDUE",
            "high",
            test="cbc",
            date=day(old, 4 + cbc.interval_days),
        ),
        case(
            "cbc-course2-restarts-monitoring-tail",
            lambda p: p.course(day(AS_OF, -end_monitoring - 600)).course(
                day(AS_OF, -end_monitoring + 100), n=2
            ),
            "MON-OVERDUE",
            "high",
            test="cbc",
        ),
        # natalizumab: a JCV index resets the due date; stopping ends the monitoring
        case(
            "jcv-done-at-edge",
            lambda p: p.drug("natalizumab", old).lab(
                day(AS_OF, -jcv.interval_days - jcv.grace_days), "jcv_index", 0.2, ""
            ),
            "MON-OVERDUE",
            None,
            test="jcv_index",
        ),
        case(
            "jcv-done-a-day-earlier",
            lambda p: p.drug("natalizumab", old).lab(
                day(AS_OF, -jcv.interval_days - jcv.grace_days - 1), "jcv_index", 0.2, ""
            ),
            "MON-OVERDUE",
            "routine",
            test="jcv_index",
            date=day(AS_OF, -jcv.grace_days - 1),
        ),
        case(
            "jcv-natalizumab-ends-on-as-of",
            lambda p: p.drug("natalizumab", old, AS_OF),
            "MON-OVERDUE",
            "high",
            test="jcv_index",
        ),
        case(
            "jcv-natalizumab-ended-day-before-as-of",
            lambda p: p.drug("natalizumab", old, day(AS_OF, -1)),
            "MON-OVERDUE",
            None,
            test="jcv_index",
        ),
        # an open natalizumab row ends the day before another DMT starts (a switch); PML
        # vigilance by MRI then runs the monitoring tail from that day
        case(
            "jcv-open-row-switch-on-as-of-ends-it",
            lambda p: p.drug("natalizumab", old).course(AS_OF, days=1),
            "MON-OVERDUE",
            None,
            test="jcv_index",
        ),
        case(
            "jcv-open-row-switch-after-as-of-not-seen",
            lambda p: p.drug("natalizumab", old).course(day(AS_OF, 1), days=1),
            "MON-OVERDUE",
            "high",
            test="jcv_index",
        ),
        case(
            "mri-vigilance-last-day-after-switch",
            lambda p: p.drug("natalizumab", old).course(day(AS_OF, -tail + 1), days=1),
            "MON-OVERDUE",
            "routine",
            test="mri_brain",
            text=(f"continues until {AS_OF}",),
        ),
        case(
            "mri-vigilance-ended-day-after",
            lambda p: p.drug("natalizumab", old).course(day(AS_OF, -tail), days=1),
            "MON-OVERDUE",
            None,
            test="mri_brain",
        ),
    ]


OVERDUE_CASES = _overdue_edges() + _overdue_cases()


# --- natalizumab PML risk -----------------------------------------------------------------


def _pml_cases() -> list[Case]:
    r = NTZ.risk_strata[0]
    strata = {s.id: s for s in r.strata}
    high, mid, three = strata["index_high"], strata["index_mid"], strata["all_three"]
    long = high.exposure_above_days + 1  # days of exposure that count as "more than"
    positive_cut = CAT["jcv_index"].ref_high
    validity = NTZ.result_validity[0]
    tail = NTZ.therapy.monitoring_days_after_end

    def ntz(days: int, *indices: tuple[int, float], prior: str | None = None) -> callable:
        """Natalizumab ongoing for `days` days up to AS_OF (inclusive); (day offset, index)
        results; optionally a prior immunosuppressant long before."""

        def build(p: Rows) -> Rows:
            p.drug("natalizumab", day(AS_OF, -(days - 1)))
            if prior:
                p.drug(prior, day(AS_OF, -3000), day(AS_OF, -2900))
            for offset, v in indices:
                p.lab(day(AS_OF, offset), "jcv_index", v, "")
            return p

        return build

    def after(drug: str, gap: int) -> callable:
        """A high index long ago, then a low one `gap` days after `drug` ended."""
        return lambda p: ntz(long, (-300, 3.0), (-10, 0.2))(p).drug(
            drug, day(AS_OF, -10 - gap - 2), day(AS_OF, -10 - gap)
        )

    just_above = round(high.value_above + 0.01, 6)
    return [
        # index bands after more than 24 months: > 1.5 high, > 0.9 intermediate
        case("pml-index-at-high-cut", ntz(long, (-10, high.value_above)), r.code, mid.severity),
        case(
            "pml-index-just-above-high-cut",
            ntz(long, (-10, just_above)),
            r.code,
            high.severity,
            text=(f"after {long} days", "risk about 1 in 100"),
        ),
        case("pml-index-at-mid-cut", ntz(long, (-10, mid.value_above)), r.code, None),
        case(
            "pml-index-just-above-mid-cut",
            ntz(long, (-10, round(mid.value_above + 0.01, 6))),
            r.code,
            mid.severity,
            text=("intermediate risk",),
        ),
        case("pml-exposure-at-min", ntz(high.exposure_above_days, (-10, 3.0)), r.code, None),
        case("pml-exposure-min+1", ntz(long, (-10, 3.0)), r.code, high.severity),
        case("pml-latest-index-low", ntz(long, (-200, 3.0), (-10, 0.5)), r.code, None),
        case("pml-index-after-as-of-ignored", ntz(long, (-10, 0.5), (1, 3.0)), r.code, None),
        # positive + more than 24 months + a prior immunosuppressant: whatever the index
        *[
            case(
                f"pml-all-three-{drug}",
                ntz(long, (-10, round(positive_cut + 0.01, 6)), prior=drug),
                r.code,
                three.severity,
                text=("highest-risk group", f"{drug} from"),
            )
            for drug in r.prior_drugs
        ],
        case(
            "pml-prior-is-index-at-positive-cut-negative",
            ntz(long, (-10, positive_cut), prior="mitoxantrone"),
            r.code,
            None,
        ),
        case(
            "pml-prior-is-exposure-at-min",
            ntz(high.exposure_above_days, (-10, 0.5), prior="mitoxantrone"),
            r.code,
            None,
        ),
        case(
            "pml-steroids-not-prior-is",
            ntz(long, (-10, 0.5), prior="methylprednisolone"),
            r.code,
            None,
        ),
        # PML vigilance goes on for the monitoring tail after the last infusion
        case(
            "pml-vigilance-last-day-after-stop",
            lambda p: p.drug("natalizumab", day(AS_OF, -1000), day(AS_OF, -tail)).lab(
                day(AS_OF, -tail - 10), "jcv_index", 3.0, ""
            ),
            r.code,
            high.severity,
        ),
        case(
            "pml-vigilance-ended-day-before",
            lambda p: p.drug("natalizumab", day(AS_OF, -1000), day(AS_OF, -tail - 1)).lab(
                day(AS_OF, -tail - 10), "jcv_index", 3.0, ""
            ),
            r.code,
            None,
        ),
        case(
            "pml-exposure-summed-over-episodes",
            lambda p: (
                p.drug("natalizumab", day(AS_OF, -1000), day(AS_OF, -601))
                .drug("natalizumab", day(AS_OF, -(long - 400) + 1))
                .lab(day(AS_OF, -10), "jcv_index", 3.0, "")
            ),
            r.code,
            high.severity,
            text=(f"after {long} days",),
        ),
        case(
            "pml-exposure-summed-over-episodes-one-short",
            lambda p: (
                p.drug("natalizumab", day(AS_OF, -1000), day(AS_OF, -601))
                .drug("natalizumab", day(AS_OF, -(long - 400) + 2))
                .lab(day(AS_OF, -10), "jcv_index", 3.0, "")
            ),
            r.code,
            None,
        ),
        # a result drawn too soon after plasma exchange or IVIg does not lower the stratum
        *[
            c
            for drug, days in validity.invalid_after.items()
            for c in (
                case(f"pml-{drug}-day-{days}-invalid", after(drug, days), r.code, high.severity),
                case(
                    f"pml-{drug}-day-{days}-invalid-repeat",
                    after(drug, days),
                    validity.code,
                    validity.severity,
                    text=(f"drawn {days} days after the last day of {drug}",),
                ),
                case(f"pml-{drug}-day-{days + 1}-valid", after(drug, days + 1), r.code, None),
                case(
                    f"pml-{drug}-day-{days + 1}-valid-no-repeat",
                    after(drug, days + 1),
                    validity.code,
                    None,
                ),
            )
        ],
    ]


PML_CASES = _pml_cases()


# --- CNS rules ----------------------------------------------------------------------------


def _cns_mri_cases() -> list[Case]:
    r = ALEM.relapse_imaging[0]
    w = r.within_days
    age = r.ageing
    onset = day(AS_OF, -60)  # recent: not yet aged
    c0 = day(onset, -100)  # day 0 of these cases

    def relapse(*mris: tuple, at: dt.date = onset, confirmed: bool = True) -> callable:
        """A relapse at `at` and MRIs (day offset from onset, region, contrast)."""

        def build(p: Rows) -> Rows:
            p.course(c0).relapse(at, confirmed)
            for offset, region, contrast in mris:
                p.mri(day(at, offset), region, contrast)
            return p

        return build

    brain = lambda offset: (offset, "brain", True)  # noqa: E731
    return [
        case("mri-on-onset-day", relapse(brain(0)), r.code, None),
        case("mri-on-window-day", relapse(brain(w)), r.code, None),
        case(
            "mri-on-window-day+1",
            relapse(brain(w + 1)),
            r.code,
            r.late_severity,
            date=onset,
            text=(f"{w + 1} days after onset",),
        ),
        case(
            "mri-day-before-onset-only",
            relapse(brain(-1)),
            r.code,
            r.severity,
            date=onset,
            text=("no contrast MRI recorded since onset",),
        ),
        case(
            "mri-none",
            relapse(),
            r.code,
            r.severity,
            date=onset,
            text=("96 days after the last alemtuzumab infusion",),
        ),
        case("mri-non-contrast-not-counted", relapse((1, "brain", False)), r.code, r.severity),
        case("mri-contrast-blank-defaults-true", relapse((1, "brain", None)), r.code, None),
        case("mri-spine-only-not-counted", relapse((1, "spine", True)), r.code, r.severity),
        case(
            "mri-after-as-of-not-counted",
            relapse((4, "brain", True), at=day(AS_OF, -3)),
            r.code,
            r.severity,
        ),
        case(
            "mri-relapse-on-as-of-urgent-at-once", relapse(at=AS_OF), r.code, r.severity, date=AS_OF
        ),
        case("mri-relapse-after-as-of-ignored", relapse(at=day(AS_OF, 1)), r.code, None),
        # every apparent relapse, confirmed or not
        case("mri-unconfirmed-relapse-counts", relapse(confirmed=False), r.code, r.severity),
        case("mri-relapse-day-before-day0-ignored", relapse(at=day(c0, -1)), r.code, None),
        case("mri-relapse-on-day0-counts", relapse(at=c0), r.code, age.severity, date=c0),
        # an alarm without a scan ages: urgent up to the ageing day, then lower
        case("mri-none-at-ageing-day", relapse(at=day(AS_OF, -age.after_days)), r.code, r.severity),
        case(
            "mri-none-a-day-past-ageing",
            relapse(at=day(AS_OF, -age.after_days - 1)),
            r.code,
            age.severity,
        ),
        case(
            "mri-earlier-relapse-scan-does-not-cover-later",
            lambda p: p.course(c0).relapse(onset).mri(day(onset, 2)).relapse(day(onset, 30)),
            r.code,
            r.severity,
            date=day(onset, 30),
        ),
    ]


def _cns_ring_cases() -> list[Case]:
    r = ALEM.imaging_findings[0]
    lo, hi = ALEM.repopulation_window_days
    start = day(AS_OF, -400)
    end = day(start, 4)
    scan = day(end, 150)
    inside = ALEM.repopulation_wording["inside"]
    before = ALEM.repopulation_wording["before"]
    after = ALEM.repopulation_wording["after"]

    def ring(days_after_end: int, text: str) -> Case:
        return case(
            f"ring-day-{days_after_end}-after-last-infusion",
            lambda p: p.course(start).mri(day(end, days_after_end), ring=1),
            r.code,
            r.severity,
            date=day(end, days_after_end),
            text=(f"{days_after_end} days after the last alemtuzumab infusion ({text}",),
        )

    def with_rescue(drug: str, offset: int) -> callable:
        return lambda p: (
            p.course(start).mri(scan, ring=1).drug(drug, day(scan, offset), day(scan, offset))
        )

    return [
        ring(lo - 1, before),
        ring(lo, inside),
        ring(hi, inside),
        ring(hi + 1, after),
        case("ring-zero-no-finding", lambda p: p.course(start).mri(scan, ring=0), r.code, None),
        case(
            "ring-on-day0",
            lambda p: p.course(start).mri(start, ring=1),
            r.code,
            r.severity,
            text=("0 days after",),
        ),
        case(
            "ring-day-before-day0-ignored",
            lambda p: p.course(start).mri(day(start, -1), ring=1),
            r.code,
            None,
        ),
        case(
            "ring-after-as-of-ignored",
            lambda p: p.course(start).mri(day(AS_OF, 1), ring=1),
            r.code,
            None,
        ),
        # rescue therapy lowers the severity only once a follow-up scan exists
        *[
            case(
                f"ring-rescue-{d}-on-scan-day-no-follow-up",
                with_rescue(d, 0),
                r.code,
                r.severity,
                text=(f"{d} from {scan}",),
            )
            for d in r.rescue_drugs
        ],
        case(
            "ring-rescue-and-a-follow-up-scan",
            lambda p: with_rescue("plasma_exchange", 0)(p).mri(day(scan, 30)),
            r.code,
            r.rescued_severity,
        ),
        case(
            "ring-rescue-follow-up-still-ring-urgent",
            lambda p: with_rescue("plasma_exchange", 0)(p).mri(day(scan, 30), ring=1),
            r.code,
            r.severity,
            date=day(scan, 30),
        ),
        case(
            "ring-rescue-day-before-scan-not-counted",
            with_rescue("plasma_exchange", -1),
            r.code,
            r.severity,
            text=("Rescue therapy recorded: none",),
        ),
        case(
            "ring-rescue-after-as-of-not-counted",
            with_rescue("plasma_exchange", (AS_OF - scan).days + 1),
            r.code,
            r.severity,
        ),
        case("ring-steroids-not-rescue", with_rescue("methylprednisolone", 1), r.code, r.severity),
        case(
            "ring-follow-up-same-region-zero",
            lambda p: p.course(start).mri(scan, ring=1).mri(day(scan, 30), ring=0),
            r.code,
            r.receded_severity,
            text=("0 such lesions",),
        ),
        case(
            "ring-follow-up-still-ring",
            lambda p: p.course(start).mri(scan, ring=2).mri(day(scan, 30), ring=1),
            r.code,
            r.severity,
            date=day(scan, 30),
        ),
        case(
            "ring-follow-up-spine-zero-not-counted",
            lambda p: p.course(start).mri(scan, ring=1).mri(day(scan, 30), "spine", ring=0),
            r.code,
            r.severity,
        ),
        case(
            "ring-follow-up-after-as-of-not-counted",
            lambda p: p.course(start).mri(scan, ring=1).mri(day(AS_OF, 1), ring=0),
            r.code,
            r.severity,
            text=("No follow-up MRI yet.",),
        ),
        case(
            "ring-follow-up-without-contrast-not-receded",
            lambda p: p.course(start).mri(scan, ring=1).mri(day(scan, 30), contrast=False, ring=0),
            r.code,
            r.severity,
        ),
        case(
            "ring-course2-restarts-days-after-infusion",
            lambda p: p.course(day(AS_OF, -800)).course(start, n=2).mri(day(end, lo), ring=1),
            r.code,
            r.severity,
            text=(f"{lo} days after the last alemtuzumab infusion ({inside}",),
        ),
    ]


def _cns_stroke_cases() -> list[Case]:
    r = ALEM.infusion_proximity[0]
    n = r.days_after_infusion
    start = day(AS_OF, -30)
    end = day(start, 4)

    def onset(at: dt.date, confirmed: bool = True) -> callable:
        return lambda p: p.course(start).relapse(at, confirmed)

    def per_day(at: dt.date) -> callable:
        """The course exported one row per infusion day, without end dates."""

        def build(p: Rows) -> Rows:
            for i in range(5):
                p.drug("alemtuzumab", day(start, i))
            return p.relapse(at)

        return build

    return [
        case("stroke-day-before-course", onset(day(start, -1)), r.code, None),
        case(
            "stroke-first-infusion-day",
            onset(start),
            r.code,
            r.severity,
            text=(f"0 day(s) after the infusion of {start}",),
        ),
        case(
            "stroke-mid-course",
            onset(day(start, 2)),
            r.code,
            r.severity,
            text=(f"0 day(s) after the infusion of {day(start, 2)}",),
        ),
        case(
            "stroke-end+window",
            onset(day(end, n)),
            r.code,
            r.severity,
            date=day(end, n),
            text=(f"{n} day(s) after the infusion of {end}",),
        ),
        case("stroke-end+window+1", onset(day(end, n + 1)), r.code, None),
        case(
            "stroke-unconfirmed-event-counts",
            onset(day(end, 1), confirmed=False),
            r.code,
            r.severity,
        ),
        case("stroke-row-per-day-end+window", per_day(day(end, n)), r.code, r.severity),
        case("stroke-row-per-day-end+window+1", per_day(day(end, n + 1)), r.code, None),
        case(
            "stroke-course2-end+window",
            lambda p: p.course(day(start, -400)).course(start, n=2).relapse(day(end, n)),
            r.code,
            r.severity,
        ),
    ]


CNS_CASES = _cns_mri_cases() + _cns_ring_cases() + _cns_stroke_cases()

ALL_CASES = (
    GRADE_CASES
    + UNIT_CASES
    + [c for pair in UNIT_PAIRS for c in pair]
    + THYROID_CASES
    + OVERDUE_CASES
    + PML_CASES
    + CNS_CASES
)


# --- the run --------------------------------------------------------------------------------


def clinic_findings(folder, cases: list[Case]) -> dict[tuple[str, str], list[dict]]:
    """Every case's patient in one clinic, checked once: findings by (patient, code).
    A patient without a patients row of its own is sex F, born 1980."""
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique: they are the patient ids"
    tables: dict[str, list[dict]] = defaultdict(list)
    for c in cases:
        for name, rows in c.rows.items():
            tables[name] += rows
    named = {r["patient_id"] for r in tables["patients"]}
    tables["patients"] += [
        {"patient_id": i, "sex": "F", "birth_date": "1980"} for i in ids if i not in named
    ]
    out = defaultdict(list)
    for f in findings(write_clinic(folder, **tables), AS_OF):
        out[(f["patient_id"], f["code"])].append(f)
    return out


@pytest.fixture(scope="module")
def worklist(tmp_path_factory) -> dict[tuple[str, str], list[dict]]:
    return clinic_findings(tmp_path_factory.mktemp("boundaries"), ALL_CASES)


def the_finding(worklist, c: Case) -> dict | None:
    got = worklist.get((c.id, c.code), [])
    if c.code in ("MON-OVERDUE", "MON-BASELINE"):  # kept per schedule item
        got = [f for f in got if f["test"] == c.test]
    assert len(got) <= 1, got
    return got[0] if got else None


def check(worklist, c: Case) -> None:
    f = the_finding(worklist, c)
    if c.severity is None:
        assert f is None, (
            f"{c.id}: expected no {c.code}, got {f and (f['severity'], f['grade'], f['detail'])}"
        )
        return
    assert f is not None, f"{c.id}: expected {c.code} ({c.severity}), got none"
    assert (f["severity"], f["grade"]) == (c.severity, c.grade), f["detail"]
    if c.test is not None:
        assert f["test"] == c.test
    if c.date is not None:
        assert f["date"] == c.date
    for phrase in c.text:
        assert phrase in f["detail"]


@pytest.mark.parametrize("c", params(GRADE_CASES))
def test_lab_grade(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(UNIT_CASES))
def test_units(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize(
    ("a", "b"), [pytest.param(a, b, id=a.id.removesuffix("-canonical")) for a, b in UNIT_PAIRS]
)
def test_converted_unit_gives_the_same_finding(worklist, a: Case, b: Case) -> None:
    check(worklist, a)
    check(worklist, b)
    fa, fb = the_finding(worklist, a), the_finding(worklist, b)
    if fa is not None:
        # the converted result also says how it was reported, e.g. "(reported as 150 cells/uL)"
        _value, unit = b.rows["labs"][-1]["value"], b.rows["labs"][-1]["unit"]
        note = f" (reported as {_value} {unit})"
        assert note in fb["detail"] and note not in fa["detail"]
        # the canonical result shows the lab's own digits (132.63), the converted one the
        # canonical value to 3 significant figures (133): everything after it is the same
        assert fa["detail"].split(" on ", 1)[1] == fb["detail"].split(" on ", 1)[1]
        # the facts too, but the converted one keeps the value as reported
        facts_a, facts_b = json.loads(fa["facts"]), json.loads(fb["facts"])
        assert facts_b.pop("value_as_reported") == f"{_value} {unit}"
        assert facts_a == facts_b
        fa, fb = (
            {k: v for k, v in f.items() if k not in ("patient_id", "detail", "key", "facts")}
            for f in (fa, fb)
        )
    assert fa == fb


@pytest.mark.parametrize("c", params(THYROID_CASES))
def test_thyroid(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(OVERDUE_CASES))
def test_overdue(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(PML_CASES))
def test_pml_risk(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(CNS_CASES))
def test_cns(worklist, c: Case) -> None:
    check(worklist, c)
