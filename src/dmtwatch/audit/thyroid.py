"""Thyroid autoimmunity after day 0: TPO antibody conversion and biochemical hypo- and
hyperthyroidism, by the protocol's THY-* flags as the engine evaluates them for `check`
(`engine.labs.flag_results`: the same limits, the same companion rule), with the day of
onset and a cumulative incidence curve.
"""

from __future__ import annotations

import ibis
import numpy as np

from dmtwatch.audit import stats
from dmtwatch.audit.context import AuditContext
from dmtwatch.engine.labs import flag_results

# The protocol flag behind each thyroid event of the audit.
KINDS = {"THY-TPO": "tpo_positive", "THY-HYPO": "hypothyroid", "THY-HYPER": "hyperthyroid"}
# A conversion: an event of these kinds counts only in a patient whose flag was not
# already raised on or before day 0.
CONVERSIONS = ("tpo_positive",)


def _flag_table(ctx: AuditContext) -> None:
    parts = []
    for rule in ctx.protocol.flags:
        if rule.code in KINDS:
            t = flag_results(ctx.plan, ctx.protocol, rule)
            parts.append(
                t.filter(t.raised)
                .select("patient_id", "date")
                .mutate(kind=ibis.literal(KINDS[rule.code]))
            )
    if not parts:
        ctx.con.execute(
            "CREATE TEMP TABLE thyroid_raised (patient_id VARCHAR, date DATE, kind VARCHAR)"
        )
        return
    expr = parts[0]
    for p in parts[1:]:
        expr = expr.union(p)
    ctx.engine_table("thyroid_raised", expr)


def _first_events(ctx: AuditContext) -> list[dict]:
    """Per patient and kind: the first day after day 0 (up to the end of follow-up) the
    flag was raised; a conversion only without a raised flag on or before day 0."""
    return ctx.rows(
        """
        SELECT c.patient_id, x.kind, min(date_diff('day', c.day0, x.date)) AS day
          FROM cohort c JOIN thyroid_raised x USING (patient_id)
         WHERE x.date > c.day0 AND x.date <= c.fu_end
           AND NOT (list_contains(?, x.kind) AND EXISTS (
                 SELECT 1 FROM thyroid_raised b
                  WHERE b.patient_id = c.patient_id AND b.kind = x.kind AND b.date <= c.day0))
         GROUP BY ALL ORDER BY c.patient_id, day
        """,
        [list(CONVERSIONS)],
    )


def thyroid_section(ctx: AuditContext) -> dict:
    _flag_table(ctx)
    order = [KINDS[r.code] for r in ctx.protocol.flags if r.code in KINDS]
    events = _first_events(ctx)
    events.sort(key=lambda e: (e["patient_id"], e["day"], order.index(e["kind"])))
    n = {k: len({e["patient_id"] for e in events if e["kind"] == k}) for k in KINDS.values()}
    cohort = ctx.rows("SELECT patient_id, follow_up_days FROM cohort ORDER BY patient_id")
    first = {}
    for e in events:
        if e["kind"] not in CONVERSIONS:
            first[e["patient_id"]] = min(first.get(e["patient_id"], e["day"]), e["day"])
    durations = np.array([first.get(p["patient_id"], p["follow_up_days"]) for p in cohort], float)
    observed = np.array([p["patient_id"] in first for p in cohort], int)
    km = stats.kaplan_meier(durations, observed)
    return {
        "tpo_positive_n": n["tpo_positive"],
        "hypothyroid_n": n["hypothyroid"],
        "hyperthyroid_n": n["hyperthyroid"],
        "events": events,
        "cumulative_incidence": {
            "time_days": km["time_days"],
            "incidence": [1 - s for s in km["survival"]],
        },
    }
