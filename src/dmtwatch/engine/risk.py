"""Results that are not valid, and risk strata built on the valid ones.

An anti-JCV index drawn within 2 weeks of plasma exchange or 6 months of IVIg measures
the donor's or the exchange's antibodies, not the patient's: it must neither place the
patient in a lower PML-risk stratum nor pass silently (a finding asks for a repeat).
The risk strata are a table in the protocol (first matching row wins), so the label's
stratification is data, and schedule items can shorten their interval per stratum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
from ibis import _

from dmtwatch.engine.context import Context, add_days
from dmtwatch.engine.exposure import current_episode
from dmtwatch.engine.labs import limited_labs
from dmtwatch.engine.latest import first_per_group
from dmtwatch.engine.text import render

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol
    from dmtwatch.rules.result_validity import ResultValidity
    from dmtwatch.rules.risk_strata import RiskStratification, RiskStratum


def monitored(ctx: Context, protocol: Protocol) -> ibis.Table:
    """Patients whose latest episode is still in the protocol's monitoring tail."""
    ep = current_episode(ctx, protocol.therapy)
    ends = add_days(ep.end, protocol.therapy.monitoring_days_after_end)
    return ep.filter(ctx.as_of_lit <= ends)


def _validity(protocol: Protocol, test: str) -> ResultValidity | None:
    return next((r for r in protocol.result_validity if r.test == test), None)


def checked_results(ctx: Context, protocol: Protocol, test: str) -> ibis.Table:
    """Every result of `test` with `invalid_drug`, its first and last day and `valid_from`
    where a treatment of the protocol's validity rule makes it invalid (null where valid)."""
    labs = limited_labs(ctx).filter(_.test == test)
    labs = labs.select("patient_id", "date", "test", "value", "unit", "ref_high")
    rule = _validity(protocol, test)
    if rule is None:
        return labs.mutate(
            invalid_drug=ibis.null("string"),
            invalid_start=ibis.null("date"),
            invalid_end=ibis.null("date"),
            valid_from=ibis.null("date"),
        )
    windows = ctx.constants(
        f"validity_{protocol.id}_{test}",
        {"w_drug": "string", "w_days": "int64"},
        sorted(rule.invalid_after.items()),
    )
    tr = ctx.tables["treatments"]
    tr = tr.join(windows, tr.drug == windows.w_drug)
    last_day = tr.end_date.fill_null(tr.start_date)
    tr = tr.select(
        w_patient=tr.patient_id,
        w_drug=tr.drug,
        w_start=tr.start_date,
        w_end=last_day,
        w_until=add_days(last_day, tr.w_days),
    )
    j = labs.left_join(
        tr,
        (labs.patient_id == tr.w_patient) & (labs.date >= tr.w_start) & (labs.date <= tr.w_until),
    )
    # one row per result: the window that keeps it invalid longest
    j = first_per_group(j, ["patient_id", "date", "value"], [ibis.desc(j.w_until), j.w_drug])
    return j.select(
        "patient_id",
        "date",
        "test",
        "value",
        "unit",
        "ref_high",
        invalid_drug=j.w_drug,
        invalid_start=j.w_start,
        invalid_end=j.w_end,
        valid_from=add_days(j.w_until, 1),
    )


def _holds(s: RiskStratum, t: ibis.Table) -> ibis.BooleanValue:
    """Every condition the stratum states holds for the row."""
    out = ibis.literal(True)
    if s.positive is not None:
        positive = (t.value > t.ref_high).fill_null(False)
        out = out & (positive if s.positive else ~positive)
    if s.value_above is not None:
        out = out & (t.value > s.value_above).fill_null(False)
    if s.exposure_above_days is not None:
        out = out & (t.exposure_days > s.exposure_above_days)
    if s.prior_drugs is not None:
        out = out & (t.prior_drugs.notnull() if s.prior_drugs else t.prior_drugs.isnull())
    return out


def risk_table(ctx: Context, protocol: Protocol, rule: RiskStratification) -> ibis.Table:
    """Per monitored patient: the latest valid result, days exposed, prior drugs (if
    any) and the stratum (null where no row of the table matches)."""
    res = checked_results(ctx, protocol, rule.test).filter(_.invalid_drug.isnull())
    res = first_per_group(res, "patient_id", [ibis.desc(res.date), ibis.desc(res.value)])
    mon = monitored(ctx, protocol).select("patient_id", "exposure_days")
    t = res.join(mon, "patient_id")
    if rule.prior_drugs:
        tr = ctx.tables["treatments"].filter(_.drug.isin(rule.prior_drugs))
        fields = {"drug": tr.drug, "date": tr.start_date}
        label = render(protocol.phrases.drug_from, fields, None)
        prior = tr.group_by(p_patient=tr.patient_id).aggregate(
            prior_drugs=label.group_concat(", ", order_by=[tr.start_date, tr.drug])
        )
        t = t.left_join(prior, t.patient_id == prior.p_patient).drop("p_patient")
    else:  # the table names no prior drugs: nobody has any
        t = t.mutate(prior_drugs=ibis.null("string"))
    stratum = ibis.cases(*[(_holds(s, t), s.id) for s in rule.strata], else_=ibis.null("string"))
    t = t.mutate(stratum=stratum)
    return ctx.materialize(f"risk_{protocol.id}", t)
