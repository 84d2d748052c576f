"""The Methods section: every definition the audit uses, in words, with its parameters,
generated from settings.yaml, the run's options and the protocols in force."""

from __future__ import annotations

import datetime as dt

from dmtwatch.outcomes import settings
from dmtwatch.outcomes.context import AuditOptions
from dmtwatch.protocols import in_force
from dmtwatch.protocols.schema import load_protocol

# The codes of the CNS inflammation watch (audit/sections/cns.py reads them from here).
CNS_CODES = ("CNS-MRI", "CNS-RING", "CNS-STROKE")


def by_section(o: AuditOptions, as_of: dt.date | str) -> dict[str, list[dict[str, str]]]:
    """Each section's Methods paragraphs ({term, definition}), by section key."""
    day = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(as_of)
    return settings.methods(o, day, load_protocol(o.drug), CNS_CODES)


def methods(o: AuditOptions, as_of: dt.date | str) -> list[dict[str, str]]:
    """The whole Methods section in report order: the protocols in force (and every
    LOCAL-POLICY change), then each section's paragraphs."""
    return [
        in_force().methods_entry(),
        *(m for paragraphs in by_section(o, as_of).values() for m in paragraphs),
    ]
