"""Lab results as the rules read them: limits resolved, baselines per course, CTCAE
grades, and the shared pieces of lab rules (a result beyond its limit, a flag raised,
the latest result after day 0, a result's wording fields and facts).

The rule kinds that report on them (grading, flags) are modules under dmtwatch/rules/;
the audit reuses these same functions, so `check` and `audit` cannot disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
from ibis import _

from dmtwatch.engine.context import Context
from dmtwatch.engine.exposure import all_episodes, current_episode, in_episode
from dmtwatch.engine.latest import first_per_group, latest_rows
from dmtwatch.engine.text import as_text, reported_note, shown_value, value_as_reported
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.protocols.parts import GradeCriterion

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol
    from dmtwatch.rules.flags import Companion, Flag
    from dmtwatch.rules.grading import Grading

_NEVER = ibis.literal(False)


def limited_labs(ctx: Context) -> ibis.Table:
    """Results with the lab's own limits, or the catalogue's defaults where none given
    (an upper limit by the patient's sex where the catalogue has one). Computed once:
    every lab rule reads it."""
    labs = ctx.tables["labs"]
    cat = lab_catalogue().tests
    defaults = ctx.constants(
        "lab_defaults",
        {"d_test": "string", "d_low": "float64", "d_high": "float64"},
        [(name, t.ref_low, t.ref_high) for name, t in cat.items()],
    )
    j = labs.left_join(defaults, labs.test == defaults.d_test)
    by_sex = [
        (name, sex, high) for name, t in cat.items() for sex, high in t.ref_high_by_sex.items()
    ]
    if by_sex:
        # only the results of those tests look up the patient's sex
        sexed = sorted({name for name, _sex, _high in by_sex})
        pts = ctx.tables["patients"].select(p_patient="patient_id", p_sex="sex")
        s = j.filter(j.test.isin(sexed))
        s = s.left_join(pts, s.patient_id == pts.p_patient)
        high = ibis.cases(
            *[((s.test == name) & (s.p_sex == sex), high) for name, sex, high in by_sex],
            else_=s.d_high,
        )
        s = s.mutate(d_high=high).drop("p_patient", "p_sex")
        j = j.filter(~j.test.isin(sexed)).union(s)
    j = j.mutate(
        ref_low=j.ref_low.fill_null(j.d_low), ref_high=j.ref_high.fill_null(j.d_high)
    ).drop("d_test", "d_low", "d_high")
    return ctx.materialize("labs_limited", j)


def course_baselines(ctx: Context, protocol: Protocol) -> ibis.Table:
    """Per patient, test and episode: the latest result on or before the episode's start
    (CTCAE's baseline is the value before each course, not frozen before course 1)."""
    tests = sorted(_baseline_tests(protocol))
    labs = limited_labs(ctx).filter(_.test.isin(tests))
    # only results on or before the latest course's start can be anyone's baseline
    latest = current_episode(ctx, protocol.therapy).select(l_patient="patient_id", l_start="start")
    labs = labs.join(latest, (labs.patient_id == latest.l_patient) & (labs.date <= latest.l_start))
    labs = labs.drop("l_patient", "l_start")
    eps = all_episodes(ctx, protocol.therapy).select(
        e_patient="patient_id", episode="episode", e_start="start"
    )
    j = labs.join(eps, (labs.patient_id == eps.e_patient) & (labs.date <= eps.e_start))
    j = j.select("patient_id", "test", "episode", "date", "value", "ref_high")
    b = latest_rows(j, ["patient_id", "test", "episode"])
    b = b.select(
        b_patient=b.patient_id,
        b_test=b.test,
        b_episode=b.episode,
        baseline=b.value,
        baseline_high=b.ref_high,
    )
    return ctx.materialize(f"baselines_{protocol.id}", b)


def _baseline_tests(protocol: Protocol) -> set[str]:
    """Tests whose baseline a rule reads: graded tests, companions escalating on it."""
    tests = {r.test for r in protocol.grading}
    tests |= {
        f.companion.test
        for f in protocol.flags
        if f.companion is not None and f.companion.escalates_at_baseline_times is not None
    }
    return tests


def with_baseline(
    ctx: Context, protocol: Protocol, t: ibis.Table, test: str | None = None
) -> ibis.Table:
    """Rows of `t` (dated after day 0) with the baseline for their course of `test`, or of
    each row's own test."""
    t = in_episode(ctx, protocol.therapy, t, "date")
    base = course_baselines(ctx, protocol)
    key = t.test if test is None else ibis.literal(test)
    j = t.left_join(
        base,
        (t.patient_id == base.b_patient) & (key == base.b_test) & (t.episode == base.b_episode),
    )
    return j.drop("b_patient", "b_test", "b_episode")


def _day0(ctx: Context, protocol: Protocol) -> ibis.Table:
    return current_episode(ctx, protocol.therapy).select(
        "patient_id", "first_start", "exposure_days"
    )


def multiple_of(limit: ibis.NumericValue, factor: float) -> ibis.NumericValue:
    """A limit times a factor, rounded like imported values (9 decimals) so that a value
    exactly at a cut is at it after unit conversion (1.3 mg/dL x 88.42 x 1.5)."""
    return (limit * factor).round(9)


def _criterion(c: GradeCriterion, t: ibis.Table) -> ibis.BooleanValue:
    v, low, high, base = t.value, t.ref_low, t.ref_high, t.baseline
    abnormal_base = (base > t.baseline_high).fill_null(False)
    parts = []
    if c.below is not None:
        parts.append(v < c.below)
    if c.below_lln is not None:
        parts.append(v < multiple_of(low, c.below_lln))
    if c.above_uln is not None:
        uln = v > multiple_of(high, c.above_uln)
        relative = c.above_abnormal_baseline is not None or c.at_least_abnormal_baseline is not None
        parts.append(uln & ~abnormal_base if relative else uln)
    if c.above_baseline is not None:
        parts.append(v > multiple_of(base, c.above_baseline))
    if c.above_abnormal_baseline is not None:
        parts.append(abnormal_base & (v > multiple_of(base, c.above_abnormal_baseline)))
    if c.at_least_abnormal_baseline is not None:
        parts.append(abnormal_base & (v >= multiple_of(base, c.at_least_abnormal_baseline)))
    out = _NEVER
    for p in parts:
        out = out | p.fill_null(False)
    return out


def _grade(rule: Grading, t: ibis.Table) -> ibis.IntegerValue:
    cases = [(_criterion(rule.grades[g], t), g) for g in sorted(rule.grades, reverse=True)]
    return ibis.cases(*cases, else_=0)


def graded_results(ctx: Context, protocol: Protocol) -> ibis.Table:
    """Every graded result after day 0, with its grade, limits and the baseline of its
    course (the latest result on or before that course's first day)."""
    rules = {r.test: r for r in protocol.grading}
    labs = limited_labs(ctx).filter(_.test.isin(list(rules)))
    post = with_baseline(ctx, protocol, labs)
    grade = ibis.cases(
        *[(post.test == test, _grade(rule, post)) for test, rule in rules.items()], else_=0
    )
    return post.mutate(grade=grade.cast("int32"))


def evidence_text(t: ibis.Table) -> ibis.StringValue:
    """A result as evidence text: the answer of a qualitative test, else value and unit
    (and the value as reported, where a unit conversion changed it)."""
    number = shown_value(t).concat(" ").concat(as_text(t.unit, "")).concat(reported_note(t))
    return ibis.coalesce(t.value_text, number) if "value_text" in t.columns else number


def beyond(
    limit: str, t: ibis.Table, value: str = "value", low: str = "ref_low", high: str = "ref_high"
):
    if limit == "above_ref_high":
        return t[value] > t[high]
    return t[value] < t[low]


def positive_answer(test: str, answer: ibis.StringValue) -> ibis.BooleanValue:
    """A qualitative answer at or past the catalogue's `abnormal_from` (e.g. trace or more)."""
    entry = lab_catalogue().tests[test]
    if not entry.qualitative or entry.abnormal_from is None:
        raise ValueError(f"{test}: 'positive' needs a qualitative test with abnormal_from")
    start = entry.qualitative.index(entry.abnormal_from)
    return answer.isin(entry.qualitative[start:])


def raised(rule: Flag, t: ibis.Table) -> ibis.BooleanValue:
    """The flag's own condition on a result row."""
    positive = rule.when == "positive"
    hit = positive_answer(rule.test, t.value_text) if positive else beyond(rule.when, t)
    if rule.at_least is not None:
        hit = hit.fill_null(False) | (t.value >= rule.at_least)
    return hit.fill_null(False)


def latest_after_day0(ctx: Context, protocol: Protocol, rule: Flag) -> ibis.Table:
    """The latest result of the flag's test after day 0, and `last_clear`: the day of
    the latest result that did not raise it (the flag's occurrence runs from there)."""
    labs = limited_labs(ctx).filter(_.test == rule.test)
    j = labs.join(_day0(ctx, protocol), "patient_id")
    j = j.filter(j.date > j.first_start)
    j = j.mutate(last_clear=j.date.max(where=~raised(rule, j)).over(group_by="patient_id"))
    return first_per_group(j, "patient_id", [ibis.desc(j.date), ibis.desc(j.value)])


def result_fields(t: ibis.Table) -> dict[str, ibis.Value]:
    """The template fields every lab finding can name: the result and its limits."""
    return {
        "value": ibis.coalesce(t.value_text, shown_value(t)),
        "unit": t.unit,
        "reported": reported_note(t),
        "date": t.date,
        "ref_low": t.ref_low,
        "ref_high": t.ref_high,
    }


def result_facts(t: ibis.Table) -> dict[str, ibis.Value]:
    """The facts every lab finding states: the result as stored and as reported."""
    facts = {
        "test": t.test,
        "value": t.value,
        "unit": t.unit,
        "value_as_reported": value_as_reported(t),
        "result_date": t.date,
        "ref_low": t.ref_low,
        "ref_high": t.ref_high,
    }
    return {**facts, "value_text": t.value_text} if "value_text" in t.columns else facts


def flag_results(ctx: Context, protocol: Protocol, rule: Flag) -> ibis.Table:
    """Every result of a flag's test, dated or not relative to day 0, with `raised`: the
    flag's own condition (`raised`) and what its companion excludes or requires, judged
    on the companion result nearest in time within the window (the later one on a tie),
    as `check` judges the latest result after day 0 (rules/flags.py).

    `check` asks whether the latest result raises the flag; the audit asks when it was
    first raised, so it needs the condition on every result. One definition for both:
    the audit never restates a flag's predicate in SQL of its own."""
    t = limited_labs(ctx).filter(_.test == rule.test)
    t = t.select("patient_id", "test", "date", "value", "value_text", "ref_low", "ref_high")
    t = t.mutate(r_id=ibis.row_number().over())
    t = t.mutate(r_hit=raised(rule, t))
    comp = rule.companion
    if comp is None or (comp.excludes is None and comp.requires is None):
        return t.select(
            "patient_id", "test", "date", "value", "ref_low", "ref_high", raised=t.r_hit
        )
    j = nearest_companion(ctx, t, comp, "r_id")  # every result its own companion
    ok = companion_allows(comp, j)
    return j.select(
        "patient_id", "test", "date", "value", "ref_low", "ref_high", raised=j.r_hit & ok
    )


def nearest_companion(
    ctx: Context, t: ibis.Table, comp: Companion, per: str | list[str]
) -> ibis.Table:
    """Each row of `t` (one per group of `per`) with the companion result nearest in time
    within the window, the later one on a tie, as `c_*` columns (NULL where there is
    none). A companion that excludes when `measured_after` looks from the row's day on
    only; any other looks either side."""
    c = (
        limited_labs(ctx)
        .filter(_.test == comp.test)
        .select(
            c_patient="patient_id",
            c_date="date",
            c_value="value",
            c_unit="unit",
            c_value_reported="value_reported",
            c_unit_reported="unit_reported",
            c_low="ref_low",
            c_high="ref_high",
        )
    )
    apart = c.c_date.delta(t.date, unit="day")
    near = (
        (apart >= 0) & (apart <= comp.within_days)
        if comp.excludes == "measured_after"
        else (apart.abs() <= comp.within_days)
    )
    j = t.left_join(c, (t.patient_id == c.c_patient) & near)
    return first_per_group(j, per, [j.c_date.delta(j.date, unit="day").abs(), ibis.desc(j.c_date)])


def companion_allows(comp: Companion, j: ibis.Table) -> ibis.BooleanValue:
    """The nearest companion (`nearest_companion`) neither excludes the flag nor lacks
    what the flag requires of it; true for a companion that does neither."""
    ok = ibis.literal(True)
    if comp.excludes == "measured_after":
        ok = ok & j.c_date.isnull()
    elif comp.excludes is not None:
        ok = ok & ~beyond(comp.excludes, j, "c_value", "c_low", "c_high").fill_null(False)
    if comp.requires is not None:
        ok = ok & beyond(comp.requires, j, "c_value", "c_low", "c_high").fill_null(False)
    return ok
