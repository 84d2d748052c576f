"""CNS-MRI: every apparent relapse after alemtuzumab needs a contrast MRI promptly (the
2017 reports of exacerbated CNS inflammation in the window of B-cell repopulation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import ibis
from ibis import _
from pydantic import Field

from dmtwatch.engine.clinical import (
    after_day0,
    aged,
    exposure_facts,
    relapse_evidence,
    repopulation,
)
from dmtwatch.engine.context import Context
from dmtwatch.engine.exposure import last_end_before
from dmtwatch.engine.findings import make_findings
from dmtwatch.engine.latest import first_per_group
from dmtwatch.engine.text import render
from dmtwatch.model.tables import MRI_REGIONS
from dmtwatch.protocols.parts import Ageing, Rule, Severity
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class RelapseImaging(Rule):
    confirmed_only: bool
    regions: list[Literal[MRI_REGIONS]]  # type: ignore[valid-type]
    contrast: bool
    within_days: int = Field(ge=0)
    severity: Severity
    late_severity: Severity
    ageing: Ageing | None = None


def relapse_imaging(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_relapse_imaging(ctx, protocol, rule) for rule in protocol.relapse_imaging]


def _relapse_imaging(ctx: Context, protocol: Protocol, rule: RelapseImaging) -> Pair:
    rel = ctx.tables["relapses"]
    if rule.confirmed_only:
        rel = rel.filter(rel.confirmed.fill_null(True))
    rel = after_day0(ctx, protocol, rel, "onset_date").select("patient_id", "onset_date")
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
    per = first_per_group(per, "patient_id", [per.first_mri.notnull(), ibis.desc(per.onset_date)])
    t = per.filter(per.first_mri.isnull() | (per.mri_delay > rule.within_days))
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
            aged(ctx, rule.severity, t.onset_date, rule.ageing),
            rule.late_severity,
        ),
        date=t.onset_date,
        fields={
            "onset_date": t.onset_date,
            "days_after_infusion": days,
            "repopulation": repopulation(protocol, days),
            "mri_state": mri_state,
        },
        anchor=t.onset_date,  # this relapse
        facts={
            "onset_date": t.onset_date,
            **exposure_facts(protocol, t, days),
            "scan_date": t.first_mri,
            "scan_delay_days": t.mri_delay,
            "scan_within_days": ibis.literal(rule.within_days),
        },
    )
    return found, relapse_evidence(t, protocol, rule.code)


KIND = RuleKind(
    section="relapse_imaging",
    model=RelapseImaging,
    find=relapse_imaging,
    mechanism=(
        "For every relapse from day 0 on, the first MRI of the listed regions (with contrast "
        "where required) on or after onset is looked up. With none at all the finding is "
        "raised at once, from the day of onset; a scan later than the window gives the late "
        "severity; a scan within the window satisfies the rule. One finding per patient: a "
        "relapse still without a scan first, otherwise the latest relapse. With `ageing`, an "
        "alarm whose relapse is older than the stated days is shown at the lower severity."
    ),
    clinical=True,
)
