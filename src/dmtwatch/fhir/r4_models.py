"""Full FHIR R4 model checks (fhir.resources' R4B package) for the resource types we map.

Pinned to R4B explicitly: fhir.resources' default package is R5, which would accept an
R5 MedicationStatement and read nothing from it. A pydantic object costs 0.2-0.5 ms, so
the reader checks one resource per distinct shape (read.py), not each of 2M Observations.
"""

from __future__ import annotations

import importlib
from functools import cache

import orjson
from pydantic import ValidationError

from dmtwatch.io.problems import Problem, element_problem

MODEL_CHECKED = (
    "Patient",
    "Observation",
    "Condition",
    "MedicationAdministration",
    "MedicationStatement",
    "Procedure",
    "AdverseEvent",
)

# Elements that exist in R5 but not in R4: finding one means an R5 resource was sent.
R5_ONLY = {
    "MedicationStatement": {"medication", "adherence", "renderedDosageInstruction"},
    "MedicationAdministration": {"medication", "occurenceDateTime", "occurencePeriod"},
    "AdverseEvent": {"code", "patient", "occurrenceDateTime", "participant"},
    "Condition": {"participant"},
    "Procedure": {"occurrenceDateTime", "occurrencePeriod", "reported"},
}


@cache
def _model(resource_type: str):
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def check(rows: list[tuple[str, str, str]]) -> list[Problem]:
    """Problems of (resource type, reference, JSON text) rows against the R4 models."""
    problems: list[Problem] = []
    for rtype, ref, text in rows:
        try:
            _model(rtype).model_validate(_without_nulls(orjson.loads(text)))
        except ValidationError as e:
            problems += [_problem(rtype, ref, err) for err in e.errors()]
    return problems


def _without_nulls(value: object) -> object:
    """A resource as parsed on the fast path has every known element, most of them null."""
    if isinstance(value, dict):
        kept = {k: _without_nulls(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _problem(rtype: str, ref: str, err: dict) -> Problem:
    element = ".".join(str(x) for x in err.get("loc", ()) if x != "__root__") or None
    value = err.get("input")
    shown = None if isinstance(value, dict | list) or value is None else str(value)[:80]
    top = str(err.get("loc", ("",))[0])
    if err.get("type") == "extra_forbidden" and top in R5_ONLY.get(rtype, set()):
        reason = (
            f"is an element of FHIR R5, not R4: dmtwatch reads FHIR R4 "
            f"(this {rtype} looks like R5; send it as R4)"
        )
    elif err.get("type") == "extra_forbidden":
        reason = f"is not an element of the R4 {rtype}"
    else:
        reason = f"is not valid R4 ({err.get('msg', 'invalid')})"
    return element_problem(ref, element, shown, reason)
