"""NTZ-JCV-INVALID: the latest result of a test drawn too soon after a treatment that
invalidates it (an anti-JCV index after plasma exchange or IVIg): repeat it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

from dmtwatch.engine.context import Context
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.latest import first_per_group
from dmtwatch.engine.risk import checked_results, monitored
from dmtwatch.engine.text import as_text
from dmtwatch.protocols.parts import Rule, Severity
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class ResultValidity(Rule):
    """Results of `test` drawn too soon after a treatment are not valid (e.g. an anti-JCV
    index after plasma exchange or IVIg): rules skip them and a finding asks for a repeat."""

    test: str
    invalid_after: dict[str, int]  # drug -> days after its last day that a result is not valid
    severity: Severity

    def drugs(self) -> list[str]:
        return list(self.invalid_after)


def result_validity(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_invalid_latest(ctx, protocol, rule) for rule in protocol.result_validity]


def _invalid_latest(ctx: Context, protocol: Protocol, rule: ResultValidity) -> Pair:
    """The patient's latest result of the test is not valid: repeat it."""
    res = checked_results(ctx, protocol, rule.test)
    mon = monitored(ctx, protocol).select(m_patient="patient_id")
    res = res.join(mon, res.patient_id == mon.m_patient)
    order = [ibis.desc(res.date), res.invalid_drug.isnull(), ibis.desc(res.value)]
    res = first_per_group(res, "patient_id", order)
    t = ctx.stage(res.filter(res.invalid_drug.notnull()))
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=rule.severity,
        date=t.date,
        fields={
            "value": t.value,
            "date": t.date,
            "drug": t.invalid_drug,
            "drug_start": t.invalid_start,
            "drug_end": t.invalid_end,
            "days_after": t.date.delta(t.invalid_end, unit="day"),
            "valid_from": t.valid_from,
        },
        test=t.test,
        anchor=t.date,  # this result: a new one is a new occurrence
        facts={
            "test": t.test,
            "value": t.value,
            "unit": t.unit,
            "result_date": t.date,
            "invalid_drug": t.invalid_drug,
            "valid_from": t.valid_from,
        },
    )
    ev = make_evidence(
        t,
        code=rule.code,
        table="labs",
        date=t.date,
        item=t.test,
        value=as_text(t.value, protocol.phrases.missing),
    )
    ev2 = make_evidence(
        t,
        code=rule.code,
        table="treatments",
        date=t.invalid_start,
        item=t.invalid_drug,
        value=as_text(t.invalid_start),
    )
    return found, ev.union(ev2)


KIND = RuleKind(
    section="result_validity",
    model=ResultValidity,
    find=result_validity,
    mechanism=(
        "The patient's latest result of the test was drawn on or after the first day of a "
        "listed treatment and within the stated days after its last day: it is not valid. "
        "Rules on the test skip it (an earlier valid result stands) and this finding asks "
        "for a repeat."
    ),
)
