"""Figures for the outcomes-audit report, as inline SVG.

One function per figure; each takes the audit result dict (interchange section 5 plus our
own keys) and returns an SVG string ready to paste into HTML, or None when the result holds
nothing to draw. The figures only draw what the result says: no clinical numbers are
computed here.

Output is deterministic (fixed hash salt, no date in the metadata, no metadata at all in
the returned string) and self-contained (no namespace URLs, element ids prefixed per
figure so several figures can share one HTML document).
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

DAYS_PER_MONTH = 365.25 / 12
MAX_SWIMMER_ROWS = 60

# Okabe-Ito, colour-blind safe; muted enough for a clinical report.
BLUE = "#0072B2"
SKY = "#56B4E9"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
GREEN = "#009E73"
PURPLE = "#CC79A7"
INK = "#222222"
GREY = "#8a8a8a"
LIGHT = "#d9d9d9"

RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "dmtwatch-audit",
    "text.parse_math": False,  # patient ids and terms are data, never mathtext
    "font.family": "sans-serif",
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "axes.edgecolor": "#555555",
    "axes.linewidth": 0.7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 72,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
}

WIDTH = 6.8  # inches: about the A4 text width (176 mm), so figure text prints at its set size


def get(d: Any, *keys: str, default: Any = None) -> Any:
    """d[k1][k2]... or `default` where a level is missing or None (results are optional)."""
    for key in keys:
        if not isinstance(d, Mapping) or d.get(key) is None:
            return default
        d = d[key]
    return d


def as_number(x: Any) -> float | None:
    """A finite float, or None for missing, boolean or non-numeric values."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    with plt.rc_context(RC):
        fig = plt.figure(figsize=(width, height))
        try:
            yield fig
        finally:
            plt.close(fig)


_XML_HEAD = re.compile(r"^.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_GLOBAL_STYLE = re.compile(r"\s*<defs>\s*<style[^>]*>\*\{([^}]*)\}</style>\s*</defs>")
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_STYLE = re.compile(r'\sstyle="([^"]*)"')
# SVG properties an HTML style sheet does not know: written as presentation attributes,
# so the HTML engines (WeasyPrint included) do not see them as unknown CSS.
PRESENTATION = {
    "fill",
    "fill-opacity",
    "fill-rule",
    "stroke",
    "stroke-width",
    "stroke-linejoin",
    "stroke-linecap",
    "stroke-dasharray",
    "stroke-dashoffset",
    "stroke-opacity",
    "stroke-miterlimit",
    "text-anchor",
}


def _declarations(css: str) -> list[tuple[str, str]]:
    pairs = (d.split(":", 1) for d in css.split(";") if ":" in d)
    return [(k.strip(), v.strip()) for k, v in pairs]


def _style_to_attributes(match: re.Match[str]) -> str:
    attrs, keep = [], []
    for key, value in _declarations(match.group(1)):
        if key in PRESENTATION:
            attrs.append(f' {key}="{value}"')
        else:
            keep.append(f"{key}: {value}")
    return "".join(attrs) + (f' style="{"; ".join(keep)}"' if keep else "")


def _to_svg(fig: Figure, name: str, title: str) -> str:
    """Serialise a figure as inline SVG for an HTML page: no prolog, metadata, namespace
    URLs or style sheet (it would apply to the whole page); styles as presentation
    attributes; ids made unique to this figure; an accessible title."""
    with plt.rc_context(RC):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = _XML_HEAD.sub("", svg, count=1)
    svg = _METADATA.sub("", svg, count=1)
    inherited = ""
    if m := _GLOBAL_STYLE.search(svg):
        inherited = "".join(f' {k}="{v}"' for k, v in _declarations(m.group(1)))
        svg = svg[: m.start()] + svg[m.end() :]
    svg = _STYLE.sub(_style_to_attributes, svg)
    ids = sorted(set(_ID.findall(svg)), key=len, reverse=True)
    for old in ids:
        new = f"{name}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"')
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')
        svg = svg.replace(f"url(#{old})", f"url(#{new})")
    open_tag, rest = svg.split(">", 1)
    open_tag = _XMLNS.sub("", open_tag) + inherited
    open_tag += f' role="img" aria-labelledby="{name}-title" class="figure-svg"'
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'{open_tag}>\n <title id="{name}-title">{safe_title}</title>{rest}'.strip() + "\n"


