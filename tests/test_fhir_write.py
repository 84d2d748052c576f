"""The FHIR writer and the DetectedIssue output: R4-valid resources, the profile's codes,
stable ids, the boundaries of the mapping, and the round trip through the reader."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from dmtwatch.engine.run import run_check
from dmtwatch.fhir import codes
from dmtwatch.fhir.detected_issues import issues_bundle
from dmtwatch.fhir.write import bundle, resources, write_bundles, write_fhir, write_ndjson
from dmtwatch.io import read_clinic
from dmtwatch.model.dataset import Dataset, arrow_schema
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import PRESENTATION_COLUMNS
from dmtwatch.synth import generate, write_csv
from tests.clinic import write_clinic

AS_OF = dt.date(2016, 1, 15)
MODULES = {
    "Patient": "patient",
    "Condition": "condition",
    "MedicationAdministration": "medicationadministration",
    "MedicationStatement": "medicationstatement",
    "Procedure": "procedure",
    "Observation": "observation",
    "AdverseEvent": "adverseevent",
    "DetectedIssue": "detectedissue",
    "Bundle": "bundle",
}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def validate(resource: dict) -> None:
    """Parse with the R4 (R4B package) model of the resource's type; raises if invalid."""
    kind = resource["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{MODULES[kind]}")
    getattr(module, kind).model_validate(resource)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A synthetic clinic as the CSV reader gives it."""
    folder = tmp_path_factory.mktemp("synth")
    write_csv(generate(40, 11), folder)
    dataset, warnings = read_clinic(folder)
    assert not warnings
    return dataset


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Hand-made rows at the mapping's boundaries: partial dates, missing optional values,
    qualitative and code-less labs, stop reasons on administered drugs, repeated keys."""
    folder = write_clinic(
        tmp_path_factory.mktemp("edges"),
        patients=[
            {"patient_id": "E1", "sex": "F", "birth_date": "1980", "ms_type": "CIS",
             "ms_onset_date": "2010-03-01"},
            {"patient_id": "E2", "sex": None, "birth_date": "1975-06", "ms_type": None,
             "ms_onset_date": "2001-02-03"},
            {"patient_id": "E3", "sex": "X", "birth_date": None},
            {"patient_id": "E4.a-1", "sex": "M", "birth_date": "1969-12-31", "ms_type": "SPMS"},
        ],
        treatments=[
            {"patient_id": "E1", "drug": "alemtuzumab", "start_date": "2014-01-06",
             "end_date": "2014-01-10", "course": 1},
            {"patient_id": "E1", "drug": "methylprednisolone", "start_date": "2014-01-06",
             "end_date": "2014-01-08", "dose": 1000, "dose_unit": "mg",
             "stop_reason": "allergy"},
            {"patient_id": "E1", "drug": "natalizumab", "start_date": "2011-05-01",
             "dose": 300, "dose_unit": "mg"},
            {"patient_id": "E2", "drug": "plasma_exchange", "start_date": "2013-07-01",
             "end_date": "2013-07-10"},
            {"patient_id": "E2", "drug": "ivig", "start_date": "2015-11-02"},
            {"patient_id": "E2", "drug": "other", "start_date": "2009-01-01",
             "end_date": "2010-01-01", "dose": 5},
            {"patient_id": "E3", "drug": "rituximab", "start_date": "2015-02-01",
             "end_date": "2015-02-01", "dose": 1000, "dose_unit": "mg",
             "stop_reason": "planned"},
            {"patient_id": "E3", "drug": "fingolimod", "start_date": "2012-01-01",
             "end_date": "2013-01-01", "dose": 0.5, "dose_unit": "mg",
             "stop_reason": "pml_risk"},
        ],
        labs=[
            {"patient_id": "E1", "date": "2014-03-01", "test": "urine_blood", "value": "2+"},
            {"patient_id": "E1", "date": "2014-03-01", "test": "jcv_index", "value": "0.42",
             "unit": "{index}"},
            {"patient_id": "E1", "date": "2014-03-01", "test": "lymphocytes", "value": "0.45",
             "unit": "10*9/L", "ref_low": "1.1", "ref_high": "3.5"},
            {"patient_id": "E1", "date": "2014-03-01", "test": "creatinine", "value": "1.1",
             "unit": "mg/dL", "ref_high": "1.2"},
            {"patient_id": "E1", "date": "2014-03-01", "test": "tpo_ab", "value": "120",
             "unit": "IU/mL", "ref_low": "0"},
            {"patient_id": "E2", "date": "2015-01-01", "test": "platelets", "value": "98",
             "unit": "10*9/L"},
            {"patient_id": "E2", "date": "2015-01-01", "test": "platelets", "value": "101",
             "unit": "10*9/L"},
        ],
        relapses=[
            {"patient_id": "E1", "onset_date": "2014-08-01", "confirmed": False},
            {"patient_id": "E2", "onset_date": "2012-05-05", "confirmed": True,
             "severity": "severe"},
        ],
        mri=[
            {"patient_id": "E1", "date": "2014-08-03", "region": "spine", "contrast": False},
            {"patient_id": "E1", "date": "2014-08-03", "region": "brain", "new_t2": 2,
             "gd_enhancing": 1, "ring_enhancing": 0},
        ],
        edss=[{"patient_id": "E1", "date": "2014-08-03", "score": 3.5}],
        adverse_events=[
            {"patient_id": "E1", "onset_date": "2014-02-01", "term": "Herpes zoster",
             "category": "infection", "serious": True, "grade": 3, "outcome": "recovered",
             "resolution_date": "2014-02-20"},
            {"patient_id": "E2", "onset_date": "2015-03-01", "term": "Graves' disease",
             "category": "thyroid"},
        ],
    )  # fmt: skip
    dataset, _ = read_clinic(folder)
    return dataset


