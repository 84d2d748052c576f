"""One canonical row -> one FHIR R4 resource, as the profile (`spec/fhir-profile.md`) maps it.

Rows arrive as dicts with dates already ISO text (the writer converts whole columns in
Arrow, which is cheaper than per-row `isoformat`). Every element written is one the
reader maps back, so the resources are a lossless image of the canonical tables; absent
values are omitted, never written as placeholders.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from dmtwatch.fhir import codes
from dmtwatch.model.lab_catalogue import lab_catalogue

Row = dict
Resource = dict
Builder = Callable[[Row, str], Resource | None]

MS_TYPE_DISPLAY = {
    "CIS": "Clinically isolated syndrome",
    "RRMS": "Relapsing remitting multiple sclerosis",
    "SPMS": "Secondary progressive multiple sclerosis",
    "PPMS": "Primary progressive multiple sclerosis",
}
REGION_DISPLAY = {"brain": "Brain structure", "spine": "Spinal cord structure"}
SEVERITY_DISPLAY = {"mild": "Mild", "moderate": "Moderate", "severe": "Severe"}
MRI_DISPLAY = {
    "contrast": "Gadolinium contrast given",
    "new-t2": "New or enlarging T2 lesions",
    "gd-enhancing": "Gadolinium-enhancing lesions",
    "ring-enhancing": "Ring- or open-ring-enhancing lesions",
}


def subject(patient_id: str) -> dict:
    return {"reference": f"Patient/{patient_id}"}


def coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display is not None:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict:
    return {"coding": [coding(system, code, display)]}


def quantity(value: float | None, unit: str | None) -> dict:
    """A UCUM quantity; either part may be absent (a dose without a unit stays one)."""
    out: dict = {}
    if value is not None:
        out["value"] = value
    if unit is not None:
        out |= {"unit": unit, "system": codes.UCUM, "code": unit}
    return out


def period(start: str | None, end: str | None) -> dict:
    out = {"start": start} if start is not None else {}
    if end is not None:
        out["end"] = end
    return out


@cache
def category(code: str) -> list[dict]:
    """Shared by every resource of its kind (the writer never mutates a resource)."""
    return [concept(codes.OBSERVATION_CATEGORY, code)]


# --- patients ---------------------------------------------------------------------------


def patient(row: Row, rid: str) -> Resource:
    """Patient.id is the patient_id itself: every other resource refers to it by it."""
    out: Resource = {"resourceType": "Patient", "id": row["patient_id"]}
    if row["sex"] is not None:
        out["gender"] = codes.SEX_TO_GENDER[row["sex"]]
    if row["birth_date"] is not None:
        out["birthDate"] = row["birth_date"]  # YYYY, YYYY-MM or a full date, as given
    return out


def ms_condition(row: Row, rid: str) -> Resource | None:
    """MS (or CIS) with its subtype and onset; none when neither is known."""
    ms_type, onset = row["ms_type"], row["ms_onset_date"]
    if ms_type is None and onset is None:
        return None
    if ms_type is None:
        code = concept(codes.SNOMED, codes.MS_CONDITION, "Multiple sclerosis")
    elif ms_type == "CIS":
        code = concept(codes.MS_TYPE_SYSTEM, "CIS", MS_TYPE_DISPLAY["CIS"])
    else:
        code = concept(codes.SNOMED, codes.MS_TYPE_TO_SNOMED[ms_type], MS_TYPE_DISPLAY[ms_type])
    out: Resource = {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": concept(codes.CONDITION_CLINICAL, "active"),
        "code": code,
        "subject": subject(row["patient_id"]),
    }
    if onset is not None:
        out["onsetDateTime"] = onset
    return out


# --- relapses ---------------------------------------------------------------------------


def relapse(row: Row, rid: str) -> Resource:
    out: Resource = {"resourceType": "Condition", "id": rid}
    if row["confirmed"] is not None:
        status = "confirmed" if row["confirmed"] else "unconfirmed"
        out["verificationStatus"] = concept(codes.CONDITION_VERIFICATION, status)
    if row["severity"] is not None:
        sev = row["severity"]
        out["severity"] = concept(
            codes.SNOMED, codes.SEVERITY_TO_SNOMED[sev], SEVERITY_DISPLAY[sev]
        )
    out["code"] = concept(
        codes.SNOMED, codes.RELAPSE_CONDITION, "Exacerbation of multiple sclerosis"
    )
    out["subject"] = subject(row["patient_id"])
    out["onsetDateTime"] = row["onset_date"]
    return out


# --- treatments -------------------------------------------------------------------------


@cache
def medication(drug: str) -> tuple[tuple[str, str], ...]:
    """(system, code) pairs: RxNorm and the current ATC code where known, then ours."""
    pairs = []
    if drug in codes.DRUG_TO_RXNORM:
        pairs.append((codes.RXNORM, codes.DRUG_TO_RXNORM[drug]))
    if drug in codes.DRUG_TO_ATC:
        pairs.append((codes.ATC, codes.DRUG_TO_ATC[drug]))
    pairs.append((codes.DRUG_SYSTEM, drug))
    return tuple(pairs)


def drug_concept(drug: str) -> dict:
    text = drug.replace("_", " ")
    return {"coding": [coding(s, c, text) for s, c in medication(drug)], "text": text}


def stop_reason(reason: str) -> dict:
    return concept(codes.STOP_REASON_SYSTEM, reason, reason.replace("_", " "))


def treatment(row: Row, rid: str) -> Resource:
    """Procedure, MedicationAdministration or MedicationStatement, by drug and stop reason.

    A stop reason needs MedicationStatement.statusReason, so an administered drug with one
    is written as a statement: the reason survives the trip.
    """
    drug = row["drug"]
    if drug in codes.PROCEDURE_DRUGS:
        return _procedure(row, rid)
    if drug in codes.ADMINISTERED_DRUGS and row["stop_reason"] is None:
        return _administration(row, rid)
    return _statement(row, rid)


def _status(row: Row, done: str, ongoing: str) -> str:
    if row["stop_reason"] is not None:
        return "stopped"
    return done if row["end_date"] is not None else ongoing


def _procedure(row: Row, rid: str) -> Resource:
    out: Resource = {
        "resourceType": "Procedure",
        "id": rid,
        "status": _status(row, "completed", "in-progress"),
        "code": concept(codes.DRUG_SYSTEM, row["drug"], row["drug"].replace("_", " ")),
        "subject": subject(row["patient_id"]),
        "performedPeriod": period(row["start_date"], row["end_date"]),
    }
    if row["stop_reason"] is not None:
        out["statusReason"] = stop_reason(row["stop_reason"])
    return out


def _administration(row: Row, rid: str) -> Resource:
    """One administration per canonical row: a whole course is one period."""
    out: Resource = {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": "completed" if row["end_date"] is not None else "in-progress",
        "medicationCodeableConcept": drug_concept(row["drug"]),
        "subject": subject(row["patient_id"]),
        "effectivePeriod": period(row["start_date"], row["end_date"]),
    }
    if row["dose"] is not None or row["dose_unit"] is not None:
        out["dosage"] = {"dose": quantity(row["dose"], row["dose_unit"])}
    return out


def _statement(row: Row, rid: str) -> Resource:
    out: Resource = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": _status(row, "completed", "active"),
        "medicationCodeableConcept": drug_concept(row["drug"]),
        "subject": subject(row["patient_id"]),
        "effectivePeriod": period(row["start_date"], row["end_date"]),
    }
    if row["stop_reason"] is not None:
        out["statusReason"] = [stop_reason(row["stop_reason"])]
    if row["dose"] is not None or row["dose_unit"] is not None:
        dose = quantity(row["dose"], row["dose_unit"])
        out["dosage"] = [{"doseAndRate": [{"doseQuantity": dose}]}]
    return out


# --- labs, MRI, EDSS --------------------------------------------------------------------


@cache
def lab_code(test: str) -> dict:
    """The test's preferred LOINC code, else our lab code; shared by its resources."""
    spec = lab_catalogue().tests[test]
    system, code = (codes.LOINC, spec.loinc[0]) if spec.loinc else (codes.LAB_SYSTEM, test)
    return {"coding": [coding(system, code, spec.name)], "text": test}


