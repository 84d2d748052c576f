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
