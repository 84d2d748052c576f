"""What every figure of the audit report shares: the style, the colours, month axes,
numbers under the axis, and serialisation as inline SVG. Each section draws its own
figure (`.plot()`) with these; the figures only draw what the section computed.

Output is deterministic (fixed hash salt, no date in the metadata, no metadata at all in
the returned string) and self-contained (no namespace URLs, element ids prefixed per
figure so several figures can share one HTML document).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

DAYS_PER_MONTH = 365.25 / 12

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


@contextmanager
def figure(width: float, height: float) -> Iterator[Figure]:
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


def to_svg(fig: Figure, name: str, title: str) -> str:
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


def months(days: float) -> float:
    return days / DAYS_PER_MONTH


def month_ticks(ax, lo_days: float, hi_days: float) -> tuple[float, float]:
    """Month ticks at a round step; a negative start is widened to the tick before it.
    Returns the x range in months."""
    lo, hi = months(lo_days), months(hi_days)
    span = max(hi - lo, 1.0)
    step = next(s for s in (1, 3, 6, 12, 24, 48, 120) if span / s <= 10)
    first = math.floor(lo / step + 1e-9) * step
    if lo < 0:
        lo = first
    ticks = [first + i * step for i in range(int((hi - first) / step) + 2)]
    ax.set_xticks([t for t in ticks if lo - 1e-9 <= t <= hi + step * 0.05])
    ax.set_xlim(lo, hi)
    return lo, hi


def unit_label(unit: str | None) -> str:
    if not unit:
        return ""
    return {"10*9/L": "×10⁹/L", "10*3/uL": "×10³/µL", "/mm3": "/mm³"}.get(unit, unit)


def step_ok(km: Mapping[str, Any], ykey: str) -> bool:
    t = km.get("time_days") or []
    y = km.get(ykey) or []
    return bool(t) and len(t) == len(y)


def ci_band(ax, tm: list[float], curve: Mapping[str, Any], colour: str) -> list[float]:
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


def step_value(t: Sequence[float], y: Sequence[float], x: float) -> float:
    value = y[0]
    for ti, yi in zip(t, y, strict=True):
        if ti <= x:
            value = yi
        else:
            break
    return value


def at_risk_row(ax, t: Sequence[float], at_risk: Sequence[Any]) -> None:
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
    row_under_axis(ax, "At risk", items)


def row_under_axis(ax, label: str, items: Sequence[tuple[float, str]]) -> None:
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
