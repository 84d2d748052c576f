"""The worked cases on the finding pages: a vignette's story, its rows and what the real
engine gives as of the case's date; a vignette whose expectation does not hold stops the
pages from being written instead of documenting a case that is not true."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmtwatch.render.finding_docs import pages
from tests.clinic import alemtuzumab_course, lab, write_clinic


def _vignette(root: Path, expected: dict, lymphocytes: float) -> Path:
    folder = write_clinic(
        root / "lymphocytes_after_course_1",
        treatments=[alemtuzumab_course("P1", "2016-03-07")],
        labs=[lab("P1", "2016-05-09", "lymphocytes", lymphocytes, "10*9/L")],
        relapses=[],
    )
    (folder / "README.md").write_text("Lymphocytes two months after course 1.\n")
    (folder / "expected.json").write_text(json.dumps(expected))
    return folder


CASES = {
    "cases": [
        {"as_of": "2016-05-10", "expect": [{"code": "LAB-LYMPHOPENIA", "patient_id": "P1"}]},
        {"as_of": "2016-05-01", "absent": [{"code": "LAB-LYMPHOPENIA", "patient_id": "P1"}]},
    ]
}


def test_a_worked_case_shows_the_story_the_rows_and_the_engine_finding(tmp_path: Path) -> None:
    _vignette(tmp_path, CASES, 0.38)
    page = pages(tmp_path)["LAB-LYMPHOPENIA"]
    worked = page[page.index("## Worked cases") :]
    assert "### Raises it: `lymphocytes_after_course_1` (as of 2016-05-10)" in worked
    assert "Lymphocytes two months after course 1." in worked
    # the rows as a Markdown table: empty columns and tables without rows left out
    assert "| patient_id | date | test | value | unit |" in worked
    assert "| P1 | 2016-05-09 | lymphocytes | 0.38 | 10\\*9/L |" in worked
    assert "relapses.csv" not in worked and "ref_low" not in worked
    assert "| P1 | lymphocytes | routine | 2016-05-09 | Lymphopenia grade 3 |" in worked
    assert "### Does not raise it: `lymphocytes_after_course_1` (as of 2016-05-01)" in worked
    assert "The same vignette (story and input above), as of 2016-05-01." in worked
    assert "--as-of 2016-05-01` raises no LAB-LYMPHOPENIA finding for patient P1." in worked
    assert "No vignette yet" in pages(tmp_path)["THY-HYPO"]


def test_a_vignette_that_does_not_hold_is_not_documented(tmp_path: Path) -> None:
    _vignette(tmp_path, CASES, 1.6)  # a normal count: the expected finding is not raised
    with pytest.raises(ValueError, match="check does not raise"):
        pages(tmp_path)


def test_clinic_protocols_that_change_a_case_are_said_not_hidden(tmp_path: Path) -> None:
    from dmtwatch.protocols import ProtocolSet, using

    expected = {
        "as_of": "2016-05-10",
        "expect": [{"code": "LAB-LYMPHOPENIA", "patient_id": "P1", "severity": "routine"}],
    }
    _vignette(tmp_path, expected, 0.22)  # grade 3 as shipped; the example clinic's grade 4
    assert "| P1 | lymphocytes | routine |" in pages(tmp_path)["LAB-LYMPHOPENIA"]
    clinic = Path(__file__).with_name("clinic_protocols")
    with using(ProtocolSet.load([clinic])):
        page = pages(tmp_path)["LAB-LYMPHOPENIA"]
    assert "does not come out as the vignette expects" in page
    assert "| P1 | lymphocytes | high | 2016-05-09 | Lymphopenia grade 4 |" in page