def by_type(dataset: Dataset) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in resources(dataset):
        out[r["resourceType"]].append(r)
    return out


def codings(concept: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept["coding"]}


def patient_of(resource: dict) -> str:
    if resource["resourceType"] == "Patient":
        return resource["id"]
    return resource["subject"]["reference"].removeprefix("Patient/")


# --- every resource is valid R4 -------------------------------------------------------


@pytest.mark.parametrize("name", ["clinic", "edges"])
def test_every_resource_validates_against_r4(name: str, request: pytest.FixtureRequest) -> None:
    dataset = request.getfixturevalue(name)
    written = list(resources(dataset))
    for resource in written:
        validate(resource)
    kinds = Counter(r["resourceType"] for r in written)
    assert kinds["Patient"] == dataset["patients"].num_rows
    assert kinds["Observation"] == sum(dataset[t].num_rows for t in ("labs", "mri", "edss"))
    assert kinds["AdverseEvent"] == dataset["adverse_events"].num_rows
    treatments = ("MedicationAdministration", "MedicationStatement", "Procedure")
    assert sum(kinds[k] for k in treatments) == dataset["treatments"].num_rows


def test_ids_are_stable_unique_fhir_ids_and_references_name_the_patient(edges: Dataset) -> None:
    first, again = list(resources(edges)), list(resources(edges))
    assert first == again
    keys = [(r["resourceType"], r["id"]) for r in first]
    assert len(keys) == len(set(keys))
    assert all(FHIR_ID.match(r["id"]) for r in first)
    patients = {r["id"] for r in first if r["resourceType"] == "Patient"}
    assert patients == {"E1", "E2", "E3", "E4.a-1"}
    assert all(patient_of(r) in patients for r in first)


def test_a_repeated_lab_key_gives_two_resources(edges: Dataset) -> None:
    platelets = [r for r in by_type(edges)["Observation"] if r["code"].get("text") == "platelets"]
    assert sorted(r["valueQuantity"]["value"] for r in platelets) == [98.0, 101.0]
    assert platelets[0]["id"] != platelets[1]["id"]


def test_invalid_patient_id_is_refused_by_name(tmp_path: Path) -> None:
    rows = [{"patient_id": "ok-1"}, {"patient_id": "not ok/2"}]
    dataset = Dataset({"patients": pa.Table.from_pylist(rows, arrow_schema("patients"))})
    with pytest.raises(ValueError, match="not ok/2"):
        list(resources(dataset))


# --- the profile's mapping, element by element ------------------------------------------


def test_patients_with_partial_birth_dates_and_no_sex(edges: Dataset) -> None:
    patients = {r["id"]: r for r in by_type(edges)["Patient"]}
    assert patients["E1"] == {
        "resourceType": "Patient",
        "id": "E1",
        "gender": "female",
        "birthDate": "1980",
    }
    assert patients["E2"]["birthDate"] == "1975-06" and "gender" not in patients["E2"]
    assert patients["E3"] == {"resourceType": "Patient", "id": "E3", "gender": "other"}
    assert patients["E4.a-1"]["birthDate"] == "1969-12-31"