def _months(days: float) -> float:
    return days / DAYS_PER_MONTH


def _month_ticks(ax, lo_days: float, hi_days: float) -> tuple[float, float]:
    """Month ticks at a round step; a negative start is widened to the tick before it.
    Returns the x range in months."""
    lo, hi = _months(lo_days), _months(hi_days)
    span = max(hi - lo, 1.0)
    step = next(s for s in (1, 3, 6, 12, 24, 48, 120) if span / s <= 10)
    first = math.floor(lo / step + 1e-9) * step
    if lo < 0:
        lo = first
    ticks = [first + i * step for i in range(int((hi - first) / step) + 2)]
    ax.set_xticks([t for t in ticks if lo - 1e-9 <= t <= hi + step * 0.05])
    ax.set_xlim(lo, hi)
    return lo, hi


# 1. Relapse rates before / after -------------------------------------------------------


def relapse_rates(result: Mapping[str, Any]) -> str | None:
    """ARR before and after day 0 with 95% CI bars, annotated with counts and person-years."""
    rel = get(result, "relapses", default={})
    rows = []
    for period in ("pre", "post"):
        arr = as_number(rel.get(f"arr_{period}"))
        if arr is None:
            continue
        ci = rel.get(f"arr_{period}_ci")
        ok = isinstance(ci, list | tuple) and len(ci) == 2
        lo, hi = (as_number(ci[0]), as_number(ci[1])) if ok else (None, None)
        label = _window_label(rel.get(f"{period}_window_days"), period)
        rows.append(
            (label, arr, lo, hi, rel.get(f"{period}_relapses"), rel.get(f"{period}_person_years"))
        )
    if not rows:
        return None
    with _figure(WIDTH, 2.4) as fig:
        ax = fig.add_subplot()
        xs = list(range(len(rows)))
        colours = [GREY, BLUE][-len(rows) :] if len(rows) == 2 else [BLUE]
        ax.bar(xs, [r[1] for r in rows], width=0.5, color=colours, alpha=0.35, zorder=1)
        top = 0.0
        for x, (_label, arr, lo, hi, _n, _py) in zip(xs, rows, strict=True):
            col = colours[x]
            if lo is not None and hi is not None:
                ax.errorbar(
                    x,
                    arr,
                    yerr=[[arr - lo], [hi - arr]],
                    fmt="o",
                    color=col,
                    ecolor=col,
                    elinewidth=1.2,
                    capsize=5,
                    markersize=5,
                    zorder=3,
                )
                top = max(top, hi)
            else:
                ax.plot([x], [arr], "o", color=col, zorder=3)
            top = max(top, arr)
        pad = top * 0.04 if top > 0 else 0.05
        for x, (_label, arr, _lo, hi, n, py) in zip(xs, rows, strict=True):
            text = f"ARR {arr:.2f}"
            parts = []
            if n is not None:
                parts.append(f"{n} relapse{'s' if n != 1 else ''}")
            if as_number(py) is not None:
                parts.append(f"{float(py):.2f} person-years")
            if parts:
                text += "\n" + " / ".join(parts)
            y = (hi if hi is not None else arr) + pad
            ax.annotate(text, (x + 0.08, y), ha="left", va="bottom", fontsize=8, color=INK)
        ax.set_xticks(xs, [r[0] for r in rows])
        ax.set_xlim(-0.6, len(rows) - 0.4 + 0.5)
        ax.set_ylim(0, (top if top > 0 else 1.0) * 1.35)
        ax.set_ylabel("Relapses per person-year")
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        return _to_svg(
            fig, "fig-arr", "Annualised relapse rate before and after day 0, with 95% CI"
        )


