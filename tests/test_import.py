"""Import: every bad-input kind is named (file, row, column, value, why), all problems at
once, and a rejected import stores nothing; units convert; workbooks read like CSVs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook

from dmtwatch.io import InputRejected, read_clinic
from dmtwatch.store import load, save
from tests.clinic import alemtuzumab_course, lab, write_clinic

GOOD = {
    "patients": [{"patient_id": "P1", "sex": "F", "birth_date": "1980-04"}],
    "treatments": [alemtuzumab_course("P1", "2015-01-05")],
    "labs": [lab("P1", "2015-02-05", "lymphocytes", 0.3, "10*9/L")],
    "relapses": [{"patient_id": "P1", "onset_date": "2015-06-01"}],
    "mri": [{"patient_id": "P1", "date": "2015-06-03", "gd_enhancing": 2, "ring_enhancing": 1}],
    "edss": [{"patient_id": "P1", "date": "2015-06-03", "score": 3.5}],
}


def _with(table: str, row: dict) -> dict:
    tables = {k: list(v) for k, v in GOOD.items()}
    tables[table] = [*tables.get(table, []), row]
    return tables


BAD = [
    (
        "bad_date",
        "labs",
        lab("P1", "2015-13-45", "lymphocytes", 1.0, "10*9/L"),
        "date",
        "2015-13-45",
        "is not a date",
    ),
    (
        "unknown_unit",
        "labs",
        lab("P1", "2015-03-01", "lymphocytes", 1.0, "mmol/L"),
        "unit",
        "mmol/L",
        "is not a known unit for lymphocytes",
    ),
    (
        "missing_unit",
        "labs",
        lab("P1", "2015-03-01", "platelets", 150, ""),
        "unit",
        None,
        "needs its unit",
    ),
    (
        "negative_count",
        "labs",
        lab("P1", "2015-03-01", "platelets", -5, "10*9/L"),
        "value",
        "-5",
        "is negative",
    ),
    (
        "not_a_number",
        "labs",
        lab("P1", "2015-03-01", "platelets", "lots", "10*9/L"),
        "value",
        "lots",
        "is not a number",
    ),
    (
        "unknown_test",
        "labs",
        lab("P1", "2015-03-01", "ferritin", 10, "ug/L"),
        "test",
        "ferritin",
        "is not a known test",
    ),
    (
        "unknown_patient",
        "labs",
        lab("P9", "2015-03-01", "platelets", 150, "10*9/L"),
        "patient_id",
        "P9",
        "is not in patients.csv",
    ),
    (
        "unknown_drug",
        "treatments",
        {"patient_id": "P1", "drug": "aspirin", "start_date": "2015-01-01"},
        "drug",
        "aspirin",
        "is not one of",
    ),
    (
        "edss_out_of_range",
        "edss",
        {"patient_id": "P1", "date": "2015-07-01", "score": 10.5},
        "score",
        "10.5",
        "is outside the range 0 to 10",
    ),
    (
        "edss_not_half_step",
        "edss",
        {"patient_id": "P1", "date": "2015-07-01", "score": 3.25},
        "score",
        "3.25",
        "steps of 0.5",
    ),
    (
        "end_before_start",
        "treatments",
        {
            "patient_id": "P1",
            "drug": "natalizumab",
            "start_date": "2014-05-01",
            "end_date": "2014-04-01",
        },
        "end_date",
        "2014-04-01",
        "is before start_date",
    ),
    (
        "ring_more_than_gd",
        "mri",
        {"patient_id": "P1", "date": "2015-09-01", "gd_enhancing": 1, "ring_enhancing": 2},
        "ring_enhancing",
        "2",
        "is more than gd_enhancing",
    ),
    (
        "bad_bool",
        "relapses",
        {"patient_id": "P1", "onset_date": "2015-09-01", "confirmed": "maybe"},
        "confirmed",
        "maybe",
        "is not true or false",
    ),
    (
        "required_missing",
        "relapses",
        {"patient_id": "P1", "onset_date": ""},
        "onset_date",
        None,
        "is required",
    ),
    (
        "bad_category",
        "adverse_events",
        {"patient_id": "P1", "onset_date": "2015-09-01", "term": "Flu", "category": "flu"},
        "category",
        "flu",
        "is not one of",
    ),
    (
        "qualitative_answer",
        "labs",
        lab("P1", "2015-03-01", "urine_blood", "lots"),
        "value",
        "lots",
        "is not one of negative, trace, 1+, 2+, 3+",
    ),
]


@pytest.mark.parametrize(
    ("table", "row", "column", "value", "why"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_is_named_and_nothing_stored(
    tmp_path: Path, table, row, column, value, why
) -> None:
    db = f"sqlite:///{tmp_path / 'clinic.db'}"
    save(read_clinic(write_clinic(tmp_path / "good", **GOOD))[0], db)
    before = load(db).row_counts()

    folder = write_clinic(tmp_path / "bad", **_with(table, row))
    with pytest.raises(InputRejected) as caught:
        read_clinic(folder)
    problems = caught.value.problems
    bad_row = len(GOOD.get(table, [])) + 2  # header is row 1
    hit = [
        p for p in problems if p.file == f"{table}.csv" and p.row == bad_row and p.column == column
    ]
    assert hit, [str(p) for p in problems]
    assert hit[0].value == value
    assert why in hit[0].reason
    assert str(hit[0]).startswith(f"{table}.csv row {bad_row}, column {column}: ")
    assert load(db).row_counts() == before


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    tables = _with("labs", lab("P1", "2015-13-45", "lymphocytes", -1, "10*9/L"))
    tables["labs"].append(lab("P9", "2015-03-01", "platelets", 150, "furlongs"))
    tables["edss"].append({"patient_id": "P1", "date": "2015-07-01", "score": 11})
    with pytest.raises(InputRejected) as caught:
        read_clinic(write_clinic(tmp_path, **tables))
    where = {(p.file, p.row, p.column) for p in caught.value.problems}
    assert where == {
        ("labs.csv", 3, "date"),
        ("labs.csv", 3, "value"),
        ("labs.csv", 4, "patient_id"),
        ("labs.csv", 4, "unit"),
        ("edss.csv", 3, "score"),
    }


def test_example_message_of_the_contract(tmp_path: Path) -> None:
    tables = {
        "patients": GOOD["patients"],
        "labs": [
            lab("P1", "2015-02-01", "tsh", 1, "mIU/L"),
            lab("P1", "2015-13-45", "tsh", 1, "mIU/L"),
        ],
    }
    with pytest.raises(InputRejected) as caught:
        read_clinic(write_clinic(tmp_path, **tables))
    assert [str(p) for p in caught.value.problems] == [
        "labs.csv row 3, column date: '2015-13-45' is not a date (YYYY-MM-DD)"
    ]


def test_missing_patients_file_and_required_column(tmp_path: Path) -> None:
    (tmp_path / "labs.csv").write_text("patient_id,date,value\nP1,2015-01-01,1\n")
    with pytest.raises(InputRejected) as caught:
        read_clinic(tmp_path)
    messages = [str(p) for p in caught.value.problems]
    assert "patients.csv: is required but missing" in messages
    assert "labs.csv row 1, column test: is a required column but missing" in messages


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (150, "cells/uL"),
        (0.15, "10*9/L"),
        (150, "/mm3"),
        (0.15, "10^9/L"),
        (0.15, "K/uL"),
        (150, "cells/µL"),
        (0.15, "G/L"),  # German: Giga-particles per litre
        (0.15, "Gpt/L"),
        (0.15, " gpt/l "),
    ],
)
@pytest.mark.parametrize(
    "test", ["lymphocytes", "leukocytes", "neutrophils", "platelets", "cd4", "cd19"]
)
def test_count_units_convert_to_the_same_value(tmp_path: Path, value, unit, test) -> None:
    tables = {
        "patients": GOOD["patients"],
        "labs": [lab("P1", "2015-02-01", test, value, unit)],
    }
    dataset, _ = read_clinic(write_clinic(tmp_path, **tables))
    row = dataset["labs"].to_pylist()[0]
    assert row["value"] == 0.15
    assert row["unit"] == "10*9/L"
    # contract v1.1: as given, without surrounding spaces
    assert (row["value_reported"], row["unit_reported"]) == (str(value), unit.strip())


@pytest.mark.parametrize("unit", ["mIU/L", "m[IU]/L", "uIU/mL", "uU/mL", "µU/mL", "μU/mL", "mU/L"])
def test_tsh_unit_spellings_convert_to_the_same_value(tmp_path: Path, unit: str) -> None:
    tables = {"patients": GOOD["patients"], "labs": [lab("P1", "2015-02-01", "tsh", 2.5, unit)]}
    row = read_clinic(write_clinic(tmp_path, **tables))[0]["labs"].to_pylist()[0]
    assert (row["value"], row["unit"], row["unit_reported"]) == (2.5, "m[IU]/L", unit)


def test_qualitative_value_as_reported_keeps_its_spelling(tmp_path: Path) -> None:
    tables = {
        "patients": GOOD["patients"],
        "labs": [lab("P1", "2015-02-01", "urine_blood", "Trace")],
    }
    row = read_clinic(write_clinic(tmp_path, **tables))[0]["labs"].to_pylist()[0]
    assert (row["value"], row["value_text"], row["unit"]) == (None, "trace", None)
    assert (row["value_reported"], row["unit_reported"]) == ("Trace", None)


def test_one_result_in_two_spellings_is_a_duplicate_stored_once(tmp_path: Path) -> None:
    """0.15 G/L and 150 cells/uL are the same canonical row: warned, stored once."""
    tables = {
        "patients": GOOD["patients"],
        "labs": [
            lab("P1", "2015-02-01", "lymphocytes", "0.15", "G/L"),
            lab("P1", "2015-02-01", "lymphocytes", "150", "cells/uL"),
        ],
    }
    dataset, warnings = read_clinic(write_clinic(tmp_path / "in", **tables))
    assert "labs.csv row 3: repeats row 2; stored once" in [str(w) for w in warnings]
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert save(dataset, db)["labs"] == 1
    stored = load(db)["labs"].to_pylist()
    assert [(r["value"], r["value_reported"], r["unit_reported"]) for r in stored] == [
        (0.15, "0.15", "G/L")
    ]


def test_creatinine_mg_dl_and_reference_range_convert(tmp_path: Path) -> None:
    tables = {
        "patients": GOOD["patients"],
        "labs": [lab("P1", "2015-02-01", "2160-0", 1.5, "mg/dL", ref_low=0.5, ref_high=1.2)],
    }
    row = read_clinic(write_clinic(tmp_path, **tables))[0]["labs"].to_pylist()[0]
    assert row["test"] == "creatinine"
    assert row["value"] == pytest.approx(132.63)
    assert (row["ref_low"], row["ref_high"]) == (pytest.approx(44.21), pytest.approx(106.104))
    assert row["unit"] == "umol/L"
    assert (row["value_reported"], row["unit_reported"]) == ("1.5", "mg/dL")


def test_loinc_codes_map_to_short_names(tmp_path: Path) -> None:
    codes = {
        "731-0": "lymphocytes",
        "26474-7": "lymphocytes",
        "777-3": "platelets",
        "3016-3": "tsh",
        "11580-8": "tsh",
    }
    unit = {"lymphocytes": "10*9/L", "platelets": "10*9/L", "tsh": "mIU/L"}
    tables = {
        "patients": GOOD["patients"],
        "labs": [lab("P1", "2015-02-01", c, 1, unit[t]) for c, t in codes.items()],
    }
    rows = read_clinic(write_clinic(tmp_path, **tables))[0]["labs"].to_pylist()
    assert sorted(r["test"] for r in rows) == sorted(codes.values())


def test_warnings_do_not_reject(tmp_path: Path) -> None:
    tables = _with("labs", lab("P1", "1975-01-01", "lymphocytes", 1.0, "10*9/L"))
    tables["labs"].append(dict(tables["labs"][0]))
    dataset, warnings = read_clinic(write_clinic(tmp_path, **tables))
    text = [str(w) for w in warnings]
    assert (
        "labs.csv row 3, column date: '1975-01-01' is before the birth date 1980-04 of the patient"
        in text
    )
    assert "labs.csv row 4: repeats row 2; stored once" in text
    assert dataset["labs"].num_rows == 3


def test_workbook_reads_like_csv_and_names_sheet(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = "patients"
    ws.append(["patient_id", "sex", "birth_date"])
    ws.append(["P1", "F", 1980])
    ws = wb.create_sheet("labs")
    ws.append(["patient_id", "date", "test", "value", "unit"])
    ws.append(["P1", dt.datetime(2015, 2, 1), "lymphocytes", 150, "cells/uL"])
    ws.append(["P1", dt.date(2015, 3, 1), "platelets", 120.0, "10*9/L"])
    ws.append(["P1", "2015-02-30", "platelets", 120.0, "10*9/L"])
    path = tmp_path / "clinic.xlsx"
    wb.save(path)
    with pytest.raises(InputRejected) as caught:
        read_clinic(path)
    assert [str(p) for p in caught.value.problems] == [
        "clinic.xlsx[labs] row 4, column date: '2015-02-30' is not a date (YYYY-MM-DD)"
    ]
    wb["labs"].delete_rows(4)
    wb.save(path)
    dataset, _ = read_clinic(path)
    rows = sorted(dataset["labs"].to_pylist(), key=lambda r: r["date"])
    assert [(r["date"], r["test"], r["value"]) for r in rows] == [
        (dt.date(2015, 2, 1), "lymphocytes", 0.15),
        (dt.date(2015, 3, 1), "platelets", 120.0),
    ]
    assert [(r["value_reported"], r["unit_reported"]) for r in rows] == [
        ("150", "cells/uL"),
        ("120", "10*9/L"),
    ]
    assert dataset["patients"].to_pylist()[0]["birth_date"] == "1980"


def test_timestamps_accepted_where_dates_are(tmp_path: Path) -> None:
    tables = {
        "patients": GOOD["patients"],
        "labs": [lab("P1", "2015-02-01T08:30", "tsh", 1, "mIU/L")],
    }
    row = read_clinic(write_clinic(tmp_path, **tables))[0]["labs"].to_pylist()[0]
    assert row["date"] == dt.date(2015, 2, 1)


def test_import_twice_stores_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    dataset, _ = read_clinic(write_clinic(tmp_path / "in", **GOOD))
    first = save(dataset, db)
    assert first["labs"] == 1 and first["patients"] == 1
    assert set(save(dataset, db).values()) == {0}
    assert load(db).row_counts() == dataset.row_counts()


def test_blank_lines_and_broken_lines_keep_the_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("patient_id,sex\nP1,F\n\nP2,Q\nP3,F,extra\n\nP4,Z\n")
    with pytest.raises(InputRejected) as caught:
        read_clinic(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "patients.csv row 4, column sex: 'Q' is not one of F, M, X, U",
        "patients.csv row 5: 'P3,F,extra' has 3 fields, the header has 2",
        "patients.csv row 7, column sex: 'Z' is not one of F, M, X, U",
    ]
