"""Boundaries of the rules issue 10 changed or added: just below / at / just above each
threshold, the day before / on / after each window edge, a case that raises and one that
does not.

The same design as tests/test_rule_boundaries.py (whose helpers this file uses): each case
is one patient, all cases live in one clinic checked once at AS_OF, the patient id is the
case id, and every number comes from the loaded protocol and lab catalogue.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from tests.clinic import check as run_clinic
from tests.clinic import write_clinic
from tests.test_rule_boundaries import (
    ALEM,
    AS_OF,
    CAT,
    D0,
    NTZ,
    POST,
    Case,
    Rows,
    case,
    check,
    clinic_findings,
    day,
    params,
    rule,
)


def _flag(code: str, test: str):
    return next(f for f in ALEM.flags if f.code == code and f.test == test)


def _item(protocol, item_id: str):
    return next(i for i in protocol.schedule if i.id == item_id)


def _up(x: float, eps: float = 0.01) -> float:
    return round(x + eps, 6)


def _down(x: float, eps: float = 0.01) -> float:
    return round(x - eps, 6)


def _ae(p: Rows, onset: dt.date, category: str, term: str | None = None) -> Rows:
    p.tables["adverse_events"].append(
        {
            "patient_id": p.pid,
            "onset_date": onset,
            "term": term or category.replace("_", " "),
            "category": category,
        }
    )
    return p


def _sex(p: Rows, sex: str | None) -> Rows:
    p.tables["patients"].append({"patient_id": p.pid, "sex": sex, "birth_date": "1980"})
    return p


def _overdue_severity(item, days_overdue: int) -> str | None:
    if days_overdue <= item.grace_days:
        return None
    return "high" if days_overdue > item.grace_days + item.escalate_after_days else "routine"


# --- 1. REN-PROTEINURIA -----------------------------------------------------------------------

CR_ULN = CAT["creatinine"].ref_high  # the default for women (write_clinic's default sex)


def _proteinuria_cases() -> list[Case]:
    return [c for test in ("urine_protein", "upcr") for c in _proteinuria_of(test)]


def _proteinuria_of(test: str) -> list[Case]:
    r = _flag("REN-PROTEINURIA", test)
    comp = r.companion
    w, times = comp.within_days, comp.escalates_at_baseline_times
    hi = CAT[test].ref_high
    clear = hi * 3  # clearly raised
    base = 50.0
    assert base * times < CR_ULN, "the 1.5 x baseline cases need a rise within range"

    def build(value, cr=None, cr_day=0, base_value=None, **kw):
        def b(p: Rows) -> Rows:
            p.course(D0)
            if base_value is not None:
                p.lab(day(D0, -10), "creatinine", base_value)
            p.lab(POST, test, value, **kw)
            return p if cr is None else p.lab(day(POST, cr_day), "creatinine", cr)

        return b

    code = r.code
    return [
        case(f"prot-{test}-at-ULN", build(hi), code, None),
        case(f"prot-{test}-just-below-ULN", build(_down(hi)), code, None),
        case(
            f"prot-{test}-just-above-ULN",
            build(_up(hi)),
            code,
            r.severity,
            text=(f"not measured within {w} days",),
        ),
        case(
            f"prot-{test}-on-day0-ignored",
            lambda p: p.course(D0).lab(D0, test, clear),
            code,
            None,
        ),
        case(f"prot-{test}-below-lab-own-ULN", build(_up(hi), ref_high=hi * 2), code, None),
        case(
            f"prot-{test}-above-lab-own-ULN",
            build(_up(hi * 2), ref_high=hi * 2),
            code,
            r.severity,
        ),
        # creatinine above its upper limit within the companion window: urgent
        case(
            f"prot-{test}-creat-above-ULN-same-day",
            build(clear, _up(CR_ULN)),
            code,
            r.escalated_severity,
            text=("above range",),
        ),
        case(f"prot-{test}-creat-at-ULN", build(clear, CR_ULN), code, r.severity),
        case(
            f"prot-{test}-creat-high-window-days-after",
            build(clear, CR_ULN + 20, w),
            code,
            r.escalated_severity,
        ),
        case(
            f"prot-{test}-creat-high-window-days-before",
            build(clear, CR_ULN + 20, -w),
            code,
            r.escalated_severity,
        ),
        case(
            f"prot-{test}-creat-high-window+1-days-after",
            build(clear, CR_ULN + 20, w + 1),
            code,
            r.severity,
            text=(f"not measured within {w} days",),
        ),
        case(
            f"prot-{test}-creat-high-window+1-days-before",
            build(clear, CR_ULN + 20, -w - 1),
            code,
            r.severity,
        ),
        # a rise to 1.5 x the baseline (latest on or before day 0), within range: urgent
        case(
            f"prot-{test}-creat-at-{times:g}x-baseline",
            build(clear, base * times, 0, base),
            code,
            r.escalated_severity,
            text=(f"at least {times:g} x its baseline",),
        ),
        case(
            f"prot-{test}-creat-just-below-{times:g}x-baseline",
            build(clear, _down(base * times), 0, base),
            code,
            r.severity,
            text=("within range",),
        ),
        case(
            f"prot-{test}-creat-{times:g}x-baseline-window+1",
            build(clear, base * times, w + 1, base),
            code,
            r.severity,
        ),
    ]


# --- 2. REN-HAEMATURIA ------------------------------------------------------------------------


def _haematuria_cases() -> list[Case]:
    r = _flag("REN-HAEMATURIA", "urine_rbc")
    comp = r.companion
    times = comp.escalates_at_baseline_times
    at = r.at_least
    code = r.code
    base1, base2 = 30.0, 50.0  # before course 1, before course 2
    assert base2 * times < CR_ULN and base1 * times < base2 * times

    def rbc(value, cr=None, base_value=None, **kw):
        def b(p: Rows) -> Rows:
            p.course(D0)
            if base_value is not None:
                p.lab(day(D0, -10), "creatinine", base_value)
            p.lab(POST, "urine_rbc", value, **kw)
            return p if cr is None else p.lab(POST, "creatinine", cr)

        return b

    c1, c2 = day(AS_OF, -500), day(AS_OF, -100)
    after2 = day(c2, 30)

    def two_courses(cr: float):
        return lambda p: (
            p.course(c1)
            .lab(day(c1, -5), "creatinine", base1)
            .course(c2, n=2)
            .lab(day(c2, -5), "creatinine", base2)
            .lab(after2, "urine_rbc", at * 3)
            .lab(after2, "creatinine", cr)
        )

    between = round((base1 + base2) * times / 2, 6)  # >= 1.5 x base1, < 1.5 x base2
    return [
        case("haem-just-below-at-least", rbc(_down(at)), code, None),
        case("haem-at-least-inclusive", rbc(at), code, r.severity),
        case("haem-just-above-at-least", rbc(_up(at)), code, r.severity),
        # a lab's own higher limit does not lift the 3 /HPF floor
        case(
            "haem-at-least-with-lab-ULN-higher",
            rbc(at, ref_high=at + 2),
            code,
            r.severity,
        ),
        case("haem-below-at-least-lab-ULN-higher", rbc(_down(at), ref_high=at + 2), code, None),
        case("haem-between-floor-and-lab-ULN", rbc(at + 1, ref_high=at + 2), code, r.severity),
        case(
            "haem-creat-at-1.5x-baseline",
            rbc(at * 3, base2 * times, base2),
            code,
            r.escalated_severity,
            text=(f"at least {times:g} x its baseline",),
        ),
        case(
            "haem-creat-just-below-1.5x-baseline",
            rbc(at * 3, _down(base2 * times), base2),
            code,
            r.severity,
        ),
        case(
            "haem-creat-above-ULN-no-baseline",
            rbc(at * 3, _up(CR_ULN)),
            code,
            r.escalated_severity,
        ),
        # the baseline is the one before the latest course, not the one before course 1
        case("haem-course2-baseline-used", two_courses(between), code, r.severity),
        case(
            "haem-course2-at-1.5x-its-baseline",
            two_courses(base2 * times),
            code,
            r.escalated_severity,
        ),
    ]


# --- 3. REN-DIPSTICK --------------------------------------------------------------------------


def _dipstick_cases() -> list[Case]:
    r = _flag("REN-DIPSTICK", "urine_blood")
    w = r.companion.within_days
    answers = CAT["urine_blood"].qualitative
    first_positive = answers.index(CAT["urine_blood"].abnormal_from)

    def stick(answer: str, rbc_day: int | None = None):
        def b(p: Rows) -> Rows:
            p.course(D0).lab(POST, "urine_blood", answer, "")
            return p if rbc_day is None else p.lab(day(POST, rbc_day), "urine_rbc", 1)

        return b

    out = [
        case(
            f"dip-{a.replace('+', 'plus')}",
            stick(a),
            r.code,
            r.severity if i >= first_positive else None,
            text=(f"Urine dipstick blood {a}",) if i >= first_positive else (),
        )
        for i, a in enumerate(answers)
    ]
    positive = answers[first_positive]
    return [
        *out,
        case("dip-microscopy-window-days-after", stick(positive, w), r.code, None),
        case("dip-microscopy-window+1-days-after", stick(positive, w + 1), r.code, r.severity),
        # microscopy of an earlier sample did not examine this one
        case("dip-microscopy-day-before", stick(positive, -1), r.code, r.severity),
        case("dip-microscopy-window-days-before", stick(positive, -w), r.code, r.severity),
        case("dip-microscopy-same-day", stick(positive, 0), r.code, None),
        case(
            "dip-on-day0-ignored",
            lambda p: p.course(D0).lab(D0, "urine_blood", positive, ""),
            r.code,
            None,
        ),
    ]


# --- 4. THY-DISCORDANT (and THY-HYPO/HYPER unchanged beside it) --------------------------------


def _discordant_cases() -> list[Case]:
    both_high = next(
        f for f in ALEM.flags if f.code == "THY-DISCORDANT" and f.when == "above_ref_high"
    )
    both_low = next(
        f for f in ALEM.flags if f.code == "THY-DISCORDANT" and f.when == "below_ref_low"
    )
    hypo = next(f for f in ALEM.flags if f.code == "THY-HYPO")
    hyper = next(f for f in ALEM.flags if f.code == "THY-HYPER")
    w = both_high.companion.within_days
    assert both_low.companion.within_days == w
    tsh_hi, tsh_lo = CAT["tsh"].ref_high, CAT["tsh"].ref_low
    ft4_lo, ft4_hi = CAT["free_t4"].ref_low, CAT["free_t4"].ref_high
    high_tsh, low_tsh = tsh_hi + 4, tsh_lo / 4
    high_ft4, low_ft4 = ft4_hi + 5, ft4_lo - 2

    def pair(tsh: float, ft4: float, ft4_day: int = 0):
        return lambda p: p.course(D0).lab(POST, "tsh", tsh).lab(day(POST, ft4_day), "free_t4", ft4)

    code = both_high.code
    return [
        case(
            "disc-high-high-same-day",
            pair(high_tsh, high_ft4),
            code,
            both_high.severity,
            text=("both high",),
        ),
        case(
            "disc-high-high-window-days-after",
            pair(high_tsh, high_ft4, w),
            code,
            both_high.severity,
        ),
        case("disc-high-high-window+1-days-after", pair(high_tsh, high_ft4, w + 1), code, None),
        case(
            "disc-high-high-window-days-before",
            pair(high_tsh, high_ft4, -w),
            code,
            both_high.severity,
        ),
        case("disc-high-high-window+1-days-before", pair(high_tsh, high_ft4, -w - 1), code, None),
        case("disc-tsh-high-ft4-at-ULN", pair(high_tsh, ft4_hi), code, None),
        case(
            "disc-tsh-high-ft4-just-above-ULN",
            pair(high_tsh, _up(ft4_hi)),
            code,
            both_high.severity,
        ),
        case("disc-tsh-at-ULN-ft4-high", pair(tsh_hi, high_ft4), code, None),
        case(
            "disc-tsh-just-above-ULN-ft4-high",
            pair(_up(tsh_hi), high_ft4),
            code,
            both_high.severity,
        ),
        case("disc-tsh-high-alone", lambda p: p.course(D0).lab(POST, "tsh", high_tsh), code, None),
        case(
            "disc-low-low",
            pair(low_tsh, low_ft4),
            code,
            both_low.severity,
            text=("both low",),
        ),
        case("disc-tsh-low-ft4-at-LLN", pair(low_tsh, ft4_lo), code, None),
        case(
            "disc-tsh-low-ft4-just-below-LLN", pair(low_tsh, _down(ft4_lo)), code, both_low.severity
        ),
        case("disc-low-low-window+1", pair(low_tsh, low_ft4, w + 1), code, None),
        case("disc-tsh-at-LLN-ft4-low", pair(tsh_lo, low_ft4), code, None),
        # the hypo/hyper flags beside it are as before: a discordant pair is neither
        case("disc-high-high-not-hypo", pair(high_tsh, high_ft4), hypo.code, None),
        case("disc-low-low-not-hyper", pair(low_tsh, low_ft4), hyper.code, None),
        case("disc-tsh-high-ft4-at-ULN-is-hypo", pair(high_tsh, ft4_hi), hypo.code, hypo.severity),
        case(
            "disc-tsh-high-ft4-low-is-overt-hypo",
            pair(high_tsh, low_ft4),
            hypo.code,
            hypo.escalated_severity,
        ),
        case("disc-tsh-high-ft4-low-not-discordant", pair(high_tsh, low_ft4), code, None),
        case(
            "disc-tsh-low-ft4-high-is-overt-hyper",
            pair(low_tsh, high_ft4),
            hyper.code,
            hyper.escalated_severity,
        ),
        case("disc-tsh-low-ft4-high-not-discordant", pair(low_tsh, high_ft4), code, None),
        case(
            "disc-high-high-window+1-is-hypo",
            pair(high_tsh, high_ft4, w + 1),
            hypo.code,
            hypo.severity,
        ),
    ]


# --- 5. CNS-STROKE and INF-CARDIOPULMONARY from adverse events ----------------------------------


def _proximity_cases() -> list[Case]:
    out = []
    for r in ALEM.infusion_proximity:
        n, age = r.days_after_infusion, r.ageing
        start = day(AS_OF, -30)
        end = day(start, 4)
        others = [
            c
            for other in ALEM.infusion_proximity
            if other is not r
            for c in other.adverse_event_categories
        ]

        def event(at: dt.date, category: str, course: dt.date = start):
            return lambda p: _ae(p.course(course), at, category)

        for cat in r.adverse_event_categories:
            out += [
                case(
                    f"{r.code}-{cat}-first-infusion-day",
                    event(start, cat),
                    r.code,
                    r.severity,
                    date=start,
                    text=(f"({cat})", f"0 day(s) after the infusion of {start}"),
                ),
                case(
                    f"{r.code}-{cat}-end+window",
                    event(day(end, n), cat),
                    r.code,
                    r.severity,
                    date=day(end, n),
                    text=(f"{n} day(s) after the infusion of {end}",),
                ),
                case(f"{r.code}-{cat}-end+window+1", event(day(end, n + 1), cat), r.code, None),
                case(f"{r.code}-{cat}-day-before-course", event(day(start, -1), cat), r.code, None),
            ]
        cat = r.adverse_event_categories[0]
        at_age = day(AS_OF, -age.after_days)
        out += [
            case(f"{r.code}-infection-not-counted", event(day(end, 1), "infection"), r.code, None),
            # the other rule's categories are not this rule's events
            *[case(f"{r.code}-not-from-{o}", event(day(end, 1), o), r.code, None) for o in others],
            case(
                f"{r.code}-ae-at-ageing-day",
                event(at_age, cat, day(at_age, -4)),
                r.code,
                r.severity,
            ),
            case(
                f"{r.code}-ae-a-day-past-ageing",
                event(day(at_age, -1), cat, day(at_age, -5)),
                r.code,
                age.severity,
            ),
            case(
                f"{r.code}-relapse-in-window",
                lambda p, s=start, e=end: p.course(s).relapse(day(e, 1)),
                r.code,
                r.severity if r.relapses else None,
            ),
        ]
    return out


# --- 6. MON-BASELINE: the UPCR before the first course ------------------------------------------


def _baseline_cases() -> list[Case]:
    upcr, cbc = _item(ALEM, "upcr"), _item(ALEM, "cbc")
    b = upcr.baseline_days
    start = day(AS_OF, -100)
    c1, c2 = day(AS_OF, -600), day(AS_OF, -100)
    old = day(AS_OF, -400)
    value = CAT["upcr"].ref_high / 2

    def with_upcr(offset: int | None, course: dt.date = start):
        def build(p: Rows) -> Rows:
            p.course(course)
            return p if offset is None else p.lab(day(course, offset), "upcr", value)

        return build

    return [
        case(
            "upcr-baseline-missing",
            with_upcr(None),
            "MON-BASELINE",
            upcr.baseline_severity,
            test="upcr",
            date=start,
        ),
        case("upcr-baseline-on-window-day", with_upcr(-b), "MON-BASELINE", None, test="upcr"),
        case(
            "upcr-baseline-a-day-before-window",
            with_upcr(-b - 1),
            "MON-BASELINE",
            upcr.baseline_severity,
            test="upcr",
            date=start,
        ),
        case("upcr-baseline-on-course-day", with_upcr(0), "MON-BASELINE", None, test="upcr"),
        case(
            "upcr-baseline-day-after-start-too-late",
            with_upcr(1),
            "MON-BASELINE",
            upcr.baseline_severity,
            test="upcr",
        ),
        # a baseline only: never overdue, before or after
        case(
            "upcr-never-overdue-none-done", with_upcr(None, old), "MON-OVERDUE", None, test="upcr"
        ),
        case("upcr-never-overdue-done-once", with_upcr(-b, old), "MON-OVERDUE", None, test="upcr"),
        # before the first course only: course 2 does not ask for a new one
        case(
            "upcr-course2-without-new-upcr",
            lambda p: p.course(c1).lab(day(c1, -b), "upcr", value).course(c2, n=2),
            "MON-BASELINE",
            None,
            test="upcr",
        ),
        case(
            "upcr-course2-missing-before-course1",
            lambda p: p.course(c1).course(c2, n=2),
            "MON-BASELINE",
            upcr.baseline_severity,
            test="upcr",
            date=c1,
        ),
        case(
            "upcr-course2-a-upcr-before-course2-only",
            lambda p: p.course(c1).course(c2, n=2).lab(day(c2, -b), "upcr", value),
            "MON-BASELINE",
            upcr.baseline_severity,
            test="upcr",
            date=c1,
        ),
        # a missing baseline of any item is worth acting on (the protocol's default)
        case(
            "cbc-baseline-missing-severity",
            with_upcr(0),
            "MON-BASELINE",
            cbc.baseline_severity,
            test="cbc",
            date=start,
        ),
    ]


# --- 7. liver tests monthly ---------------------------------------------------------------------


def _liver_cases() -> list[Case]:
    liver = _item(ALEM, "liver")
    old = day(AS_OF, -400)
    ok = day(AS_OF, -liver.interval_days - liver.grace_days)
    late = day(ok, -1)

    def done(when: dt.date, skip: str | None = None):
        def build(p: Rows) -> Rows:
            p.course(old)
            for t in liver.tests:
                if t != skip:
                    p.lab(when, t, CAT[t].ref_high / 2)
            return p

        return build

    return [
        case("liver-done-at-edge", done(ok), "MON-OVERDUE", None, test="liver"),
        case(
            "liver-done-a-day-earlier",
            done(late),
            "MON-OVERDUE",
            "routine",
            test="liver",
            date=day(late, liver.interval_days),
        ),
        case(
            "liver-bilirubin-missing",
            done(ok, skip=liver.tests[-1]),
            "MON-OVERDUE",
            "high",
            test="liver",
        ),
    ]


# --- 8. natalizumab one row per infusion ------------------------------------------------------


EVERY = 28  # standard dosing interval
N_INF = 33  # infusions: 32 x 28 days + the dose cover is well over 24 months


def _infusions(p: Rows, last: dt.date, n: int = N_INF) -> Rows:
    for k in range(n - 1, -1, -1):
        d = day(last, -EVERY * k)
        p.drug("natalizumab", d, d)
    return p


def _ntz_cases() -> list[Case]:
    cover = NTZ.therapy.dose_covers_days
    tail = NTZ.therapy.monitoring_days_after_end
    jcv, mri = _item(NTZ, "jcv_index"), _item(NTZ, "mri_brain")
    pml = NTZ.risk_strata[0]
    high = next(s for s in pml.strata if s.id == "index_high")
    index = high.value_above * 2
    assert (N_INF - 1) * EVERY + cover + 1 > high.exposure_above_days

    def rows(last: dt.date, jcv_day: dt.date | None = None, switch: bool = False):
        def build(p: Rows) -> Rows:
            _infusions(p, last)
            p.lab(jcv_day or day(last, -100), "jcv_index", index, "")
            if switch:
                p.course(day(last, cover + 14))
            return p

        return build

    mid = day(AS_OF, -EVERY // 2)  # last infusion two weeks ago, the next one not yet given
    jcv_at = day(AS_OF, -300)
    jcv_sev = _overdue_severity(jcv, 300 - jcv.interval_days)
    assert jcv_sev is not None
    exp_last = day(AS_OF, -cover)  # as-of is the last day of exposure
    vig_last = day(AS_OF, -cover - tail)  # as-of is the last day of PML vigilance
    out = [
        case(
            "ntz-rows-between-infusions-jcv-overdue",
            rows(mid, jcv_at),
            "MON-OVERDUE",
            jcv_sev,
            test="jcv_index",
            date=day(jcv_at, jcv.interval_days),
        ),
        case("ntz-rows-between-infusions-pml-risk", rows(mid, jcv_at), pml.code, high.severity),
        case(
            "ntz-rows-exposure-last-day-jcv",
            rows(exp_last, jcv_at),
            "MON-OVERDUE",
            jcv_sev,
            test="jcv_index",
        ),
        case(
            "ntz-rows-exposure-ended-day-before-jcv",
            rows(day(exp_last, -1), jcv_at),
            "MON-OVERDUE",
            None,
            test="jcv_index",
        ),
    ]
    for switch in (False, True):
        s = "-switched" if switch else ""
        out += [
            case(
                f"ntz-rows{s}-vigilance-last-day-mri",
                rows(vig_last, switch=switch),
                "MON-OVERDUE",
                _overdue_severity(mri, 10**4),
                test="mri_brain",
            ),
            case(
                f"ntz-rows{s}-vigilance-last-day-pml",
                rows(vig_last, switch=switch),
                pml.code,
                high.severity,
            ),
            case(
                f"ntz-rows{s}-vigilance-last-day-no-jcv-retest",
                rows(vig_last, switch=switch),
                "MON-OVERDUE",
                None,
                test="jcv_index",
            ),
            case(
                f"ntz-rows{s}-vigilance-ended-mri",
                rows(day(vig_last, -1), switch=switch),
                "MON-OVERDUE",
                None,
                test="mri_brain",
            ),
            case(
                f"ntz-rows{s}-vigilance-ended-pml",
                rows(day(vig_last, -1), switch=switch),
                pml.code,
                None,
            ),
        ]
    return out


# --- 9. MRI interval by risk stratum ------------------------------------------------------------


def _mri_risk_cases() -> list[Case]:
    mri = _item(NTZ, "mri_brain")
    pml = NTZ.risk_strata[0]
    strata = {s.id: s for s in pml.strata}
    start = day(AS_OF, -1000)
    positive = CAT["jcv_index"].ref_high

    def patient(index: float, scan: dt.date, prior: str | None = None):
        def build(p: Rows) -> Rows:
            p.drug("natalizumab", start).lab(day(AS_OF, -10), "jcv_index", index, "")
            if prior:
                p.drug(prior, day(start, -3000), day(start, -2900))
            return p.mri(scan)

        return build

    out = []
    for sid, interval in mri.interval_by_risk.items():
        s = strata[sid]
        index = (s.value_above or positive) + 0.1
        prior = pml.prior_drugs[0] if s.prior_drugs else None
        assert (AS_OF - start).days + 1 > (s.exposure_above_days or 0)
        ok = day(AS_OF, -interval - mri.grace_days)
        late = day(ok, -1)
        out += [
            case(
                f"mri-{sid}-at-grace",
                patient(index, ok, prior),
                "MON-OVERDUE",
                None,
                test="mri_brain",
            ),
            case(
                f"mri-{sid}-grace+1",
                patient(index, late, prior),
                "MON-OVERDUE",
                "routine",
                test="mri_brain",
                date=day(late, interval),
            ),
            case(
                f"mri-{sid}-grace+1-its-stratum",
                patient(index, late, prior),
                pml.code,
                s.severity,
            ),
        ]
    low_late = day(AS_OF, -min(mri.interval_by_risk.values()) - mri.grace_days - 1)
    out += [
        # an index at or below the positive cut: the yearly interval
        case(
            "mri-low-risk-same-scan-not-overdue",
            patient(positive / 2, low_late),
            "MON-OVERDUE",
            None,
            test="mri_brain",
        ),
        case(
            "mri-low-risk-yearly-grace+1",
            patient(positive / 2, day(AS_OF, -mri.interval_days - mri.grace_days - 1)),
            "MON-OVERDUE",
            "routine",
            test="mri_brain",
        ),
        # the index exactly at the high cut is the intermediate stratum: yearly
        case(
            "mri-index-at-high-cut-not-shortened",
            patient(strata["index_high"].value_above, low_late),
            "MON-OVERDUE",
            None,
            test="mri_brain",
        ),
    ]
    return out


# --- 10. creatinine upper limit by sex ----------------------------------------------------------


def _sex_cases() -> list[Case]:
    cr = rule("creatinine")
    women = CAT["creatinine"].ref_high
    by_sex = CAT["creatinine"].ref_high_by_sex
    assert by_sex, "the catalogue gives creatinine limits by sex"
    out = []

    def one(name: str, sex: str | None, value: float, grade: int | None) -> Case:
        return case(
            f"creat-sex-{name}-{value}",
            lambda p: _sex(p, sex).course(D0).lab(POST, "creatinine", value),
            cr.code,
            None if grade is None else cr.severity[grade],
            grade=grade,
        )

    for sex, limit in by_sex.items():
        assert limit > women
        out += [
            one(sex, sex, _down(limit), None),
            one(sex, sex, limit, None),
            one(sex, sex, _up(limit), 1),
            one(sex, sex, _up(women), None),  # above the lower limit: not for this sex
        ]
    for name, sex in (("F", "F"), ("U", "U"), ("X", "X"), ("missing", None)):
        out += [one(name, sex, women, None), one(name, sex, _up(women), 1)]
    sex, limit = next(iter(by_sex.items()))
    out.append(
        case(
            "creat-sex-lab-own-limit-wins",
            lambda p: _sex(p, sex).course(D0).lab(POST, "creatinine", _up(women), ref_high=women),
            cr.code,
            cr.severity[1],
            grade=1,
        )
    )
    return out


# --- 12. wording ------------------------------------------------------------------------------


def _wording_cases() -> list[Case]:
    hi = ALEM.repopulation_window_days[1]
    after = ALEM.repopulation_wording["after"]
    ring = ALEM.imaging_findings[0]
    rel = ALEM.relapse_imaging[0]
    start = day(AS_OF, -400)
    end = day(start, 4)
    lym = rule("lymphocytes")
    return [
        case(
            "wording-ring-after-window",
            lambda p: p.course(start).mri(day(end, hi + 1), ring=1),
            ring.code,
            ring.severity,
            text=(f"{hi + 1} days after the last alemtuzumab infusion ({after}",),
        ),
        case(
            "wording-relapse-after-window",
            lambda p: p.course(start).relapse(day(end, hi + 1)),
            rel.code,
            rel.ageing.severity,
            text=(f"{hi + 1} days after the last alemtuzumab infusion ({after}",),
        ),
        case(
            "wording-lymphopenia-action",
            lambda p: p.course(D0).lab(POST, "lymphocytes", _down(CAT["lymphocytes"].ref_low)),
            lym.code,
            lym.severity[1],
            grade=1,
        ),
    ]


PROTEINURIA_CASES = _proteinuria_cases()
HAEMATURIA_CASES = _haematuria_cases()
DIPSTICK_CASES = _dipstick_cases()
DISCORDANT_CASES = _discordant_cases()
PROXIMITY_CASES = _proximity_cases()
BASELINE_CASES = _baseline_cases()
LIVER_CASES = _liver_cases()
NTZ_CASES = _ntz_cases()
MRI_RISK_CASES = _mri_risk_cases()
SEX_CASES = _sex_cases()
WORDING_CASES = _wording_cases()

ALL_CASES = (
    PROTEINURIA_CASES
    + HAEMATURIA_CASES
    + DIPSTICK_CASES
    + DISCORDANT_CASES
    + PROXIMITY_CASES
    + BASELINE_CASES
    + LIVER_CASES
    + NTZ_CASES
    + MRI_RISK_CASES
    + SEX_CASES
    + WORDING_CASES
)


# --- the run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worklist(tmp_path_factory) -> dict[tuple[str, str], list[dict]]:
    return clinic_findings(tmp_path_factory.mktemp("safety"), ALL_CASES)


@pytest.mark.parametrize("c", params(PROTEINURIA_CASES))
def test_proteinuria(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(HAEMATURIA_CASES))
def test_haematuria(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(DIPSTICK_CASES))
def test_dipstick(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(DISCORDANT_CASES))
def test_discordant_thyroid(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(PROXIMITY_CASES))
def test_infusion_proximity_adverse_events(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(BASELINE_CASES))
def test_baseline(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(LIVER_CASES))
def test_liver_monthly(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(NTZ_CASES))
def test_natalizumab_per_infusion(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(MRI_RISK_CASES))
def test_mri_interval_by_risk(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(SEX_CASES))
def test_creatinine_limit_by_sex(worklist, c: Case) -> None:
    check(worklist, c)


@pytest.mark.parametrize("c", params(WORDING_CASES))
def test_wording(worklist, c: Case) -> None:
    check(worklist, c)


def test_no_missing_baseline_is_merely_info() -> None:
    for protocol in (ALEM, NTZ):
        for item in protocol.schedule:
            if item.baseline_days is not None:
                assert item.baseline_severity != "info", (protocol.id, item.id)


def test_lymphopenia_action_keeps_prophylaxis_until_cd4(worklist) -> None:
    c = next(c for c in WORDING_CASES if c.id == "wording-lymphopenia-action")
    (f,) = worklist[(c.id, c.code)]
    assert (
        "at least 2 months after each course or until CD4 is at least 0.2 x10^9/L, "
        "whichever is later" in f["action"]
    )


def test_nothing_reads_outside_the_risk_window(worklist) -> None:
    texts = [f["detail"] + f["title"] for fs in worklist.values() for f in fs]
    assert texts
    assert not [t for t in texts if "outside the risk window" in t]
    for cid in ("wording-ring-after-window", "wording-relapse-after-window"):
        code = "CNS-RING" if "ring" in cid else "CNS-MRI"
        (f,) = worklist[(cid, code)]
        assert "outside" not in f["detail"]


# --- 11. triage -----------------------------------------------------------------------------


def test_possible_itp_ranks_above_every_same_severity_overdue_test(tmp_path) -> None:
    """A nurse must never find a possible ITP below a page of overdue tests."""
    plt = rule("platelets")
    severity = plt.severity[1]
    old = day(AS_OF, -400)  # courses whose tests are all long overdue (high)
    tables: dict[str, list[dict]] = defaultdict(list)
    for i in range(15):
        p = Rows(f"T{i:02d}").course(old)
        for name, rows in p.tables.items():
            tables[name] += rows
    itp = (
        Rows("ITP").course(old).lab(day(AS_OF, -5), "platelets", _down(CAT["platelets"].ref_low, 1))
    )
    for name, rows in itp.tables.items():
        tables[name] += rows
    found = run_clinic(write_clinic(tmp_path, **tables), AS_OF).findings.to_pylist()
    at = [i for i, f in enumerate(found) if f["code"] == plt.code]
    assert len(at) == 1 and found[at[0]]["severity"] == severity
    alarm = found[at[0]]
    overdue = [
        i for i, f in enumerate(found) if f["code"].startswith("MON-") and f["severity"] == severity
    ]
    assert len(overdue) >= 15
    # the alarm is dated after every overdue test was due: dates do not put it first
    assert all(found[i]["date"] < alarm["date"] for i in overdue)
    assert at[0] < min(overdue)