def _window_label(days: Any, period: str) -> str:
    """'Year before day 0', '180 days after day 0', 'On previous therapy'."""
    if days == "therapy":
        return "On previous therapy"
    side = "before" if period == "pre" else "after"
    d = as_number(days)
    if not d:
        return f"{side.capitalize()} day 0"
    if d in (365, 366):
        return f"Year {side} day 0"
    if d % 365 == 0:
        return f"{int(d // 365)} years {side} day 0"
    return f"{int(d)} days {side} day 0"


# 2. Lymphocyte trajectory --------------------------------------------------------------


def unit_label(unit: str | None) -> str:
    if not unit:
        return ""
    return {"10*9/L": "×10⁹/L", "10*3/uL": "×10³/µL", "/mm3": "/mm³"}.get(unit, unit)


def lymphocyte_trajectory(result: Mapping[str, Any]) -> str | None:
    """Median and IQR of lymphocyte counts by month since day 0, over CTCAE grade bands."""
    points = get(result, "labs", "trajectory", "lymphocytes", default=[]) or []
    points = [
        p for p in points if as_number(p.get("month")) is not None and as_number(p.get("median"))
    ]
    if not points:
        return None
    points = sorted(points, key=lambda p: float(p["month"]))
    bands = get(result, "labs", "grade_bands", "lymphocytes", default={}) or {}
    months = [float(p["month"]) for p in points]
    med = [float(p["median"]) for p in points]
    q1 = [as_number(p.get("q1")) for p in points]
    q3 = [as_number(p.get("q3")) for p in points]
    ymax = max([*med, *(v for v in q3 if v is not None)])
    lln = as_number(bands.get("lln"))
    if lln is not None:
        ymax = max(ymax, lln * 1.15)
    ymax *= 1.08
    with _figure(WIDTH, 3.0) as fig:
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
                color=BLUE,
                alpha=0.22,
                lw=0,
                zorder=2,
                label="Interquartile range",
            )
        ax.plot(months, med, "-o", color=BLUE, lw=1.5, ms=3.5, zorder=3, label="Median")
        ax.set_xlim(xlo - xpad, xhi + xpad)
        step = next(s for s in (1, 2, 3, 6, 12, 24) if (xhi - xlo) / s <= 12)
        ax.set_xticks([t for t in range(int(xlo), int(xhi) + 1) if t % step == 0])
        ax.set_ylim(0, ymax)
        ax.set_xlabel("Months since day 0")
        unit = unit_label(bands.get("unit"))
        ax.set_ylabel(f"Lymphocytes ({unit})" if unit else "Lymphocytes")
        ax.legend(loc="upper right", ncol=3)
        ns = [p.get("n") for p in points]
        if any(n is not None for n in ns):
            _row_under_axis(
                ax,
                "n tested",
                [
                    (m, str(n))
                    for m, n in zip(months, ns, strict=True)
                    if n is not None and (int(m) % step == 0 or len(points) <= 13)
                ],
            )
        return _to_svg(fig, "fig-lymph", "Lymphocyte counts by month since day 0: median and IQR")


# 3. Kaplan-Meier, time to first relapse ------------------------------------------------


def _step_ok(km: Mapping[str, Any], ykey: str) -> bool:
    t = km.get("time_days") or []
    y = km.get(ykey) or []
    return bool(t) and len(t) == len(y)


