"""Infections and other adverse events after day 0: any and serious, by term and category."""

from __future__ import annotations

from dmtwatch.audit.context import AuditContext


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
