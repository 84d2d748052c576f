"""The findings table every rule produces, and its evidence rows.

A finding is keyed by (code, patient_id, test); evidence rows carry the same key and
name the input rows behind it (table, date, item, value), so renderers can show them.
"""

from __future__ import annotations

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


def make_findings(
    t: ibis.Table,
    *,
    protocol: Protocol,
    code: str,
    severity: ibis.Value | str,
    date: ibis.Value,
    title: str,
    detail: str,
    action: str,
    source: list[str],
    fields: dict[str, ibis.Value],
    test: ibis.Value | None = None,
    grade: ibis.Value | None = None,
) -> ibis.Table:
    return t.select(
        code=ibis.literal(code),
        patient_id=t.patient_id,
        test=null_text() if test is None else test.cast("string"),
        severity=ibis.literal(severity) if isinstance(severity, str) else severity,
        date=date.cast("date"),
        title=render(title, fields),
        detail=render(detail, fields),
        action=ibis.literal(action),
        source=ibis.literal(protocol.cite(source)),
        grade=ibis.null("int32") if grade is None else grade.cast("int32"),
        protocol=ibis.literal(protocol.id),
    )


def make_evidence(
    t: ibis.Table,
    *,
    code: str,
    table: str,
    date: ibis.Value,
    item: ibis.Value | str,
    value: ibis.Value,
    test: ibis.Value | None = None,
) -> ibis.Table:
    return t.select(
        code=ibis.literal(code),
        patient_id=t.patient_id,
        test=null_text() if test is None else test.cast("string"),
        table=ibis.literal(table),
        date=date.cast("date"),
        item=ibis.literal(item) if isinstance(item, str) else item.cast("string"),
        value=value.cast("string"),
    )