def relapse_free_survival(result: Mapping[str, Any]) -> str | None:
    """Kaplan-Meier curve of time to first relapse after day 0, with CI band, censoring
    ticks (if `censor_days` given) and numbers at risk."""
    km = get(result, "relapses", "km", default={}) or {}
    if not _step_ok(km, "survival"):
        return None
    t = [float(v) for v in km["time_days"]]
    s = [float(v) for v in km["survival"]]
    at_risk = km.get("at_risk") or []
    show_risk = len(at_risk) == len(t)
    with _figure(WIDTH, 3.0 if show_risk else 2.7) as fig:
        ax = fig.add_subplot()
        tm = [_months(v) for v in t]
        _ci_band(ax, tm, km, BLUE)
        ax.step(tm, s, where="post", color=BLUE, lw=1.6, label="Relapse-free")
        cens = [float(v) for v in km.get("censor_days") or [] if as_number(v) is not None]
        if cens:
            ys = [_step_value(t, s, c) for c in cens]
            ax.plot(
                [_months(c) for c in cens], ys, "|", color=BLUE, ms=7, mew=1.1, label="Censored"
            )
        end = max(t + cens)
        _month_ticks(ax, 0, end)
        ax.set_xlim(0, _months(end) * 1.02 if end else 1)
        ax.set_ylim(0, 1.04)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
        ax.set_ylabel("Relapse-free")
        ax.set_xlabel("Months since day 0")
        ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="lower left")
        if show_risk:
            _at_risk_row(ax, t, at_risk)
        return _to_svg(fig, "fig-km", "Kaplan-Meier estimate of time to first relapse after day 0")


def _ci_band(ax, tm: list[float], curve: Mapping[str, Any], colour: str) -> list[float]:
    """Shade a step curve's 95% band (`ci_lower`/`ci_upper`) when present; its upper limits."""
    lo, hi = curve.get("ci_lower") or [], curve.get("ci_upper") or []
    if not (len(lo) == len(tm) == len(hi)):
        return []
    upper = [float(v) for v in hi]
    ax.fill_between(
        tm,
        [float(v) for v in lo],
        upper,
        step="post",
        color=colour,
        alpha=0.15,
        lw=0,
        label="95% CI",
    )
    return upper


def _step_value(t: Sequence[float], y: Sequence[float], x: float) -> float:
    value = y[0]
    for ti, yi in zip(t, y, strict=True):
        if ti <= x:
            value = yi
        else:
            break
    return value


def _at_risk_row(ax, t: Sequence[float], at_risk: Sequence[Any]) -> None:
    """Number at risk under the axis at each month tick: the at-risk count of the first
    KM time at or after the tick (the curve's times include every event and censoring),
    0 after the last."""
    xmin, xmax = ax.get_xlim()
    items = []
    for tick in ax.get_xticks():
        if tick < xmin - 1e-9 or tick > xmax + 1e-9:
            continue
        day = tick * DAYS_PER_MONTH
        later = [int(n) for ti, n in zip(t, at_risk, strict=True) if ti >= day - 1e-6]
        items.append((tick, str(later[0] if later else 0)))
    _row_under_axis(ax, "At risk", items)


def _row_under_axis(ax, label: str, items: Sequence[tuple[float, str]]) -> None:
    """A row of small numbers under the x-axis label (numbers at risk, n tested)."""
    below = (0, -38)  # points under the axis: clear of tick labels and the axis label
    ax.annotate(
        label,
        (0, 0),
        xycoords="axes fraction",
        xytext=(-14, below[1]),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=7.5,
        color=GREY,
    )
    for x, text in items:
        ax.annotate(
            text,
            (x, 0),
            xycoords=("data", "axes fraction"),
            xytext=below,
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=7.5,
            color=GREY,
        )


# 4. Thyroid cumulative incidence -------------------------------------------------------


def thyroid_incidence(result: Mapping[str, Any]) -> str | None:
    """Cumulative incidence of thyroid events (step function) by months since day 0."""
    ci = get(result, "thyroid", "cumulative_incidence", default={}) or {}
    if not _step_ok(ci, "incidence"):
        return None
    t = [float(v) for v in ci["time_days"]]
    y = [float(v) for v in ci["incidence"]]
    with _figure(WIDTH, 2.2) as fig:
        ax = fig.add_subplot()
        tm = [_months(v) for v in t]
        hi = _ci_band(ax, tm, ci, PURPLE)
        ax.step(
            tm, y, where="post", color=PURPLE, lw=1.6, label=ci.get("label") or "Thyroid events"
        )
        _month_ticks(ax, 0, max(t))
        ax.set_xlim(0, _months(max(t)) * 1.02 if max(t) else 1)
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
        return _to_svg(fig, "fig-thyroid", "Cumulative incidence of thyroid events")


