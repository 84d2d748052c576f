"""Lab rules: CTCAE grading (LAB-*), lab flags (THY-*) and exposure flags (NTZ-*).

Grading follows admiral's habit: criteria are metadata (protocol `grading`), compiled
here into one CASE expression per test and applied to every result after day 0.
The audit grades with the same function, so `check` and `audit` cannot disagree.
"""

from __future__ import annotations

import ibis
from ibis import _

from dmtwatch.engine.context import Context, add_days
from dmtwatch.engine.exposure import current_episode
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.latest import latest_rows
from dmtwatch.engine.text import as_text
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.protocols.schema import Flag, GradeCriterion, Grading, Protocol

_NEVER = ibis.literal(False)


def limited_labs(ctx: Context) -> ibis.Table:
    """Results with the lab's own limits, or the catalogue's defaults where none given."""
    labs = ctx.tables["labs"]
    cat = lab_catalogue().tests
    defaults = ctx.constants(
        "lab_defaults",
        {"d_test": "string", "d_low": "float64", "d_high": "float64"},
        [(name, t.ref_low, t.ref_high) for name, t in cat.items()],
    )
    j = labs.left_join(defaults, labs.test == defaults.d_test)
    j = j.mutate(
        ref_low=j.ref_low.fill_null(j.d_low), ref_high=j.ref_high.fill_null(j.d_high)
    ).drop("d_test", "d_low", "d_high")
    return j


def _day0(ctx: Context, protocol: Protocol) -> ibis.Table:
    return current_episode(ctx, protocol.therapy).select(
        "patient_id", "first_start", "exposure_days"
    )


def _times(limit: ibis.NumericValue, factor: float) -> ibis.NumericValue:
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
        parts.append(v < _times(low, c.below_lln))
    if c.above_uln is not None:
        uln = v > _times(high, c.above_uln)
        parts.append(uln & ~abnormal_base if c.above_abnormal_baseline is not None else uln)
    if c.above_baseline is not None:
        parts.append(v > _times(base, c.above_baseline))
    if c.above_abnormal_baseline is not None:
        parts.append(abnormal_base & (v > _times(base, c.above_abnormal_baseline)))
    out = _NEVER
    for p in parts:
        out = out | p.fill_null(False)
    return out


def _grade(rule: Grading, t: ibis.Table) -> ibis.IntegerValue:
    cases = [(_criterion(rule.grades[g], t), g) for g in sorted(rule.grades, reverse=True)]
    return ibis.cases(*cases, else_=0)


def graded_results(ctx: Context, protocol: Protocol) -> ibis.Table:
    """Every graded result after day 0, with its grade, limits and the patient's baseline."""
    rules = {r.test: r for r in protocol.grading}
    labs = limited_labs(ctx).filter(_.test.isin(list(rules)))
    day0 = _day0(ctx, protocol)
    j = labs.join(day0, "patient_id")
    pre = j.filter(j.date <= j.first_start).select(
        "patient_id", "test", "date", "value", "ref_high"
    )
    pre = latest_rows(pre, ["patient_id", "test"])
    base = pre.select(
        b_patient=pre.patient_id, b_test=pre.test, baseline=pre.value, baseline_high=pre.ref_high
    )
    post = j.filter(j.date > j.first_start)
    post = post.left_join(base, [post.patient_id == base.b_patient, post.test == base.b_test]).drop(
        "b_patient", "b_test"
    )
    grade = ibis.cases(
        *[(post.test == test, _grade(rule, post)) for test, rule in rules.items()], else_=0
    )
    return post.mutate(grade=grade.cast("int32"))


