"""Hostile and careless inputs (issue 11, import): each is rejected with a located
problem (file, row, column) or read as the contract says, never a traceback, never a
silent loss, and a rejected import changes nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmtwatch.fhir.read import read_fhir_resources
from dmtwatch.io import InputRejected, read_clinic
from tests.clinic import alemtuzumab_course, findings, lab, write_clinic
from tests.test_fhir_read import lab as fhir_lab
from tests.test_fhir_read import patient as fhir_patient

PATIENTS = [{"patient_id": "P1", "sex": "F", "birth_date": "1980-04"}]


def _problems(folder: Path) -> list[str]:
    with pytest.raises(InputRejected) as caught:
        read_clinic(folder)
    return [str(p) for p in caught.value.problems]


# --- (1) limits: finite, ordered; NaN is not "missing" --------------------------------


@pytest.mark.parametrize("limit", ["inf", "Infinity", "-inf", "+Infinity", "1e400"])
def test_infinite_upper_limit_is_rejected(tmp_path: Path, limit: str) -> None:
    """An infinite ref_high silenced LAB-CREATININE for a creatinine of 500 umol/L."""
    labs = [lab("P1", "2015-02-01", "creatinine", 500, "umol/L", ref_high=limit)]
    problems = _problems(write_clinic(tmp_path, patients=PATIENTS, labs=labs))
    assert problems == [f"labs.csv row 2, column ref_high: '{limit}' is not a finite number"]


@pytest.mark.parametrize("column", ["ref_low", "ref_high"])
@pytest.mark.parametrize("limit", ["nan", "NaN", "-nan"])
def test_nan_limit_is_rejected_not_stored_as_missing(tmp_path: Path, column, limit) -> None:
    labs = [lab("P1", "2015-02-01", "neutrophils", 1.0, "10*9/L", **{column: limit})]
    problems = _problems(write_clinic(tmp_path, patients=PATIENTS, labs=labs))
    assert problems == [f"labs.csv row 2, column {column}: '{limit}' is not a finite number"]


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_non_finite_value_is_rejected(tmp_path: Path, value: str) -> None:
    labs = [lab("P1", "2015-02-01", "creatinine", value, "umol/L")]
    problems = _problems(write_clinic(tmp_path, patients=PATIENTS, labs=labs))
    assert problems == [f"labs.csv row 2, column value: '{value}' is not a number"]


def test_value_that_overflows_on_conversion_is_rejected(tmp_path: Path) -> None:
    labs = [lab("P1", "2015-02-01", "creatinine", "1e307", "mg/dL", ref_high="1e307")]
    problems = _problems(write_clinic(tmp_path, patients=PATIENTS, labs=labs))
    assert problems == [
        "labs.csv row 2, column ref_high: '1e307' is too large",
        "labs.csv row 2, column value: '1e307' is too large",
    ]


def test_limits_out_of_order_are_rejected(tmp_path: Path) -> None:
    labs = [lab("P1", "2015-02-01", "creatinine", 80, "umol/L", ref_low=100, ref_high=50)]
    problems = _problems(write_clinic(tmp_path, patients=PATIENTS, labs=labs))
    assert problems == ["labs.csv row 2, column ref_low: '100.0' is above ref_high 50.0"]


def test_finite_limit_still_raises_creatinine(tmp_path: Path) -> None:
    labs = [lab("P1", "2015-02-05", "creatinine", 500, "umol/L", ref_high=100)]
    course = [alemtuzumab_course("P1", "2015-01-05")]
    folder = write_clinic(tmp_path, patients=PATIENTS, treatments=course, labs=labs)
    assert findings(folder, "2015-03-01", "LAB-CREATININE")


def test_fhir_infinite_limit_is_rejected() -> None:
    obs = fhir_lab("o1", "2160-0", 500, "umol/L", referenceRange=[{"high": {"value": "Infinity"}}])
    with pytest.raises(InputRejected) as caught:
        read_fhir_resources([fhir_patient(), obs])
    assert any(
        p.column is not None and "referenceRange" in p.column and "finite" in p.reason
        for p in caught.value.problems
    ), [str(p) for p in caught.value.problems]
