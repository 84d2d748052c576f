"""The findings table every rule produces, and its evidence rows.

A finding is keyed by (code, patient_id, test); evidence rows carry the same key and
name the input rows behind it (table, date, item, value), so renderers can show them.

A finding is facts first, prose second. Besides its wording (rendered from the
protocol's templates) every rule states what it found as typed facts from one shared
vocabulary (`FACTS`): the value and its limits, the days since the last infusion, the
scan that satisfied or did not... Each rule fills the facts it knows; the others stay
NULL and are left out of the finding's `facts` object. `anchor` names the occurrence
(the relapse onset, the scan, the course, the due date...): with protocol, code,
patient and test it makes the finding's stable identity (`key`, see run.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Protocol as Protocol_

import ibis
from ibis import udf

from dmtwatch.engine.text import as_text, render

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol

FINDING_COLUMNS = (
    "code",
    "patient_id",
    "test",
    "severity",
    "date",
    "title",
    "detail",
    "action",
    "source",
    "grade",
    "protocol",
    "anchor",
    "facts",
)
# What `check` gives: the anchor turned into the stable `key`, the facts into one JSON
# object of those the rule stated (see run.reduce_findings).
OUTPUT_COLUMNS = (*(c for c in FINDING_COLUMNS if c not in ("anchor", "facts")), "key", "facts")
EVIDENCE_COLUMNS = ("code", "patient_id", "test", "table", "date", "item", "value")


# The facts vocabulary: name -> type. One meaning per name across all rules; the
# contract (docs/contract.md, section 4) documents each. Dates are the day they name.
FACTS: dict[str, str] = {
    # a lab result: the value in the canonical unit, a qualitative answer, as reported
    "test": "string",
    "value": "float64",
    "value_text": "string",
    "unit": "string",
    "value_as_reported": "string",
    "result_date": "date",
    "ref_low": "float64",
    "ref_high": "float64",
    "baseline": "float64",
    "worst_grade": "int32",
    # the result a flag reads beside its own (e.g. free T4 beside TSH)
    "companion_test": "string",
    "companion_value": "float64",
    "companion_unit": "string",
    "companion_date": "date",
    "companion_state": "string",  # not_measured | below | above | within | risen
    # exposure: the course and the infusion nearest before the event
    "course_start": "date",
    "last_infusion": "date",
    "days_after_infusion": "int64",
    "window": "string",  # before | inside | after the protocol's repopulation window
    # relapses, scans and other events
    "onset_date": "date",
    "event": "string",
    "scan_date": "date",
    "scan_region": "string",
    "lesion_count": "int64",
    "scan_delay_days": "int64",
    "scan_within_days": "int64",
    "follow_up_scan_date": "date",
    "follow_up_lesion_count": "int64",
    "rescue": "string",  # rescue therapies from the scan on: "drug from date, ..."
    "rescue_count": "int64",
    # the monitoring schedule
    "item": "string",
    "due": "date",
    "days_overdue": "int64",
    "last_done": "date",
    "interval_days": "int64",
    "grace_days": "int64",
    "monitoring_ends": "date",
    "baseline_window_start": "date",
    # a result made invalid by a treatment, and risk strata
    "invalid_drug": "string",
    "valid_from": "date",
    "stratum": "string",
    "exposure_days": "int64",
    "prior_drugs": "string",
}


# DuckDB's to_json, one signature per type a fact can have: a value as JSON text.
@udf.scalar.builtin(name="to_json")
def _json_float(value: float) -> str: ...


@udf.scalar.builtin(name="to_json")
def _json_int(value: int) -> str: ...


@udf.scalar.builtin(name="to_json")
def _json_str(value: str) -> str: ...


@udf.scalar.builtin(name="to_json")
def _json_date(value: ibis.dtype("date")) -> str: ...  # type: ignore[valid-type]


def _as_json(value: ibis.Value) -> ibis.StringValue:
    t = value.type()
    if t.is_floating():
        return _json_float(value)
    if t.is_integer():
        return _json_int(value)
    if t.is_date():
        return _json_date(value)
    return _json_str(value.cast("string"))


def facts_json(facts: dict[str, ibis.Value]) -> ibis.StringValue:
    """A rule's facts as one JSON object: the non-NULL ones under their names, in the
    vocabulary's order. Each rule packs its own few, so the stacked findings of all
    rules stay one text column wide instead of one column per fact."""
    pieces = []
    for name, kind in FACTS.items():
        if name in facts:
            pair = ibis.literal(f'"{name}":').concat(_as_json(facts[name].cast(kind)))
            pieces.append(pair.concat(",").fill_null(""))  # a NULL fact: no pair at all
    if not pieces:
        return ibis.literal("{}")
    body = ibis.literal("").concat(*pieces).re_replace(",$", "")  # the last pair's comma
    return ibis.literal("{").concat(body, "}")


def null_text() -> ibis.Value:
    return ibis.null("string")


class Wording(Protocol_):
    """What a rule says: any protocol rule, or the schedule's own wording."""

    code: str
    title: str
    detail: str
    action: str
    source: list[str]


@dataclass(frozen=True)
class CodedWording:
    """A protocol's wording (e.g. `schedule_wording.overdue`) under a code and sources."""

    code: str
    title: str
    detail: str
    action: str
    source: list[str]


def make_findings(
    t: ibis.Table,
    *,
    protocol: Protocol,
    rule: Wording,
    severity: ibis.Value | str,
    date: ibis.Value,
    fields: dict[str, ibis.Value],
    anchor: ibis.Value,
    facts: dict[str, ibis.Value],
    test: ibis.Value | None = None,
    grade: ibis.Value | None = None,
) -> ibis.Table:
    """The findings table of one rule: its wording rendered from `fields`, its `facts`
    (names from `FACTS`, the rest NULL) and `anchor`, per row of `t`."""
    unknown = set(facts) - set(FACTS)
    if unknown:
        raise KeyError(f"{rule.code}: facts not in the vocabulary: {sorted(unknown)}")
    return t.select(
        code=ibis.literal(rule.code),
        patient_id=t.patient_id,
        test=null_text() if test is None else test.cast("string"),
        severity=ibis.literal(severity) if isinstance(severity, str) else severity,
        date=date.cast("date"),
        title=render(rule.title, fields, protocol.phrases.missing),
        detail=render(rule.detail, fields, protocol.phrases.missing),
        action=ibis.literal(rule.action),
        source=ibis.literal(protocol.cite(rule.source)),
        grade=ibis.null("int32") if grade is None else grade.cast("int32"),
        protocol=ibis.literal(protocol.id),
        anchor=as_text(anchor, ""),  # no anchor: one occurrence per patient and test
        facts=facts_json(facts),
    )


def make_evidence(
    t: ibis.Table,
    *,
    code: str,
    table: ibis.Value | str,
    date: ibis.Value,
    item: ibis.Value | str,
    value: ibis.Value,
    test: ibis.Value | None = None,
) -> ibis.Table:
    return t.select(
        code=ibis.literal(code),
        patient_id=t.patient_id,
        test=null_text() if test is None else test.cast("string"),
        table=ibis.literal(table) if isinstance(table, str) else table.cast("string"),
        date=date.cast("date"),
        item=ibis.literal(item) if isinstance(item, str) else item.cast("string"),
        value=value.cast("string"),
    )