def test_ms_conditions_cis_unspecified_subtype_and_none(edges: Dataset) -> None:
    conditions = by_type(edges)["Condition"]
    ms = {
        patient_of(c): c
        for c in conditions
        if (codes.SNOMED, codes.RELAPSE_CONDITION) not in codings(c["code"])
    }
    assert set(ms) == {"E1", "E2", "E4.a-1"}  # E3 has neither type nor onset
    assert codings(ms["E1"]["code"]) == {(codes.MS_TYPE_SYSTEM, "CIS")}
    assert ms["E1"]["onsetDateTime"] == "2010-03-01"
    assert codings(ms["E2"]["code"]) == {(codes.SNOMED, codes.MS_CONDITION)}
    assert codings(ms["E4.a-1"]["code"]) == {(codes.SNOMED, "425500002")}
    assert "onsetDateTime" not in ms["E4.a-1"]


def test_relapses_verification_and_severity(edges: Dataset) -> None:
    relapses = {
        patient_of(c): c
        for c in by_type(edges)["Condition"]
        if (codes.SNOMED, codes.RELAPSE_CONDITION) in codings(c["code"])
    }
    e1, e2 = relapses["E1"], relapses["E2"]
    assert codings(e1["verificationStatus"]) == {(codes.CONDITION_VERIFICATION, "unconfirmed")}
    assert "severity" not in e1 and e1["onsetDateTime"] == "2014-08-01"
    assert codings(e2["verificationStatus"]) == {(codes.CONDITION_VERIFICATION, "confirmed")}
    assert codings(e2["severity"]) == {(codes.SNOMED, "24484000")}


def _treatments(dataset: Dataset) -> dict[str, dict]:
    kinds = by_type(dataset)
    out = {}
    for r in kinds["MedicationAdministration"] + kinds["MedicationStatement"]:
        drug = next(c["code"] for c in r["medicationCodeableConcept"]["coding"]
                    if c["system"] == codes.DRUG_SYSTEM)  # fmt: skip
        out[drug] = r
    for r in kinds["Procedure"]:
        out[r["code"]["coding"][0]["code"]] = r
    return out


def test_treatments_pick_their_resource_type(edges: Dataset) -> None:
    t = _treatments(edges)
    kinds = {drug: r["resourceType"] for drug, r in t.items()}
    assert kinds == {
        "alemtuzumab": "MedicationAdministration",
        "methylprednisolone": "MedicationStatement",  # administered, but has a stop reason
        "natalizumab": "MedicationStatement",
        "plasma_exchange": "Procedure",
        "ivig": "MedicationAdministration",
        "other": "MedicationStatement",
        "rituximab": "MedicationStatement",
        "fingolimod": "MedicationStatement",
    }


def test_administration_period_dose_and_status(edges: Dataset) -> None:
    t = _treatments(edges)
    alem = t["alemtuzumab"]
    assert alem["status"] == "completed"
    assert alem["effectivePeriod"] == {"start": "2014-01-06", "end": "2014-01-10"}
    assert "dosage" not in alem  # no dose recorded: no empty dosage
    ivig = t["ivig"]
    assert ivig["status"] == "in-progress" and ivig["effectivePeriod"] == {"start": "2015-11-02"}


def test_statements_status_stop_reason_and_dose(edges: Dataset) -> None:
    t = _treatments(edges)
    mp = t["methylprednisolone"]
    assert mp["status"] == "stopped"
    assert codings(mp["statusReason"][0]) == {(codes.STOP_REASON_SYSTEM, "allergy")}
    dose = mp["dosage"][0]["doseAndRate"][0]["doseQuantity"]
    assert dose == {"value": 1000.0, "unit": "mg", "system": codes.UCUM, "code": "mg"}
    nat = t["natalizumab"]
    assert nat["status"] == "active" and nat["effectivePeriod"] == {"start": "2011-05-01"}
    assert "statusReason" not in nat
    other = t["other"]
    assert other["status"] == "completed"
    assert other["dosage"][0]["doseAndRate"][0]["doseQuantity"] == {"value": 5.0}


