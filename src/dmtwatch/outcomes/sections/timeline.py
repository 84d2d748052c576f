"""Each patient's timeline in days from day 0, for the swimmer plot: infusions, relapses,
MRIs (active or not), adverse events and rescue therapy (the protocol's `rescue_drugs`,
the list the CNS watch uses); and the completeness of the data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.lines import Line2D
from pydantic import Field

from dmtwatch.outcomes import plotting as P
from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import Table, as_number, fmt_int, humanise, records
from dmtwatch.outcomes.sections.base import Section

MAX_SWIMMER_ROWS = 60
COMPLETENESS_LABELS = {
    "patients_without_pre_mri": "Patients without an MRI before day 0 (in window)",
    "patients_without_post_mri": "Patients without an MRI after day 0 (in window)",
    "patients_without_labs_after_day0": "Patients without any lab result after day 0",
    "lab_results_after_day0": "Lab results after day 0",
    "patients_without_edss": "Patients without an EDSS score",
}


class Timeline(Section):
    """The events of every patient's timeline (in the JSON: the list itself)."""

    key = "timeline"
    events: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def compute(cls, ctx: AuditContext) -> Timeline:
        return cls(events=_timeline(ctx))

    @classmethod
    def from_dict(cls, data: Any) -> Timeline:
        return cls(events=records(data) if isinstance(data, list) else [])

    def to_dict(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.events

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(self.events)

    def rows(self, patients: list[Any]) -> tuple[list[dict[str, Any]], int]:
        return swimmer_rows(self.events, patients)

    def plot(self, patients: list[Any] | None = None) -> str | None:  # type: ignore[override]
        """The swimmer plot: one line per patient (`patients`: the cohort's records, for
        the follow-up), from day 0 to the end of follow-up, with event markers."""
        return swimmer(self.events, patients or [])


class Completeness(Section):
    key = "completeness"
    patients_without_pre_mri: int | None = None
    patients_without_post_mri: int | None = None
    patients_without_labs_after_day0: int | None = None
    lab_results_after_day0: int | None = None
    patients_without_edss: int | None = None

    @classmethod
    def compute(cls, ctx: AuditContext, mri: Mapping[str, Any]) -> Completeness:
        return cls.model_validate(_completeness(ctx, mri))

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])

    def view(self) -> dict[str, Any]:
        rows = [
            [COMPLETENESS_LABELS.get(str(k), humanise(k)), fmt_int(v)]
            for k, v in self.to_dict().items()
            if as_number(v) is not None
        ]
        return {"table": Table(["", "Count"], rows, css="keyvalue")} if rows else {}


# 5. Swimmer plot -----------------------------------------------------------------------

MARKERS = {
    # kind: (label, marker, colour, size, filled)
    "infusion": ("Alemtuzumab infusion", "|", P.BLUE, 8, True),
    "relapse": ("Relapse", "D", P.VERMILLION, 4.5, True),
    "mri_active": ("MRI, active", "o", P.INK, 4.5, True),
    "mri": ("MRI, no activity", "o", P.INK, 4.5, False),
    "adverse_event": ("Adverse event", "s", P.ORANGE, 4.2, True),
    "rescue": ("Rescue therapy", "P", P.PURPLE, 6, True),
    "other": ("Other", "x", P.GREY, 4, True),
}


def _event_kind(event: Mapping[str, Any]) -> str:
    kind = str(event.get("kind") or "other")
    if kind == "mri":
        return "mri_active" if event.get("active") else "mri"
    return kind if kind in MARKERS else "other"


