"""NTZ-PML-RISK: the patient's stratum in a risk table of the protocol (first matching
row wins); strata with a severity raise a finding, and schedule items may shorten their
interval per stratum (engine.risk.risk_table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from dmtwatch.engine.context import Context
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.risk import risk_table
from dmtwatch.engine.text import as_text
from dmtwatch.protocols.parts import Rule, Severity, _Strict
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class RiskStratum(_Strict):
    """One row of a risk table: every stated condition must hold; the first row that
    matches is the patient's stratum."""

    id: str
    label: str
    positive: bool | None = None  # the result above the lab's limit (antibody detected)
    value_above: float | None = None
    exposure_above_days: int | None = Field(default=None, ge=0)
    prior_drugs: bool | None = None  # any of the rule's `prior_drugs` recorded
    severity: Severity | None = None  # None: no finding for this stratum


class RiskStratification(Rule):
    test: str
    prior_drugs: list[str] = []
    strata: list[RiskStratum] = Field(min_length=1)

    def drugs(self) -> list[str]:
        return list(self.prior_drugs)

    def stratum_ids(self) -> list[str]:
        return [s.id for s in self.strata]


def risk_strata(ctx: Context, protocol: Protocol) -> list[Pair]:
    # a stratification whose strata raise nothing finds nothing
    return [
        _stratum_findings(ctx, protocol, rule)
        for rule in protocol.risk_strata
        if any(s.severity is not None for s in rule.strata)
    ]


def _stratum_findings(ctx: Context, protocol: Protocol, rule: RiskStratification) -> Pair:
    raised = {s.id: s for s in rule.strata if s.severity is not None}
    risk = risk_table(ctx, protocol, rule)
    t = ctx.stage(risk.filter(risk.stratum.isin(list(raised))))
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=t.stratum.cases(*[(k, s.severity) for k, s in raised.items()]),
        date=t.date,
        fields={
            "value": t.value,
            "date": t.date,
            "exposure_days": t.exposure_days,
            "stratum": t.stratum.cases(*[(k, s.label) for k, s in raised.items()]),
            "prior_drugs": t.prior_drugs.fill_null(protocol.phrases.none_recorded),
        },
        anchor=t.stratum,  # this stratum: a move to another is a new occurrence
        facts={
            "test": t.test,
            "value": t.value,
            "unit": t.unit,
            "result_date": t.date,
            "ref_high": t.ref_high,
            "stratum": t.stratum,
            "exposure_days": t.exposure_days,
            "prior_drugs": t.prior_drugs,
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
    return found, ev


KIND = RuleKind(
    section="risk_strata",
    model=RiskStratification,
    find=risk_strata,
    mechanism=(
        "While the patient is monitored: the latest valid result, the days of cumulative "
        "exposure and any prior drug of the list place the patient in the first stratum "
        "whose conditions all hold (`positive`: above the lab's upper limit). Strata with a "
        "severity raise this finding; schedule items may shorten their interval per stratum."
    ),
)
