"""CNS-STROKE, INF-CARDIOPULMONARY: an event within days of an infusion (strokes,
arterial dissections, myocardial infarction and alveolar haemorrhage cluster in days
0-3 after alemtuzumab, US PI 5.2-5.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import ibis
from ibis import _
from pydantic import Field

from dmtwatch.engine.clinical import (
    aged,
)
from dmtwatch.engine.context import Context, add_days
from dmtwatch.engine.exposure import treatment_rows
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.latest import first_per_group
from dmtwatch.engine.text import as_text
from dmtwatch.model.tables import AE_CATEGORIES
from dmtwatch.protocols.parts import Ageing, Rule, Severity
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class InfusionProximity(Rule):
    # events read: relapses (any apparent relapse), and adverse events of these categories
    relapses: bool
    adverse_event_categories: list[Literal[AE_CATEGORIES]] = []  # type: ignore[valid-type]
    days_after_infusion: int = Field(ge=0)
    severity: Severity
    ageing: Ageing | None = None


def infusion_proximity(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_proximity(ctx, protocol, rule) for rule in protocol.infusion_proximity]


def _proximity(ctx: Context, protocol: Protocol, rule: InfusionProximity) -> Pair:
    rows = treatment_rows(ctx, protocol.therapy).rename(i_patient="patient_id")
    events = _events(ctx, rule)
    j = events.join(
        rows,
        (events.patient_id == rows.i_patient)
        & (events.onset_date >= rows.start_date)
        & (events.onset_date <= add_days(rows.end_date, rule.days_after_infusion)),
    )
    infusion = ibis.least(j.end_date, j.onset_date)
    j = j.mutate(infusion_date=infusion, days_after=j.onset_date.delta(infusion, unit="day"))
    # one row, whatever order DuckDB reads in: the latest event, nearest infusion
    order = [ibis.desc(j.onset_date), j.event, ibis.desc(j.infusion_date)]
    t = first_per_group(j, "patient_id", order)
    t = ctx.stage(t)
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=aged(ctx, rule.severity, t.onset_date, rule.ageing),
        date=t.onset_date,
        fields={
            "event": t.event,
            "onset_date": t.onset_date,
            "days_after_infusion": t.days_after,
            "infusion_date": t.infusion_date,
        },
        anchor=t.onset_date,  # this event
        facts={
            "event": t.event,
            "onset_date": t.onset_date,
            "last_infusion": t.infusion_date,
            "days_after_infusion": t.days_after,
        },
    )
    ev = make_evidence(
        t,
        code=rule.code,
        table=t.source,
        date=t.onset_date,
        item=t.event,
        value=as_text(t.onset_date),
    )
    return found, ev


def _events(ctx: Context, rule: InfusionProximity) -> ibis.Table:
    """The events a proximity rule reads: (patient_id, onset_date, event, source table)."""
    parts = []
    if rule.relapses:
        rel = ctx.tables["relapses"]
        parts.append(
            rel.select(
                "patient_id",
                "onset_date",
                event=ibis.literal("relapse"),
                source=ibis.literal("relapses"),
            )
        )
    if rule.adverse_event_categories:
        ae = ctx.tables["adverse_events"].filter(_.category.isin(rule.adverse_event_categories))
        parts.append(
            ae.select(
                "patient_id",
                "onset_date",
                event=ae.term.concat(" (").concat(ae.category).concat(")"),
                source=ibis.literal("adverse_events"),
            )
        )
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


KIND = RuleKind(
    section="infusion_proximity",
    model=InfusionProximity,
    find=infusion_proximity,
    mechanism=(
        "An event (any apparent relapse where `relapses` is true, and adverse events of the "
        "listed categories) whose onset falls on an infusion day or within the stated number "
        "of days after the last day of a course row. With `ageing`, an event older than the "
        "stated days is shown at the lower severity."
    ),
    clinical=True,
)
