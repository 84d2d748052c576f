"""Infections and other adverse events after day 0: any and serious, by term and category."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    NONE,
    Table,
    as_number,
    cap,
    fmt_int,
    fmt_n_of,
    humanise,
    records,
    records_table,
    some_of,
)
from dmtwatch.outcomes.sections.base import Section

NOT_RECORDED_AE = (
    "Not recorded: these data hold no adverse events at all (no adverse_events table, or an"
    " empty one), so infections and other adverse events are not counted: not recorded is"
    " not the same as none."
)


class Infections(Section):
    key = "infections"
    any_n: int | None = None
    serious_n: int | None = None
    by_term: list[dict[str, Any]] | None = None
    events: list[dict[str, Any]] | None = None
    recorded: bool | None = None

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(records(self.by_term or []))

    def brief(self, n: int) -> list[str]:
        if self.recorded is False:
            return ["Infections and other adverse events were not recorded in these data."]
        if self.any_n is None:
            return []
        any_n, serious = as_number(self.any_n) or 0, as_number(self.serious_n)
        s = f"{cap(some_of(any_n, n))} had an infection"
        if serious is not None:
            s += (
                "; none was serious"
                if serious == 0
                else f"; {fmt_int(serious)} had a serious infection"
            )
        return [s + "."]


class AdverseEvents(Section):
    key = "adverse_events"
    by_category: list[dict[str, Any]] | None = None
    events: list[dict[str, Any]] | None = None
    recorded: bool | None = None

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(records(self.by_category or []))


def compute(ctx: AuditContext) -> tuple[Infections, AdverseEvents]:
    infections, adverse = adverse_event_sections(ctx)
    return Infections.model_validate(infections), AdverseEvents.model_validate(adverse)


def view(inf: Infections, ae: AdverseEvents, n: int) -> dict[str, Any]:
    """The infection tables of the report, and the adverse events by category."""
    out: dict[str, Any] = {}
    if inf.recorded is False:
        out["not_recorded"] = NOT_RECORDED_AE
        return out
    if inf.model_fields_set or inf.model_extra:
        rows = [
            ["Any infection", fmt_n_of(inf.any_n, n)],
            ["Serious infection", fmt_n_of(inf.serious_n, n)],
        ]
        out["summary"] = Table(["", "Patients"], rows, css="keyvalue")
        terms = records(inf.by_term or [])
        if terms:
            out["terms"] = Table(
                ["Infection", "Patients", "Serious"],
                [
                    [
                        str(t.get("term") or NONE),
                        fmt_n_of(t.get("patients"), n),
                        fmt_int(t.get("serious")),
                    ]
                    for t in terms
                ],
            )
    cats = records(ae.by_category or [])
    if cats:
        out["categories"] = Table(
            ["Adverse event category", "Patients", "Serious"],
            [
                [
                    humanise(c.get("category") or NONE),
                    fmt_n_of(c.get("patients"), n),
                    fmt_int(c.get("serious")),
                ]
                for c in cats
            ],
        )
    return out


def appendix(inf: Infections, ae: AdverseEvents, limit: int | None = None) -> list[Table]:
    adverse = records(ae.events or [])
    table = records_table(
        "Adverse events, infections included" if adverse else "Infections",
        adverse or records(inf.events or []),
        [
            ("Patient", "patient_id", "l"),
            ("Day", "day", "r"),
            ("Term", "term", "l"),
            ("Category", "category", "l", lambda r: humanise(r.get("category") or "")),
            ("Serious", "serious", "l", lambda r: "yes" if r.get("serious") else "no"),
            ("Grade", "grade", "r"),
            ("Outcome", "outcome", "l"),
        ],
        limit,
    )
    return [table] if table else []


def adverse_event_sections(ctx: AuditContext) -> tuple[dict, dict]:
    """Infections, and adverse events of every category, after day 0.

    Missing is never zero: a clinic whose data hold no adverse events at all (no
    adverse_events table, or an empty one) did not record them, and with alemtuzumab's
    infusion reactions and infections a cohort without any is not credible. Then the
    counts are null and `recorded` is false, instead of "none of 15 had an infection".
    """
    if not ctx.value("SELECT count(*) FROM in_adverse_events"):
        return _not_recorded()
    rows = ctx.rows(
        """
        SELECT a.patient_id, date_diff('day', c.day0, a.onset_date) AS day, a.term, a.category,
               coalesce(a.serious, false) AS serious, a.grade, a.outcome
          FROM in_adverse_events a JOIN cohort c USING (patient_id)
         WHERE a.onset_date >= c.day0 AND a.onset_date <= c.fu_end
         ORDER BY a.patient_id, a.onset_date, a.term
        """
    )
    infections = [r for r in rows if r["category"] == "infection"]
    infection = {
        "any_n": len({r["patient_id"] for r in infections}),
        "serious_n": len({r["patient_id"] for r in infections if r["serious"]}),
        "by_term": sorted(
            _patients_by(infections, "term"), key=lambda t: (-t["patients"], t["term"])
        ),
        "events": infections,
        "recorded": True,
    }
    other = {
        "by_category": sorted(_patients_by(rows, "category"), key=lambda c: c["category"]),
        "events": rows,
        "recorded": True,
    }
    return infection, other


def _not_recorded() -> tuple[dict, dict]:
    """The sections' shape with null counts: nothing to count, not zero events."""
    infection = {"any_n": None, "serious_n": None, "by_term": [], "events": [], "recorded": False}
    return infection, {"by_category": [], "events": [], "recorded": False}


def _patients_by(rows: list[dict], key: str) -> list[dict]:
    """Per value of `key`: patients with any such event, and with any serious one."""
    groups: dict[str, tuple[set, set]] = {}
    for r in rows:
        patients, serious = groups.setdefault(r[key], (set(), set()))
        patients.add(r["patient_id"])
        if r["serious"]:
            serious.add(r["patient_id"])
    return [{key: k, "patients": len(p), "serious": len(s)} for k, (p, s) in groups.items()]
