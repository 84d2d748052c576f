"""Clinical rules on relapses and MRI: CNS-MRI, CNS-RING and infusion proximity.

These encode the 2017 reports of exacerbated CNS inflammation after alemtuzumab: every
apparent relapse needs a contrast MRI promptly, and ring-enhancing lesions call for
urgent review and the rescue pathway. Windows and wording come from the protocol.
"""

from __future__ import annotations

import ibis
from ibis import _

from dmtwatch.engine.context import Context, add_days
from dmtwatch.engine.exposure import current_episode, last_end_before, treatment_rows
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.text import as_text, render
from dmtwatch.protocols.schema import (
    Ageing,
    ImagingFinding,
    InfusionProximity,
    Protocol,
    RelapseImaging,
)

Pair = tuple[ibis.Table, ibis.Table]


def _window(protocol: Protocol, days: ibis.IntegerValue) -> ibis.StringValue:
    """Where a day after the last infusion lies against the repopulation window: before,
    inside or after (NULL without a window, or without a day)."""
    if protocol.repopulation_window_days is None:
        return ibis.null("string")
    lo, hi = protocol.repopulation_window_days
    return ibis.cases((days < lo, "before"), (days <= hi, "inside"), (days > hi, "after"))


def _repopulation(protocol: Protocol, days: ibis.IntegerValue) -> ibis.StringValue:
    """`_window` in the protocol's words."""
    if protocol.repopulation_window_days is None:
        return ibis.literal(protocol.phrases.no_window)
    return _window(protocol, days).cases(*protocol.repopulation_wording.items())


def _exposure_facts(protocol: Protocol, t: ibis.Table, days: ibis.IntegerValue) -> dict:
    return {
        "last_infusion": t.last_infusion,
        "days_after_infusion": days,
        "window": _window(protocol, days),
    }


def _aged(
    ctx: Context, severity: ibis.Value | str, since: ibis.DateValue, ageing: Ageing | None
) -> ibis.Value:
    """A severity lowered once the event is more than `ageing.after_days` old."""
    current = ibis.literal(severity) if isinstance(severity, str) else severity
    if ageing is None:
        return current
    old = ctx.as_of_lit.delta(since, unit="day") > ageing.after_days
    return ibis.ifelse(old, ageing.severity, current)


def _after_day0(ctx: Context, protocol: Protocol, table: ibis.Table, date: str) -> ibis.Table:
    day0 = current_episode(ctx, protocol.therapy).select("patient_id", "first_start")
    j = table.join(day0, "patient_id")
    return j.filter(j[date] >= j.first_start)


def _relapse_evidence(t: ibis.Table, protocol: Protocol, code: str) -> ibis.Table:
    return make_evidence(
        t,
        code=code,
        table="relapses",
        date=t.onset_date,
        item=protocol.phrases.evidence_relapse,
        value=as_text(t.onset_date),
    )


def relapse_imaging(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_relapse_imaging(ctx, protocol, rule) for rule in protocol.relapse_imaging]


def _relapse_imaging(ctx: Context, protocol: Protocol, rule: RelapseImaging) -> Pair:
    rel = ctx.tables["relapses"]
    if rule.confirmed_only:
        rel = rel.filter(rel.confirmed.fill_null(True))
    rel = _after_day0(ctx, protocol, rel, "onset_date").select("patient_id", "onset_date")
    rel = last_end_before(ctx, protocol.therapy, rel, "onset_date")
    mri = ctx.tables["mri"].filter(_.region.isin(rule.regions))
    if rule.contrast:
        mri = mri.filter(mri.contrast.fill_null(True))
    mri = mri.select(m_patient="patient_id", m_date="date")
    j = rel.left_join(mri, (rel.patient_id == mri.m_patient) & (mri.m_date >= rel.onset_date))
    per = j.group_by("patient_id", "onset_date", "last_infusion").aggregate(
        first_mri=j.m_date.min()
    )
    per = per.mutate(mri_delay=per.first_mri.delta(per.onset_date, unit="day"))
    # one per patient: a relapse still without any scan first, then the latest relapse
    per = per.mutate(
        rn=ibis.row_number().over(
            group_by="patient_id", order_by=[per.first_mri.notnull(), ibis.desc(per.onset_date)]
        )
    )
    t = per.filter((per.rn == 0) & (per.first_mri.isnull() | (per.mri_delay > rule.within_days)))
    t = ctx.stage(t)
    days = t.onset_date.delta(t.last_infusion, unit="day")
    words = protocol.phrases
    late = {
        "scan_date": t.first_mri,
        "delay": t.mri_delay,
        "within_days": ibis.literal(rule.within_days),
    }
    mri_state = ibis.ifelse(
        t.first_mri.isnull(),
        ibis.literal(words.scan_missing),
        render(words.scan_late, late, words.missing),
    )
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=ibis.ifelse(
            t.first_mri.isnull(),
            _aged(ctx, rule.severity, t.onset_date, rule.ageing),
            rule.late_severity,
        ),
        date=t.onset_date,
        fields={
            "onset_date": t.onset_date,
            "days_after_infusion": days,
            "repopulation": _repopulation(protocol, days),
            "mri_state": mri_state,
        },
        anchor=t.onset_date,  # this relapse
        facts={
            "onset_date": t.onset_date,
            **_exposure_facts(protocol, t, days),
            "scan_date": t.first_mri,
            "scan_delay_days": t.mri_delay,
            "scan_within_days": ibis.literal(rule.within_days),
        },
    )
    return found, _relapse_evidence(t, protocol, rule.code)


