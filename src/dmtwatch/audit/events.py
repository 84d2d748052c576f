"""Infections and other adverse events after day 0: any and serious, by term and category."""

from __future__ import annotations

from dmtwatch.audit.context import AuditContext


def adverse_event_sections(ctx: AuditContext) -> tuple[dict, dict]:
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
    by_term: dict[str, dict] = {}
    for r in infections:
        t = by_term.setdefault(r["term"], {"term": r["term"], "patients": set(), "serious": set()})
        t["patients"].add(r["patient_id"])
        if r["serious"]:
            t["serious"].add(r["patient_id"])
    infection = {
        "any_n": len({r["patient_id"] for r in infections}),
        "serious_n": len({r["patient_id"] for r in infections if r["serious"]}),
        "by_term": sorted(
            (
                {"term": t["term"], "patients": len(t["patients"]), "serious": len(t["serious"])}
                for t in by_term.values()
            ),
            key=lambda t: (-t["patients"], t["term"]),
        ),
        "events": infections,
    }
    categories: dict[str, dict] = {}
    for r in rows:
        c = categories.setdefault(
            r["category"], {"category": r["category"], "patients": set(), "serious": set()}
        )
        c["patients"].add(r["patient_id"])
        if r["serious"]:
            c["serious"].add(r["patient_id"])
    other = {
        "by_category": [
            {
                "category": c["category"],
                "patients": len(c["patients"]),
                "serious": len(c["serious"]),
            }
            for c in sorted(categories.values(), key=lambda c: c["category"])
        ],
        "events": rows,
    }
    return infection, other
