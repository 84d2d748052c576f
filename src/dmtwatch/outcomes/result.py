"""The audit as a typed result: one object per section (audit/sections/), each carrying
its numbers, table, figure and Methods paragraphs; `to_dict()` is the audit JSON
(interchange contract section 5), `from_dict()` reads it back for the renderer."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dmtwatch.outcomes.sections.base import Section
from dmtwatch.outcomes.sections.cns import Cns
from dmtwatch.outcomes.sections.cohort import Cohort
from dmtwatch.outcomes.sections.events import AdverseEvents, Infections
from dmtwatch.outcomes.sections.labs import Labs
from dmtwatch.outcomes.sections.mri import Mri, Neda
from dmtwatch.outcomes.sections.relapses import Relapses
from dmtwatch.outcomes.sections.thyroid import Thyroid
from dmtwatch.outcomes.sections.timeline import Completeness, Timeline

# The sections in the order of the audit JSON (after `as_of` and `title`; `methods` last).
SECTIONS: dict[str, type[Section]] = {
    "cohort": Cohort,
    "relapses": Relapses,
    "labs": Labs,
    "thyroid": Thyroid,
    "infections": Infections,
    "adverse_events": AdverseEvents,
    "mri": Mri,
    "neda": Neda,
    "cns": Cns,
    "completeness": Completeness,
    "timeline": Timeline,
}


@dataclass
class Audit:
    """The outcomes audit. `present`: the sections the result holds (a saved result may
    leave some out, and the report then says nothing about them)."""

    as_of: str | None
    title: str | None
    cohort: Cohort
    relapses: Relapses
    labs: Labs
    thyroid: Thyroid
    infections: Infections
    adverse_events: AdverseEvents
    mri: Mri
    neda: Neda
    cns: Cns
    completeness: Completeness
    timeline: Timeline
    methods: list[dict[str, str]]
    present: set[str] = field(default_factory=lambda: set(SECTIONS))
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. site, drug

    @property
    def sections(self) -> dict[str, Section]:
        return {key: getattr(self, key) for key in SECTIONS}

    @property
    def summary(self) -> dict[str, pd.DataFrame]:
        """Each section's `.summary` (a DataFrame of its key figures), by section."""
        return {key: s.summary for key, s in self.sections.items() if key in self.present}

    def to_html(self, *, appendix_rows: int | None = None) -> str:
        """The report as one self-contained HTML page (`audit.report.render_html`)."""
        from dmtwatch.outcomes.report import render_html

        return render_html(self, appendix_rows=appendix_rows)

    @property
    def n_patients(self) -> int:
        """Patients in the audited cohort (after any subgroup selection)."""
        return int(self.to_dict()["cohort"]["n_patients"])

    def __repr__(self) -> str:
        return f"<Audit as of {self.as_of}: {self.n_patients} patient(s)>"

    def write_pdf(self, path: str | Path) -> Path:
        """Write the report as an A4 PDF to `path`, whole or not at all (folders are
        created), as `dmtwatch audit --format pdf` does."""
        from dmtwatch.outcomes.report import render_pdf
        from dmtwatch.render.output import write_via

        target = Path(path)
        write_via(target, lambda tmp: render_pdf(self, tmp))
        return target

    def to_json(self) -> str:
        """The JSON document, as `dmtwatch audit --format json` writes it."""
        return json.dumps(self.to_dict(), indent=1)

    def to_dict(self) -> dict[str, Any]:
        """The audit JSON: the contract's keys and ours, floats to 6 significant digits."""
        out: dict[str, Any] = {"as_of": self.as_of, "title": self.title}
        for key, section in self.sections.items():
            if key in self.present:
                out[key] = section.to_dict()
        out["methods"] = self.methods
        return jsonable(out | self.extra)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Audit:
        """An audit from its JSON (or a hand-made part of it: every key is optional)."""
        if not isinstance(data, Mapping):
            raise TypeError("the audit result must be a dict")
        methods = data.get("methods")
        known = {"as_of", "title", "methods", *SECTIONS}
        return cls(
            as_of=data.get("as_of"),
            title=data.get("title"),
            methods=[
                {"term": str(m.get("term") or ""), "definition": str(m.get("definition") or "")}
                for m in (methods if isinstance(methods, list) else [])
                if isinstance(m, Mapping)
            ],
            present={k for k in SECTIONS if k in data},
            extra={k: v for k, v in data.items() if k not in known},
            **{key: kind.from_dict(data.get(key)) for key, kind in SECTIONS.items()},
        )


def jsonable(value):
    """Dates as ISO text, floats to 6 significant digits, infinities as null (the common
    types are tested first: the per-patient records make this the audit's hot loop)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        return {k: jsonable(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [jsonable(v) for v in value]
    if t is float or isinstance(value, np.floating):
        v = float(value)
        return float(f"{v:.6g}") if math.isfinite(v) else None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
