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


# --- (2) tracebacks that became located errors ------------------------------------------


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        data = text if isinstance(text, bytes) else text.encode()
        (folder / name).write_bytes(data)
    return folder


PATIENTS_CSV = "patient_id,sex,birth_date\nP1,F,1980-04\n"


def test_duplicated_column_is_named(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"patients.csv": "patient_id,sex,sex\nP1,F,M\n"})
    assert _problems(folder) == [
        "patients.csv row 1, column sex: is in the header twice (columns 2 and 3)"
    ]


def test_unnamed_columns_are_warned_not_a_crash(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"patients.csv": "patient_id,sex,,\nP1,F,,\n"})
    dataset, warnings = read_clinic(folder)
    assert dataset["patients"].num_rows == 1
    assert [str(w) for w in warnings] == [
        "patients.csv row 1, column (column 3): is not a column of the contract; ignored",
        "patients.csv row 1, column (column 4): is not a column of the contract; ignored",
    ]


@pytest.mark.parametrize(
    "date",
    ["0000-01-01", "0001-01-01", "1899-12-31", "2101-01-01", "9999-12-31", "0000-01-01T10:00"],
)
def test_years_outside_1900_2100_are_rejected_with_the_row(tmp_path: Path, date: str) -> None:
    relapses = "patient_id,onset_date\nP1,2015-01-01\nP1," + date + "\n"
    folder = _write(tmp_path, {"patients.csv": PATIENTS_CSV, "relapses.csv": relapses})
    assert _problems(folder) == [
        f"relapses.csv row 3, column onset_date: '{date}' is outside the years 1900 to 2100"
    ]


@pytest.mark.parametrize("born", ["0000", "0000-01", "0000-01-01", "1850", "2200-01"])
def test_birth_date_years_outside_1900_2100_are_rejected(tmp_path: Path, born: str) -> None:
    folder = _write(tmp_path, {"patients.csv": f"patient_id,birth_date\nP1,{born}\n"})
    assert _problems(folder) == [
        f"patients.csv row 2, column birth_date: '{born}' is outside the years 1900 to 2100"
    ]


def test_years_1900_and_2100_are_accepted(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        {
            "patients.csv": "patient_id,birth_date\nP1,1900\n",
            "relapses.csv": "patient_id,onset_date\nP1,2100-12-31\n",
        },
    )
    read_clinic(folder)


@pytest.mark.parametrize("table", ["patients", "adverse_events"])
def test_nul_character_is_rejected_in_validation(tmp_path: Path, table: str) -> None:
    """PostgreSQL cannot store a NUL: it never reaches the store."""
    files = {"patients.csv": PATIENTS_CSV}
    if table == "patients":
        files["patients.csv"] += "P\x002,F,1981\n"
        where = "patients.csv row 3, column patient_id: 'P\\x002'"
    else:
        files["adverse_events.csv"] = (
            "patient_id,onset_date,term,category\nP1,2015-01-01,Herpes\x00 zoster,infection\n"
        )
        where = "adverse_events.csv row 2, column term: 'Herpes\\x00 zoster'"
    assert _problems(_write(tmp_path, files)) == [f"{where} contains a NUL character (not text)"]


def test_deeply_nested_fhir_json_is_rejected_naming_the_resource(tmp_path: Path) -> None:
    from dmtwatch.fhir.read import read_fhir

    deep = "[" * 5000 + "]" * 5000
    line = '{"resourceType": "Patient", "id": "P1", "x": ' + deep + "}\n"
    (tmp_path / "Patient.ndjson").write_text(line)
    with pytest.raises(InputRejected) as caught:
        read_fhir(tmp_path)
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1 and problems[0].startswith("Patient/P1: is not JSON"), problems


def test_deeply_nested_fhir_resource_in_memory_is_rejected() -> None:
    deep: list = []
    for _ in range(2000):
        deep = [deep]
    with pytest.raises(InputRejected) as caught:
        read_fhir_resources([{"resourceType": "Patient", "id": "P1", "x": deep}])
    assert next(str(p) for p in caught.value.problems).startswith("Patient/P1: is not JSON")


def test_nan_in_fhir_json_is_rejected_naming_the_resource(tmp_path: Path) -> None:
    from dmtwatch.fhir.read import read_fhir

    (tmp_path / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "P1", "x": NaN}\n')
    with pytest.raises(InputRejected) as caught:
        read_fhir(tmp_path)
    assert next(str(p) for p in caught.value.problems).startswith("Patient/P1: is not JSON")


# --- (4) located: bytes that are not UTF-8, over-long fields ------------------------------


def test_non_utf8_bytes_name_row_and_column(tmp_path: Path) -> None:
    text = b"patient_id,sex,birth_date\nP1,F,1980\nP\xe92,F,1981\nP3,F,1982\n"
    folder = _write(tmp_path, {"patients.csv": text})
    assert _problems(folder) == [
        "patients.csv row 3, column patient_id: 'P\\xe92' is not UTF-8 text"
    ]


