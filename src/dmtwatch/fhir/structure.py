"""The part of FHIR R4 that dmtwatch reads, as one DuckDB JSON structure.

Every resource, of whatever type, is parsed into this one struct by DuckDB's `from_json`
in C++ (no Python object per resource): elements the profile does not use are not
parsed at all, elements of another resource type are NULL. Leaves are text; the
validator parses them, so a malformed value is reported, not silently lost.
"""

from __future__ import annotations

import json

from dmtwatch.duck import sql_literal

_T = "VARCHAR"
_CODINGS = [{"system": _T, "code": _T, "display": _T}]
_CONCEPT = {"coding": _CODINGS, "text": _T}
_QUANTITY = {"value": _T, "unit": _T, "system": _T, "code": _T}
_PERIOD = {"start": _T, "end": _T}
_REFERENCE = {"reference": _T}

RESOURCE = {
    "resourceType": _T,
    "id": _T,
    "status": _T,
    "subject": _REFERENCE,
    "patient": _REFERENCE,  # R5 MedicationStatement/AdverseEvent shapes, to tell R5 apart
    # Patient
    "gender": _T,
    "birthDate": _T,
    "identifier": [{"system": _T, "value": _T}],
    # Condition
    "code": _CONCEPT,
    "onsetDateTime": _T,
    "onsetPeriod": _PERIOD,
    "recordedDate": _T,
    "verificationStatus": _CONCEPT,
    "severity": _CONCEPT,
    # MedicationAdministration, MedicationStatement
    "medicationCodeableConcept": _CONCEPT,
    "medicationReference": _REFERENCE,
    "medication": "JSON",  # R5: CodeableReference; present only in R5-shaped resources
    "effectiveDateTime": _T,
    "effectivePeriod": _PERIOD,
    "dosage": "JSON",  # an object in MedicationAdministration, a list in MedicationStatement
    "statusReason": "JSON",  # a concept in MedicationAdministration, a list in ...Statement
    # Procedure
    "performedDateTime": _T,
    "performedPeriod": _PERIOD,
    # Observation
    "valueQuantity": _QUANTITY,
    "valueString": _T,
    "valueCodeableConcept": _CONCEPT,
    "valueInteger": _T,
    "valueBoolean": _T,
    "referenceRange": [{"low": _QUANTITY, "high": _QUANTITY}],
    "bodySite": _CONCEPT,
    "component": [
        {"code": _CONCEPT, "valueBoolean": _T, "valueInteger": _T, "valueQuantity": _QUANTITY}
    ],
    # AdverseEvent
    "actuality": _T,
    "event": _CONCEPT,
    "date": _T,
    "seriousness": _CONCEPT,
    "outcome": "JSON",  # a concept in R4, a list in R5
    "extension": [{"url": _T, "valueInteger": _T, "valueDate": _T}],
}

# Dosage shapes, parsed from the JSON kept above once we know the resource type.
ADMINISTRATION_DOSAGE = json.dumps({"dose": _QUANTITY})
STATEMENT_DOSAGE = json.dumps([{"doseAndRate": [{"doseQuantity": _QUANTITY}]}])
STATEMENT_REASON = json.dumps([_CONCEPT])
CONCEPT = json.dumps(_CONCEPT)


def structure() -> str:
    """The structure argument of DuckDB's from_json."""
    return json.dumps(RESOURCE)


def sql_type(node: object = RESOURCE) -> str:
    """The same structure as a DuckDB type (what from_json returns for it)."""
    if isinstance(node, dict):
        return "STRUCT(" + ", ".join(f'"{k}" {sql_type(v)}' for k, v in node.items()) + ")"
    if isinstance(node, list):
        return sql_type(node[0]) + "[]"
    return str(node)


def ndjson_columns() -> str:
    """The `columns` argument of DuckDB's read_ndjson: the typed fast path for NDJSON."""
    pairs = (f"{sql_literal(k)}: {sql_literal(sql_type(v))}" for k, v in RESOURCE.items())
    return "{" + ", ".join(pairs) + "}"


def presence_signature(alias: str) -> str:
    """SQL hashing which top-level elements a parsed resource has: its shape, as far as
    the typed fast path can see (elements outside RESOURCE are not parsed there)."""
    bits = " + ".join(
        f'CASE WHEN {alias}."{k}" IS NULL THEN 0 ELSE {1 << i} END' for i, k in enumerate(RESOURCE)
    )
    return f"hash({alias}.resourceType, {bits})"