# 5. Swimmer plot -----------------------------------------------------------------------

MARKERS = {
    # kind: (label, marker, colour, size, filled)
    "infusion": ("Alemtuzumab infusion", "|", BLUE, 8, True),
    "relapse": ("Relapse", "D", VERMILLION, 4.5, True),
    "mri_active": ("MRI, active", "o", INK, 4.5, True),
    "mri": ("MRI, no activity", "o", INK, 4.5, False),
    "adverse_event": ("Adverse event", "s", ORANGE, 4.2, True),
    "rescue": ("Rescue therapy", "P", PURPLE, 6, True),
    "other": ("Other", "x", GREY, 4, True),
}


def _event_kind(event: Mapping[str, Any]) -> str:
    kind = str(event.get("kind") or "other")
    if kind == "mri":
        return "mri_active" if event.get("active") else "mri"
    return kind if kind in MARKERS else "other"


def swimmer_rows(result: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The patients the swimmer plot shows, in plot order (longest follow-up first), and
    how many patients there are in all. Over MAX_SWIMMER_ROWS patients, the ones with the
    most timeline events are kept (ties by patient id)."""
    patients = get(result, "cohort", "patients", default=[]) or []
    events: dict[str, list[Mapping[str, Any]]] = {}
    for e in result.get("timeline") or []:
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


def swimmer(result: Mapping[str, Any]) -> str | None:
    """One line per patient from day 0 to the end of follow-up, with event markers."""
    rows, _total = swimmer_rows(result)
    if not rows:
        return None
    n = len(rows)
    row_h = 0.30 if n <= 15 else 0.2 if n <= 30 else 0.11
    height = 1.25 + n * row_h
    all_days = [float(e["day"]) for r in rows for e in r["events"]]
    start = min([0.0, *all_days])
    end = max([1.0, *all_days, *(r["follow_up_days"] for r in rows)])
    with _figure(WIDTH, height) as fig:
        ax = fig.add_subplot()
        ys = list(range(n))[::-1]  # first row at the top
        for y, r in zip(ys, rows, strict=True):
            if start < 0:
                ax.plot([_months(start), 0], [y, y], color=LIGHT, lw=1, ls=(0, (1, 2)), zorder=1)
            ax.plot([0, _months(r["follow_up_days"])], [y, y], color="#9db4c8", lw=2.2, zorder=1)
        used: Counter[str] = Counter()
        by_kind: dict[str, tuple[list[float], list[float]]] = {}
        for y, r in zip(ys, rows, strict=True):
            for e in r["events"]:
                kind = _event_kind(e)
                xs_, ys_ = by_kind.setdefault(kind, ([], []))
                xs_.append(_months(float(e["day"])))
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
        ax.axvline(0, color=GREY, lw=0.8, zorder=0)
        ax.set_yticks(ys, [str(r["patient_id"]) for r in rows])
        ax.tick_params(axis="y", length=0, labelsize=8 if n <= 30 else 6.5)
        ax.spines["left"].set_visible(False)
        ax.set_ylim(-0.7, n - 0.3)
        lo, hi = _month_ticks(ax, start, end)
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
        return _to_svg(fig, "fig-swimmer", "Swimmer plot: follow-up and events per patient")


FIGURES = {
    "relapse_rates": relapse_rates,
    "lymphocyte_trajectory": lymphocyte_trajectory,
    "relapse_free_survival": relapse_free_survival,
    "thyroid_incidence": thyroid_incidence,
    "swimmer": swimmer,
}


def all_figures(result: Mapping[str, Any]) -> dict[str, str | None]:
    return {name: fn(result) for name, fn in FIGURES.items()}