def test_non_utf8_bytes_after_a_quoted_newline_name_the_record_start(tmp_path: Path) -> None:
    events = (
        b"patient_id,onset_date,term,category\n"
        b'P1,2015-01-01,"two\nlines",infection\n'
        b"P1,2015-02-01,Gr\xfcnd,other\n"
    )
    folder = _write(tmp_path, {"patients.csv": PATIENTS_CSV, "adverse_events.csv": events})
    assert _problems(folder) == [
        "adverse_events.csv row 4, column term: 'Gr\\xfcnd' is not UTF-8 text"
    ]


def test_non_utf8_header_is_named(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"patients.csv": b"patient_id,s\xe9x\nP1,F\n"})
    assert _problems(folder) == ["patients.csv row 1: 's\\xe9x' is not UTF-8 text"]


@pytest.mark.parametrize("size", [200_000, 3_000_000])
def test_over_long_field_names_row_and_column(tmp_path: Path, size: int) -> None:
    """Over pyarrow's block (3 MB) the reader failed naming only the file."""
    term = "x" * size
    events = f"patient_id,onset_date,term,category\nP1,2015-01-01,{term},infection\n"
    folder = _write(tmp_path, {"patients.csv": PATIENTS_CSV, "adverse_events.csv": events})
    assert _problems(folder) == [
        f"adverse_events.csv row 2, column term: '{'x' * 40}...' is {size} characters long "
        "(at most 100000)"
    ]


# --- (3) workbooks: formulas without a value, hidden sheets, zip bombs --------------------


def _workbook(path: Path, **sheets: list[list]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def _workbook_problems(path: Path, **kwargs) -> list[str]:
    with pytest.raises(InputRejected) as caught:
        read_clinic(path, **kwargs)
    return [str(p) for p in caught.value.problems]


def test_formula_without_a_saved_value_is_an_error_not_missing(tmp_path: Path) -> None:
    """openpyxl writes formulas without values, as do many programs: such a cell read as
    empty would silently drop a limit or an end date."""
    path = _workbook(
        tmp_path / "clinic.xlsx",
        patients=[["patient_id", "sex"], ["P1", "F"]],
        labs=[
            ["patient_id", "date", "test", "value", "unit", "ref_high"],
            ["P1", "2015-01-01", "creatinine", 500, "umol/L", "=90+10"],
        ],
    )
    assert _workbook_problems(path) == [
        "clinic.xlsx[labs] row 2, column ref_high: '=90+10' is a formula without a saved "
        "value (open and save the workbook in a spreadsheet program, or export its values)"
    ]


def test_formula_with_a_saved_value_is_read(tmp_path: Path) -> None:
    import zipfile

    path = _workbook(
        tmp_path / "clinic.xlsx",
        patients=[["patient_id", "sex"], ["P1", "F"]],
        labs=[
            ["patient_id", "date", "test", "value", "unit", "ref_high"],
            ["P1", "2015-01-01", "creatinine", 500, "umol/L", "=90+10"],
        ],
    )
    # as a spreadsheet program saves it: the formula and its value
    fixed = tmp_path / "saved.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(fixed, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if b"<f>90+10</f>" in data:
                data = data.replace(b"<f>90+10</f><v></v>", b"<f>90+10</f><v>100</v>")
                data = data.replace(b"<f>90+10</f><v />", b"<f>90+10</f><v>100</v>")
                assert b"<v>100</v>" in data, data[-600:]
            dst.writestr(info, data)
    dataset, _ = read_clinic(fixed)
    assert dataset["labs"].to_pylist()[0]["ref_high"] == 100


def test_hidden_sheet_is_read_and_said(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = _workbook(
        tmp_path / "clinic.xlsx",
        patients=[["patient_id", "sex"], ["P1", "F"]],
        labs=[
            ["patient_id", "date", "test", "value", "unit"],
            ["P1", "2015-01-01", "tsh", 1, "mIU/L"],
        ],
    )
    wb = load_workbook(path)
    wb["labs"].sheet_state = "hidden"
    wb.save(path)
    dataset, warnings = read_clinic(path)
    assert dataset["labs"].num_rows == 1
    assert "clinic.xlsx[labs]: is hidden in the workbook; read like the visible sheets" in [
        str(w) for w in warnings
    ]


def test_duplicated_column_in_a_sheet_is_named(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "c.xlsx", patients=[["patient_id", "sex", "sex"], ["P1", "F", "M"]])
    assert _workbook_problems(path) == [
        "c.xlsx[patients] row 1, column sex: is in the header twice (columns 2 and 3)"
    ]


def test_two_sheets_of_one_table_are_an_error(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path / "c.xlsx",
        patients=[["patient_id"], ["P1"]],
        **{"patients.csv": [["patient_id"], ["P2"]]},
    )
    problems = _workbook_problems(path)
    assert problems == [
        "c.xlsx[patients.csv]: is a second sheet of patients (the first: patients); which one "
        "holds the data is unclear"
    ]


def _bomb(path: Path, unpacked: int) -> Path:
    """A valid workbook with one more member that unpacks to `unpacked` bytes of zeros."""
    import zipfile

    _workbook(path, patients=[["patient_id"], ["P1"]])
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z,
        z.open("xl/media/padding.bin", "w") as f,
    ):
        for _ in range(unpacked >> 20):
            f.write(bytes(1 << 20))
    return path


def test_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path, monkeypatch) -> None:
    import time

    path = _bomb(tmp_path / "bomb.xlsx", 32 << 20)
    assert path.stat().st_size < 100_000
    monkeypatch.setenv("DMTWATCH_XLSX_MAX_BYTES", str(16 << 20))
    started = time.monotonic()
    problems = _workbook_problems(path)
    assert time.monotonic() - started < 1
    assert len(problems) == 1
    assert problems[0].startswith("bomb.xlsx: would unpack to 33,")
    assert "over the limit of 16,777,216" in problems[0]
    assert "DMTWATCH_XLSX_MAX_BYTES" in problems[0]