def imaging_findings(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_imaging_finding(ctx, protocol, rule) for rule in protocol.imaging_findings]


def _imaging_finding(ctx: Context, protocol: Protocol, rule: ImagingFinding) -> Pair:
    mri = ctx.tables["mri"]
    hits = _after_day0(ctx, protocol, mri.filter(mri[rule.column] > 0), "date")
    hits = hits.mutate(
        rn=ibis.row_number().over(group_by="patient_id", order_by=ibis.desc(hits.date))
    ).filter(_.rn == 0)
    hits = hits.select("patient_id", "date", "region", "gd_enhancing", count=hits[rule.column])
    hits = last_end_before(ctx, protocol.therapy, hits, "date")
    rescue = ctx.tables["treatments"].filter(_.drug.isin(rule.rescue_drugs))
    rescue = rescue.select(r_patient="patient_id", r_drug="drug", r_start="start_date")
    j = hits.left_join(
        rescue, (hits.patient_id == rescue.r_patient) & (rescue.r_start >= hits.date)
    )
    label = j.r_drug.concat(" from ").concat(j.r_start.cast("string"))
    keys = ["patient_id", "date", "region", "gd_enhancing", "count", "last_infusion"]
    # listed in the order given (then by name), whatever order DuckDB aggregates in
    listed = label.group_concat(", ", order_by=[j.r_start, j.r_drug])
    hits = j.group_by(keys).aggregate(rescue=listed, n_rescue=j.r_drug.count())
    # a follow-up scan shows enhancement only with contrast (a blank contrast means given)
    follow = mri.filter(mri.contrast.fill_null(True))
    later = follow.select(
        l_patient="patient_id", l_date="date", l_region="region", l_count=follow[rule.column]
    )
    j = hits.left_join(
        later,
        (hits.patient_id == later.l_patient)
        & (later.l_region == hits.region)
        & (later.l_date > hits.date),
    )
    j = j.mutate(
        rn=ibis.row_number().over(group_by=["patient_id"], order_by=ibis.desc(j.l_date))
    ).filter(_.rn == 0)
    j = ctx.stage(j)
    receded = (j.l_count == 0).fill_null(False)
    days = j.date.delta(j.last_infusion, unit="day")
    words = protocol.phrases
    follow_up = ibis.ifelse(
        j.l_date.isnull(),
        ibis.literal(words.follow_up_missing),
        render(words.follow_up, {"scan_date": j.l_date, "count": j.l_count}, words.missing),
    )
    found = make_findings(
        j,
        protocol=protocol,
        rule=rule,
        # urgent until a follow-up scan exists, rescue therapy or not
        severity=ibis.cases(
            (receded, rule.receded_severity),
            (j.l_date.notnull() & (j.n_rescue > 0), rule.rescued_severity),
            else_=rule.severity,
        ),
        date=j.date,
        fields={
            "region": j.region,
            "date": j.date,
            "count": j["count"],
            "gd": j.gd_enhancing,
            "days_after_infusion": days,
            "repopulation": _repopulation(protocol, days),
            "rescue": j.rescue.fill_null(words.no_rescue),
            "follow_up": follow_up,
        },
        anchor=j.date,  # this scan
        facts={
            "scan_date": j.date,
            "scan_region": j.region,
            "lesion_count": j["count"],
            **_exposure_facts(protocol, j, days),
            "rescue": j.rescue,
            "rescue_count": j.n_rescue,
            "follow_up_scan_date": j.l_date,
            "follow_up_lesion_count": j.l_count,
        },
    )
    ev = make_evidence(
        j,
        code=rule.code,
        table="mri",
        date=j.date,
        item=ibis.literal("mri ").concat(j.region),
        value=ibis.literal(f"{rule.column}=")
        .concat(as_text(j["count"], words.missing))
        .concat(", gd_enhancing=")
        .concat(as_text(j.gd_enhancing, words.missing)),
    )
    return found, ev


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
    t = j.mutate(
        rn=ibis.row_number().over(
            group_by="patient_id",
            # one row, whatever order DuckDB reads in: the latest event, nearest infusion
            order_by=[ibis.desc(j.onset_date), j.event, ibis.desc(j.infusion_date)],
        )
    ).filter(_.rn == 0)
    t = ctx.stage(t)
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=_aged(ctx, rule.severity, t.onset_date, rule.ageing),
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
