"""Protocol files: schema-valid, every item cited, and the docs generated from them current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dmtwatch.protocols.schema import Protocol, load_protocol, load_protocols
from dmtwatch.render.finding_docs import pages, worked_cases

ROOT = Path(__file__).parent.parent
CONTRACT_CODES = {
    "MON-OVERDUE",
    "LAB-LYMPHOPENIA",
    "LAB-LEUCOPENIA",
    "LAB-NEUTROPENIA",
    "LAB-THROMBOCYTOPENIA",
    "LAB-CREATININE",
    "LAB-LIVER",
    "THY-TPO",
    "THY-HYPO",
    "THY-HYPER",
    "CNS-MRI",
    "CNS-RING",
}


def test_protocols_cover_every_contract_code() -> None:
    codes = {r.code for p in load_protocols() for r in p.rules()} | {"MON-OVERDUE"}
    assert codes >= CONTRACT_CODES


def test_every_rule_and_item_cites_a_defined_source() -> None:
    for p in load_protocols():
        for item in [*p.schedule, *p.rules()]:
            assert item.source and all(k in p.sources for k in item.source)


def test_the_engine_is_general_a_second_therapy_file_exists() -> None:
    ntz = load_protocol("natalizumab")
    assert ntz.therapy.drug == "natalizumab"
    assert {i.tests[0] for i in ntz.schedule} == {"jcv_index", "mri_brain"}


def _raw(name: str) -> dict:
    return yaml.safe_load((ROOT / "src/dmtwatch/protocols" / f"{name}.yaml").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["grading"][0].update(source=["NOPE"]),
            "source 'NOPE' is cited but not defined",
        ),
        (lambda d: d["schedule"][0].update(tests=["ferritin"]), "unknown test 'ferritin'"),
        (lambda d: d["grading"][0]["severity"].pop(4), "every grade needs a severity"),
        (lambda d: d["grading"][0].update(colour="red"), "Extra inputs are not permitted"),
        (lambda d: d["therapy"].update(drug="aspirin"), "unknown drug 'aspirin'"),
        (lambda d: d["relapse_imaging"][0].update(severity="soon"), "Input should be 'urgent'"),
    ],
)
def test_a_broken_protocol_is_refused_with_a_clear_message(change, message) -> None:
    data = _raw("alemtuzumab")
    change(data)
    with pytest.raises(ValidationError, match=message):
        Protocol.model_validate(data)


def test_finding_docs_are_current() -> None:
    generated = pages(ROOT / "tests" / "vignettes")
    on_disk = {
        p.stem: p.read_text()
        for p in (ROOT / "docs" / "findings").glob("*.md")
        if p.stem != "README"
    }
    assert on_disk == generated, "docs/findings is stale: run `make docs`"


def test_docs_show_the_protocol_numbers() -> None:
    page = pages()["CNS-MRI"]
    window = load_protocol("alemtuzumab").relapse_imaging[0].within_days
    assert f"| within_days | {window} |" in page
    assert "Haghikia" in page


def test_grading_reads_the_shared_ctcae_table() -> None:
    from dmtwatch.protocols.ctcae import ctcae_table, ctcae_terms

    table = ctcae_table()
    assert table.version == "5.0" and table.source_key == "CTCAE-5"
    alem = load_protocol("alemtuzumab")
    assert all(r.ctcae for r in alem.grading), "no protocol copies CTCAE thresholds"
    for rule in alem.grading:
        term = ctcae_terms()[rule.ctcae]
        assert (rule.term, rule.test, rule.direction) == (term.term, term.test, term.direction)
        assert rule.grades == term.grades
    assert alem.sources["CTCAE-5"] == table.source
    lympho = next(r for r in alem.grading if r.test == "lymphocytes")
    assert lympho.grades[1].below_lln == 1.0 and lympho.grades[4].below == 0.2
    raw = yaml.safe_load((ROOT / "src/dmtwatch/protocols/alemtuzumab.yaml").read_text())
    assert not any("grades" in g for g in raw["grading"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: g.update(ctcae="Lymphocyte count fell"),
            "unknown CTCAE term 'Lymphocyte count fell'",
        ),
        (lambda g: g.update(test="platelets"), "grades test 'lymphocytes', not 'platelets'"),
        (lambda g: g.update(direction="high"), "direction 'high' differs from CTCAE's 'low'"),
    ],
)
def test_a_bad_ctcae_reference_is_refused(change, message) -> None:
    data = _raw("alemtuzumab")
    change(data["grading"][0])
    with pytest.raises(ValidationError, match=message):
        Protocol.model_validate(data)


def test_the_ctcae_table_is_checked() -> None:
    from dmtwatch.protocols.ctcae import CriteriaTable

    raw = yaml.safe_load((ROOT / "src/dmtwatch/protocols/ctcae.yaml").read_text())
    raw["rows"][1]["unit"] = "cells/uL"
    raw["rows"].append(dict(raw["rows"][0]))
    with pytest.raises(ValidationError) as e:
        CriteriaTable.model_validate(raw)
    assert "not the canonical unit of lymphocytes" in str(e.value)
    assert "Lymphocyte count decreased: grade 1 is given twice" in str(e.value)


def test_every_finding_page_shows_a_raising_and_a_non_raising_worked_case() -> None:
    """As ruff documents each rule with an example: every code in docs/findings has a
    vignette that raises it and one that does not, and its page shows both."""
    worked = worked_cases(ROOT / "tests" / "vignettes")
    on_disk = sorted(p for p in (ROOT / "docs" / "findings").glob("*.md") if p.stem != "README")
    assert on_disk
    for path in on_disk:
        code, text = path.stem, path.read_text()
        raising, clearing = worked.get(code, (None, None))
        assert raising is not None and raising.raises, f"no vignette raises {code}"
        assert clearing is not None and not clearing.raises, f"no vignette clears {code}"
        assert text.count("### Raises it: ") == 1, code
        assert f"### Raises it: `{raising.vignette.name}` (as of {raising.as_of})" in text
        assert f"--as-of {raising.as_of}` gives, for {code}:" in text
        assert text.count("### Does not raise it: ") == 1, code
        assert f"### Does not raise it: `{clearing.vignette.name}` (as of {clearing.as_of})" in text
        assert f"--as-of {clearing.as_of}` raises no {code} finding" in text


def test_a_worked_case_is_taken_from_one_vignette_when_it_has_both(tmp_path: Path) -> None:
    for name, cases in {
        "a_raises": [{"as_of": "2015-01-01", "expect": [{"code": "X-1"}]}],
        "b_clears": [{"as_of": "2015-01-01", "absent": [{"code": "X-1"}]}],
        "c_both": [
            {"as_of": "2015-02-01", "absent": [{"code": "X-1", "patient_id": "P2"}]},
            {"as_of": "2015-03-01", "expect": [{"code": "X-1", "patient_id": "P1"}]},
        ],
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "expected.json").write_text(json.dumps({"cases": cases}))
    raising, clearing = worked_cases(tmp_path)["X-1"]
    assert (raising.vignette.name, raising.as_of) == ("c_both", "2015-03-01")
    assert (clearing.vignette.name, clearing.want) == (
        "c_both",
        {"code": "X-1", "patient_id": "P2"},
    )
    (tmp_path / "c_both" / "expected.json").unlink()
    raising, clearing = worked_cases(tmp_path)["X-1"]
    assert (raising.vignette.name, clearing.vignette.name) == ("a_raises", "b_clears")
