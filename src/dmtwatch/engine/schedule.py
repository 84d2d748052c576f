"""MON-OVERDUE and MON-BASELINE: the protocol's test schedule against what was done.

For every patient whose latest episode is still monitored (as-of on or before its last
day plus the protocol's tail), each schedule item is due one interval after the later of
the clock start and the last time it was done; it is overdue once the grace has passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis
from ibis import _

from dmtwatch.engine.context import Context, add_days
from dmtwatch.engine.exposure import current_episode
from dmtwatch.engine.findings import CodedWording, make_evidence, make_findings
from dmtwatch.engine.risk import risk_table
from dmtwatch.engine.text import as_text, render

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol

_ITEM_SCHEMA = {
    "item": "string",
    "test": "string",
    "n_tests": "int64",
    "require_all": "boolean",
    "interval_days": "int64",  # -1: a baseline only
    "grace_days": "int64",
    "escalate_after_days": "int64",
    "baseline_days": "int64",  # -1: no baseline asked for
    "tail_days": "int64",
    "baseline_severity": "string",
    "first_only": "boolean",
}


def _items(ctx: Context, protocol: Protocol) -> ibis.Table:
    """One row per schedule item and test: the protocol's schedule as a table."""
    tail = protocol.therapy.monitoring_days_after_end
    rows = [
        (
            item.id,
            test,
            len(item.tests),
            item.require == "all",
            item.interval_days if item.interval_days is not None else -1,
            item.grace_days,
            item.escalate_after_days,
            item.baseline_days if item.baseline_days is not None else -1,
            item.days_after_end if item.days_after_end is not None else tail,
            item.baseline_severity,
            item.baseline_first_episode_only,
        )
        for item in protocol.schedule
        for test in item.tests
    ]
    return ctx.constants(f"schedule_{protocol.id}", _ITEM_SCHEMA, rows)


def _monitored(ctx: Context, protocol: Protocol) -> ibis.Table:
    """Every patient's latest episode with the clock of it and of the first episode (from
    which a test never done is due), and the last day any item is still monitored."""
    ep = current_episode(ctx, protocol.therapy)
    by_end = protocol.therapy.clock_starts == "episode_end"
    longest = max(
        [protocol.therapy.monitoring_days_after_end]
        + [i.days_after_end for i in protocol.schedule if i.days_after_end is not None]
    )
    return ep.filter(ctx.as_of_lit <= add_days(ep.end, longest)).mutate(
        clock=ep.end if by_end else ep.start,
        first_clock=ep.first_end if by_end else ep.first_start,
    )


def _plan(ctx: Context, protocol: Protocol, items: ibis.Table) -> ibis.Table:
    """(patient, item row) pairs still monitored as of today, with `monitoring_ends`."""
    plan = _monitored(ctx, protocol).cross_join(items)
    plan = plan.mutate(monitoring_ends=add_days(plan.end, plan.tail_days))
    return plan.filter(ctx.as_of_lit <= plan.monitoring_ends)


def _risk_intervals(ctx: Context, protocol: Protocol) -> ibis.Table | None:
    """(patient, item, interval) for patients whose risk stratum shortens an item."""
    rows = [(i.id, k, d) for i in protocol.schedule for k, d in i.interval_by_risk.items()]
    if not rows:
        return None
    shorter = ctx.constants(
        f"risk_intervals_{protocol.id}",
        {"r_item": "string", "r_stratum": "string", "r_interval": "int64"},
        rows,
    )
    parts = []
    for rule in protocol.risk_strata:
        risk = risk_table(ctx, protocol, rule)
        j = risk.join(shorter, risk.stratum == shorter.r_stratum)
        parts.append(j.select(r_patient=j.patient_id, r_item=j.r_item, r_interval=j.r_interval))
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def _wording(code: str, protocol: Protocol, which: str) -> CodedWording:
    """The protocol's words for a schedule finding, cited by its first item's sources
    (each finding is then cited by its own item's)."""
    assert protocol.schedule_wording is not None  # a protocol with a schedule has it
    w = getattr(protocol.schedule_wording, which)
    return CodedWording(code, w.title, w.detail, w.action, protocol.schedule[0].source)


def _phrase(protocol: Protocol, template: str) -> ibis.StringValue:
    """A phrase over the therapy's name, e.g. "{drug} start of the episode"."""
    return ibis.literal(template.format(drug=protocol.therapy.drug))


