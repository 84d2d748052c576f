"""dmtwatch: safety monitoring and outcomes audit for people with MS on high-efficacy
therapies (alemtuzumab first).

The public Python API is what this module exports (`__all__`); the rest of the package
is internal and may change between versions. The guide (docs/guide.md) shows it in use:

    import dmtwatch

    clinic = dmtwatch.read_clinic("clinic/")           # CSV, .xlsx, FHIR or a store URL
    worklist = dmtwatch.check(clinic, "2016-01-15")    # typed findings, most urgent first
    report = dmtwatch.audit(clinic, "2016-01-15")      # .to_dict(), .to_html(), .write_pdf()

Every expected failure is a `DmtwatchError`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from dmtwatch.errors import (
    DmtwatchError,
    InputError,
    InputRejected,
    NetworkError,
    OutputError,
    OutputPathError,
    StoreError,
    UsageError,
)
from dmtwatch.io.problems import Problem

# The API's names load on first use (PEP 562): `dmtwatch.cli` and the CDS service import
# this package too, and must not pay for the audit's statistics and plotting libraries.
_API = ("Audit", "Clinic", "Evidence", "Finding", "Signals", "Worklist")
_API += ("audit", "check", "read_clinic", "signals")


def __getattr__(name: str) -> Any:
    if name in _API:
        from dmtwatch import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from dmtwatch.api import (
        Audit,
        Clinic,
        Evidence,
        Finding,
        Signals,
        Worklist,
        audit,
        check,
        read_clinic,
        signals,
    )

try:
    __version__ = version("dmtwatch")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Audit",
    "Clinic",
    "DmtwatchError",
    "Evidence",
    "Finding",
    "InputError",
    "InputRejected",
    "NetworkError",
    "OutputError",
    "OutputPathError",
    "Problem",
    "Signals",
    "StoreError",
    "UsageError",
    "Worklist",
    "__version__",
    "audit",
    "check",
    "read_clinic",
    "signals",
]