def test_procedure_period(edges: Dataset) -> None:
    pe = _treatments(edges)["plasma_exchange"]
    assert codings(pe["code"]) == {(codes.DRUG_SYSTEM, "plasma_exchange")}
    assert pe["performedPeriod"] == {"start": "2013-07-01", "end": "2013-07-10"}
    assert pe["status"] == "completed" and "statusReason" not in pe


@pytest.fixture(scope="module")
def stopped_procedure(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = write_clinic(
        tmp_path_factory.mktemp("procedure"),
        treatments=[
            {"patient_id": "S1", "drug": "immunoadsorption", "start_date": "2013-07-01",
             "end_date": "2013-07-04", "stop_reason": "adverse_event"},
        ],
    )  # fmt: skip
    return read_clinic(folder)[0]


def test_procedure_stop_reason(stopped_procedure: Dataset) -> None:
    (proc,) = by_type(stopped_procedure)["Procedure"]
    validate(proc)
    assert proc["status"] == "stopped"
    assert codings(proc["statusReason"]) == {(codes.STOP_REASON_SYSTEM, "adverse_event")}


def test_procedure_stop_reason_round_trip(stopped_procedure: Dataset) -> None:
    read = pytest.importorskip("dmtwatch.fhir.read")
    data = read.read_fhir_resources(resources(stopped_procedure))
    assert data.dataset["treatments"].to_pylist() == stopped_procedure["treatments"].to_pylist()


def test_medication_codings_ours_plus_rxnorm_and_current_atc(edges: Dataset) -> None:
    t = _treatments(edges)
    assert codings(t["alemtuzumab"]["medicationCodeableConcept"]) == {
        (codes.RXNORM, "117055"),
        (codes.ATC, "L04AG06"),
        (codes.DRUG_SYSTEM, "alemtuzumab"),
    }
    assert codings(t["rituximab"]["medicationCodeableConcept"]) == {
        (codes.RXNORM, "121191"),
        (codes.ATC, "L01FA01"),
        (codes.DRUG_SYSTEM, "rituximab"),
    }
    assert codings(t["fingolimod"]["medicationCodeableConcept"]) == {
        (codes.DRUG_SYSTEM, "fingolimod")
    }
    # every ATC code written reads back as the same drug
    for drug, atc in codes.DRUG_TO_ATC.items():
        assert codes.ATC_TO_DRUG[atc] == drug
        assert codes.RXNORM_TO_DRUG[codes.DRUG_TO_RXNORM[drug]] == drug


def _labs(dataset: Dataset) -> dict[str, dict]:
    return {
        r["code"]["text"]: r
        for r in by_type(dataset)["Observation"]
        if r["category"][0]["coding"][0]["code"] == "laboratory"
    }


def test_lab_codes_values_and_reference_ranges(edges: Dataset) -> None:
    labs = _labs(edges)
    lym = labs["lymphocytes"]
    assert codings(lym["code"]) == {(codes.LOINC, "731-0")}
    assert lym["effectiveDateTime"] == "2014-03-01"
    unit = {"unit": "10*9/L", "system": codes.UCUM, "code": "10*9/L"}
    assert lym["valueQuantity"] == {"value": 0.45, **unit}
    assert lym["referenceRange"] == [
        {"low": {"value": 1.1, **unit}, "high": {"value": 3.5, **unit}}
    ]
    crea = labs["creatinine"]  # converted on import: canonical unit and values
    assert crea["valueQuantity"]["code"] == "umol/L"
    assert crea["valueQuantity"]["value"] == pytest.approx(1.1 * 88.42)
    assert list(crea["referenceRange"][0]) == ["high"]
    assert list(labs["tpo_ab"]["referenceRange"][0]) == ["low"]  # a limit of 0 is a limit
    assert labs["tpo_ab"]["referenceRange"][0]["low"]["value"] == 0


def test_qualitative_and_codeless_labs(edges: Dataset) -> None:
    labs = _labs(edges)
    blood = labs["urine_blood"]
    assert blood["valueString"] == "2+"
    assert "valueQuantity" not in blood and "referenceRange" not in blood
    assert codings(blood["code"]) == {(codes.LOINC, "5794-3")}
    jcv = labs["jcv_index"]
    assert codings(jcv["code"]) == {(codes.LAB_SYSTEM, "jcv_index")}
    assert jcv["valueQuantity"]["code"] == "{index}"
    # every test: its first LOINC code, or ours when it has none
    for name, spec in lab_catalogue().tests.items():
        expected = spec.loinc[0] if spec.loinc else name
        assert (labs.get(name) is None) or labs[name]["code"]["coding"][0]["code"] == expected


def test_mri_region_and_components(edges: Dataset) -> None:
    scans = {
        r["bodySite"]["coding"][0]["code"]: r
        for r in by_type(edges)["Observation"]
        if (codes.OBSERVATION_SYSTEM, codes.MRI_CODE) in codings(r["code"])
    }
    spine, brain = scans["2748008"], scans["12738006"]
    parts = lambda r: {c["code"]["coding"][0]["code"]: c for c in r.get("component", [])}  # noqa: E731
    assert parts(spine) == {
        "contrast": {
            "code": {"coding": [{"system": codes.OBSERVATION_SYSTEM, "code": "contrast",
                                 "display": "Gadolinium contrast given"}]},
            "valueBoolean": False,
        }
    }  # fmt: skip
    b = parts(brain)
    assert b["contrast"]["valueBoolean"] is True  # the contract's default
    assert (b["new-t2"]["valueInteger"], b["gd-enhancing"]["valueInteger"]) == (2, 1)
    assert b["ring-enhancing"]["valueInteger"] == 0


def test_edss(edges: Dataset) -> None:
    (edss,) = [
        r
        for r in by_type(edges)["Observation"]
        if (codes.OBSERVATION_SYSTEM, codes.EDSS_CODE) in codings(r["code"])
    ]
    assert edss["valueQuantity"] == {"value": 3.5}
    assert edss["effectiveDateTime"] == "2014-08-03"


def test_adverse_events_with_and_without_optional_values(edges: Dataset) -> None:
    events = {patient_of(r): r for r in by_type(edges)["AdverseEvent"]}
    zoster, graves = events["E1"], events["E2"]
    assert zoster["actuality"] == "actual" and zoster["date"] == "2014-02-01"
    assert zoster["event"]["text"] == "Herpes zoster"
    assert codings(zoster["event"]) == {(codes.AE_CATEGORY_SYSTEM, "infection")}
    assert codings(zoster["seriousness"]) == {(codes.AE_SERIOUSNESS, "serious")}
    assert codings(zoster["outcome"]) == {(codes.AE_OUTCOME, "resolved")}
    assert zoster["extension"] == [
        {"url": codes.AE_GRADE_EXTENSION, "valueInteger": 3},
        {"url": codes.AE_RESOLUTION_EXTENSION, "valueDate": "2014-02-20"},
    ]
    assert graves["event"]["text"] == "Graves' disease"
    assert codings(graves["seriousness"]) == {(codes.AE_SERIOUSNESS, "non-serious")}  # default
    assert "extension" not in graves and "outcome" not in graves


# --- the two layouts ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clinic", "edges"])
def test_ndjson_files_hold_exactly_the_resources(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Labs' lines come from Arrow kernels, the rest from dicts: both say the same."""
    dataset = request.getfixturevalue(name)
    counts = write_ndjson(dataset, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"{kind}.ndjson" for kind in counts)
    lines = [
        orjson.loads(line)
        for f in tmp_path.glob("*.ndjson")
        for line in f.read_bytes().splitlines()
    ]
    key = lambda r: (r["resourceType"], r["id"])  # noqa: E731
    assert sorted(lines, key=key) == sorted(resources(dataset), key=key)
    assert Counter(r["resourceType"] for r in lines) == counts


@pytest.mark.parametrize("name", ["clinic", "edges"])
def test_bundles_one_per_patient_with_full_urls(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dataset = request.getfixturevalue(name)
    n = write_bundles(dataset, tmp_path)
    files = sorted(tmp_path.glob("*.json"))
    assert n == len(files) == dataset["patients"].num_rows
    mine: dict[str, list[dict]] = defaultdict(list)
    for r in resources(dataset):
        mine[patient_of(r)].append(r)
    urls = set()
    for f in files:
        doc = orjson.loads(f.read_bytes())
        assert doc == bundle(f.stem, mine[f.stem])
        assert doc["type"] == "collection" and doc["entry"][0]["resource"]["id"] == f.stem
        urls.update(e["fullUrl"] for e in doc["entry"])
        assert all(re.match(r"^urn:uuid:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", e["fullUrl"])
                   for e in doc["entry"])  # fmt: skip
    assert len(urls) == sum(len(v) for v in mine.values())
    validate(orjson.loads(files[0].read_bytes()))


# --- DetectedIssue --------------------------------------------------------------------


def provenance_of(dataset: Dataset) -> pa.Table:
    """The reader's provenance table for what we wrote, built here from the resources."""
    rows = []
    for r in resources(dataset):
        kind = r["resourceType"]
        if kind == "Patient":
            continue
        table, date, test, drug = None, None, None, None
        if kind == "Observation":
            date = r["effectiveDateTime"]
            code = r["code"]["coding"][0]["code"]
            table = {"mri-lesions": "mri", "edss": "edss"}.get(code, "labs")
            test = r["code"]["text"] if table == "labs" else None
        elif kind == "Condition" and "onsetDateTime" in r and "verificationStatus" in r:
            table, date = "relapses", r["onsetDateTime"]
        elif kind in ("MedicationAdministration", "MedicationStatement"):
            table, date = "treatments", r["effectivePeriod"]["start"]
            drug = r["medicationCodeableConcept"]["text"]
        elif kind == "Procedure":
            table, date = "treatments", r["performedPeriod"]["start"]
            drug = r["code"]["coding"][0]["code"]
        elif kind == "AdverseEvent":
            table, date = "adverse_events", r["date"]
        if table:
            rows.append(
                (table, patient_of(r), dt.date.fromisoformat(date), test, drug, f"{kind}/{r['id']}")
            )
    names = ("table", "patient_id", "date", "test", "drug", "ref")
    columns = list(zip(*rows, strict=True))
    return pa.table(
        {
            n: pa.array(c, pa.date32() if n == "date" else pa.string())
            for n, c in zip(names, columns, strict=True)
        }
    )


@pytest.fixture(scope="module")
def findings(clinic: Dataset):
    result = run_check(clinic, AS_OF)
    assert result.findings.num_rows > 20
    return result


def test_detected_issues_follow_the_profile(findings) -> None:
    doc = issues_bundle(findings)
    validate(doc)
    assert doc["type"] == "collection"
    rows = findings.findings.to_pylist()
    issues = [e["resource"] for e in doc["entry"]]
    assert len(issues) == len(rows)
    expected_severity = {"urgent": "high", "high": "high", "routine": "moderate", "info": "low"}
    for f, issue in zip(rows, issues, strict=True):
        validate(issue)
        assert issue["code"]["coding"] == [
            {"system": codes.FINDING_SYSTEM, "code": f["code"], "display": f["title"]}
        ]
        assert issue["severity"] == expected_severity[f["severity"]]
        assert issue["patient"] == {"reference": f"Patient/{f['patient_id']}"}
        assert issue["identifiedDateTime"] == f["date"].isoformat()
        assert issue["detail"] == f["detail"]
        assert issue["reference"] == f["source"]
        assert issue["mitigation"] == [{"action": {"text": f["action"]}}]
        assert "evidence" not in issue and "implicated" not in issue  # no provenance
    assert len({i["id"] for i in issues}) == len(issues)
    assert {i["severity"] for i in issues} >= {"high", "moderate", "low"}


def test_detected_issues_point_at_the_resources_behind_them(clinic: Dataset, findings) -> None:
    written = {f"{r['resourceType']}/{r['id']}": r for r in resources(clinic)}
    doc = issues_bundle(findings, provenance_of(clinic))
    validate(doc)
    issues = [e["resource"] for e in doc["entry"]]
    lymph = next(i for i in issues if i["code"]["coding"][0]["code"] == "LAB-LYMPHOPENIA")
    (ref,) = lymph["evidence"][0]["detail"]
    obs = written[ref["reference"]]
    assert obs["code"]["text"] == "lymphocytes"
    assert obs["effectiveDateTime"] == lymph["identifiedDateTime"]
    assert obs["subject"] == lymph["patient"]
    overdue = [i for i in issues if i["code"]["coding"][0]["code"] == "MON-OVERDUE"]
    assert overdue, "the synthetic clinic should have an overdue test"
    for issue in overdue:
        for r in issue["implicated"]:
            (drug,) = {
                c["code"]
                for c in written[r["reference"]]["medicationCodeableConcept"]["coding"]
                if c["system"] == codes.DRUG_SYSTEM
            }
            # the therapy the evidence names, not another started the same day
            assert drug == r["display"].split()[0] and drug in ("alemtuzumab", "natalizumab")
        assert "evidence" not in issue
    for issue in issues:
        for r in issue.get("implicated", []) + [
            d for e in issue.get("evidence", []) for d in e["detail"]
        ]:
            assert written[r["reference"]]["subject"] == issue["patient"]


# --- the command line -----------------------------------------------------------------


def dmtwatch(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dmtwatch", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_cli_synth_fhir_and_check_fhir(tmp_path: Path) -> None:
    out = tmp_path / "clinic"
    dmtwatch("synth", "--patients", "12", "--seed", "5", "--out", str(out), "--format", "fhir")
    ndjson = sorted(p.name for p in (out / "ndjson").iterdir())
    assert {"Patient.ndjson", "Observation.ndjson", "Condition.ndjson"} <= set(ndjson)
    assert len(list((out / "bundles").glob("*.json"))) == 12
    assert len((out / "ndjson" / "Patient.ndjson").read_text().splitlines()) == 12

    csv_dir = tmp_path / "csv"
    dmtwatch("synth", "--patients", "12", "--seed", "5", "--out", str(csv_dir))
    target = tmp_path / "issues.json"
    dmtwatch("check", "--data", str(csv_dir), "--as-of", "2016-01-15", "--format", "fhir",
             "--out", str(target))  # fmt: skip
    doc = json.loads(target.read_text())
    validate(doc)
    assert doc["entry"] and {e["resource"]["resourceType"] for e in doc["entry"]} == {
        "DetectedIssue"
    }
    expected = run_check(read_clinic(csv_dir)[0], AS_OF).findings.num_rows
    assert len(doc["entry"]) == expected


def test_cli_check_fhir_input_gives_evidence(tmp_path: Path) -> None:
    pytest.importorskip("dmtwatch.fhir.read")
    out = tmp_path / "clinic"
    dmtwatch("synth", "--patients", "30", "--seed", "5", "--out", str(out), "--format", "fhir")
    proc = dmtwatch("check", "--fhir", str(out / "ndjson"), "--as-of", "2016-01-15",
                    "--format", "fhir")  # fmt: skip
    issues = [e["resource"] for e in json.loads(proc.stdout)["entry"]]
    assert issues
    assert all("evidence" in i or "implicated" in i for i in issues)


# --- the round trip -------------------------------------------------------------------


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in table.column_names])


def assert_same_dataset(got: Dataset, expected: Dataset) -> None:
    """The same canonical rows. Labs' value and unit as reported (contract v1.1) are not
    compared: the writer writes the canonical value, so that is what the reader reports."""
    for name, table in expected.tables.items():
        skip = PRESENTATION_COLUMNS.get(name, ())
        a = _sorted(table.drop_columns(list(skip)))
        b = _sorted(got[name].drop_columns(list(skip)))
        assert b.schema == a.schema, name
        assert b.to_pylist() == a.to_pylist(), name


@pytest.mark.parametrize("name", ["clinic", "edges"])
def test_round_trip_through_the_reader(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """CSV -> Dataset -> FHIR (both layouts) -> reader -> the same Dataset."""
    read = pytest.importorskip("dmtwatch.fhir.read")
    dataset = request.getfixturevalue(name)
    write_fhir(dataset, tmp_path)
    for layout in ("ndjson", "bundles"):
        data = read.read_fhir(tmp_path / layout)
        assert [str(w) for w in data.warnings] == [], layout
        assert_same_dataset(data.dataset, dataset)
    entries = [
        e["resource"]
        for f in (tmp_path / "bundles").glob("*.json")
        for e in orjson.loads(f.read_bytes())["entry"]
    ]
    assert_same_dataset(read.read_fhir_resources(entries).dataset, dataset)


def test_one_patient_bundle_reads_back_as_that_patient(clinic: Dataset, tmp_path: Path) -> None:
    read = pytest.importorskip("dmtwatch.fhir.read")
    write_bundles(clinic, tmp_path)
    patient = "P000003"
    data = read.read_fhir(tmp_path / f"{patient}.json").dataset
    only = Dataset(
        {n: t.filter(pa.compute.equal(t["patient_id"], patient)) for n, t in clinic.tables.items()}
    )
    assert only["labs"].num_rows > 0
    assert_same_dataset(data, only)
