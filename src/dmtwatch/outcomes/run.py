"""The outcomes audit: every section computed from the clinic's own records, with the
engine's own functions where `check` computes the same fact."""

from __future__ import annotations

import datetime as dt

from dmtwatch.model.dataset import Dataset
from dmtwatch.outcomes import methods
from dmtwatch.outcomes.context import AuditOptions, make_context
from dmtwatch.outcomes.result import Audit, jsonable
from dmtwatch.outcomes.sections import events
from dmtwatch.outcomes.sections.cns import Cns
from dmtwatch.outcomes.sections.cohort import Cohort
from dmtwatch.outcomes.sections.labs import Labs
from dmtwatch.outcomes.sections.mri import Mri, Neda
from dmtwatch.outcomes.sections.relapses import Relapses
from dmtwatch.outcomes.sections.thyroid import Thyroid
from dmtwatch.outcomes.sections.timeline import Completeness, Timeline
from dmtwatch.protocols import in_force

__all__ = ["compute_audit", "jsonable", "run_audit"]


def compute_audit(dataset: Dataset, as_of: dt.date, options: AuditOptions | None = None) -> Audit:
    """The audit as typed sections (each with `.summary`, `.plot()`, `.methods`)."""
    o = options or AuditOptions()
    ctx = make_context(dataset, as_of, o)
    infections, adverse = events.compute(ctx)
    mri = Mri.compute(ctx)
    audit = Audit(
        as_of=as_of.isoformat(),
        title=f"{o.drug.capitalize()} outcomes audit",
        cohort=Cohort.compute(ctx),
        relapses=Relapses.compute(ctx),
        labs=Labs.compute(ctx),
        thyroid=Thyroid.compute(ctx),
        infections=infections,
        adverse_events=adverse,
        mri=mri,
        neda=Neda.compute(ctx),
        cns=Cns.compute(ctx, dataset),
        completeness=Completeness.compute(ctx, mri.to_dict()),
        timeline=Timeline.compute(ctx),
        methods=[],
    )
    paragraphs = methods.by_section(o, as_of)
    for key, section in audit.sections.items():
        section.with_methods(paragraphs.get(key, []))
    # first the protocols in force (and every LOCAL-POLICY change), then each section's
    audit.methods = [
        in_force().methods_entry(),
        *(m for section in audit.sections.values() for m in section.methods),
    ]
    return audit


def run_audit(dataset: Dataset, as_of: dt.date, options: AuditOptions | None = None) -> dict:
    """The audit JSON (interchange contract section 5): `compute_audit(...).to_dict()`."""
    return compute_audit(dataset, as_of, options).to_dict()
