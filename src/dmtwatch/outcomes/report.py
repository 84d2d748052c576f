"""The outcomes audit as one self-contained HTML report, and the same as PDF.

    html = render_html(audit)        # audit: an Audit, or its JSON as a dict
    render_pdf(audit, Path("audit.pdf"))

The renderer only formats: each section (audit/sections/) gives its tables, its figure,
its sentences for the results in brief and its appendix; this module puts them in the
template's order and numbers the figures. A dict is read as the audit JSON (every key
optional); a cohort of 0 patients renders a short report saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from dmtwatch.outcomes.format import (  # noqa: F401  (the number formats, for callers)
    Figure,
    Table,
    fmt_ci,
    fmt_est,
    fmt_p,
    fmt_sig,
)
from dmtwatch.outcomes.result import Audit
from dmtwatch.outcomes.sections import events

DEFAULT_DRUG = "alemtuzumab"


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


def _audit(result: Audit | Mapping[str, Any]) -> Audit:
    return result if isinstance(result, Audit) else Audit.from_dict(result)


def build_context(result: Audit | Mapping[str, Any], appendix_rows: int | None = None) -> Context:
    """Everything the template shows, formatted; no clinical computation."""
    a = _audit(result)
    drug = str(a.extra.get("drug") or DEFAULT_DRUG)
    n = a.cohort.n
    ctx = Context(
        title=str(a.title or "Outcomes audit"),
        as_of=str(a.as_of or "not stated"),
        site=str(a.extra.get("site") or ""),
        drug=drug,
        n_patients=n,
        empty=n == 0,
        methods=list(a.methods),
    )
    sec = ctx.sections
    for name, keys in SECTION_KEYS.items():  # every key the template reads, None if absent
        sec[name] = dict.fromkeys(keys)
    sec["completeness"].update(a.completeness.view())
    if ctx.empty:
        ctx.summary = [
            f"No patients met the audit criteria as of {ctx.as_of}: there are no outcomes to report."
        ]
        return ctx
    ctx.summary = [
        *a.cohort.brief(drug),
        *a.relapses.brief(),
        *a.labs.brief(n),
        *a.infections.brief(n),
        *a.thyroid.brief(),
        *a.mri.brief(),
        *a.neda.brief(),
        *(a.cns.brief() if "cns" in a.present else []),
    ]
    sec["cohort"].update(a.cohort.view(drug))
    sec["relapses"].update(a.relapses.view())
    sec["labs"].update(a.labs.view(n))
    sec["thyroid"].update(a.thyroid.view(n))
    sec["infections"].update(events.view(a.infections, a.adverse_events, n))
    sec["mri"].update(a.mri.view())
    sec["neda"].update(a.neda.view())
    sec["cns"].update(a.cns.view())
    ctx.appendix = [
        *a.cohort.appendix(appendix_rows),
        *a.relapses.appendix(appendix_rows),
        *a.labs.appendix(appendix_rows),
        *a.thyroid.appendix(appendix_rows),
        *events.appendix(a.infections, a.adverse_events, appendix_rows),
        *a.mri.appendix(appendix_rows),
        *a.neda.appendix(appendix_rows),
    ]
    patients = a.cohort.patients or []
    svgs = {
        **a.relapses.figures(),
        "lymphocyte_trajectory": a.labs.plot(),
        "thyroid_incidence": a.thyroid.plot(),
        "swimmer": a.timeline.plot(patients),
    }
    figs: dict[str, Figure | None] = {}
    number = 0
    for name in FIGURE_NAMES:
        svg = svgs[name]
        if svg is None:
            figs[name] = None
            continue
        number += 1
        caption = FIGURE_CAPTIONS[name].format(drug=drug)
        if name == "swimmer":
            shown, total = a.timeline.rows(patients)
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
        loader=PackageLoader("dmtwatch.outcomes", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render_html(result: Audit | Mapping[str, Any], *, appendix_rows: int | None = None) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, no scripts,
    no external references). `appendix_rows` caps each appendix table (default: all)."""
    ctx = build_context(result, appendix_rows)
    template = _environment().get_template("audit.html.j2")
    return template.render(ctx=ctx, sections=ctx.sections)


PDF_APPENDIX_ROWS = 250


def render_pdf(
    result: Audit | Mapping[str, Any],
    path: Path | str,
    *,
    appendix_rows: int | None = PDF_APPENDIX_ROWS,
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
