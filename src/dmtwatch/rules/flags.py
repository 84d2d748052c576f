"""Lab flags (THY-*, REN-*): the latest result of a test after day 0 beyond its limit
(or a qualitative answer past the catalogue's first abnormal one), read with a companion
test near it that can exclude the finding, be required for it or escalate it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import ibis
from pydantic import Field

from dmtwatch.engine.context import Context
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.labs import (
    beyond,
    companion_allows,
    evidence_text,
    latest_after_day0,
    multiple_of,
    nearest_companion,
    raised,
    result_facts,
    result_fields,
    with_baseline,
)
from dmtwatch.engine.text import as_text, render, reported_note, shown_value
from dmtwatch.protocols.parts import Limit, Rule, Severity, Trigger, _Strict
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class Companion(_Strict):
    """Another test near the flagged result: it can exclude the finding, be required for
    it (a discordant pair), or escalate it (beyond its limit, or a rise from baseline)."""

    test: str
    within_days: int = Field(ge=0)
    # "measured_after": a companion result on the same day or within the window after it
    # excludes (microscopy of a later sample; one from before did not examine this one)
    excludes: Limit | Literal["measured_after"] | None = None
    requires: Limit | None = None
    escalates: Limit | None = None
    # escalates too at or above this multiple of the patient's baseline (the latest
    # result on or before the start of the latest course)
    escalates_at_baseline_times: float | None = Field(default=None, gt=0)


class Flag(Rule):
    test: str
    when: Trigger
    # also raised at or above this value (canonical unit), whatever the lab's range
    at_least: float | None = None
    companion: Companion | None = None
    severity: Severity
    escalated_severity: Severity | None = None


def flag_findings(ctx: Context, protocol: Protocol) -> list[Pair]:
    return [_flag(ctx, protocol, rule) for rule in protocol.flags]


def _flag(ctx: Context, protocol: Protocol, rule: Flag) -> Pair:
    t = latest_after_day0(ctx, protocol, rule)
    t = ctx.stage(t.filter(raised(rule, t)))
    severity: ibis.Value | str = rule.severity
    fields = result_fields(t)
    facts = result_facts(t)
    comp = rule.companion
    if comp is not None:
        t, severity, fields, facts = _with_companion(ctx, protocol, rule, t)
    found = make_findings(
        t,
        protocol=protocol,
        rule=rule,
        severity=severity,
        date=t.date,
        fields=fields,
        anchor=t.last_clear,
        facts=facts,
    )
    ev = make_evidence(
        t, code=rule.code, table="labs", date=t.date, item=t.test, value=evidence_text(t)
    )
    if comp is not None:
        ev2 = make_evidence(
            t.filter(t.c_value.notnull()),
            code=rule.code,
            table="labs",
            date=t.c_date,
            item=ibis.literal(comp.test),
            value=shown_value(t, "c_")
            .concat(" ")
            .concat(as_text(t.c_unit, ""))
            .concat(reported_note(t, "c_")),
        )
        ev = ev.union(ev2)
    return found, ev


def _with_companion(
    ctx: Context, protocol: Protocol, rule: Flag, t: ibis.Table
) -> tuple[ibis.Table, ibis.Value, dict[str, ibis.Value], dict[str, ibis.Value]]:
    """The flagged rows with the companion result nearest in time (within the window),
    filtered by what it excludes or requires, and the severity it escalates to."""
    comp = rule.companion
    assert comp is not None
    j = nearest_companion(ctx, t, comp, "patient_id")  # one flagged row per patient
    j = j.filter(companion_allows(comp, j))
    times = comp.escalates_at_baseline_times
    if times is not None:
        j = with_baseline(ctx, protocol, j, test=comp.test)
    t = ctx.stage(j)
    escalated = ibis.literal(False)
    if comp.escalates is not None:
        escalated = beyond(comp.escalates, t, "c_value", "c_low", "c_high").fill_null(False)
    # the companion's state: a key for the facts, the protocol's phrase for the text
    words = protocol.phrases
    states = [
        (t.c_value.isnull(), "not_measured"),
        (t.c_value < t.c_low, "below"),
        (t.c_value > t.c_high, "above"),
    ]
    phrases = {
        "not_measured": render(
            words.companion_not_measured,
            {"within_days": ibis.literal(comp.within_days)},
            words.missing,
        ),
        "below": ibis.literal(words.companion_below),
        "above": ibis.literal(words.companion_above),
        "within": ibis.literal(words.companion_within),
    }
    if times is not None:
        risen = (t.c_value >= multiple_of(t.baseline, times)).fill_null(False)
        escalated = escalated | risen
        states.append((risen, "risen"))
        phrases["risen"] = render(
            words.companion_risen,
            {"times": ibis.literal(f"{times:g}"), "baseline": t.baseline},
            words.missing,
        )
    state = ibis.cases(*states, else_="within")
    severity = ibis.ifelse(escalated, rule.escalated_severity or rule.severity, rule.severity)
    fields = {
        **result_fields(t),
        "companion_value": shown_value(t, "c_"),
        "companion_unit": t.c_unit,
        "companion_reported": reported_note(t, "c_"),
        "companion_state": ibis.cases(*[(state == k, v) for k, v in phrases.items()]),
    }
    facts = {
        **result_facts(t),
        "companion_test": ibis.literal(comp.test),
        "companion_value": t.c_value,
        "companion_unit": t.c_unit,
        "companion_date": t.c_date,
        "companion_state": state,
    }
    return t, severity, fields, facts


KIND = RuleKind(
    section="flags",
    model=Flag,
    find=flag_findings,
    mechanism=(
        "The latest result of the test dated after day 0 is compared with its limit (or, for "
        "a qualitative test, with the catalogue's first abnormal answer; `at_least`: also at "
        "or above that value whatever the lab's range). A companion test within the stated "
        "window can exclude the finding (beyond a limit, or `measured_after`: any result on "
        "the same day or in the window after), be required for it, or raise its severity "
        "(beyond its limit, or at a multiple of its baseline before the latest course)."
    ),
)
