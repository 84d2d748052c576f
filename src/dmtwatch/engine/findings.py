"""The findings table every rule produces, and its evidence rows.

A finding is keyed by (code, patient_id, test); evidence rows carry the same key and
name the input rows behind it (table, date, item, value), so renderers can show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol as Protocol_

import ibis

from dmtwatch.engine.text import render
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
)
EVIDENCE_COLUMNS = ("code", "patient_id", "test", "table", "date", "item", "value")


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
class ScheduleWording:
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
    test: ibis.Value | None = None,
    grade: ibis.Value | None = None,
) -> ibis.Table:
    """The findings table of one rule: its wording rendered from `fields`, per row of `t`."""
    return t.select(
        code=ibis.literal(rule.code),
        patient_id=t.patient_id,
        test=null_text() if test is None else test.cast("string"),
        severity=ibis.literal(severity) if isinstance(severity, str) else severity,
        date=date.cast("date"),
        title=render(rule.title, fields),
        detail=render(rule.detail, fields),
        action=ibis.literal(rule.action),
        source=ibis.literal(protocol.cite(rule.source)),
        grade=ibis.null("int32") if grade is None else grade.cast("int32"),
        protocol=ibis.literal(protocol.id),
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
