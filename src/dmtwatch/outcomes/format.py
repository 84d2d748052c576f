"""Text for the audit report: numbers, counts, words and the window label, and the table
and figure records the template shows. Formatting only: nothing here computes a clinical
figure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LIST_MAX = 6  # patients listed by name in a summary cell; the rest are in the appendix
DASH = "–"  # en dash, for ranges
NONE = "—"  # em dash, for empty cells


def as_number(x: Any) -> float | None:
    """A finite float, or None for missing, boolean or non-numeric values."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_sig(x: Any, digits: int) -> str:
    """`digits` significant digits, never in exponent form (0.0023, 0.51, 1.69)."""
    v = as_number(x)
    if v is None:
        return NONE
    if v == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(v)))
    v = round(v, decimals)
    if v != 0:  # rounding may carry into a new digit: 0.0999 -> 0.10, not 0.100
        decimals = digits - 1 - math.floor(math.log10(abs(v)))
    return f"{v:.{max(decimals, 0)}f}"


def fmt_est(x: Any) -> str:
    """An interval bound or a ratio: 3 significant digits from 1 up, else 2."""
    v = as_number(x)
    if v is None:
        return NONE
    return fmt_sig(v, 3 if abs(v) >= 1 else 2)


def fmt_fixed(x: Any, decimals: int = 2) -> str:
    v = as_number(x)
    return NONE if v is None else f"{v:.{decimals}f}"


def fmt_ci(ci: Any, sep: str = DASH) -> str:
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return ""
    lo, hi = as_number(ci[0]), as_number(ci[1])
    if lo is None or hi is None:
        return ""
    return f"{fmt_est(lo)}{sep}{fmt_est(hi)}"


def fmt_p(p: Any) -> str:
    v = as_number(p)
    if v is None:
        return NONE
    if v < 0.001:
        return "p < 0.001"
    if v < 0.1:  # three decimals near the conventional thresholds: 0.049, 0.012
        return f"p = {v:.3f}"
    return f"p = {v:.2f}"


def fmt_pct(n: Any, d: Any) -> str:
    a, b = as_number(n), as_number(d)
    if a is None or not b:
        return ""
    return f"{100 * a / b:.0f}%"


def fmt_n_of(n: Any, d: Any) -> str:
    """'4/11 (36%)'; just '4' when there is no denominator."""
    a, b = as_number(n), as_number(d)
    if a is None:
        return NONE
    if not b:
        return fmt_int(a)
    return f"{fmt_int(a)}/{fmt_int(b)} ({fmt_pct(a, b)})"


def fmt_value(x: Any) -> str:
    """A lab value: 2 decimals below 10, 1 below 100, else whole."""
    v = as_number(x)
    if v is None:
        return NONE
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def fmt_median_iqr(summary: Any, decimals: int = 1) -> str:
    if not isinstance(summary, Mapping) or as_number(summary.get("median")) is None:
        return NONE
    med = fmt_fixed(summary["median"], decimals)
    q1, q3 = as_number(summary.get("q1")), as_number(summary.get("q3"))
    if q1 is None or q3 is None:
        return med
    return f"{med} ({fmt_fixed(q1, decimals)}{DASH}{fmt_fixed(q3, decimals)})"


def fmt_int(x: Any) -> str:
    """A count: 7, 1,894."""
    v = as_number(x)
    if v is None:
        return NONE
    return f"{v:,.0f}" if v == int(v) else f"{v:g}"


def humanise(key: Any) -> str:
    text = words(key).strip()
    return text[:1].upper() + text[1:] if text else text


ACRONYMS = {"pml", "jcv", "alt", "ast", "tsh", "mri", "edss", "ms", "itp", "gbm", "cns"}


def words(key: Any) -> str:
    """A coded value in words: 'pml_risk' -> 'PML risk'."""
    return " ".join(w.upper() if w in ACRONYMS else w for w in str(key).split("_"))


def lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym (ALT increased)."""
    first = text.split(" ", 1)[0]
    return text if first.isupper() and len(first) > 1 else text[:1].lower() + text[1:]


def records(x: Any) -> list:
    return [v for v in x if isinstance(v, Mapping)] if isinstance(x, list) else []


def median(values: Iterable[Any]) -> float | None:
    vals = [v for v in (as_number(x) for x in values) if v is not None]
    return statistics.median(vals) if vals else None


def by_count(mapping: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(mapping.items(), key=lambda kv: (-(as_number(kv[1]) or 0), str(kv[0])))


def counted(mapping: Any, total: Any = None, label=words) -> str:
    """'inefficacy 8 (73%), allergy 3 (27%)', largest first."""
    if not isinstance(mapping, Mapping) or not mapping:
        return NONE
    parts = []
    for key, n in by_count(mapping):
        pct = fmt_pct(n, total)
        parts.append(f"{label(key)} {fmt_int(n)}" + (f" ({pct})" if pct else ""))
    return ", ".join(parts)


def window_label(days: Any, side: str, *, phrase: bool = False) -> str:
    """The one label of a relapse window: a title ('Year before day 0', '180 days after
    day 0', 'On previous therapy') or, with `phrase`, words inside a sentence ('in the
    year before', 'in the 180 days after', 'on the previous therapy'). `side` is 'pre'
    or 'post'. A window of no stated length (absent, 0) reads 'Before day 0'."""
    where = "before" if side == "pre" else "after"
    if days == "therapy":
        return "on the previous therapy" if phrase else "On previous therapy"
    d = as_number(days)
    if not d or d < 0:
        return f"{where} day 0" if phrase else f"{where.capitalize()} day 0"
    if d in (365, 366):
        span = "year"
    elif d % 365 == 0:
        span = f"{int(d // 365)} years"
    else:
        span = f"{int(d)} days"
    if phrase:
        return f"in the {span} {where}"
    return f"Year {where} day 0" if span == "year" else f"{span} {where} day 0"


def some_of(count: Any, total: Any) -> str:
    c, t = as_number(count), as_number(total)
    if c is None:
        return NONE
    if t and c == t:
        return f"all {fmt_int(t)}" if t > 2 else ("both" if t == 2 else "the one patient")
    if c == 0:
        return "none" if not t else f"none of {fmt_int(t)}"
    return f"{fmt_int(c)} of {fmt_int(t)}" if t else fmt_int(c)


def join_or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def join_and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str = ""  # one letter per column, l or r; default: first left, others right
    caption: str = ""
    note: str = ""
    css: str = ""
    total: int = 0  # rows in all, when only some are shown

    def __post_init__(self) -> None:
        n = len(self.header)
        self.align = (self.align or "l" + "r" * (n - 1)).ljust(n, "r")[:n]


@dataclass
class Figure:
    svg: str
    caption: str
    number: int = 0


def cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return fmt_value(v) if v != int(v) else fmt_int(v)
    return str(v)


def records_table(
    caption: str, records: list[Mapping[str, Any]], columns: Sequence[tuple], limit: int | None
) -> Table | None:
    """A per-patient table from records. columns: (header, key, align[, show]) where key
    is a field (or a tuple of alternative fields) and show(record) formats the cell; a
    column is left out when no record has its field."""
    if not records:
        return None
    cols = []
    for head, key, align, *show in columns:
        keys = key if isinstance(key, tuple) else (key,)
        if any(k in r for r in records for k in keys):
            cols.append((head, keys[0], align, show[0] if show else None))
    shown = records if limit is None else records[:limit]
    rows = [
        [cell_text(show(r) if show else r.get(key)) for _h, key, _a, show in cols] for r in shown
    ]
    table = Table([c[0] for c in cols], rows, align="".join(c[2] for c in cols), caption=caption)
    table.total = len(records)
    if len(shown) < len(records):
        table.note = (
            f"The first {len(shown):,} of {len(records):,} rows; the HTML report and the audit"
            " JSON carry them all."
        )
    return table