def _observation(row: Row, rid: str, kind: str, code: dict) -> Resource:
    """What every Observation we write has: final, its category and code, patient, date."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": category(kind),
        "code": code,
        "subject": subject(row["patient_id"]),
        "effectiveDateTime": row["date"],
    }


def lab(row: Row, rid: str) -> Resource:
    out = _observation(row, rid, "laboratory", lab_code(row["test"]))
    unit = row["unit"]
    if row["value"] is not None:
        out["valueQuantity"] = quantity(row["value"], unit)
    elif row["value_text"] is not None:
        out["valueString"] = row["value_text"]
    low, high = row["ref_low"], row["ref_high"]
    if low is not None or high is not None:
        limits = {}
        if low is not None:
            limits["low"] = quantity(low, unit)
        if high is not None:
            limits["high"] = quantity(high, unit)
        out["referenceRange"] = [limits]
    return out


def _component(code: str, key: str, value: object) -> dict:
    return {"code": concept(codes.OBSERVATION_SYSTEM, code, MRI_DISPLAY[code]), key: value}


def mri(row: Row, rid: str) -> Resource:
    code = concept(codes.OBSERVATION_SYSTEM, codes.MRI_CODE, "MRI lesion counts")
    out = _observation(row, rid, "imaging", code)
    if row["region"] is not None:
        region = row["region"]
        out["bodySite"] = concept(
            codes.SNOMED, codes.REGION_TO_SNOMED[region], REGION_DISPLAY[region]
        )
    components = []
    for code, column in codes.MRI_COMPONENTS.items():
        value = row[column]
        if value is not None:
            key = "valueBoolean" if column == "contrast" else "valueInteger"
            components.append(_component(code, key, value))
    if components:
        out["component"] = components
    return out


def edss(row: Row, rid: str) -> Resource:
    code = concept(codes.OBSERVATION_SYSTEM, codes.EDSS_CODE, "Expanded Disability Status Scale")
    return _observation(row, rid, "exam", code) | {"valueQuantity": {"value": row["score"]}}


# --- adverse events ---------------------------------------------------------------------


def adverse_event(row: Row, rid: str) -> Resource:
    """Grade and resolution date have no R4 element: they travel as our extensions."""
    out: Resource = {"resourceType": "AdverseEvent", "id": rid}
    extensions = []
    if row["grade"] is not None:
        extensions.append({"url": codes.AE_GRADE_EXTENSION, "valueInteger": row["grade"]})
    if row["resolution_date"] is not None:
        extensions.append(
            {"url": codes.AE_RESOLUTION_EXTENSION, "valueDate": row["resolution_date"]}
        )
    if extensions:
        out["extension"] = extensions
    out |= {
        "actuality": "actual",
        "event": {
            "coding": [coding(codes.AE_CATEGORY_SYSTEM, row["category"])],
            "text": row["term"],
        },
        "subject": subject(row["patient_id"]),
        "date": row["onset_date"],
    }
    if row["serious"] is not None:
        code = "serious" if row["serious"] else "non-serious"
        out["seriousness"] = concept(codes.AE_SERIOUSNESS, code)
    if row["outcome"] is not None:
        out["outcome"] = concept(codes.AE_OUTCOME, codes.CANONICAL_TO_AE_OUTCOME[row["outcome"]])
    return out
