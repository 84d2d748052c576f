"""Thyroid autoimmunity after day 0: TPO antibody conversion and biochemical hypo- and
hyperthyroidism, by the protocol's THY-* flags as the engine evaluates them for `check`
(`engine.labs.flag_results`: the same limits, the same companion rule), with the day of
onset and a cumulative incidence curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis
import numpy as np
import pandas as pd

from dmtwatch.engine.labs import flag_results
from dmtwatch.outcomes import plotting as P
from dmtwatch.outcomes import stats
from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    LIST_MAX,
    NONE,
    Table,
    as_number,
    fmt_int,
    fmt_n_of,
    humanise,
    join_and,
    join_or,
    records,
    records_table,
)
from dmtwatch.outcomes.sections.base import Section

# The protocol flag behind each thyroid event of the audit.
KINDS = {"THY-TPO": "tpo_positive", "THY-HYPO": "hypothyroid", "THY-HYPER": "hyperthyroid"}
# A conversion: an event of these kinds counts only in a patient whose flag was not
# already raised on or before day 0.
CONVERSIONS = ("tpo_positive",)
THYROID_LABELS = {
    "tpo_positive": "Thyroid peroxidase antibodies positive",
    "hypothyroid": "Biochemical hypothyroidism",
    "hyperthyroid": "Biochemical hyperthyroidism",
}
THYROID_COUNTS = {
    "tpo_positive": "tpo_positive_n",
    "hypothyroid": "hypothyroid_n",
    "hyperthyroid": "hyperthyroid_n",
}
THYROID_PHRASES = {
    "tpo_positive": "thyroid peroxidase antibodies",
    "hypothyroid": "biochemical hypothyroidism",
    "hyperthyroid": "biochemical hyperthyroidism",
}


class Thyroid(Section):
    key = "thyroid"
    tpo_positive_n: int | None = None
    hypothyroid_n: int | None = None
    hyperthyroid_n: int | None = None
    events: list[dict[str, Any]] | None = None
    cumulative_incidence: dict[str, Any] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext) -> Thyroid:
        return cls.model_validate(_compute(ctx))

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"event": k, "patients": getattr(self, v)} for k, v in THYROID_COUNTS.items()]
        ).set_index("event")

    def view(self, n: int) -> dict[str, Any]:
        thy = self.to_dict()
        if not thy:
            return {}
        events = records(self.events or [])
        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for e in events:
            by_kind.setdefault(str(e.get("kind")), []).append(e)
        kinds = [
            k for k in THYROID_COUNTS if thy.get(THYROID_COUNTS[k]) is not None or k in by_kind
        ]
        kinds += sorted(k for k in by_kind if k not in THYROID_COUNTS)
        rows = []
        for kind in kinds:
            evs = sorted(
                by_kind.get(kind, []),
                key=lambda e: (as_number(e.get("day")) or 0, str(e.get("patient_id"))),
            )
            count = thy.get(THYROID_COUNTS.get(kind, ""))
            if count is None:
                count = len({e.get("patient_id") for e in evs})
            when = "; ".join(
                f"{e.get('patient_id')} day {fmt_int(e.get('day'))}" for e in evs[:LIST_MAX]
            )
            if len(evs) > LIST_MAX:
                when += f"; and {len(evs) - LIST_MAX} more (appendix)"
            rows.append(
                [THYROID_LABELS.get(kind, humanise(kind)), fmt_n_of(count, n), when or NONE]
            )
        if not rows:
            return {}
        return {
            "table": Table(
                ["Event", "Patients", "Patient, day of first finding"], rows, align="lrl"
            )
        }

    def brief(self) -> list[str]:
        out: list[str] = []
        thy = self.to_dict()
        if thy:
            events = records(self.events or [])
            found, absent = [], []
            for kind, key in THYROID_COUNTS.items():
                count = as_number(thy.get(key))
                if count is None:
                    continue
                if count == 0:
                    absent.append(THYROID_PHRASES[kind])
                    continue
                days = sorted(
                    d
                    for d in (as_number(e.get("day")) for e in events if e.get("kind") == kind)
                    if d is not None
                )
                when = ""
                if days and len(days) <= 3:
                    when = f" (day{'s' if len(days) > 1 else ''} {join_and([f'{d:.0f}' for d in days])})"
                found.append(f"{fmt_int(count)} {THYROID_PHRASES[kind]}{when}")
            s = ""
            if found:
                first = found[0].split(" ", 1)
                noun = "patient" if first[0] == "1" else "patients"
                found[0] = f"{first[0]} {noun} developed {first[1]}"
                s = join_and(found)
            if absent:
                s += ("; none had " if s else "No patient developed ") + join_or(absent)
            if s:
                out.append("Thyroid: " + s + ".")

        return out

    def appendix(self, limit: int | None = None) -> list[Table]:
        table = records_table(
            "Thyroid events",
            records(self.events or []),
            [
                ("Patient", "patient_id", "l"),
                (
                    "Event",
                    "kind",
                    "l",
                    lambda r: THYROID_LABELS.get(str(r.get("kind")), humanise(r.get("kind"))),
                ),
                ("Day", "day", "r"),
            ],
            limit,
        )
        return [table] if table else []

    def plot(self) -> str | None:
        """Cumulative incidence of thyroid events (step function) by months since day 0."""
        ci = self.cumulative_incidence or {}
        if not P.step_ok(ci, "incidence"):
            return None
        t = [float(v) for v in ci["time_days"]]
        y = [float(v) for v in ci["incidence"]]
        with P.figure(P.WIDTH, 2.2) as fig:
            ax = fig.add_subplot()
            tm = [P.months(v) for v in t]
            hi = P.ci_band(ax, tm, ci, P.PURPLE)
            ax.step(
                tm,
                y,
                where="post",
                color=P.PURPLE,
                lw=1.6,
                label=ci.get("label") or "Thyroid events",
            )
            P.month_ticks(ax, 0, max(t))
            ax.set_xlim(0, P.months(max(t)) * 1.02 if max(t) else 1)
            top = max([*y, *(float(v) for v in hi)]) if hi else max(y)
            ymax = min(1.0, max(0.2, top * 1.4))
            ax.set_ylim(0, ymax)
            step = 0.05 if ymax <= 0.25 else 0.1 if ymax <= 0.5 else 0.2
            ticks = [i * step for i in range(int(ymax / step + 1e-9) + 1)]
            ax.set_yticks(ticks, [f"{v * 100:.0f}%" for v in ticks])
            ax.set_ylabel("Cumulative incidence")
            ax.set_xlabel("Months since day 0")
            ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.legend(loc="upper left")
            return P.to_svg(fig, "fig-thyroid", "Cumulative incidence of thyroid events")


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


def _compute(ctx: AuditContext) -> dict:
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
