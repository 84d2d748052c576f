"""MON-OVERDUE and MON-BASELINE: the protocol's test schedule against what was done.

For every patient whose latest episode is still monitored (as-of on or before its last
day plus the protocol's tail), each schedule item is due one interval after the later of
the clock start and the last time it was done; it is overdue once the grace has passed.
"""

from __future__ import annotations

import ibis
from ibis import _

from dmtwatch.engine.context import Context, add_days
from dmtwatch.engine.exposure import current_episode
from dmtwatch.engine.findings import ScheduleWording, make_evidence, make_findings
from dmtwatch.engine.text import as_text
from dmtwatch.protocols.schema import Protocol

_ITEM_SCHEMA = {
    "item": "string",
    "test": "string",
    "n_tests": "int64",
    "require_all": "boolean",
    "interval_days": "int64",
    "grace_days": "int64",
    "escalate_after_days": "int64",
    "baseline_days": "int64",
}


def _items(ctx: Context, protocol: Protocol) -> ibis.Table:
    """One row per schedule item and test: the protocol's schedule as a table."""
    rows = [
        (
            item.id,
            test,
            len(item.tests),
            item.require == "all",
            item.interval_days,
            item.grace_days,
            item.escalate_after_days,
            item.baseline_days if item.baseline_days is not None else -1,
        )
        for item in protocol.schedule
        for test in item.tests
    ]
    return ctx.constants(f"schedule_{protocol.id}", _ITEM_SCHEMA, rows)


def _monitored(ctx: Context, protocol: Protocol) -> ibis.Table:
    ep = current_episode(ctx, protocol.therapy)
    ends = add_days(ep.end, protocol.therapy.monitoring_days_after_end)
    clock = ep.end if protocol.therapy.clock_starts == "episode_end" else ep.start
    return ep.filter(ctx.as_of_lit <= ends).mutate(clock=clock, monitoring_ends=ends)


def overdue(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    if not protocol.schedule:
        return []
    mon = _monitored(ctx, protocol)
    items = _items(ctx, protocol)
    obs = ctx.observations()
    plan = mon.cross_join(items)
    done = plan.join(
        obs,
        (plan.patient_id == obs.patient_id) & (plan.test == obs.test) & (obs.date >= plan.start),
    )
    last_per_test = done.group_by("patient_id", "item", "test").aggregate(last=done.date.max())
    per_item = last_per_test.group_by("patient_id", "item").aggregate(
        last_min=last_per_test["last"].min(),
        last_max=last_per_test["last"].max(),
        n_done=last_per_test.test.nunique(),
    )
    first = items.group_by("item").aggregate(
        n_tests=items.n_tests.max(),
        require_all=items.require_all.max(),
        interval_days=items.interval_days.max(),
        grace_days=items.grace_days.max(),
        escalate_after_days=items.escalate_after_days.max(),
    )
    t = mon.cross_join(first).left_join(
        per_item, [mon.patient_id == per_item.patient_id, first.item == per_item.item]
    )
    last_done = ibis.ifelse(
        t.require_all,
        ibis.ifelse(t.n_done == t.n_tests, t.last_min, ibis.null("date")),
        t.last_max,
    )
    t = t.mutate(last_done=last_done)
    ref = ibis.greatest(t.last_done.fill_null(t.clock), t.clock)
    t = t.mutate(due=add_days(ref, t.interval_days))
    t = t.mutate(days_overdue=ctx.as_of_lit.delta(t.due, unit="day"))
    t = t.filter(t.days_overdue > t.grace_days)
    t = ctx.stage(t)
    names = {i.id: i.name for i in protocol.schedule}
    sources = {i.id: protocol.cite(i.source) for i in protocol.schedule}
    item_name = t.item.cases(*names.items())
    fields = {
        "name": item_name,
        "due": t.due,
        "days_overdue": t.days_overdue,
        "last_done": t.last_done,
        "clock": t.clock,
        "monitoring_ends": t.monitoring_ends,
        "drug": ibis.literal(protocol.therapy.drug),
    }
    found = make_findings(
        t,
        protocol=protocol,
        rule=ScheduleWording(
            code="MON-OVERDUE",
            title="{name} overdue",
            detail="{name} was due on {due} ({days_overdue} days ago); last done {last_done}; "
            + protocol.therapy.monitoring_note
            + ".",
            action="Arrange the test and record the result; contact the patient if they have "
            "missed appointments.",
            source=protocol.schedule[0].source,
        ),
        severity=ibis.ifelse(
            t.days_overdue > t.grace_days + t.escalate_after_days, "high", "routine"
        ),
        date=t.due,
        fields=fields,
        test=t.item,
    ).mutate(source=t.item.cases(*sources.items()))
    ev = make_evidence(
        t,
        code="MON-OVERDUE",
        test=t.item,
        table="treatments",
        date=t.end,
        item=ibis.literal(f"{protocol.therapy.drug} last day of the latest episode"),
        value=as_text(t.start).concat(" to ").concat(as_text(t.end)),
    )
    return [(found, ev)]


def missing_baseline(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    """The latest episode started without the baseline the protocol asks for."""
    items = _items(ctx, protocol).filter(_.baseline_days >= 0)
    if not any(i.baseline_days is not None for i in protocol.schedule):
        return []
    mon = _monitored(ctx, protocol)
    obs = ctx.observations()
    plan = mon.cross_join(items)
    window_start = add_days(plan.start, -plan.baseline_days)
    plan = plan.mutate(window_start=window_start)
    hit = plan.join(
        obs,
        (plan.patient_id == obs.patient_id)
        & (plan.test == obs.test)
        & (obs.date >= plan.window_start)
        & (obs.date <= plan.start),
    )
    got = hit.group_by("patient_id", "item").aggregate(n_done=hit.test.nunique())
    need = plan.group_by("patient_id", "item", "start", "window_start").aggregate(
        n_tests=plan.n_tests.max(), require_all=plan.require_all.max()
    )
    t = need.left_join(got, [need.patient_id == got.patient_id, need.item == got.item])
    n_done = t.n_done.fill_null(0)
    t = t.filter(ibis.ifelse(t.require_all, n_done < t.n_tests, n_done == 0))
    t = ctx.stage(t)
    names = {i.id: i.name for i in protocol.schedule}
    found = make_findings(
        t,
        protocol=protocol,
        rule=ScheduleWording(
            code="MON-BASELINE",
            title="{name}: no baseline before the latest course",
            detail="No {name} between {window_start} and the start of the latest {drug} "
            "episode on {start}.",
            action="Record the baseline if it was done elsewhere; it is the reference for "
            "later results.",
            source=protocol.schedule[0].source,
        ),
        severity="info",
        date=t.start,
        fields={
            "name": t.item.cases(*names.items()),
            "window_start": t.window_start,
            "start": t.start,
            "drug": ibis.literal(protocol.therapy.drug),
        },
        test=t.item,
    )
    ev = make_evidence(
        t,
        code="MON-BASELINE",
        test=t.item,
        table="treatments",
        date=t.start,
        item=ibis.literal(f"{protocol.therapy.drug} start of the latest episode"),
        value=as_text(t.start),
    )
    return [(found, ev)]
