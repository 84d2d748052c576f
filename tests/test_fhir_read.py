"""The FHIR R4 reader: the profile's mapping, its checks, and its messages.

Resources are written by hand here (the profile is the contract, not our writer), as
Bundles and as Bulk Data NDJSON files; the vignettes' FHIR form is checked against
their CSV form through the whole pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pytest

from dmtwatch.engine.run import run_check
from dmtwatch.fhir import codes as c
from dmtwatch.fhir.read import read_fhir, read_fhir_resources
from dmtwatch.io import InputRejected, read_clinic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-r4"
VIGNETTES = Path(__file__).parent / "vignettes"


def patient(pid: str = "P1", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": "female",
        "birthDate": "1980-04",
    } | extra


def subject(pid: str = "P1") -> dict:
    return {"reference": f"Patient/{pid}"}


def lab(
    rid: str, code: str, value: float | None, unit: str | None, date: str = "2015-01-10", **extra
) -> dict:
    quantity = {"value": value, "system": c.UCUM}
    if unit is not None:
        quantity["code"] = unit
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": c.LOINC, "code": code}]},
        "subject": subject(),
        "effectiveDateTime": date,
        "valueQuantity": quantity,
    } | extra


def alemtuzumab(rid: str, start: str, end: str | None = None, status: str = "completed") -> dict:
    when = (
        {"effectivePeriod": {"start": start, "end": end}} if end else {"effectiveDateTime": start}
    )
    return {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": status,
        "medicationCodeableConcept": {"coding": [{"system": c.RXNORM, "code": "117055"}]},
        "subject": subject(),
        "dosage": {"dose": {"value": 12, "unit": "mg", "system": c.UCUM, "code": "mg"}},
    } | when


def relapse(
    rid: str, onset: str, verification: str | None = "confirmed", severity: str | None = None
) -> dict:
    r = {
        "resourceType": "Condition",
        "id": rid,
        "code": {"coding": [{"system": c.SNOMED, "code": c.RELAPSE_CONDITION}]},
        "subject": subject(),
        "onsetDateTime": onset,
    }
    if verification:
        r["verificationStatus"] = {
            "coding": [{"system": c.CONDITION_VERIFICATION, "code": verification}]
        }
    if severity:
        r["severity"] = {"coding": [{"system": c.SNOMED, "code": severity}]}
    return r


def rejected(resources: list[dict]) -> list[str]:
    with pytest.raises(InputRejected) as e:
        read_fhir_resources(resources)
    return [str(p) for p in e.value.problems]


# --- the mapping -------------------------------------------------------------------------


def test_patient_and_ms_condition() -> None:
    ms = {
        "resourceType": "Condition",
        "id": "ms1",
        "code": {"coding": [{"system": c.SNOMED, "code": "426373005"}]},
        "subject": subject(),
        "onsetDateTime": "2009-06-01",
    }
    spms = ms | {
        "id": "ms2",
        "code": {"coding": [{"system": c.SNOMED, "code": "425500002"}]},
        "onsetDateTime": "2016-02-01",
    }
    data = read_fhir_resources([patient(gender="male"), ms, spms])
    row = data.dataset["patients"].to_pylist()[0]
    # the latest subtype is the current one; the onset of MS is the earliest onset
    assert row == {
        "patient_id": "P1",
        "sex": "M",
        "birth_date": "1980-04",
        "ms_type": "SPMS",
        "ms_onset_date": dt.date(2009, 6, 1),
    }


@pytest.mark.parametrize(
    ("verification", "confirmed"),
    [
        ("confirmed", True),
        ("unconfirmed", False),
        ("provisional", False),
        ("differential", False),
        (None, True),
    ],
)
def test_relapse_verification(verification: str | None, confirmed: bool) -> None:
    data = read_fhir_resources([patient(), relapse("r1", "2016-03-04", verification, "6736007")])
    rows = data.dataset["relapses"].to_pylist()
    assert rows == [
        {
            "patient_id": "P1",
            "onset_date": dt.date(2016, 3, 4),
            "confirmed": confirmed,
            "severity": "moderate",
        }
    ]


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_relapse_is_skipped_and_reported(verification: str) -> None:
    data = read_fhir_resources([patient(), relapse("r1", "2016-03-04", verification)])
    assert data.dataset["relapses"].num_rows == 0
    assert any("Condition/r1" in str(w) and "skipped" in str(w) for w in data.warnings)


def test_daily_alemtuzumab_administrations_merge_into_numbered_courses() -> None:
    days = [alemtuzumab(f"a{i}", f"2015-03-0{i}") for i in range(2, 7)]  # 5 consecutive days
    second = [alemtuzumab(f"b{i}", f"2016-03-0{i}") for i in range(2, 5)]  # 3 days a year on
    gap = [alemtuzumab("c1", "2016-03-06")]  # two days after the last: a new course
    data = read_fhir_resources([patient(), *days, *second, *gap])
    rows = data.dataset["treatments"].sort_by("start_date").to_pylist()
    assert [(r["start_date"], r["end_date"], r["course"], r["dose"]) for r in rows] == [
        (dt.date(2015, 3, 2), dt.date(2015, 3, 6), 1, 12.0),
        (dt.date(2016, 3, 2), dt.date(2016, 3, 4), 2, 12.0),
        (dt.date(2016, 3, 6), dt.date(2016, 3, 6), 3, 12.0),
    ]
    # every administration stays traceable to its course
    prov = [p for p in data.provenance.to_pylist() if p["table"] == "treatments"]
    assert {p["drug"] for p in prov} == {"alemtuzumab"}
    assert sorted(p["ref"] for p in prov if p["date"] == dt.date(2015, 3, 2)) == [
        f"MedicationAdministration/a{i}" for i in range(2, 7)
    ]


def test_not_done_administration_is_skipped() -> None:
    data = read_fhir_resources([patient(), alemtuzumab("a1", "2015-03-02", status="not-done")])
    assert data.dataset["treatments"].num_rows == 0
    assert any(
        "MedicationAdministration/a1" in str(w) and "not-done" in str(w) for w in data.warnings
    )


def test_statement_with_atc_code_and_stop_reason() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "stopped",
        "medicationCodeableConcept": {
            "coding": [{"system": c.ATC, "code": "L04AA23"}]
        },  # previous ATC
        "subject": subject(),
        "effectivePeriod": {"start": "2011-01-07", "end": "2013-02-10"},
        "statusReason": [{"coding": [{"system": c.STOP_REASON_SYSTEM, "code": "pml_risk"}]}],
        "dosage": [{"doseAndRate": [{"doseQuantity": {"value": 300, "unit": "mg", "code": "mg"}}]}],
    }
    row = read_fhir_resources([patient(), statement]).dataset["treatments"].to_pylist()[0]
    assert (row["drug"], row["stop_reason"], row["dose"], row["dose_unit"]) == (
        "natalizumab",
        "pml_risk",
        300.0,
        "mg",
    )
    assert row["end_date"] == dt.date(2013, 2, 10) and row["course"] is None


def test_lab_units_convert_and_local_date_is_kept() -> None:
    # 450 cells/uL is 0.45 10*9/L; the date is the one recorded, not shifted to UTC
    obs = lab("o1", "731-0", 450, "/uL", date="2015-01-10T23:30:00-05:00")
    obs["referenceRange"] = [{"low": {"value": 1000}, "high": {"value": 4000}}]  # in /uL too
    row = read_fhir_resources([patient(), obs]).dataset["labs"].to_pylist()[0]
    assert row["test"] == "lymphocytes" and row["date"] == dt.date(2015, 1, 10)
    assert row["value"] == pytest.approx(0.45) and (row["ref_low"], row["ref_high"]) == (1.0, 4.0)


@pytest.mark.parametrize(
    ("value", "unit", "reported"),
    [(0.97, "mg/dL", "0.97"), (150, "umol/L", "150"), (85.5, "umol/L", "85.5")],
)
def test_lab_value_and_unit_as_reported_are_kept(value: float, unit: str, reported: str) -> None:
    """Contract v1.1: the value and unit as sent, beside the canonical ones."""
    row = read_fhir_resources([patient(), lab("o1", "2160-0", value, unit)]).dataset["labs"]
    row = row.to_pylist()[0]
    assert row["value"] == pytest.approx(value * (88.42 if unit == "mg/dL" else 1))
    assert row["unit"] == "umol/L"
    assert (row["value_reported"], row["unit_reported"]) == (reported, unit)


def test_mri_and_edss_observations() -> None:
    def component(code: str, **value) -> dict:
        return {"code": {"coding": [{"system": c.OBSERVATION_SYSTEM, "code": code}]}, **value}

    mri = {
        "resourceType": "Observation",
        "id": "m1",
        "status": "final",
        "code": {"coding": [{"system": c.OBSERVATION_SYSTEM, "code": c.MRI_CODE}]},
        "subject": subject(),
        "effectiveDateTime": "2015-09-03",
        "bodySite": {"coding": [{"system": c.SNOMED, "code": "2748008"}]},
        "component": [
            component("contrast", valueBoolean=True),
            component("gd-enhancing", valueInteger=3),
            component("ring-enhancing", valueInteger=2),
        ],
    }
    edss = {
        "resourceType": "Observation",
        "id": "e1",
        "status": "final",
        "code": {"coding": [{"system": c.OBSERVATION_SYSTEM, "code": c.EDSS_CODE}]},
        "subject": subject(),
        "effectiveDateTime": "2015-09-03",
        "valueQuantity": {"value": 3.5},
    }
    data = read_fhir_resources([patient(), mri, edss])
    assert data.dataset["mri"].to_pylist() == [
        {
            "patient_id": "P1",
            "date": dt.date(2015, 9, 3),
            "region": "spine",
            "contrast": True,
            "new_t2": None,
            "gd_enhancing": 3,
            "ring_enhancing": 2,
        }
    ]
    assert data.dataset["edss"]["score"].to_pylist() == [3.5]


def test_adverse_event() -> None:
    ae = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": subject(),
        "date": "2016-05-01",
        "event": {
            "coding": [{"system": c.AE_CATEGORY_SYSTEM, "code": "infection"}],
            "text": "Herpes zoster",
        },
        "seriousness": {"coding": [{"system": c.AE_SERIOUSNESS, "code": "serious"}]},
        "outcome": {"coding": [{"system": c.AE_OUTCOME, "code": "resolvedWithSequelae"}]},
    }
    row = read_fhir_resources([patient(), ae]).dataset["adverse_events"].to_pylist()[0]
    assert (row["term"], row["category"], row["serious"], row["outcome"]) == (
        "Herpes zoster",
        "infection",
        True,
        "recovered",
    )


def test_references_by_full_url_identifier_and_absolute_url(tmp_path: Path) -> None:
    p = patient(identifier=[{"system": "urn:clinic", "value": "MRN7"}])
    entries = [
        {"fullUrl": "urn:uuid:1111", "resource": p},
        {
            "resource": lab("o1", "731-0", 1.2, "10*9/L")
            | {"subject": {"reference": "urn:uuid:1111"}}
        },
        {
            "resource": lab("o2", "731-0", 1.3, "10*9/L", date="2015-02-10")
            | {"subject": {"reference": "Patient?identifier=urn:clinic|MRN7"}}
        },
        {
            "resource": lab("o3", "731-0", 1.4, "10*9/L", date="2015-03-10")
            | {"subject": {"reference": "https://ehr.example/fhir/Patient/P1/_history/3"}}
        },
    ]
    bundle = tmp_path / "b.json"
    bundle.write_bytes(
        orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    )
    labs = read_fhir(bundle).dataset["labs"]
    assert labs["patient_id"].to_pylist() == ["P1"] * 3


def test_ndjson_folder_equals_bundle(tmp_path: Path) -> None:
    resources = [
        patient(),
        lab("o1", "731-0", 0.8, "10*9/L"),
        alemtuzumab("a1", "2015-03-02", "2015-03-06"),
    ]
    folder = tmp_path / "export"
    folder.mkdir()
    for kind in ("Patient", "Observation", "MedicationAdministration"):
        lines = [orjson.dumps(r) for r in resources if r["resourceType"] == kind]
        (folder / f"{kind}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    mixed = tmp_path / "mixed.ndjson"  # one file of every type: the general path
    mixed.write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")
    a = read_fhir(folder).dataset
    b = read_fhir(mixed).dataset
    c_ = read_fhir_resources(resources).dataset
    for name in a.tables:
        assert a[name].equals(b[name]) and a[name].equals(c_[name]), name


# --- problems, named by resource and element ------------------------------------------------


def test_broken_reference_is_rejected_naming_the_resource() -> None:
    obs = lab("o9", "731-0", 1.0, "10*9/L") | {"subject": {"reference": "Patient/NOBODY"}}
    problems = rejected([patient(), obs])
    assert any(
        "Observation/o9" in p and "subject.reference" in p and "Patient/NOBODY" in p
        for p in problems
    ), problems


def test_patient_without_id_and_resource_without_subject() -> None:
    nameless = {k: v for k, v in patient().items() if k != "id"}
    orphan = {k: v for k, v in lab("o3", "731-0", 1.0, "10*9/L").items() if k != "subject"}
    problems = rejected([patient(), nameless, orphan])
    assert any("element id" in p and "needs an id" in p for p in problems), problems
    assert any(
        "Observation/o3, element subject" in p and "names its patient" in p for p in problems
    )


def test_missing_ucum_unit_is_rejected_naming_the_resource() -> None:
    problems = rejected([patient(), lab("o7", "731-0", 1.0, None)])
    assert any("Observation/o7" in p and "valueQuantity" in p for p in problems), problems


def test_unknown_unit_is_rejected_with_element() -> None:
    problems = rejected([patient(), lab("o8", "731-0", 1.0, "furlongs")])
    assert any("Observation/o8, element valueQuantity.code: 'furlongs'" in p for p in problems), (
        problems
    )


def test_unknown_loinc_code_is_reported_with_the_resource() -> None:
    data = read_fhir_resources([patient(), lab("o1", "8302-2", 170, "cm")])
    assert data.dataset["labs"].num_rows == 0
    hits = [str(w) for w in data.warnings if "8302-2" in str(w)]
    assert hits and "Observation/o1" in hits[0] and "not used" in hits[0]


def test_r5_medication_statement_is_rejected_as_r5() -> None:
    r5 = {
        "resourceType": "MedicationStatement",
        "id": "ms5",
        "status": "recorded",
        "medication": {"concept": {"coding": [{"system": c.RXNORM, "code": "117055"}]}},
        "subject": subject(),
        "effectivePeriod": {"start": "2015-03-02"},
    }
    problems = rejected([patient(), r5])
    assert any("MedicationStatement/ms5" in p and "R5" in p and "R4" in p for p in problems), (
        problems
    )


def test_partial_or_invalid_dates_are_rejected_not_guessed() -> None:
    problems = rejected(
        [
            patient(),
            lab("o1", "731-0", 1.0, "10*9/L", date="2015-01"),
            lab("o2", "731-0", 1.0, "10*9/L", date="2015-02-30"),
        ]
    )
    assert any("Observation/o1, element effectiveDateTime: '2015-01'" in p for p in problems), (
        problems
    )
    assert any("Observation/o2, element effectiveDateTime: '2015-02-30'" in p for p in problems), (
        problems
    )


def test_every_problem_at_once() -> None:
    problems = rejected(
        [
            patient(gender="dragon"),
            lab("o1", "731-0", 1.0, "furlongs"),
            lab("o2", "731-0", 1.0, "10*9/L") | {"subject": {"reference": "Patient/X"}},
        ]
    )
    assert len(problems) >= 3
    assert any("Patient/P1, element gender: 'dragon'" in p for p in problems), problems


def test_malformed_ndjson_line_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    good = orjson.dumps(patient()).decode()
    (folder / "Patient.ndjson").write_text(good + "\n" + '{"resourceType": "Patient", "id": \n')
    with pytest.raises(InputRejected) as e:
        read_fhir(folder)
    assert any(p.file == "Patient.ndjson" and p.row == 2 for p in e.value.problems), (
        e.value.problems
    )


def test_not_a_bundle(tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text(json.dumps(patient()))
    with pytest.raises(InputRejected) as e:
        read_fhir(f)
    assert "is not a Bundle" in str(e.value.problems[0])


# --- real data and the vignettes -------------------------------------------------------------


@pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared/data/fhir-r4 is not present (a fresh clone)"
)
@pytest.mark.parametrize(
    "name", sorted(p.name for p in SHARED.glob("*.json")) if SHARED.is_dir() else []
)
def test_synthea_bundles_load_with_unused_resources_reported(name: str) -> None:
    data = read_fhir(SHARED / name)
    assert data.dataset["patients"].num_rows == 1
    # Synthea writes claims, encounters, ... we read none of them: each type is reported
    unused_types = {w.file for w in data.warnings if "of this type not used" in w.reason}
    assert {"Claim", "Encounter", "ExplanationOfBenefit"} <= unused_types
    reported = sum(
        int(w.reason.split()[0]) for w in data.warnings if "of this type not used" in w.reason
    )
    assert reported == sum(n for t, n in data.resources.items() if t in unused_types)


def _vignettes():
    for folder in sorted(p for p in VIGNETTES.iterdir() if (p / "fhir").is_dir()):
        spec = json.loads((folder / "expected.json").read_text())
        for case in spec.get("cases", [spec]):
            yield pytest.param(folder, case["as_of"], id=f"{folder.name}-{case['as_of']}")


@pytest.mark.parametrize(("folder", "as_of"), list(_vignettes()))
def test_vignette_as_fhir_gives_the_same_findings(folder: Path, as_of: str) -> None:
    day = dt.date.fromisoformat(as_of)
    from_csv = run_check(read_clinic(folder)[0], day).findings
    from_fhir = run_check(read_fhir(folder / "fhir").dataset, day).findings
    assert from_fhir.to_pylist() == from_csv.to_pylist()
