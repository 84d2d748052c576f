"""CNS-RING: lesions on MRI after day 0 (ring-enhancing after alemtuzumab), urgent until
a follow-up scan exists, with the rescue therapy recorded since the scan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import ibis

from dmtwatch.engine.clinical import (
    after_day0,
    exposure_facts,
    repopulation,
    rescue_after,
)
from dmtwatch.engine.context import Context
from dmtwatch.engine.exposure import last_end_before
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.latest import first_per_group
from dmtwatch.engine.text import as_text, render
from dmtwatch.protocols.parts import Rule, Severity
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class ImagingFinding(Rule):
    column: Literal["ring_enhancing", "gd_enhancing", "new_t2"]
    severity: Severity
    rescued_severity: Severity
    receded_severity: Severity
    rescue_drugs: list[str]

    def drugs(self) -> list[str]:
        return list(self.rescue_drugs)


def imaging_findings(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_imaging_finding(ctx, protocol, rule) for rule in protocol.imaging_findings]


def _imaging_finding(ctx: Context, protocol: Protocol, rule: ImagingFinding) -> Pair:
    mri = ctx.tables["mri"]
    hits = after_day0(ctx, protocol, mri.filter(mri[rule.column] > 0), "date")
    hits = first_per_group(hits, "patient_id", ibis.desc(hits.date))
    hits = hits.select("patient_id", "date", "region", "gd_enhancing", count=hits[rule.column])
    hits = last_end_before(ctx, protocol.therapy, hits, "date")
    hits = rescue_after(ctx, protocol, rule.rescue_drugs, hits, "date")
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
    j = first_per_group(j, "patient_id", ibis.desc(j.l_date))
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
            "repopulation": repopulation(protocol, days),
            "rescue": j.rescue.fill_null(words.no_rescue),
            "follow_up": follow_up,
        },
        anchor=j.date,  # this scan
        facts={
            "scan_date": j.date,
            "scan_region": j.region,
            "lesion_count": j["count"],
            **exposure_facts(protocol, j, days),
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


KIND = RuleKind(
    section="imaging_findings",
    model=ImagingFinding,
    find=imaging_findings,
    mechanism=(
        "The latest MRI from day 0 on whose lesion count is above zero. The detail gives the "
        "days since the last infusion, whether that lies in the B-cell repopulation window, "
        "any rescue therapy started on or after the scan, and the latest follow-up scan of "
        "the same region. It stays at its own severity until a follow-up scan exists, rescue "
        "therapy or not; a follow-up with no such lesions gives the receded severity."
    ),
    clinical=True,
)