def swimmer_rows(events_in: list[Any], patients: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """The patients the swimmer plot shows, in plot order (longest follow-up first), and
    how many patients there are in all. Over MAX_SWIMMER_ROWS patients, the ones with the
    most timeline events are kept (ties by patient id)."""
    events: dict[str, list[Mapping[str, Any]]] = {}
    for e in events_in:
        if (
            isinstance(e, Mapping)
            and e.get("patient_id") is not None
            and as_number(e.get("day")) is not None
        ):
            events.setdefault(str(e["patient_id"]), []).append(e)
    follow: dict[str, float] = {}
    for p in patients:
        pid = p.get("patient_id")
        if pid is None:
            continue
        fu = as_number(p.get("follow_up_days"))
        follow[str(pid)] = fu if fu is not None else 0.0
    for pid, evs in events.items():  # timeline patients missing from the cohort list
        if pid not in follow:
            follow[pid] = max(0.0, *(float(e["day"]) for e in evs))
    rows = [
        {"patient_id": pid, "follow_up_days": fu, "events": events.get(pid, [])}
        for pid, fu in follow.items()
    ]
    total = len(rows)
    if total > MAX_SWIMMER_ROWS:
        rows.sort(key=lambda r: (-len(r["events"]), r["patient_id"]))
        rows = rows[:MAX_SWIMMER_ROWS]
    rows.sort(key=lambda r: (-r["follow_up_days"], r["patient_id"]))
    return rows, total


def swimmer(events: list[Any], patients: list[Any]) -> str | None:
    """One line per patient from day 0 to the end of follow-up, with event markers."""
    rows, _total = swimmer_rows(events, patients)
    if not rows:
        return None
    n = len(rows)
    row_h = 0.30 if n <= 15 else 0.2 if n <= 30 else 0.11
    height = 1.25 + n * row_h
    all_days = [float(e["day"]) for r in rows for e in r["events"]]
    start = min([0.0, *all_days])
    end = max([1.0, *all_days, *(r["follow_up_days"] for r in rows)])
    with P.figure(P.WIDTH, height) as fig:
        ax = fig.add_subplot()
        ys = list(range(n))[::-1]  # first row at the top
        for y, r in zip(ys, rows, strict=True):
            if start < 0:
                ax.plot([P.months(start), 0], [y, y], color=P.LIGHT, lw=1, ls=(0, (1, 2)), zorder=1)
            ax.plot([0, P.months(r["follow_up_days"])], [y, y], color="#9db4c8", lw=2.2, zorder=1)
        used: Counter[str] = Counter()
        by_kind: dict[str, tuple[list[float], list[float]]] = {}
        for y, r in zip(ys, rows, strict=True):
            for e in r["events"]:
                kind = _event_kind(e)
                xs_, ys_ = by_kind.setdefault(kind, ([], []))
                xs_.append(P.months(float(e["day"])))
                ys_.append(y)
                used[kind] += 1
        order = list(MARKERS)
        z_order = ["other", "adverse_event", "mri", "mri_active", "relapse", "rescue", "infusion"]
        for kind in order:
            z = z_order.index(kind)
            if kind not in by_kind:
                continue
            _label, marker, colour, size, filled = MARKERS[kind]
            if n > 30:
                size *= 0.8
            ax.plot(
                by_kind[kind][0],
                by_kind[kind][1],
                ls="none",
                marker=marker,
                ms=size,
                mec=colour,
                mfc=colour if filled else "white",
                mew=1.0 if marker != "|" else 1.6,
                zorder=3 + z,
                clip_on=False,
            )
        ax.axvline(0, color=P.GREY, lw=0.8, zorder=0)
        ax.set_yticks(ys, [str(r["patient_id"]) for r in rows])
        ax.tick_params(axis="y", length=0, labelsize=8 if n <= 30 else 6.5)
        ax.spines["left"].set_visible(False)
        ax.set_ylim(-0.7, n - 0.3)
        lo, hi = P.month_ticks(ax, start, end)
        ax.set_xlim(lo - 0.3, hi + 0.3)
        ax.set_xlabel("Months since day 0")
        ax.grid(axis="x", color="#eeeeee", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        handles = [
            Line2D(
                [],
                [],
                ls="none",
                marker=MARKERS[k][1],
                ms=MARKERS[k][3],
                mec=MARKERS[k][2],
                mfc=MARKERS[k][2] if MARKERS[k][4] else "white",
                mew=1.0 if MARKERS[k][1] != "|" else 1.6,
                label=MARKERS[k][0],
            )
            for k in order
            if used[k]
        ]
        bottom = 0.95 if handles else 0.45  # inches: axis label, then the legend
        fig.subplots_adjust(left=0.1, right=0.98, bottom=bottom / height, top=1 - 0.08 / height)
        if handles:
            fig.legend(
                handles=handles,
                loc="lower center",
                bbox_to_anchor=(0.5, 0.0),
                ncol=min(len(handles), 4),
                handletextpad=0.3,
                columnspacing=1.6,
            )
        return P.to_svg(fig, "fig-swimmer", "Swimmer plot: follow-up and events per patient")


def _timeline(ctx: AuditContext) -> list[dict]:
    return ctx.rows(
        """
        SELECT * FROM (
          SELECT t.patient_id, date_diff('day', c.day0, t.start_date) AS day, 'infusion' AS kind,
                 NULL::BOOLEAN AS active, t.drug AS label
            FROM in_treatments t JOIN cohort c USING (patient_id) WHERE t.drug = ?
          UNION ALL
          SELECT r.patient_id, date_diff('day', c.day0, r.onset_date), 'relapse', NULL, r.severity
            FROM in_relapses r JOIN cohort c USING (patient_id)
           WHERE coalesce(r.confirmed, true) AND r.onset_date <= c.fu_end
          UNION ALL
          SELECT m.patient_id, date_diff('day', c.day0, m.date), 'mri',
                 coalesce(m.new_t2, 0) > 0 OR coalesce(m.gd_enhancing, 0) > 0, m.region
            FROM in_mri m JOIN cohort c USING (patient_id) WHERE m.date <= c.fu_end
          UNION ALL
          SELECT a.patient_id, date_diff('day', c.day0, a.onset_date), 'adverse_event',
                 coalesce(a.serious, false), a.term
            FROM in_adverse_events a JOIN cohort c USING (patient_id)
           WHERE a.onset_date BETWEEN c.day0 AND c.fu_end
          UNION ALL
          SELECT t.patient_id, date_diff('day', c.day0, t.start_date), 'rescue', NULL, t.drug
            FROM in_treatments t JOIN cohort c USING (patient_id)
           WHERE list_contains(?, t.drug) AND t.start_date >= c.day0)
        WHERE day >= -365
        ORDER BY patient_id, day, kind
        """,
        [ctx.options.drug, ctx.rescue_drugs],
    )


def _completeness(ctx: AuditContext, mri: dict) -> dict:
    return {
        "patients_without_pre_mri": mri["pre"]["missing_n"],
        "patients_without_post_mri": mri["post"]["missing_n"],
        "patients_without_labs_after_day0": ctx.value(
            "SELECT count(*) FROM cohort c WHERE NOT EXISTS (SELECT 1 FROM in_labs l "
            "WHERE l.patient_id = c.patient_id AND l.date > c.day0 AND l.date <= c.fu_end)"
        ),
        "lab_results_after_day0": ctx.value(
            "SELECT count(*) FROM in_labs l JOIN cohort c USING (patient_id) "
            "WHERE l.date > c.day0 AND l.date <= c.fu_end"
        ),
        "patients_without_edss": ctx.value(
            "SELECT count(*) FROM cohort c WHERE NOT EXISTS "
            "(SELECT 1 FROM in_edss e WHERE e.patient_id = c.patient_id)"
        ),
    }
