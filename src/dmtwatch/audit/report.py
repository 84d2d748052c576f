"""The outcomes audit as one self-contained HTML report, and the same as PDF.

    html = render_html(result)        # result: the audit dict (interchange section 5 + ours)
    render_pdf(result, Path("audit.pdf"))

The renderer only formats: every count, rate and interval comes from the result dict. The
few summaries it forms itself are read straight off the per-patient records the result
carries (medians of lab onset, nadir and days back to normal; the grade distribution).
Any optional key may be missing or empty; a cohort of 0 patients renders a short report
saying so.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from dmtwatch.audit import figures
from dmtwatch.audit.figures import as_number
from dmtwatch.audit.figures import get as _get

LIST_MAX = 6  # patients listed by name in a summary cell; the rest are in the appendix
DASH = "–"  # en dash, for ranges
NONE = "—"  # em dash, for empty cells
DEFAULT_DRUG = "alemtuzumab"

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
HAEMATOLOGY = {
    "Lymphopenia",
    "Leucopenia",
    "Leukopenia",
    "Neutropenia",
    "Thrombocytopenia",
    "Anaemia",
}
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
SEX_LABELS = {"F": "Female", "M": "Male", "U": "Unknown"}
CNS_LABELS = {
    "CNS-RING": "Ring-enhancing lesions after alemtuzumab",
    "CNS-MRI": "Apparent relapse without contrast MRI in window",
}
COMPLETENESS_LABELS = {
    "patients_without_pre_mri": "Patients without an MRI before day 0 (in window)",
    "patients_without_post_mri": "Patients without an MRI after day 0 (in window)",
    "patients_without_labs_after_day0": "Patients without any lab result after day 0",
    "lab_results_after_day0": "Lab results after day 0",
    "patients_without_edss": "Patients without an EDSS score",
}


# Number formatting ---------------------------------------------------------------------


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
        return _int(a)
    return f"{_int(a)}/{_int(b)} ({fmt_pct(a, b)})"


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


def _int(x: Any) -> str:
    """A count: 7, 1,894."""
    v = as_number(x)
    if v is None:
        return NONE
    return f"{v:,.0f}" if v == int(v) else f"{v:g}"


def _humanise(key: Any) -> str:
    text = _words(key).strip()
    return text[:1].upper() + text[1:] if text else text


ACRONYMS = {"pml", "jcv", "alt", "ast", "tsh", "mri", "edss", "ms", "itp", "gbm", "cns"}


def _words(key: Any) -> str:
    """A coded value in words: 'pml_risk' -> 'PML risk'."""
    return " ".join(w.upper() if w in ACRONYMS else w for w in str(key).split("_"))


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym (ALT increased)."""
    first = text.split(" ", 1)[0]
    return text if first.isupper() and len(first) > 1 else text[:1].lower() + text[1:]


def _list(x: Any) -> list:
    return [v for v in x if isinstance(v, Mapping)] if isinstance(x, list) else []


def _median(values: Iterable[Any]) -> float | None:
    vals = [v for v in (as_number(x) for x in values) if v is not None]
    return statistics.median(vals) if vals else None


