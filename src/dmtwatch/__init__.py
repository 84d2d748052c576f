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

import inspect
import types
from importlib.metadata import PackageNotFoundError, version

from dmtwatch import api as _api
from dmtwatch.api import (
    Audit,
    Clinic,
    Evidence,
    Finding,
    Signals,
    Worklist,
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


class _CallableAuditPackage(types.ModuleType):
    """`dmtwatch.audit` names two things: the package of the outcomes audit
    (`dmtwatch.audit.run`, ...) and the API function `dmtwatch.api.audit`. Python sets a
    package's attribute to its subpackage on import, so a plain function of that name
    would be replaced by the package as soon as anything imported `dmtwatch.audit.*`.
    Instead the package itself is callable and runs the function: the name means the
    same whatever was imported first."""

    def __call__(self, *args, **kwargs) -> Audit:
        return _api.audit(*args, **kwargs)


from dmtwatch import audit  # noqa: E402 (the package, after the names above)

audit.__class__ = _CallableAuditPackage
audit.__signature__ = inspect.signature(_api.audit)  # type: ignore[attr-defined]

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
