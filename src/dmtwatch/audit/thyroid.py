"""Thyroid autoimmunity after day 0: TPO antibody conversion and biochemical hypo- and
hyperthyroidism, by the same lab rules as `check` (the protocol's THY-* flags), with the
day of onset and a cumulative incidence curve.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dmtwatch.audit import stats
from dmtwatch.audit.context import AuditContext
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.protocols.schema import load_protocol
from dmtwatch.rules.flags import Flag

KINDS = {"THY-TPO": "tpo_positive", "THY-HYPO": "hypothyroid", "THY-HYPER": "hyperthyroid"}


def _limits_table(ctx: AuditContext) -> None:
    cat = lab_catalogue().tests
    ctx.con.register(
        "catalogue_limits",
        pa.table(
            {
                "test": list(cat),
                "lo": pa.array([t.ref_low for t in cat.values()], pa.float64()),
                "hi": pa.array([t.ref_high for t in cat.values()], pa.float64()),
            }
        ),
    )
    ctx.con.execute(
        """
        CREATE TEMP TABLE limited AS
        SELECT l.patient_id, l.test, l.date, l.value,
               coalesce(l.ref_low, d.lo) AS lo, coalesce(l.ref_high, d.hi) AS hi
          FROM in_labs l JOIN catalogue_limits d USING (test)
         WHERE l.value IS NOT NULL AND l.test IN (SELECT test FROM catalogue_limits)
        """
    )


def _beyond(limit: str, v: str, lo: str, hi: str) -> str:
    return f"{v} > {hi}" if limit == "above_ref_high" else f"{v} < {lo}"


def _first_event(ctx: AuditContext, rule: Flag, kind: str) -> list[dict]:
    cond = _beyond(rule.when, "x.value", "x.lo", "x.hi")
    comp = rule.companion
    exclude = "false"
    join = ""
    if comp is not None and comp.excludes is not None:
        join = (
            "LEFT JOIN LATERAL (SELECT arg_min(f.value, abs(date_diff('day', x.date, f.date))) AS fv, "
            "arg_min(f.lo, abs(date_diff('day', x.date, f.date))) AS flo, "
            "arg_min(f.hi, abs(date_diff('day', x.date, f.date))) AS fhi FROM limited f "
            f"WHERE f.patient_id = x.patient_id AND f.test = '{comp.test}' "
            f"AND abs(date_diff('day', x.date, f.date)) <= {comp.within_days}) f ON true"
        )
        exclude = f"coalesce({_beyond(comp.excludes, 'f.fv', 'f.flo', 'f.fhi')}, false)"
    baseline_positive = "false"
    if kind == "tpo_positive":  # a conversion: not already positive on or before day 0
        baseline_positive = (
            f"EXISTS (SELECT 1 FROM limited b WHERE b.patient_id = c.patient_id AND b.test = '{rule.test}' "
            f"AND b.date <= c.day0 AND {_beyond(rule.when, 'b.value', 'b.lo', 'b.hi')})"
        )
    return ctx.rows(
        f"""
        SELECT c.patient_id, '{kind}' AS kind, min(date_diff('day', c.day0, x.date)) AS day
          FROM cohort c JOIN limited x ON x.patient_id = c.patient_id AND x.test = '{rule.test}'
          {join}
         WHERE x.date > c.day0 AND x.date <= c.fu_end AND {cond} AND NOT {exclude}
           AND NOT {baseline_positive}
         GROUP BY ALL ORDER BY c.patient_id
        """
    )


def thyroid_section(ctx: AuditContext) -> dict:
    _limits_table(ctx)
    protocol = load_protocol(ctx.options.drug)
    events: list[dict] = []
    for rule in protocol.flags:
        if rule.code in KINDS:
            events += _first_event(ctx, rule, KINDS[rule.code])
    events.sort(key=lambda e: (e["patient_id"], e["day"]))
    n = {k: len({e["patient_id"] for e in events if e["kind"] == k}) for k in KINDS.values()}
    cohort = ctx.rows("SELECT patient_id, follow_up_days FROM cohort ORDER BY patient_id")
    first = {}
    for e in events:
        if e["kind"] != "tpo_positive":
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