def _by_count(mapping: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(mapping.items(), key=lambda kv: (-(as_number(kv[1]) or 0), str(kv[0])))


def _counted(mapping: Any, total: Any = None, label=_words) -> str:
    """'inefficacy 8 (73%), allergy 3 (27%)', largest first."""
    if not isinstance(mapping, Mapping) or not mapping:
        return NONE
    parts = []
    for key, n in _by_count(mapping):
        pct = fmt_pct(n, total)
        parts.append(f"{label(key)} {_int(n)}" + (f" ({pct})" if pct else ""))
    return ", ".join(parts)


def _window_words(days: Any, period: str) -> str:
    """'in the year before', 'in the 180 days after', 'on the previous therapy'."""
    if days == "therapy":
        return "on the previous therapy"
    d = as_number(days)
    if d is None:
        return "before day 0" if period == "pre" else "after day 0"
    if d in (365, 366):
        span = "the year"
    elif d % 365 == 0:
        span = f"the {int(d // 365)} years"
    else:
        span = f"the {int(d)} days"
    return f"in {span} {'before' if period == 'pre' else 'after'}"


def _window_title(days: Any, period: str) -> str:
    """'Year before day 0', '180 days after day 0', 'On previous therapy'."""
    if days == "therapy":
        return "On previous therapy"
    d = as_number(days)
    side = "before" if period == "pre" else "after"
    if d is None:
        return _cap(f"{side} day 0")
    if d in (365, 366):
        return f"Year {side} day 0"
    if d % 365 == 0:
        return f"{int(d // 365)} years {side} day 0"
    return f"{int(d)} days {side} day 0"


# Report pieces -------------------------------------------------------------------------


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


@dataclass
class Context:
    title: str
    as_of: str
    site: str
    drug: str
    n_patients: int
    empty: bool
    summary: list[str] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    methods: list[dict[str, str]] = field(default_factory=list)
    appendix: list[Table] = field(default_factory=list)


def _cohort_section(result: Mapping[str, Any], n: int, drug: str) -> dict[str, Any]:
    c = _get(result, "cohort", default={})
    rows = [["Patients", _int(n)]]
    if c.get("sex"):
        rows.append(["Sex", _counted(c["sex"], n, lambda k: SEX_LABELS.get(str(k), str(k)))])
    if c.get("age_at_day0"):
        rows.append(["Age at day 0, years: median (IQR)", fmt_median_iqr(c["age_at_day0"])])
    if c.get("disease_duration_years"):
        rows.append(
            [
                "Disease duration at day 0, years: median (IQR)",
                fmt_median_iqr(c["disease_duration_years"]),
            ]
        )
    if c.get("prior_therapies"):
        summary = c["prior_therapies"]
        values = [as_number(summary.get(k)) for k in ("median", "q1", "q3")]
        decimals = 0 if all(v is None or v == int(v) for v in values) else 1
        rows.append(
            ["Prior disease-modifying therapies: median (IQR)", fmt_median_iqr(summary, decimals)]
        )
    if c.get("prior_drug"):
        rows.append([f"Therapy before {drug}", _counted(c["prior_drug"], n)])
    if c.get("switch_reasons"):
        rows.append(["Reason for switching", _counted(c["switch_reasons"], n)])
    fu = c.get("follow_up_years")
    if isinstance(fu, Mapping) and fu:
        text = fmt_median_iqr(fu)
        if as_number(fu.get("total")) is not None:
            text += f"; {fmt_fixed(fu['total'])} patient-years in all"
        rows.append(["Follow-up after day 0, years: median (IQR)", text])
    return {"table": Table(["", "Value"], rows, align="ll", css="keyvalue")}


def _relapse_section(result: Mapping[str, Any]) -> dict[str, Any]:
    rel = _get(result, "relapses", default={})
    if not rel:
        return {}
    cols = []
    for period in ("pre", "post"):
        if as_number(rel.get(f"arr_{period}")) is None and rel.get(f"{period}_relapses") is None:
            continue
        arr = fmt_fixed(rel.get(f"arr_{period}"))
        ci = fmt_ci(rel.get(f"arr_{period}_ci"))
        cols.append(
            (
                _window_title(rel.get(f"{period}_window_days"), period),
                [
                    _int(rel.get(f"{period}_relapses")),
                    fmt_fixed(rel.get(f"{period}_person_years")),
                    arr + (f" ({ci})" if ci else ""),
                ],
            )
        )
    table = None
    if cols:
        labels = ["Relapses", "Person-years", "Annualised relapse rate (95% CI)"]
        rows = [[label, *(c[1][i] for c in cols)] for i, label in enumerate(labels)]
        table = Table(["", *(c[0] for c in cols)], rows)
    compare = []
    ratio_text = _rate_ratio_text(rel)
    if ratio_text:
        compare.append(["Rate ratio, after / before (95% CI)", ratio_text])
    paired = rel.get("paired")
    if isinstance(paired, Mapping) and paired:
        bits = []
        if paired.get("n_pairs") is not None:
            bits.append(f"{_int(paired['n_pairs'])} pairs")
        if as_number(paired.get("statistic")) is not None:
            bits.append(f"statistic {fmt_sig(paired['statistic'], 3)}")
        if as_number(paired.get("p_value")) is not None:
            bits.append(fmt_p(paired["p_value"]))
        compare.append([str(paired.get("test") or "Paired test"), ", ".join(bits) or NONE])
    nb = rel.get("negative_binomial")
    if isinstance(nb, Mapping) and as_number(nb.get("rate_ratio")) is not None:
        ci = fmt_ci(nb.get("ci"))
        text = fmt_est(nb["rate_ratio"]) + (f" ({ci})" if ci else "")
        extra = []
        alpha = as_number(nb.get("alpha"))
        if alpha is not None:
            extra.append("dispersion α " + ("< 0.001" if alpha < 0.001 else fmt_sig(alpha, 2)))
        if nb.get("overdispersed") is not None:
            extra.append("overdispersed" if nb["overdispersed"] else "no overdispersion")
        if extra:
            text += "; " + ", ".join(extra)
        compare.append(["Negative binomial rate ratio (95% CI)", text])
    elif rel.get("negative_binomial_estimable") is False:
        note = rel.get("negative_binomial_note")
        compare.append(
            ["Negative binomial rate ratio", "not estimable" + (f": {note}" if note else "")]
        )
    km = rel.get("km") if isinstance(rel.get("km"), Mapping) else {}
    if km and (km.get("events") is not None or km.get("censored") is not None):
        compare.append(
            [
                "Time to first relapse after day 0",
                f"{_int(km.get('events'))} with a relapse, {_int(km.get('censored'))} censored",
            ]
        )
    return {
        "table": table,
        "compare": Table(["Comparison", "Result"], compare, align="ll", css="keyvalue")
        if compare
        else None,
    }


def _rate_ratio_text(rel: Mapping[str, Any]) -> str | None:
    """'0.036 (0.00087–0.22)', or why there is no ratio: with no relapses before day 0 it
    is unbounded, said in words with the exact interval's lower limit, never a number
    like 4.9e9. None for a result that says nothing about the ratio."""
    if as_number(rel.get("rate_ratio")) is not None:
        ci = fmt_ci(rel.get("rate_ratio_ci"))
        return fmt_est(rel["rate_ratio"]) + (f" ({ci})" if ci else "")
    if rel.get("rate_ratio_estimable") is not False:
        return None
    note = rel.get("rate_ratio_note")
    text = "not estimable" + (f": {note}" if note else "")
    ci = rel.get("rate_ratio_ci")
    if isinstance(ci, Sequence) and len(ci) == 2 and as_number(ci[0]) is not None:
        text += f"; exact 95% CI from {fmt_est(ci[0])}, no upper limit"
    return text


def _lab_summary(key: str, lab: Mapping[str, Any], labs: Mapping[str, Any], n: int) -> dict:
    """One analyte's figures: the result's own summaries where it gives them (onset_day,
    nadir or peak, days_to_normal as quartiles; not_yet_normal_n; worst_grade), else read
    off its episodes."""
    episodes = _list(lab.get("episodes"))
    affected = lab.get("n")
    if affected is None:
        affected = len({e.get("patient_id") for e in episodes})
    tested = lab.get("n_tested") if lab.get("n_tested") is not None else n
    extreme = "peak" if "peak" in lab or any("peak" in e for e in episodes) else "nadir"

    def median_of(summary_key: str, values: Iterable[Any]) -> float | None:
        given = lab.get(summary_key)
        if isinstance(given, Mapping) and "median" in given:
            return as_number(given.get("median"))
        return _median(values)

    to_normal = [
        as_number(e.get("normal_day")) - as_number(e.get("onset_day"))
        for e in episodes
        if as_number(e.get("normal_day")) is not None and as_number(e.get("onset_day")) is not None
    ]
    if isinstance(lab.get("worst_grade"), Mapping):
        grades = {str(k): as_number(v) or 0 for k, v in lab["worst_grade"].items()}
    else:
        grades = dict(
            Counter(_int(e.get("grade")) for e in episodes if as_number(e.get("grade")) is not None)
        )
    not_normal = lab.get("not_yet_normal_n")
    if not_normal is None and episodes:
        not_normal = sum(1 for e in episodes if e.get("normal_day") is None)
    test = lab.get("test")
    unit = lab.get("unit") or _get(labs, "grade_bands", str(test), "unit")
    return {
        "label": LAB_LABELS.get(key, _humanise(key)),
        "phrase": _lower_first(LAB_LABELS.get(key, _humanise(key))),
        "affected": affected,
        "tested": tested,
        "onset": median_of("onset_day", (e.get("onset_day") for e in episodes)),
        "extreme": median_of(extreme, (e.get(extreme) for e in episodes)),
        "extreme_kind": extreme,
        "unit": figures.unit_label(unit) if unit else "",
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


def _lab_summaries(result: Mapping[str, Any], n: int) -> list[dict]:
    labs = _get(result, "labs", default={})
    return [
        _lab_summary(str(key), lab, labs, n)
        for key, lab in labs.items()
        if key not in LAB_NOT_ANALYTES and isinstance(lab, Mapping)
    ]


def _lab_section(result: Mapping[str, Any], n: int) -> dict[str, Any]:
    labs = _get(result, "labs", default={})
    bands = _get(labs, "grade_bands", default={})
    rows = []
    summaries = _lab_summaries(result, n)
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
                " / ".join(_int(s["grades"].get(g, 0)) for g in grade_keys)
                if s["has_episodes"]
                else NONE,
                NONE if s["to_normal"] is None else f"{s['to_normal']:.0f}",
                _int(s["not_normal"])
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
    lb = _get(bands, "lymphocytes", default={})
    band_note = ""
    if isinstance(lb, Mapping) and lb.get("grades"):
        unit = figures.unit_label(lb.get("unit"))
        g = {str(k): v for k, v in lb["grades"].items()}
        keys = sorted(g, key=lambda k: as_number(k) or 0)
        parts = []
        for i, k in enumerate(keys):
            upper = (
                "LLN" if i == 0 and as_number(lb.get("lln")) == as_number(g[k]) else fmt_value(g[k])
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


def _thyroid_section(result: Mapping[str, Any], n: int) -> dict[str, Any]:
    thy = _get(result, "thyroid", default={})
    if not thy:
        return {}
    events = _list(thy.get("events"))
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        by_kind.setdefault(str(e.get("kind")), []).append(e)
    kinds = [k for k in THYROID_COUNTS if thy.get(THYROID_COUNTS[k]) is not None or k in by_kind]
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
        when = "; ".join(f"{e.get('patient_id')} day {_int(e.get('day'))}" for e in evs[:LIST_MAX])
        if len(evs) > LIST_MAX:
            when += f"; and {len(evs) - LIST_MAX} more (appendix)"
        rows.append([THYROID_LABELS.get(kind, _humanise(kind)), fmt_n_of(count, n), when or NONE])
    if not rows:
        return {}
    return {
        "table": Table(["Event", "Patients", "Patient, day of first finding"], rows, align="lrl")
    }


def _infection_section(result: Mapping[str, Any], n: int) -> dict[str, Any]:
    inf = _get(result, "infections", default={})
    ae = _get(result, "adverse_events", default={})
    out: dict[str, Any] = {}
    if inf.get("recorded") is False:
        out["not_recorded"] = NOT_RECORDED_AE
        return out
    if inf:
        rows = [
            ["Any infection", fmt_n_of(inf.get("any_n"), n)],
            ["Serious infection", fmt_n_of(inf.get("serious_n"), n)],
        ]
        out["summary"] = Table(["", "Patients"], rows, css="keyvalue")
        terms = _list(inf.get("by_term"))
        if terms:
            out["terms"] = Table(
                ["Infection", "Patients", "Serious"],
                [
                    [
                        str(t.get("term") or NONE),
                        fmt_n_of(t.get("patients"), n),
                        _int(t.get("serious")),
                    ]
                    for t in terms
                ],
            )
    cats = _list(ae.get("by_category")) if isinstance(ae, Mapping) else []
    if cats:
        out["categories"] = Table(
            ["Adverse event category", "Patients", "Serious"],
            [
                [
                    _humanise(c.get("category") or NONE),
                    fmt_n_of(c.get("patients"), n),
                    _int(c.get("serious")),
                ]
                for c in cats
            ],
        )
    return out


NOT_RECORDED_AE = (
    "Not recorded: these data hold no adverse events at all (no adverse_events table, or an"
    " empty one), so infections and other adverse events are not counted: not recorded is"
    " not the same as none."
)


def _mri_section(result: Mapping[str, Any]) -> dict[str, Any]:
    mri = _get(result, "mri", default={})
    cols = []
    windows = _get(mri, "windows", default={})
    notes = []
    for period, name in (("pre", "Before day 0"), ("post", "About 1 year after")):
        m = mri.get(period)
        if not isinstance(m, Mapping) or not m:
            continue
        if period == "pre" and as_number(windows.get("pre_days")) is not None:
            notes.append(
                f"Before: the last scan in the {_int(windows['pre_days'])} days before day 0."
            )
        post_w = windows.get("post")
        if period == "post" and isinstance(post_w, Sequence) and len(post_w) == 2:
            notes.append(
                f"After: the scan nearest day 365, within days {_int(post_w[0])}{DASH}{_int(post_w[1])}."
            )
        scanned = m.get("scanned_n")
        cols.append(
            (
                name,
                [
                    _int(scanned),
                    fmt_n_of(m.get("new_t2_n"), scanned),
                    fmt_n_of(m.get("gd_n"), scanned),
                    _int(m.get("missing_n")),
                ],
            )
        )
    if not cols:
        return {}
    labels = [
        "Patients scanned in window",
        "At least one new T2 lesion",
        "At least one gadolinium-enhancing lesion",
        "No scan in window",
    ]
    rows = [[label, *(c[1][i] for c in cols)] for i, label in enumerate(labels)]
    return {"table": Table(["", *(c[0] for c in cols)], rows, note=" ".join(notes))}


def _year_label(key: Any) -> str:
    """'year1' -> 'Year 1'."""
    text = str(key)
    return f"Year {text[4:]}" if text.startswith("year") and text[4:].isdigit() else _humanise(key)


NEDA_MISSING_WORDS = {  # after a count of patients: "13 without an EDSS ..."
    "edss": "without an EDSS on or before day 0 and one in the year",
    "mri": "without a scan in the window",
    "follow_up": "not followed for the whole year",
}
NEDA_EVALUABLE_NOTE = (
    "A patient is evaluable only with data for every part: followed for the whole year, a"
    " scan in the window, an EDSS on or before day 0 and one in the year. A patient without"
    " them is not evaluable, never counted as free of activity."
)


def _neda_missing(year: Mapping[str, Any]) -> str:
    """'13 without an EDSS on or before day 0 and one in the year, 2 without a scan in the
    window'; '' when the result does not say."""
    missing = year.get("missing_n")
    if not isinstance(missing, Mapping):
        return ""
    return ", ".join(
        f"{_int(count)} {NEDA_MISSING_WORDS.get(str(part), 'without ' + _words(part))}"
        for part, count in missing.items()
        if as_number(count)
    )


def _neda_not_evaluable(year: Mapping[str, Any]) -> str:
    """Why nobody is evaluable, in words: a part not recorded for anyone comes first."""
    recorded = year.get("recorded") if isinstance(year.get("recorded"), Mapping) else {}
    if recorded.get("edss") is False:
        return "not evaluable: no EDSS recorded"
    if recorded.get("mri") is False:
        return "not evaluable: no MRI recorded"
    return "not evaluable" if "not_evaluable_n" in year else "not yet evaluable"


def _neda_section(result: Mapping[str, Any]) -> dict[str, Any]:
    neda = _get(result, "neda", default={})
    years = [(k, neda[k]) for k in sorted(neda, key=str) if isinstance(neda[k], Mapping)]
    if not years:
        return {}
    header = ["", "Evaluable patients", "NEDA-3"]
    per_patient = any("not_evaluable_n" in v for _k, v in years)
    if per_patient:
        header.append("Not evaluable")
    rows = []
    for key, v in years:
        ev = as_number(v.get("evaluable_n"))
        row = [_year_label(key), _int(ev or 0)]
        row.append(fmt_n_of(v.get("neda_n"), ev) if ev else _neda_not_evaluable(v))
        if per_patient:
            why = _neda_missing(v)
            row.append(_int(v.get("not_evaluable_n")) + (f" ({why})" if why else ""))
        rows.append(row)
    return {"table": Table(header, rows, note=NEDA_EVALUABLE_NOTE if per_patient else "")}


def _cns_section(result: Mapping[str, Any]) -> dict[str, Any]:
    cases = _list(_get(result, "cns", "cases", default=[]))
    if not cases:
        return {"table": None}
    rows = [
        [
            str(c.get("patient_id") or NONE),
            str(c.get("date") or NONE),
            str(c.get("code") or NONE)
            + (
                f": {c['detail']}"
                if c.get("detail")
                else f": {_lower_first(CNS_LABELS[c['code']])}"
                if c.get("code") in CNS_LABELS
                else ""
            ),
            _int(c.get("days_after_infusion")),
            _words(c["rescue"]) if c.get("rescue") else "none recorded",
        ]
        for c in cases
    ]
    return {
        "table": Table(
            ["Patient", "Date", "Finding", "Days after last infusion", "Rescue therapy recorded"],
            rows,
            align="lllrl",
        )
    }


def _completeness_section(result: Mapping[str, Any]) -> dict[str, Any]:
    comp = _get(result, "completeness", default={})
    rows = [
        [COMPLETENESS_LABELS.get(str(k), _humanise(k)), _int(v)]
        for k, v in comp.items()
        if as_number(v) is not None
    ]
    return {"table": Table(["", "Count"], rows, css="keyvalue")} if rows else {}


def _cell_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return fmt_value(v) if v != int(v) else _int(v)
    return str(v)


def _records_table(
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
        [_cell_text(show(r) if show else r.get(key)) for _h, key, _a, show in cols] for r in shown
    ]
    table = Table([c[0] for c in cols], rows, align="".join(c[2] for c in cols), caption=caption)
    table.total = len(records)
    if len(shown) < len(records):
        table.note = (
            f"The first {len(shown):,} of {len(records):,} rows; the HTML report and the audit"
            " JSON carry them all."
        )
    return table


def _neda_records(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    neda = _get(result, "neda", default={})
    by_patient: dict[str, dict[str, Any]] = {}
    for year in sorted(k for k in neda if isinstance(neda[k], Mapping)):
        for r in _list(neda[year].get("patients")):
            pid = str(r.get("patient_id"))
            if not r.get("evaluable"):
                missing = [NEDA_MISSING_WORDS.get(str(m), str(m)) for m in r.get("missing") or []]
                text = "not evaluable" + (f": {', '.join(missing)}" if missing else "")
            elif r.get("neda"):
                text = "NEDA-3"
            else:
                why = [
                    label
                    for key, label in (
                        ("relapses", "relapse"),
                        ("mri_active", "MRI activity"),
                        ("edss_worsened", "EDSS worsening"),
                    )
                    if r.get(key)
                ]
                text = "activity" + (f": {', '.join(why)}" if why else "")
            by_patient.setdefault(pid, {"patient_id": pid})[year] = text
    return list(by_patient.values())


def _appendix(result: Mapping[str, Any], limit: int | None = None) -> list[Table]:
    """The per-patient records behind the counts; `limit` rows per table at most."""
    pid = ("Patient", "patient_id", "l")
    tables = [
        _records_table(
            "Patients",
            _list(_get(result, "cohort", "patients", default=[])),
            [
                pid,
                ("Day 0", "day0", "l"),
                ("Sex", "sex", "l"),
                ("Age at day 0", "age_at_day0", "r", lambda r: fmt_fixed(r.get("age_at_day0"), 1)),
                (
                    "Disease duration, years",
                    "disease_duration_years",
                    "r",
                    lambda r: fmt_fixed(r.get("disease_duration_years"), 1),
                ),
                ("Prior drug", "prior_drug", "l", lambda r: _words(r.get("prior_drug") or "")),
                (
                    "Switch reason",
                    "switch_reason",
                    "l",
                    lambda r: _words(r.get("switch_reason") or ""),
                ),
                ("Prior therapies", "n_prior_therapies", "r"),
                ("Follow-up, days", "follow_up_days", "r"),
            ],
            limit,
        ),
        _records_table(
            "Relapses per patient",
            _list(_get(result, "relapses", "patients", default=[])),
            [
                pid,
                ("Relapses before", "pre", "r"),
                ("Relapses after", "post", "r"),
                ("Days at risk before", "pre_days", "r"),
                ("Days at risk after", "post_days", "r"),
                ("First relapse after, day", "first_relapse_day", "r"),
            ],
            limit,
        ),
    ]
    labs = _get(result, "labs", default={})
    episodes = [
        {"analyte": LAB_LABELS.get(key, _humanise(key)), **e}
        for key, lab in labs.items()
        if key not in LAB_NOT_ANALYTES and isinstance(lab, Mapping)
        for e in _list(lab.get("episodes"))
    ]
    tables.append(
        _records_table(
            "Lab episodes",
            episodes,
            [
                ("Analyte", "analyte", "l"),
                pid,
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
                        _int(r["normal_day"]) if r.get("normal_day") is not None else "not yet"
                    ),
                ),
            ],
            limit,
        )
    )
    tables.append(
        _records_table(
            "Thyroid events",
            _list(_get(result, "thyroid", "events", default=[])),
            [
                pid,
                (
                    "Event",
                    "kind",
                    "l",
                    lambda r: THYROID_LABELS.get(str(r.get("kind")), _humanise(r.get("kind"))),
                ),
                ("Day", "day", "r"),
            ],
            limit,
        )
    )
    adverse = _list(_get(result, "adverse_events", "events", default=[]))
    tables.append(
        _records_table(
            "Adverse events, infections included" if adverse else "Infections",
            adverse or _list(_get(result, "infections", "events", default=[])),
            [
                pid,
                ("Day", "day", "r"),
                ("Term", "term", "l"),
                ("Category", "category", "l", lambda r: _humanise(r.get("category") or "")),
                ("Serious", "serious", "l", lambda r: "yes" if r.get("serious") else "no"),
                ("Grade", "grade", "r"),
                ("Outcome", "outcome", "l"),
            ],
            limit,
        )
    )
    tables.append(
        _records_table(
            "MRI scans",
            _list(_get(result, "mri", "scans", default=[])),
            [
                pid,
                (
                    "Scan",
                    "when",
                    "l",
                    lambda r: {"pre": "before", "post": "after"}.get(
                        str(r.get("when")), _words(r.get("when") or "")
                    ),
                ),
                ("Day", "day", "r"),
                ("New T2 lesions", "new_t2", "r"),
                ("Gd-enhancing lesions", "gd_enhancing", "r"),
                ("Ring-enhancing", "ring_enhancing", "r"),
            ],
            limit,
        )
    )
    neda = _get(result, "neda", default={})
    years = sorted(k for k in neda if isinstance(neda[k], Mapping))
    tables.append(
        _records_table(
            "NEDA-3 per patient",
            _neda_records(result),
            [pid, *((_year_label(y), y, "l") for y in years)],
            limit,
        )
    )
    return [t for t in tables if t is not None]


# Plain-words summary -------------------------------------------------------------------


def _some_of(count: Any, total: Any) -> str:
    c, t = as_number(count), as_number(total)
    if c is None:
        return NONE
    if t and c == t:
        return f"all {_int(t)}" if t > 2 else ("both" if t == 2 else "the one patient")
    if c == 0:
        return "none" if not t else f"none of {_int(t)}"
    return f"{_int(c)} of {_int(t)}" if t else _int(c)


def _join_or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _join_and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _summary(result: Mapping[str, Any], n: int, drug: str) -> list[str]:
    out = []
    c = _get(result, "cohort", default={})
    prior = c.get("prior_drug") if isinstance(c.get("prior_drug"), Mapping) else {}
    s = f"{n} patient{'s' if n != 1 else ''} started {drug}"
    if len(prior) == 1:
        s += f" after {_words(next(iter(prior)))}"
    elif prior:
        s += " after " + _join_or([f"{_words(k)} ({_int(v)})" for k, v in _by_count(prior)])
    reasons = c.get("switch_reasons")
    reason_words = ""
    if isinstance(reasons, Mapping) and reasons:
        reason_words = ", ".join(f"{_int(v)} {_words(k)}" for k, v in _by_count(reasons))
        if len(prior) <= 1:
            s += f" ({reason_words})"
    fu = c.get("follow_up_years")
    if isinstance(fu, Mapping) and as_number(fu.get("median")) is not None:
        s += f", followed for a median of {fmt_median_iqr(fu).replace(' (', ' years (IQR ')}"
    out.append(s + ".")
    if reason_words and len(prior) > 1:
        out.append(f"Reasons for switching: {reason_words}.")

    rel = _get(result, "relapses", default={})
    pre, post = as_number(rel.get("arr_pre")), as_number(rel.get("arr_post"))
    if pre is not None and post is not None:
        verb = "fell" if post < pre else "rose" if post > pre else "was unchanged"
        pre_ci, post_ci = fmt_ci(rel.get("arr_pre_ci")), fmt_ci(rel.get("arr_post_ci"))
        s = (
            f"The annualised relapse rate {verb} from {pre:.2f}"
            + (f" (95% CI {pre_ci})" if pre_ci else "")
            + f" {_window_words(rel.get('pre_window_days'), 'pre')} to {post:.2f}"
            + (f" ({post_ci})" if post_ci else "")
            + f" {_window_words(rel.get('post_window_days'), 'post')}"
        )
        if as_number(rel.get("rate_ratio")) is not None:
            rr_ci = fmt_ci(rel.get("rate_ratio_ci"))
            s += f" (rate ratio {fmt_est(rel['rate_ratio'])}" + (
                f", 95% CI {rr_ci})" if rr_ci else ")"
            )
        elif rel.get("rate_ratio_estimable") is False:
            s += f" (rate ratio {_rate_ratio_text(rel)})"
        out.append(s + ".")

    haem, other, zero, zero_other = [], [], {}, {}
    for lab in _lab_summaries(result, n):
        if lab["affected"] is None:
            continue
        is_haem = lab["label"] in HAEMATOLOGY
        if as_number(lab["affected"]) == 0:
            (zero if is_haem else zero_other).setdefault(_some_of(0, lab["tested"]), []).append(
                lab["phrase"]
            )
            continue
        if not is_haem:
            other.append(f"{lab['phrase']} in {_some_of(lab['affected'], lab['tested'])}")
            continue
        bit = f"{_some_of(lab['affected'], lab['tested'])} had {lab['phrase']}"
        if lab["onset"] is not None:
            bit += f" (first seen at a median of day {lab['onset']:.0f}"
            if lab["not_normal"] == 0 and lab["normal_days"]:
                bit += f"; all normal again by day {max(lab['normal_days']):.0f}"
            elif lab["not_normal"] == 0:
                bit += "; all normal again"
            elif lab["not_normal"] is not None:
                bit += f"; {_int(lab['not_normal'])} not yet normal"
            bit += ")"
        haem.append(bit)
    haem += [f"{who} had {_join_or(names)}" for who, names in zero.items()]
    if haem:
        out.append(_cap("; ".join(haem)) + ".")
    other += [f"{who} had {_join_or(names)}" for who, names in zero_other.items()]
    if other:
        out.append("Other lab abnormalities: " + "; ".join(other) + ".")

    inf = _get(result, "infections", default={})
    if inf.get("recorded") is False:
        out.append("Infections and other adverse events were not recorded in these data.")
    elif inf.get("any_n") is not None:
        any_n, serious = as_number(inf.get("any_n")) or 0, as_number(inf.get("serious_n"))
        s = f"{_cap(_some_of(any_n, n))} had an infection"
        if serious is not None:
            s += (
                "; none was serious"
                if serious == 0
                else f"; {_int(serious)} had a serious infection"
            )
        out.append(s + ".")

    thy = _get(result, "thyroid", default={})
    if thy:
        events = _list(thy.get("events"))
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
                when = (
                    f" (day{'s' if len(days) > 1 else ''} {_join_and([f'{d:.0f}' for d in days])})"
                )
            found.append(f"{_int(count)} {THYROID_PHRASES[kind]}{when}")
        s = ""
        if found:
            first = found[0].split(" ", 1)
            noun = "patient" if first[0] == "1" else "patients"
            found[0] = f"{first[0]} {noun} developed {first[1]}"
            s = _join_and(found)
        if absent:
            s += ("; none had " if s else "No patient developed ") + _join_or(absent)
        if s:
            out.append("Thyroid: " + s + ".")

    mri = _get(result, "mri", default={})
    pre_m, post_m = mri.get("pre"), mri.get("post")
    bits = []
    if isinstance(pre_m, Mapping) and as_number(pre_m.get("scanned_n")) == 0:
        bits.append("no patient was scanned in the window before day 0")  # missing, not none
    elif isinstance(pre_m, Mapping) and pre_m.get("scanned_n") is not None:
        bits.append(
            f"before day 0, {_some_of(pre_m.get('new_t2_n'), pre_m['scanned_n'])} scanned patients had new T2 lesions"
            f" and {_some_of(pre_m.get('gd_n'), pre_m['scanned_n'])} gadolinium-enhancing lesions"
        )
    if isinstance(post_m, Mapping) and as_number(post_m.get("scanned_n")) == 0:
        bits.append("no patient was scanned in the window about a year after")
    elif isinstance(post_m, Mapping) and post_m.get("scanned_n") is not None:
        t2, gd, sc = (
            as_number(post_m.get("new_t2_n")),
            as_number(post_m.get("gd_n")),
            post_m["scanned_n"],
        )
        if t2 == 0 and gd == 0:
            bits.append(
                f"on the scan about a year after, {_some_of(0, sc)} had new T2 or gadolinium-enhancing lesions"
            )
        else:
            bits.append(
                f"on the scan about a year after, {_some_of(t2, sc)} had new T2 lesions"
                f" and {_some_of(gd, sc)} gadolinium-enhancing lesions"
            )
    if bits:
        out.append("MRI: " + "; ".join(bits) + ".")

    neda = _get(result, "neda", "year1", default={})
    if as_number(neda.get("evaluable_n")):
        s = (
            f"At one year, {_some_of(neda.get('neda_n'), neda['evaluable_n'])} evaluable patients"
            f" ({fmt_pct(neda.get('neda_n'), neda['evaluable_n'])}) had no evidence of disease activity (NEDA-3)"
        )
        if as_number(neda.get("not_evaluable_n")):
            why = _neda_missing(neda)
            s += f"; {_int(neda['not_evaluable_n'])} were not evaluable" + (
                f" ({why})" if why else ""
            )
        out.append(s + ".")
    elif as_number(neda.get("not_evaluable_n")):
        s = f"NEDA-3 at one year is {_neda_not_evaluable(neda)}"
        if s.endswith("not evaluable") and _neda_missing(neda):
            s += f": no patient has data for every part ({_neda_missing(neda)})"
        out.append(s + ".")

    cases = _list(_get(result, "cns", "cases", default=[]))
    if "cns" in result:
        if cases:
            desc = "; ".join(
                f"{c.get('patient_id')}, {c.get('code')}"
                + (
                    f", {_int(c.get('days_after_infusion'))} days after the last infusion"
                    if c.get("days_after_infusion") is not None
                    else ""
                )
                + ("" if c.get("rescue") else ", no rescue therapy recorded")
                for c in cases[:LIST_MAX]
            )
            if len(cases) > LIST_MAX:
                desc += f"; {len(cases) - LIST_MAX} more in the table below"
            out.append(
                f"The CNS inflammation watch flagged {len(cases)} case{'s' if len(cases) != 1 else ''} ({desc})."
            )
        else:
            out.append("The CNS inflammation watch flagged no cases.")
    return out


# Assembly ------------------------------------------------------------------------------

# The figures in the order they appear in the report, which numbers them.
FIGURE_NAMES = (
    "relapse_rates",
    "relapse_free_survival",
    "lymphocyte_trajectory",
    "thyroid_incidence",
    "swimmer",
)
SECTION_KEYS = {
    "cohort": ("table",),
    "relapses": ("table", "compare"),
    "labs": ("table", "band_note"),
    "thyroid": ("table",),
    "infections": ("summary", "terms", "categories", "not_recorded"),
    "mri": ("table",),
    "neda": ("table",),
    "cns": ("table",),
    "completeness": ("table",),
    "figures": FIGURE_NAMES,
}


FIGURE_CAPTIONS = {
    "swimmer": "Follow-up and events per patient, from day 0 (first {drug} infusion) to the end of follow-up; events before day 0 on the dotted line. Filled circles are MRIs with new T2 or gadolinium-enhancing lesions.",
    "relapse_rates": "Annualised relapse rate before and after day 0, with exact Poisson 95% confidence intervals.",
    "relapse_free_survival": "Time to first relapse after day 0 (Kaplan-Meier, shaded band 95% CI); numbers at risk below the axis.",
    "lymphocyte_trajectory": "Lymphocyte counts by month since day 0: median (line) and interquartile range (band), over the CTCAE grade bands; n tested per month below the axis.",
    "thyroid_incidence": "Cumulative incidence of thyroid events after day 0.",
}


def build_context(result: Mapping[str, Any], appendix_rows: int | None = None) -> Context:
    """Everything the template shows, formatted; no clinical computation."""
    if not isinstance(result, Mapping):
        raise TypeError("the audit result must be a dict")
    drug = str(result.get("drug") or DEFAULT_DRUG)
    n_raw = as_number(_get(result, "cohort", "n_patients"))
    n = (
        int(n_raw)
        if n_raw is not None
        else len(_list(_get(result, "cohort", "patients", default=[])))
    )
    ctx = Context(
        title=str(result.get("title") or "Outcomes audit"),
        as_of=str(result.get("as_of") or "not stated"),
        site=str(result.get("site") or ""),
        drug=drug,
        n_patients=n,
        empty=n == 0,
        methods=[
            {"term": str(m.get("term") or ""), "definition": str(m.get("definition") or "")}
            for m in _list(result.get("methods"))
        ],
    )
    sec = ctx.sections
    for name, keys in SECTION_KEYS.items():  # every key the template reads, None if absent
        sec[name] = dict.fromkeys(keys)
    sec["completeness"].update(_completeness_section(result))
    if ctx.empty:
        ctx.summary = [
            f"No patients met the audit criteria as of {ctx.as_of}: there are no outcomes to report."
        ]
        return ctx
    ctx.summary = _summary(result, n, drug)
    sec["cohort"].update(_cohort_section(result, n, drug))
    sec["relapses"].update(_relapse_section(result))
    sec["labs"].update(_lab_section(result, n))
    sec["thyroid"].update(_thyroid_section(result, n))
    sec["infections"].update(_infection_section(result, n))
    sec["mri"].update(_mri_section(result))
    sec["neda"].update(_neda_section(result))
    sec["cns"].update(_cns_section(result))
    ctx.appendix = _appendix(result, appendix_rows)

    figs: dict[str, Figure | None] = {}
    number = 0
    for name in FIGURE_NAMES:
        svg = figures.FIGURES[name](result)
        if svg is None:
            figs[name] = None
            continue
        number += 1
        caption = FIGURE_CAPTIONS[name].format(drug=drug)
        if name == "swimmer":
            shown, total = figures.swimmer_rows(result)
            if len(shown) < total:
                caption += (
                    f" Showing the {len(shown)} of {total} patients with the most recorded"
                    " events; every patient is in the appendix."
                )
        figs[name] = Figure(svg=svg, caption=caption, number=number)
    sec["figures"].update(figs)
    return ctx


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("dmtwatch.audit", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render_html(result: Mapping[str, Any], *, appendix_rows: int | None = None) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, no scripts,
    no external references). `appendix_rows` caps each appendix table (default: all)."""
    ctx = build_context(result, appendix_rows)
    template = _environment().get_template("audit.html.j2")
    return template.render(ctx=ctx, sections=ctx.sections)


PDF_APPENDIX_ROWS = 250


def render_pdf(
    result: Mapping[str, Any], path: Path | str, *, appendix_rows: int | None = PDF_APPENDIX_ROWS
) -> None:
    """The same report as an A4 PDF, via WeasyPrint; fetching any URL is refused. Each
    appendix table prints at most `appendix_rows` rows (None: all), saying so: a large
    clinic's records would run to thousands of pages."""
    from weasyprint import HTML

    html = render_html(result, appendix_rows=appendix_rows)
    HTML(string=html, url_fetcher=_no_fetcher()).write_pdf(str(path))


def _no_fetcher():
    try:
        from weasyprint.urls import URLFetcher

        return URLFetcher(allowed_protocols=())
    except ImportError:  # WeasyPrint before 68: a plain function

        def refuse(url: str, *args: Any, **kwargs: Any) -> dict:
            raise ValueError(f"the audit report fetches nothing: {url}")

        return refuse