def grading_findings(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    if not protocol.grading:
        return []
    graded = graded_results(ctx, protocol).select(
        "patient_id", "test", "date", "grade", "value", "unit", "ref_low", "ref_high", "baseline"
    )
    latest = latest_rows(
        graded, ["patient_id", "test"], tiebreak=graded.grade, worst_grade=graded.grade.max()
    )
    latest = ctx.materialize(f"graded_latest_{protocol.id}", latest.filter(latest.grade >= 1))
    out = []
    for rule in protocol.grading:
        t = latest.filter(latest.test == rule.test)
        t = ctx.stage(t)
        fields = {
            "grade": t.grade,
            "worst_grade": t.worst_grade,
            "value": t.value,
            "unit": t.unit,
            "date": t.date,
            "ref_low": t.ref_low,
            "ref_high": t.ref_high,
            "baseline": t.baseline,
            "term": ibis.literal(rule.term),
        }
        found = make_findings(
            t,
            protocol=protocol,
            rule=rule,
            severity=t.grade.cases(*rule.severity.items()),
            date=t.date,
            fields=fields,
            test=t.test,
            grade=t.grade,
        )
        ev = make_evidence(
            t,
            code=rule.code,
            test=t.test,
            table="labs",
            date=t.date,
            item=t.test,
            value=_value_text(t),
        )
        out.append((found, ev))
    return out


def _value_text(t: ibis.Table) -> ibis.StringValue:
    return as_text(t.value).concat(" ").concat(as_text(t.unit, ""))


def _beyond(
    limit: str, t: ibis.Table, value: str = "value", low: str = "ref_low", high: str = "ref_high"
):
    if limit == "above_ref_high":
        return t[value] > t[high]
    return t[value] < t[low]


def _latest_after_day0(ctx: Context, protocol: Protocol, test: str) -> ibis.Table:
    labs = limited_labs(ctx).filter(_.test == test)
    j = labs.join(_day0(ctx, protocol), "patient_id")
    j = j.filter(j.date > j.first_start)
    return j.mutate(
        rn=ibis.row_number().over(
            group_by="patient_id", order_by=[ibis.desc(j.date), ibis.desc(j.value)]
        )
    ).filter(_.rn == 0)


def flag_findings(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    return [_flag(ctx, protocol, rule) for rule in protocol.flags]


def _result_fields(t: ibis.Table) -> dict[str, ibis.Value]:
    """The template fields every lab finding can name: the result and its limits."""
    return {
        "value": t.value,
        "unit": t.unit,
        "date": t.date,
        "ref_low": t.ref_low,
        "ref_high": t.ref_high,
    }


def _flag(ctx: Context, protocol: Protocol, rule: Flag) -> tuple[ibis.Table, ibis.Table]:
    t = _latest_after_day0(ctx, protocol, rule.test)
    t = ctx.stage(t.filter(_beyond(rule.when, t).fill_null(False)))
    severity: ibis.Value | str = rule.severity
    fields = _result_fields(t)
    comp = rule.companion
    if comp is not None:
        c = (
            limited_labs(ctx)
            .filter(_.test == comp.test)
            .select(
                c_patient="patient_id",
                c_date="date",
                c_value="value",
                c_unit="unit",
                c_low="ref_low",
                c_high="ref_high",
            )
        )
        j = t.left_join(
            c,
            (t.patient_id == c.c_patient)
            & (c.c_date.delta(t.date, unit="day").abs() <= comp.within_days),
        )
        j = j.mutate(
            c_rn=ibis.row_number().over(
                group_by="patient_id",
                order_by=[j.c_date.delta(j.date, unit="day").abs(), ibis.desc(j.c_date)],
            )
        ).filter(_.c_rn == 0)
        if comp.excludes is not None:
            j = j.filter(~_beyond(comp.excludes, j, "c_value", "c_low", "c_high").fill_null(False))
        t = j
        t = ctx.stage(t)
        escalated = _beyond(comp.escalates, t, "c_value", "c_low", "c_high").fill_null(False)
        severity = ibis.ifelse(escalated, rule.escalated_severity or rule.severity, rule.severity)
        state = ibis.cases(
            (t.c_value.isnull(), "not measured within " + str(comp.within_days) + " days"),
            (t.c_value < t.c_low, "below range"),
            (t.c_value > t.c_high, "above range"),
            else_="within range",
        )
        fields = {
            **_result_fields(t),
            "companion_value": t.c_value,
            "companion_unit": t.c_unit,
            "companion_state": state,
        }
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=severity,
        date=t.date,
        fields=fields,
    )
    ev = make_evidence(
        t, code=rule.code, table="labs", date=t.date, item=t.test, value=_value_text(t)
    )
    if comp is not None:
        ev2 = make_evidence(
            t.filter(t.c_value.notnull()),
            code=rule.code,
            table="labs",
            date=t.c_date,
            item=ibis.literal(comp.test),
            value=as_text(t.c_value).concat(" ").concat(as_text(t.c_unit, "")),
        )
        ev = ev.union(ev2)
    return found, ev


def exposure_flag_findings(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    out = []
    ends = protocol.therapy.monitoring_days_after_end
    for rule in protocol.exposure_flags:
        ep = current_episode(ctx, protocol.therapy)
        ep = ep.filter(ctx.as_of_lit <= add_days(ep.end, ends))
        labs = ctx.tables["labs"].filter(_.test == rule.test)
        j = labs.join(ep.select("patient_id", "exposure_days"), "patient_id")
        j = j.mutate(rn=ibis.row_number().over(group_by="patient_id", order_by=ibis.desc(j.date)))
        t = j.filter(
            (j.rn == 0) & (j.value > rule.above) & (j.exposure_days > rule.min_exposure_days)
        )
        t = ctx.stage(t)
        found = make_findings(
            t,
            protocol=protocol,
            rule=rule,
            severity=rule.severity,
            date=t.date,
            fields={"value": t.value, "date": t.date, "exposure_days": t.exposure_days},
        )
        ev = make_evidence(
            t, code=rule.code, table="labs", date=t.date, item=t.test, value=as_text(t.value)
        )
        out.append((found, ev))
    return out
