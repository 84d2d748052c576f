"""Synthetic patients as FHIR R4 resources, written by hand the way the profile reads them.

Independent of the FHIR writer on purpose: the CDS tests then check the reader, the
engine and the cards against resources an EHR could send, not against our own output.
Dates are relative to a given day so the service can evaluate "today".
"""

from __future__ import annotations

import datetime as dt

from dmtwatch.fhir import codes
from dmtwatch.model.lab_catalogue import lab_catalogue

# Normal values in each test's canonical unit, and the tests the alemtuzumab schedule asks
# for (cbc, creatinine, urinalysis, tsh, liver).
NORMAL = {
    "leukocytes": 6.0,
    "lymphocytes": 1.6,
    "neutrophils": 3.5,
    "platelets": 250.0,
    "creatinine": 70.0,
    "urine_rbc": 1.0,
    "tsh": 1.5,
    "alt": 20.0,
    "ast": 22.0,
    "bilirubin": 9.0,
}


def _ref(pid: str) -> dict:
    return {"reference": f"Patient/{pid}"}


def _concept(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1985-04-02"}


def ms(pid: str, onset: dt.date) -> dict:
    return {
        "resourceType": "Condition",
        "id": f"{pid}-ms",
        "clinicalStatus": _concept(codes.CONDITION_CLINICAL, "active", "Active"),
        "code": _concept(codes.SNOMED, "426373005", "Relapsing remitting multiple sclerosis"),
        "subject": _ref(pid),
        "onsetDateTime": onset.isoformat(),
    }


def alemtuzumab_course(pid: str, start: dt.date, days: int = 5) -> dict:
    return {
        "resourceType": "MedicationAdministration",
        "id": f"{pid}-lem-{start.isoformat()}",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [
                {"system": codes.RXNORM, "code": "117055", "display": "alemtuzumab"},
            ],
            "text": "alemtuzumab",
        },
        "subject": _ref(pid),
        "effectivePeriod": {
            "start": start.isoformat(),
            "end": (start + dt.timedelta(days=days - 1)).isoformat(),
        },
        "dosage": {"dose": {"value": 12, "unit": "mg", "system": codes.UCUM, "code": "mg"}},
    }


def lab(pid: str, test: str, day: dt.date, value: float | None = None) -> dict:
    spec = lab_catalogue().tests[test]
    unit = spec.unit
    quantity = {"value": NORMAL[test] if value is None else value, "unit": unit}
    quantity |= {"system": codes.UCUM, "code": unit}
    out = {
        "resourceType": "Observation",
        "id": f"{pid}-{test}-{day.isoformat()}",
        "status": "final",
        "code": _concept(codes.LOINC, spec.loinc[0], spec.name),
        "subject": _ref(pid),
        "effectiveDateTime": day.isoformat(),
        "valueQuantity": quantity,
    }
    limits = {
        end: {"value": value, "unit": unit, "system": codes.UCUM, "code": unit}
        for end, value in (("low", spec.ref_low), ("high", spec.ref_high))
        if value is not None
    }
    if limits:
        out["referenceRange"] = [limits]
    return out


def relapse(pid: str, onset: dt.date) -> dict:
    return {
        "resourceType": "Condition",
        "id": f"{pid}-relapse-{onset.isoformat()}",
        "verificationStatus": _concept(codes.CONDITION_VERIFICATION, "confirmed", "Confirmed"),
        "code": _concept(
            codes.SNOMED, codes.RELAPSE_CONDITION, "Exacerbation of multiple sclerosis"
        ),
        "subject": _ref(pid),
        "onsetDateTime": onset.isoformat(),
    }


def monthly_labs(pid: str, first: dt.date, last: dt.date, tests=NORMAL) -> list[dict]:
    """Every test every 30 days from `first` to `last` (both ends included)."""
    out, day = [], first
    while day <= last:
        out += [lab(pid, t, day) for t in tests]
        day += dt.timedelta(days=30)
    if day - dt.timedelta(days=30) != last:
        out += [lab(pid, t, last) for t in tests]
    return out


def monitored(pid: str, today: dt.date, course_days_ago: int = 200) -> list[dict]:
    """An alemtuzumab course with baseline (urine protein:creatinine ratio included) and
    monthly labs up to date: nothing to say."""
    start = today - dt.timedelta(days=course_days_ago)
    return [
        patient(pid),
        ms(pid, start - dt.timedelta(days=3 * 365)),
        alemtuzumab_course(pid, start),
        lab(pid, "upcr", start - dt.timedelta(days=10), 8.0),  # the baseline-only ratio
        *monthly_labs(pid, start - dt.timedelta(days=10), today - dt.timedelta(days=5)),
    ]


def relapse_without_mri(pid: str, today: dt.date) -> list[dict]:
    """The 2017 picture: a confirmed relapse in the B-cell repopulation window, no MRI."""
    return [*monitored(pid, today), relapse(pid, today - dt.timedelta(days=12))]


def searchset(resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def prefetch(resources: list[dict]) -> dict:
    """The service's prefetch keys filled as an EHR would: the Patient, then searchsets."""
    from dmtwatch.cds.patient_data import PREFETCH

    by_type: dict[str, list[dict]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    out: dict = {}
    for key, template in PREFETCH.items():
        kind = template.split("?")[0].split("/")[0]
        if kind == "Patient":
            out[key] = by_type["Patient"][0]
        else:
            found = by_type.get(kind, [])
            out[key] = searchset(found) if found else None
    return out
