"""CTCAE grading (LAB-*): the latest result of a test after day 0, graded by the CTCAE
v5 criteria of the shared table (protocols/ctcae.yaml), as admiral grades lab results.
The grades themselves are computed by engine.labs.graded_results, which the audit's lab
section reuses, so `check` and `audit` cannot disagree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import ibis
from pydantic import model_validator

from dmtwatch.engine.context import Context
from dmtwatch.engine.findings import make_evidence, make_findings
from dmtwatch.engine.labs import evidence_text, graded_results, result_facts
from dmtwatch.engine.latest import latest_rows
from dmtwatch.engine.text import reported_note, shown_value
from dmtwatch.protocols.parts import GradeCriterion, Rule, Severity
from dmtwatch.rules import Pair, RuleKind

if TYPE_CHECKING:
    from dmtwatch.protocols.schema import Protocol


class Grading(Rule):
    """Grades of a test by a term of the shared CTCAE table (`ctcae`): the loaded rule holds
    the term's grades, direction and wording resolved from `ctcae.yaml`. A protocol file
    never copies them; a clinic changes a threshold with an overlay (`grades` then differs
    from the table's, citing LOCAL-POLICY)."""

    test: str
    ctcae: str | None = None  # a term of ctcae.yaml
    term: str
    direction: Literal["low", "high"]
    grades: dict[int, GradeCriterion]
    severity: dict[int, Severity]

    @model_validator(mode="before")
    @classmethod
    def _from_table(cls, data: object) -> object:
        if not isinstance(data, dict) or data.get("ctcae") is None:
            return data
        from dmtwatch.protocols.ctcae import ctcae_terms

        name = data["ctcae"]
        term = ctcae_terms().get(name) if isinstance(name, str) else None
        if term is None:
            raise ValueError(
                f"unknown CTCAE term {name!r} (ctcae.yaml has: {', '.join(ctcae_terms())})"
            )
        if data.get("test") is not None and data["test"] != term.test:
            raise ValueError(f"CTCAE term {name!r} grades test {term.test!r}, not {data['test']!r}")
        for key in ("term", "direction"):
            if data.get(key) is not None and data[key] != getattr(term, key):
                raise ValueError(f"{key} {data[key]!r} differs from CTCAE's {getattr(term, key)!r}")
        resolved = {"test": term.test, "term": term.term, "direction": term.direction}
        resolved["grades"] = {g: c.model_dump(exclude_none=True) for g, c in term.grades.items()}
        return {**resolved, **{k: v for k, v in data.items() if v is not None}}

    @model_validator(mode="after")
    def _grades_complete(self) -> Grading:
        if sorted(self.grades) != sorted(self.severity):
            raise ValueError(f"{self.code}/{self.test}: every grade needs a severity")
        return self


def grading_findings(ctx: Context, protocol: Protocol) -> list[Pair]:
    if not protocol.grading:
        return []
    graded = graded_results(ctx, protocol).select(
        "patient_id",
        "test",
        "date",
        "grade",
        "value",
        "unit",
        "value_reported",
        "unit_reported",
        "ref_low",
        "ref_high",
        "baseline",
    )
    latest = latest_rows(
        graded,
        ["patient_id", "test"],
        tiebreak=graded.grade,
        worst_grade=graded.grade.max(),
        # the occurrence: abnormal since the last normal result (none: since day 0)
        last_normal=graded.date.max(where=graded.grade == 0),
    )
    latest = ctx.materialize(f"graded_latest_{protocol.id}", latest.filter(latest.grade >= 1))
    out = []
    for rule in protocol.grading:
        t = latest.filter(latest.test == rule.test)
        t = ctx.stage(t)
        fields = {
            "grade": t.grade,
            "worst_grade": t.worst_grade,
            "value": shown_value(t),
            "unit": t.unit,
            "reported": reported_note(t),
            "date": t.date,
            "ref_low": t.ref_low,
            "ref_high": t.ref_high,
            "baseline": t.baseline,
            "term": ibis.literal(rule.term),
        }
        found = make_findings(
            t,
            protocol=protocol,
            rule=rule,
            severity=t.grade.cases(*rule.severity.items()),
            date=t.date,
            fields=fields,
            test=t.test,
            grade=t.grade,
            anchor=t.last_normal,
            facts={
                **result_facts(t),
                "baseline": t.baseline,
                "worst_grade": t.worst_grade,
            },
        )
        ev = make_evidence(
            t,
            code=rule.code,
            test=t.test,
            table="labs",
            date=t.date,
            item=t.test,
            value=evidence_text(t),
        )
        out.append((found, ev))
    return out


KIND = RuleKind(
    section="grading",
    model=Grading,
    find=grading_findings,
    mechanism=(
        "The latest result of the test dated after day 0 (the first infusion) is graded with "
        "CTCAE v5 criteria; the grade is the highest whose criterion holds. Limits are the "
        "laboratory's own range when the result carries one, otherwise the catalogue default "
        "(`model/lab_tests.yaml`). Baseline is the last result on or before the first day "
        "of the course the result follows (each course has its own)."
    ),
)