def overdue(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    """Each item is due one interval after it was last done. A new course restarts the
    clock only for tests done in its baseline window or since: a test last done long
    before is overdue from its own interval, and one never done from the first course."""
    if not any(i.interval_days is not None for i in protocol.schedule):
        return []
    items = _items(ctx, protocol).filter(_.interval_days >= 0)
    obs = ctx.observations()
    plan = _plan(ctx, protocol, items)
    done = plan.join(obs, (plan.patient_id == obs.patient_id) & (plan.test == obs.test))
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
        baseline_days=items.baseline_days.max(),
        tail_days=items.tail_days.max(),
    )
    mon = _monitored(ctx, protocol)
    t = mon.cross_join(first).left_join(
        per_item, [mon.patient_id == per_item.patient_id, first.item == per_item.item]
    )
    shorter = _risk_intervals(ctx, protocol)
    if shorter is not None:
        t = t.left_join(
            shorter, [t.patient_id == shorter.r_patient, t.item == shorter.r_item]
        ).mutate(interval_days=ibis.coalesce(_.r_interval, _.interval_days))
    t = t.mutate(monitoring_ends=add_days(t.end, t.tail_days))
    t = t.filter(ctx.as_of_lit <= t.monitoring_ends)
    last_done = ibis.ifelse(
        t.require_all,
        ibis.ifelse(t.n_done == t.n_tests, t.last_min, ibis.null("date")),
        t.last_max,
    )
    t = t.mutate(last_done=last_done)
    window_start = add_days(t.start, -ibis.greatest(t.baseline_days, 0))
    ref = ibis.cases(
        (t.last_done.isnull(), t.first_clock),
        (t.last_done >= window_start, ibis.greatest(t.last_done, t.clock)),
        else_=t.last_done,
    )
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
    # the therapy's note is itself a template over the same fields
    fields["monitoring_note"] = render(
        protocol.therapy.monitoring_note, fields, protocol.phrases.missing
    )
    found = make_findings(
        t,
        protocol=protocol,
        rule=_wording("MON-OVERDUE", protocol, "overdue"),
        severity=ibis.ifelse(
            t.days_overdue > t.grace_days + t.escalate_after_days, "high", "routine"
        ),
        date=t.due,
        fields=fields,
        test=t.item,
        # overdue since this due date: a test done restarts the clock, a new occurrence
        anchor=t.due,
        facts={
            "item": t.item,
            "due": t.due,
            "days_overdue": t.days_overdue,
            "last_done": t.last_done,
            "interval_days": t.interval_days,
            "grace_days": t.grace_days,
            "monitoring_ends": t.monitoring_ends,
            "course_start": t.start,
        },
    ).mutate(source=t.item.cases(*sources.items()))
    ev = make_evidence(
        t,
        code="MON-OVERDUE",
        test=t.item,
        table="treatments",
        date=t.end,
        item=_phrase(protocol, protocol.phrases.evidence_episode_end),
        value=as_text(t.start).concat(" to ").concat(as_text(t.end, protocol.phrases.missing)),
    )
    return [(found, ev)]


def missing_baseline(ctx: Context, protocol: Protocol) -> list[tuple[ibis.Table, ibis.Table]]:
    """The latest episode (or the first, for a baseline asked once) started without the
    baseline the protocol asks for."""
    items = _items(ctx, protocol).filter(_.baseline_days >= 0)
    if not any(i.baseline_days is not None for i in protocol.schedule):
        return []
    obs = ctx.observations()
    plan = _plan(ctx, protocol, items)
    plan = plan.mutate(start=ibis.ifelse(plan.first_only, plan.first_start, plan.start))
    plan = plan.mutate(window_start=add_days(plan.start, -plan.baseline_days))
    hit = plan.join(
        obs,
        (plan.patient_id == obs.patient_id)
        & (plan.test == obs.test)
        & (obs.date >= plan.window_start)
        & (obs.date <= plan.start),
    )
    got = hit.group_by("patient_id", "item").aggregate(n_done=hit.test.nunique())
    need = plan.group_by("patient_id", "item", "start", "window_start").aggregate(
        n_tests=plan.n_tests.max(),
        require_all=plan.require_all.max(),
        baseline_severity=plan.baseline_severity.max(),
    )
    t = need.left_join(got, [need.patient_id == got.patient_id, need.item == got.item])
    n_done = t.n_done.fill_null(0)
    t = t.filter(ibis.ifelse(t.require_all, n_done < t.n_tests, n_done == 0))
    t = ctx.stage(t)
    names = {i.id: i.name for i in protocol.schedule}
    found = make_findings(
        t,
        protocol=protocol,
        rule=_wording("MON-BASELINE", protocol, "baseline"),
        severity=t.baseline_severity,
        date=t.start,
        fields={
            "name": t.item.cases(*names.items()),
            "window_start": t.window_start,
            "start": t.start,
            "drug": ibis.literal(protocol.therapy.drug),
        },
        test=t.item,
        anchor=t.start,  # the course that started without its baseline
        facts={"item": t.item, "course_start": t.start, "baseline_window_start": t.window_start},
    )
    ev = make_evidence(
        t,
        code="MON-BASELINE",
        test=t.item,
        table="treatments",
        date=t.start,
        item=_phrase(protocol, protocol.phrases.evidence_episode_start),
        value=as_text(t.start),
    )
    return [(found, ev)]
