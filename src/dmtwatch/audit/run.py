"""The outcomes audit: every section computed from the clinic's own records."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from dmtwatch.audit.cns import cns_section
from dmtwatch.audit.cohort import cohort_section
from dmtwatch.audit.context import AuditOptions, make_context
from dmtwatch.audit.events import adverse_event_sections
from dmtwatch.audit.labs import lab_section
from dmtwatch.audit.methods import methods
from dmtwatch.audit.mri import mri_section, neda_section
from dmtwatch.audit.relapses import relapse_section
from dmtwatch.audit.thyroid import thyroid_section
from dmtwatch.audit.timeline import completeness, timeline
from dmtwatch.model.dataset import Dataset


def run_audit(dataset: Dataset, as_of: dt.date, options: AuditOptions | None = None) -> dict:
    o = options or AuditOptions()
    ctx = make_context(dataset, as_of, o)
    infections, adverse = adverse_event_sections(ctx)
    mri = mri_section(ctx)
    result = {
        "as_of": as_of.isoformat(),
        "title": f"{o.drug.capitalize()} outcomes audit",
        "cohort": cohort_section(ctx),
        "relapses": relapse_section(ctx),
        "labs": lab_section(ctx),
        "thyroid": thyroid_section(ctx),
        "infections": infections,
        "adverse_events": adverse,
        "mri": mri,
        "neda": neda_section(ctx),
        "cns": cns_section(ctx, dataset),
        "completeness": completeness(ctx, mri),
        "timeline": timeline(ctx),
        "methods": methods(o, as_of.isoformat()),
    }
    return jsonable(result)


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
