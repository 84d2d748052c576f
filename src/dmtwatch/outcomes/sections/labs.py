"""Lab safety: one episode per patient and analyte, graded by the protocol files through
the engine's own grading (one source of truth with `check`), and the lymphocyte
trajectory by month since day 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dmtwatch.engine.labs import graded_results
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.outcomes import plotting as P
from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    NONE,
    Table,
    as_number,
    cap,
    fmt_int,
    fmt_n_of,
    fmt_value,
    humanise,
    join_or,
    lower_first,
    median,
    records,
    records_table,
    some_of,
)
from dmtwatch.outcomes.sections.base import Section
from dmtwatch.outcomes.settings import settings
from dmtwatch.outcomes.summaries import quartiles

LAB_NOT_ANALYTES = {"trajectory", "grade_bands"}
HAEMATOLOGY = {
    "Lymphopenia",
    "Leucopenia",
    "Leukopenia",
    "Neutropenia",
    "Thrombocytopenia",
    "Anaemia",
}
LAB_LABELS = {
    "lymphopenia": "Lymphopenia",
    "leucopenia": "Leucopenia",
    "leukopenia": "Leukopenia",
    "neutropenia": "Neutropenia",
    "thrombocytopenia": "Thrombocytopenia",
    "anaemia": "Anaemia",
    "creatinine_increased": "Creatinine increased",
    "alt_increased": "ALT increased",
    "ast_increased": "AST increased",
    "bilirubin_increased": "Bilirubin increased",
}
LAB_NOT_ANALYTES = {"trajectory", "grade_bands"}


def _lab_summary(key: str, lab: Mapping[str, Any], labs: Mapping[str, Any], n: int) -> dict:
    """One analyte's figures: the result's own summaries where it gives them (onset_day,
    nadir or peak, days_to_normal as quartiles; not_yet_normal_n; worst_grade), else read
    off its episodes."""
    episodes = records(lab.get("episodes"))
    affected = lab.get("n")
    if affected is None:
        affected = len({e.get("patient_id") for e in episodes})
    tested = lab.get("n_tested") if lab.get("n_tested") is not None else n
    extreme = "peak" if "peak" in lab or any("peak" in e for e in episodes) else "nadir"

    def median_of(summary_key: str, values: Iterable[Any]) -> float | None:
        given = lab.get(summary_key)
        if isinstance(given, Mapping) and "median" in given:
            return as_number(given.get("median"))
        return median(values)

    to_normal = [
        as_number(e.get("normal_day")) - as_number(e.get("onset_day"))
        for e in episodes
        if as_number(e.get("normal_day")) is not None and as_number(e.get("onset_day")) is not None
    ]
    if isinstance(lab.get("worst_grade"), Mapping):
        grades = {str(k): as_number(v) or 0 for k, v in lab["worst_grade"].items()}
    else:
        grades = dict(
            Counter(
                fmt_int(e.get("grade")) for e in episodes if as_number(e.get("grade")) is not None
            )
        )
    not_normal = lab.get("not_yet_normal_n")
    if not_normal is None and episodes:
        not_normal = sum(1 for e in episodes if e.get("normal_day") is None)
    test = lab.get("test")
    band = (labs.get("grade_bands") or {}).get(str(test))
    unit = lab.get("unit") or (band.get("unit") if isinstance(band, Mapping) else None)
    return {
        "label": LAB_LABELS.get(key, humanise(key)),
        "phrase": lower_first(LAB_LABELS.get(key, humanise(key))),
        "affected": affected,
        "tested": tested,
        "onset": median_of("onset_day", (e.get("onset_day") for e in episodes)),
        "extreme": median_of(extreme, (e.get(extreme) for e in episodes)),
        "extreme_kind": extreme,
        "unit": P.unit_label(unit) if unit else "",
        "grades": grades,
        "to_normal": median_of("days_to_normal", to_normal),
        "not_normal": not_normal,
        "normal_days": [
            as_number(e.get("normal_day"))
            for e in episodes
            if as_number(e.get("normal_day")) is not None
        ],
        "has_episodes": bool(episodes) or bool(as_number(affected)),
    }


class Labs(Section):
    """Per analyte (the extra keys: lymphopenia, leucopenia, ...): its episodes and their
    summaries; then the trajectory and the grade bands of the lymphocyte figure."""

    key = "labs"
    trajectory: dict[str, Any] | None = None
    grade_bands: dict[str, Any] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext) -> Labs:
        return cls.model_validate(_compute(ctx))

    def to_dict(self) -> dict[str, Any]:
        """The analytes first, then the trajectory and grade bands (the JSON's order)."""
        d = self.model_dump(exclude_unset=True)
        order = [k for k in d if k not in LAB_NOT_ANALYTES] + [
            k for k in ("trajectory", "grade_bands") if k in d
        ]
        return {k: d[k] for k in order}

    def analyte_dicts(self) -> dict[str, Mapping[str, Any]]:
        return {
            str(k): v
            for k, v in (self.model_extra or {}).items()
            if k not in LAB_NOT_ANALYTES and isinstance(v, Mapping)
        }

    def analytes(self, n: int) -> list[dict]:
        labs = self.to_dict()
        return [_lab_summary(key, lab, labs, n) for key, lab in self.analyte_dicts().items()]

    @property
    def summary(self) -> pd.DataFrame:
        rows = [
            {
                "episode": k,
                "test": v.get("test"),
                "patients": v.get("n"),
                "tested": v.get("n_tested"),
                "not_yet_normal": v.get("not_yet_normal_n"),
            }
            for k, v in self.analyte_dicts().items()
        ]
        return pd.DataFrame(rows)

    def view(self, n: int) -> dict[str, Any]:
        labs = self.to_dict()
        bands = labs.get("grade_bands") or {}
        rows = []
        summaries = self.analytes(n)
        any_peak = any(s["extreme_kind"] == "peak" for s in summaries)
        for s in summaries:
            grade_keys = sorted({"1", "2", "3", "4", *s["grades"]}, key=lambda g: as_number(g) or 0)
            extreme = fmt_value(s["extreme"])
            if s["extreme"] is not None:
                extreme += (" " + s["unit"] if s["unit"] else "") + (
                    " (peak)" if s["extreme_kind"] == "peak" else ""
                )
            rows.append(
                [
                    s["label"],
                    fmt_n_of(s["affected"], s["tested"]),
                    NONE if s["onset"] is None else f"{s['onset']:.0f}",
                    extreme,
                    " / ".join(fmt_int(s["grades"].get(g, 0)) for g in grade_keys)
                    if s["has_episodes"]
                    else NONE,
                    NONE if s["to_normal"] is None else f"{s['to_normal']:.0f}",
                    fmt_int(s["not_normal"])
                    if s["has_episodes"] and s["not_normal"] is not None
                    else NONE,
                ]
            )
        if not rows:
            return {}
        table = Table(
            [
                "Analyte",
                "Affected",
                "Onset, median day",
                "Nadir or peak, median" if any_peak else "Nadir, median",
                "Worst grade G1 / G2 / G3 / G4",
                "Days to normal, median",
                "Not yet normal",
            ],
            rows,
        )
        lb = bands.get("lymphocytes") or {}
        band_note = ""
        if isinstance(lb, Mapping) and lb.get("grades"):
            unit = P.unit_label(lb.get("unit"))
            g = {str(k): v for k, v in lb["grades"].items()}
            keys = sorted(g, key=lambda k: as_number(k) or 0)
            parts = []
            for i, k in enumerate(keys):
                upper = (
                    "LLN"
                    if i == 0 and as_number(lb.get("lln")) == as_number(g[k])
                    else fmt_value(g[k])
                )
                lower = fmt_value(g[keys[i + 1]]) if i + 1 < len(keys) else None
                parts.append(f"grade {k} <{upper}" + (f" to {lower}" if lower else ""))
            band_note = (
                "Lymphocyte grade bands shaded: "
                + "; ".join(parts)
                + (f" {unit}" if unit else "")
                + (
                    f"; LLN {fmt_value(lb['lln'])} {unit}".rstrip()
                    if as_number(lb.get("lln")) is not None
                    else ""
                )
                + "."
            )
        return {"table": table, "band_note": band_note}

    def brief(self, n: int) -> list[str]:
        out: list[str] = []
        haem, other, zero, zero_other = [], [], {}, {}
        for lab in self.analytes(n):
            if lab["affected"] is None:
                continue
            is_haem = lab["label"] in HAEMATOLOGY
            if as_number(lab["affected"]) == 0:
                (zero if is_haem else zero_other).setdefault(some_of(0, lab["tested"]), []).append(
                    lab["phrase"]
                )
                continue
            if not is_haem:
                other.append(f"{lab['phrase']} in {some_of(lab['affected'], lab['tested'])}")
                continue
            bit = f"{some_of(lab['affected'], lab['tested'])} had {lab['phrase']}"
            if lab["onset"] is not None:
                bit += f" (first seen at a median of day {lab['onset']:.0f}"
                if lab["not_normal"] == 0 and lab["normal_days"]:
                    bit += f"; all normal again by day {max(lab['normal_days']):.0f}"
                elif lab["not_normal"] == 0:
                    bit += "; all normal again"
                elif lab["not_normal"] is not None:
                    bit += f"; {fmt_int(lab['not_normal'])} not yet normal"
                bit += ")"
            haem.append(bit)
        haem += [f"{who} had {join_or(names)}" for who, names in zero.items()]
        if haem:
            out.append(cap("; ".join(haem)) + ".")
        other += [f"{who} had {join_or(names)}" for who, names in zero_other.items()]
        if other:
            out.append("Other lab abnormalities: " + "; ".join(other) + ".")
        return out

    def appendix(self, limit: int | None = None) -> list[Table]:
        episodes = [
            {"analyte": LAB_LABELS.get(key, humanise(key)), **e}
            for key, lab in self.analyte_dicts().items()
            for e in records(lab.get("episodes"))
        ]
        table = records_table(
            "Lab episodes",
            episodes,
            [
                ("Analyte", "analyte", "l"),
                ("Patient", "patient_id", "l"),
                ("Onset day", "onset_day", "r"),
                (
                    "Nadir or peak",
                    ("nadir", "peak"),
                    "r",
                    lambda r: fmt_value(
                        r["nadir"] if r.get("nadir") is not None else r.get("peak")
                    ),
                ),
                ("Worst grade", "grade", "r"),
                (
                    "Back to normal, day",
                    "normal_day",
                    "r",
                    lambda r: (
                        fmt_int(r["normal_day"]) if r.get("normal_day") is not None else "not yet"
                    ),
                ),
            ],
            limit,
        )
        return [table] if table else []

    def plot(self) -> str | None:
        """Median and IQR of lymphocyte counts by month since day 0, over CTCAE grade bands."""
        points = (self.trajectory or {}).get("lymphocytes") or []
        points = [
            p
            for p in points
            if as_number(p.get("month")) is not None and as_number(p.get("median"))
        ]
        if not points:
            return None
        points = sorted(points, key=lambda p: float(p["month"]))
        bands = (self.grade_bands or {}).get("lymphocytes") or {}
        months = [float(p["month"]) for p in points]
        med = [float(p["median"]) for p in points]
        q1 = [as_number(p.get("q1")) for p in points]
        q3 = [as_number(p.get("q3")) for p in points]
        ymax = max([*med, *(v for v in q3 if v is not None)])
        lln = as_number(bands.get("lln"))
        if lln is not None:
            ymax = max(ymax, lln * 1.15)
        ymax *= 1.08
        with P.figure(P.WIDTH, 3.0) as fig:
            ax = fig.add_subplot()
            xlo, xhi = min(months), max(months)
            xpad = max(0.3, (xhi - xlo) * 0.02)
            thresholds = {}
            for grade, value in (bands.get("grades") or {}).items():
                if as_number(value) is not None and str(grade).isdigit():
                    thresholds[int(grade)] = float(value)
            grades = sorted(thresholds)
            shades = ["#fdf4ea", "#fbe7d2", "#f7d6b6", "#f1c196", "#e9a877"]
            for i, g in enumerate(grades):
                upper = thresholds[g]
                lower = thresholds[grades[i + 1]] if i + 1 < len(grades) else 0.0
                if upper <= lower:
                    continue
                ax.axhspan(lower, upper, color=shades[min(i, len(shades) - 1)], lw=0, zorder=0)
                ax.text(
                    xhi + xpad * 0.6,
                    (lower + upper) / 2,
                    f"G{g}",
                    va="center",
                    ha="left",
                    fontsize=7.5,
                    color="#8a4b20",
                    clip_on=False,
                )
            if lln is not None:
                ax.axhline(
                    lln, color="#8a4b20", lw=0.9, ls="--", zorder=1, label="Lower limit of normal"
                )
            band = [
                (m, a, b)
                for m, a, b in zip(months, q1, q3, strict=True)
                if a is not None and b is not None
            ]
            if band:
                ax.fill_between(
                    [b[0] for b in band],
                    [b[1] for b in band],
                    [b[2] for b in band],
                    color=P.BLUE,
                    alpha=0.22,
                    lw=0,
                    zorder=2,
                    label="Interquartile range",
                )
            ax.plot(months, med, "-o", color=P.BLUE, lw=1.5, ms=3.5, zorder=3, label="Median")
            ax.set_xlim(xlo - xpad, xhi + xpad)
            step = next(s for s in (1, 2, 3, 6, 12, 24) if (xhi - xlo) / s <= 12)
            ax.set_xticks([t for t in range(int(xlo), int(xhi) + 1) if t % step == 0])
            ax.set_ylim(0, ymax)
            ax.set_xlabel("Months since day 0")
            unit = P.unit_label(bands.get("unit"))
            ax.set_ylabel(f"Lymphocytes ({unit})" if unit else "Lymphocytes")
            ax.legend(loc="upper right", ncol=3)
            ns = [p.get("n") for p in points]
            if any(n is not None for n in ns):
                P.row_under_axis(
                    ax,
                    "n tested",
                    [
                        (m, str(n))
                        for m, n in zip(months, ns, strict=True)
                        if n is not None and (int(m) % step == 0 or len(points) <= 13)
                    ],
                )
            return P.to_svg(
                fig, "fig-lymph", "Lymphocyte counts by month since day 0: median and IQR"
            )


EPISODE_NAMES = {
    "lymphocytes": "lymphopenia",
    "leukocytes": "leucopenia",
    "neutrophils": "neutropenia",
    "platelets": "thrombocytopenia",
    "creatinine": "creatinine_increased",
    "alt": "alt_increased",
    "ast": "ast_increased",
    "bilirubin": "bilirubin_increased",
}


def _graded_table(ctx: AuditContext) -> None:
    expr = graded_results(ctx.plan, ctx.protocol)
    ctx.engine_table("graded", expr.select("patient_id", "test", "date", "value", "grade"))


def _compute(ctx: AuditContext) -> dict:
    _graded_table(ctx)
    protocol = ctx.protocol
    direction = {r.test: r.direction for r in protocol.grading}
    episodes = ctx.rows(
        """
        WITH g AS (
          SELECT g.patient_id, g.test, date_diff('day', c.day0, g.date) AS day, g.value, g.grade
            FROM graded g JOIN cohort c USING (patient_id) WHERE g.date <= c.fu_end),
        onset AS (SELECT patient_id, test, min(day) AS onset_day FROM g WHERE grade >= 1 GROUP BY ALL)
        SELECT o.patient_id, o.test, o.onset_day,
               min(g.value) FILTER (WHERE g.day >= o.onset_day) AS low,
               max(g.value) FILTER (WHERE g.day >= o.onset_day) AS high,
               max(g.grade) AS grade,
               min(g.day) FILTER (WHERE g.day > o.onset_day AND g.grade = 0) AS normal_day
          FROM onset o JOIN g USING (patient_id, test)
         GROUP BY ALL ORDER BY o.test, o.patient_id
        """
    )
    tested = dict(
        ctx.con.execute(
            "SELECT test, count(DISTINCT patient_id) FROM graded JOIN cohort USING (patient_id) "
            "WHERE date <= fu_end GROUP BY 1"
        ).fetchall()
    )
    out: dict = {}
    for test, name in EPISODE_NAMES.items():
        if test not in direction:
            continue
        extreme = "nadir" if direction[test] == "low" else "peak"
        eps = [
            {
                "patient_id": e["patient_id"],
                "onset_day": e["onset_day"],
                extreme: e["low"] if extreme == "nadir" else e["high"],
                "grade": e["grade"],
                "normal_day": e["normal_day"],
            }
            for e in episodes
            if e["test"] == test
        ]
        out[name] = {
            "test": test,
            "unit": lab_catalogue().tests[test].unit,
            "n": len(eps),
            "n_tested": tested.get(test, 0),
            "onset_day": quartiles([e["onset_day"] for e in eps]),
            extreme: quartiles([e[extreme] for e in eps]),
            "days_to_normal": quartiles(
                [e["normal_day"] - e["onset_day"] for e in eps if e["normal_day"] is not None]
            ),
            "not_yet_normal_n": sum(e["normal_day"] is None for e in eps),
            "worst_grade": {str(g): sum(e["grade"] == g for e in eps) for g in range(1, 5)},
            "episodes": eps,
        }
    test = settings().trajectory.test
    out["trajectory"] = {test: _trajectory(ctx, test)}
    out["grade_bands"] = {test: _bands(protocol, test)}
    return out


def _trajectory(ctx: AuditContext, test: str) -> list[dict]:
    """Median and IQR of a test's results by month since day 0 (settings.yaml: months of
    `month_days`, month 0 from -`half_month_days` to +`half_month_days`)."""
    t = settings().trajectory
    return ctx.rows(
        """
        SELECT floor((date_diff('day', c.day0, l.date) + ?) / ?)::INTEGER AS month,
               median(l.value) AS median, quantile_cont(l.value, 0.25) AS q1,
               quantile_cont(l.value, 0.75) AS q3, count(DISTINCT l.patient_id) AS n
          FROM in_labs l JOIN cohort c USING (patient_id)
         WHERE l.test = ? AND l.date BETWEEN c.day0 - ?::INTEGER AND c.fu_end
           AND l.value IS NOT NULL
         GROUP BY 1 ORDER BY 1
        """,
        [t.half_month_days, t.month_days, test, t.half_month_days],
    )


def _bands(protocol, test: str) -> dict | None:
    rule = next((r for r in protocol.grading if r.test == test), None)
    if rule is None:
        return None
    lln = lab_catalogue().tests[test].ref_low
    grades = {}
    for g, c in rule.grades.items():
        if c.below is not None:
            grades[str(g)] = c.below
        elif c.below_lln is not None and lln is not None:
            grades[str(g)] = c.below_lln * lln
    return {"lln": lln, "grades": grades, "unit": lab_catalogue().tests[test].unit}
