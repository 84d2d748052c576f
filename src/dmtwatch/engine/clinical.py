"""What the clinical rules (relapses, MRI, events near an infusion) share: where a day
after the last infusion lies against the B-cell repopulation window, an alarm's ageing,
events from day 0 on, and the facts about exposure.

These encode the 2017 reports of exacerbated CNS inflammation after alemtuzumab; the
rules themselves are modules under dmtwatch/rules/. Windows and wording come from the
protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

from dmtwatch.engine.context import Context
from dmtwatch.engine.exposure import current_episode
from dmtwatch.engine.findings import make_evidence
from dmtwatch.engine.text import as_text, render
from dmtwatch.protocols.parts import Ageing

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


def window(protocol: Protocol, days: ibis.IntegerValue) -> ibis.StringValue:
    """Where a day after the last infusion lies against the repopulation window: before,
    inside or after (NULL without a window, or without a day)."""
    if protocol.repopulation_window_days is None:
        return ibis.null("string")
    lo, hi = protocol.repopulation_window_days
    return ibis.cases((days < lo, "before"), (days <= hi, "inside"), (days > hi, "after"))


def repopulation(protocol: Protocol, days: ibis.IntegerValue) -> ibis.StringValue:
    """`_window` in the protocol's words."""
    if protocol.repopulation_window_days is None:
        return ibis.literal(protocol.phrases.no_window)
    return window(protocol, days).cases(*protocol.repopulation_wording.items())


def exposure_facts(protocol: Protocol, t: ibis.Table, days: ibis.IntegerValue) -> dict:
    return {
        "last_infusion": t.last_infusion,
        "days_after_infusion": days,
        "window": window(protocol, days),
    }


def aged(
    ctx: Context, severity: ibis.Value | str, since: ibis.DateValue, ageing: Ageing | None
) -> ibis.Value:
    """A severity lowered once the event is more than `ageing.after_days` old."""
    current = ibis.literal(severity) if isinstance(severity, str) else severity
    if ageing is None:
        return current
    old = ctx.as_of_lit.delta(since, unit="day") > ageing.after_days
    return ibis.ifelse(old, ageing.severity, current)


def after_day0(ctx: Context, protocol: Protocol, table: ibis.Table, date: str) -> ibis.Table:
    day0 = current_episode(ctx, protocol.therapy).select("patient_id", "first_start")
    j = table.join(day0, "patient_id")
    return j.filter(j[date] >= j.first_start)


def relapse_evidence(t: ibis.Table, protocol: Protocol, code: str) -> ibis.Table:
    return make_evidence(
        t,
        code=code,
        table="relapses",
        date=t.onset_date,
        item=protocol.phrases.evidence_relapse,
        value=as_text(t.onset_date),
    )


def rescue_after(
    ctx: Context, protocol: Protocol, drugs: list[str], events: ibis.Table, date: str
) -> ibis.Table:
    """`events` with `rescue`: the rescue therapies among `drugs` started on or after each
    event's `date`, each in the protocol's `drug_from` phrase, by start (then name), null
    if none; and `n_rescue`, how many. The list CNS-RING names in its finding, for any
    event (the audit's CNS watch reads it for every CNS finding)."""
    rescue = ctx.tables["treatments"]
    rescue = rescue.filter(rescue.drug.isin(drugs))
    rescue = rescue.select(r_patient="patient_id", r_drug="drug", r_start="start_date")
    j = events.left_join(
        rescue, (events.patient_id == rescue.r_patient) & (rescue.r_start >= events[date])
    )
    label = render(protocol.phrases.drug_from, {"drug": j.r_drug, "date": j.r_start}, None)
    listed = label.group_concat(", ", order_by=[j.r_start, j.r_drug])
    return j.group_by(list(events.columns)).aggregate(rescue=listed, n_rescue=j.r_drug.count())