def test_workbook_limit_is_a_parameter_and_the_default_takes_normal_workbooks(
    tmp_path: Path,
) -> None:
    path = _workbook(tmp_path / "c.xlsx", patients=[["patient_id"], ["P1"]])
    read_clinic(path)
    problems = _workbook_problems(path, max_unpacked=1000)
    assert problems[0].startswith("c.xlsx: would unpack to ")


def test_default_limit_refuses_a_gigabyte(tmp_path: Path) -> None:
    from dmtwatch.io import tabular

    assert tabular.XLSX_MAX_UNPACKED <= 1 << 30


def test_broken_row_with_bytes_not_utf8_is_located_without_a_printed_traceback(
    tmp_path: Path, capfd
) -> None:
    text = b"patient_id,sex\nP1,F\nP\x8a2,F,extra\nP3,F\n"
    folder = _write(tmp_path, {"patients.csv": text})
    assert _problems(folder) == [
        "patients.csv row 3: 'P\\x8a2,F,extra' has 3 fields, the header has 2",
        "patients.csv row 3, column patient_id: 'P\\x8a2' is not UTF-8 text",
    ]
    assert "Traceback" not in capfd.readouterr().err


def test_a_folder_named_like_a_table_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").mkdir()
    assert _problems(tmp_path) == ["patients.csv: could not be read (Is a directory)"]


def test_spreadsheet_error_value_is_named_with_the_other_problems(tmp_path: Path) -> None:
    path = _workbook(
        tmp_path / "c.xlsx",
        patients=[["patient_id", "sex"], ["P1", "F"], ["#REF!", "F"]],
        labs=[
            ["patient_id", "date", "test", "value", "unit", "ref_high"],
            ["P1", "2015-01-01", "creatinine", 500, "umol/L", "=A1"],
            ["P1", "2015-13-01", "creatinine", 80, "umol/L", None],
        ],
    )
    assert _workbook_problems(path) == [
        "c.xlsx[labs] row 2, column ref_high: '=A1' is a formula without a saved value (open "
        "and save the workbook in a spreadsheet program, or export its values)",
        "c.xlsx[labs] row 3, column date: '2015-13-01' is not a date (YYYY-MM-DD)",
        "c.xlsx[patients] row 3, column patient_id: '#REF!' is a spreadsheet error value (the "
        "formula or value behind it failed)",
    ]


@pytest.mark.parametrize(
    "hostile",
    [
        "patients.csv:patient_id,sex,birth_date\nP1,F,1980-04\nP\x002,F,1981\n",
        "patients.csv:patient_id,sex,birth_date\nP1,F,1980-04\nP2,F,0000\n",
        "relapses.csv:patient_id,onset_date\nP1,0000-01-01\n",
    ],
    ids=["nul", "birth_0000", "onset_0000"],
)
def test_store_unchanged_and_exit_2_on_each_backend(tmp_path: Path, db_url: str, hostile) -> None:
    """The NUL and year-0 values crashed the PostgreSQL store: now refused before it."""
    from typer.testing import CliRunner

    from dmtwatch.cli import app
    from dmtwatch.store import load

    good = _write(tmp_path / "good", {"patients.csv": PATIENTS_CSV})
    runner = CliRunner()
    assert runner.invoke(app, ["import", "--data", str(good), "--db", db_url]).exit_code == 0
    before = load(db_url).tables["patients"].to_pylist()

    name, text = hostile.split(":", 1)
    files = {"patients.csv": PATIENTS_CSV, name: text}
    result = runner.invoke(
        app, ["import", "--data", str(_write(tmp_path / "bad", files)), "--db", db_url]
    )
    assert result.exit_code == 2, result.output
    assert f"{name} row " in result.output
    assert load(db_url).tables["patients"].to_pylist() == before


def test_over_long_fhir_text_is_rejected_and_the_message_stays_short() -> None:
    with pytest.raises(InputRejected) as caught:
        read_fhir_resources([fhir_patient("P" * 300_000)])
    messages = [str(p) for p in caught.value.problems]
    assert any("is longer than 100000 characters" in m for m in messages), messages
    assert all(len(m) < 1000 for m in messages), [len(m) for m in messages]
