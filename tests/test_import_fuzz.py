"""Fuzzing the readers (issue 11): generated CSV folders, workbooks and FHIR files, mostly
valid and sprinkled with hostile cells and bytes, go through `dmtwatch import`.

Whatever comes in, the import either stores it (exit 0) or rejects it (exit 2) with
every problem located (file, and row/column or FHIR element where there is one), never
a traceback; and a rejected import leaves the store exactly as it was.

Bounded: a fixed number of examples each, no deadline, no example database.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dmtwatch.cli import app
from dmtwatch.io import read_clinic
from dmtwatch.store import load, save
from tests.clinic import alemtuzumab_course, lab, write_clinic

FUZZ = settings(
    # a longer campaign: DMTWATCH_FUZZ_EXAMPLES=2000 (random, not derandomized)
    max_examples=int(os.environ.get("DMTWATCH_FUZZ_EXAMPLES", 25)),
    deadline=None,
    database=None,
    derandomize="DMTWATCH_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE = [
    "",
    " ",
    "inf",
    "-Infinity",
    "nan",
    "1e400",
    "1e307",
    "-1",
    "0",
    "1.5",
    "500",
    "0000-01-01",
    "9999-12-31",
    "2015-02-30",
    "2015-01-01",
    "2015-01-01T10:00",
    "1899",
    "1980-04",
    "=1+1",
    "@SUM(A1)",
    "P1",
    "P2",
    "a\x00b",
    '"',
    "'",
    "a\nb",
    "\r\n",
    ",",
    "é",
    "\U0001f600",
    "\x1b[31m",
    "x" * 300,
    "creatinine",
    "lymphocytes",
    "2160-0",
    "umol/L",
    "mg/dL",
    "10*9/L",
    "F",
    "X",
    "true",
    "alemtuzumab",
    "natalizumab",
]
TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12))

COLUMNS = {
    "patients": ["patient_id", "sex", "birth_date", "ms_type", "ms_onset_date"],
    "treatments": ["patient_id", "drug", "start_date", "end_date", "course", "dose"],
    "labs": ["patient_id", "date", "test", "value", "unit", "ref_low", "ref_high"],
}

GOOD = {
    "patients": [{"patient_id": "P1", "sex": "F", "birth_date": "1980-04"}],
    "treatments": [alemtuzumab_course("P1", "2015-01-05")],
    "labs": [lab("P1", "2015-02-05", "creatinine", 90, "umol/L", ref_high=100)],
}


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store holding a good clinic."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    save(read_clinic(write_clinic(tmp_path / "good", **GOOD))[0], url)
    return url


def _contents(url: str) -> dict[str, list]:
    dataset = load(url)
    return {name: sorted(map(repr, t.to_pylist())) for name, t in dataset.tables.items()}


def _import(url: str, *args: str) -> None:
    """The property: exit 0, or exit 2 with located problems and the store unchanged."""
    before = _contents(url)
    result = CliRunner().invoke(app, ["import", *args, "--db", url])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback: the failure this test exists to find
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert "input rejected" in result.output, result.output
        problems = [line.strip() for line in result.output.splitlines() if line.startswith("  ")]
        assert problems, result.output
        for line in problems:
            # "file[ row N][, column|element C]: [...]": every problem names where
            assert ": " in line, line
        assert _contents(url) == before


@st.composite
def csv_file(draw: st.DrawFn, table: str) -> bytes:
    columns = list(COLUMNS[table])
    header = draw(st.lists(st.sampled_from([*columns, "extra", ""]), min_size=0, max_size=3))
    header = columns + header if draw(st.booleans()) else draw(st.permutations(columns)) + header
    rows = draw(
        st.lists(
            st.lists(TEXT, min_size=len(header) - 1, max_size=len(header) + 1),
            min_size=0,
            max_size=4,
        )
    )
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # raw bytes spliced in anywhere: not UTF-8, NUL, a lone quote
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at:]
    return data


@st.composite
def clinic(draw: st.DrawFn) -> dict[str, bytes]:
    files = {"patients.csv": draw(csv_file("patients"))}
    for table in ("treatments", "labs"):
        if draw(st.booleans()):
            files[f"{table}.csv"] = draw(csv_file(table))
    return files


@FUZZ
@given(files=clinic())
def test_fuzzed_csv_folder(store: str, files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        _import(store, "--data", tmp)


CELL = st.one_of(
    TEXT,
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.datetimes(),
    st.sampled_from(["=1+1", "=A2", "=NOW()", "=1/0", True, None]),
)


@st.composite
def workbook(draw: st.DrawFn) -> tuple[dict[str, list[list]], set[str]]:
    sheets = {}
    for table in ("patients", "treatments", "labs"):
        if table == "patients" or draw(st.booleans()):
            width = len(COLUMNS[table])
            rows = draw(st.lists(st.lists(CELL, min_size=width, max_size=width), max_size=4))
            sheets[table] = [COLUMNS[table], *rows]
    hidden = draw(st.sets(st.sampled_from(list(sheets))))
    return sheets, hidden


def _clean(value: object) -> object:
    """What openpyxl can write: no control characters in text."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


@FUZZ
@given(book=workbook())
def test_fuzzed_workbook(store: str, book: tuple[dict[str, list[list]], set[str]]) -> None:
    from openpyxl import Workbook

    sheets, hidden = book
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append([_clean(v) for v in row])
        if title in hidden and len(sheets) > len(hidden & set(wb.sheetnames)):
            ws.sheet_state = "hidden"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clinic.xlsx"
        try:
            wb.save(path)
        except (ValueError, OverflowError, TypeError):
            return  # openpyxl cannot write it (e.g. a date before 1900): nothing to read
        _import(store, "--data", str(path))


JSON_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=6,
)
MAYBE = st.one_of(TEXT, JSON_VALUE)


@st.composite
def fhir_resources(draw: st.DrawFn) -> list[dict]:
    patient = {
        "resourceType": "Patient",
        "id": draw(st.one_of(st.just("P1"), MAYBE)),
        "gender": draw(st.one_of(st.sampled_from(["female", "male"]), MAYBE)),
        "birthDate": draw(st.one_of(st.just("1980-04"), MAYBE)),
    }
    resources = [patient]
    for i in range(draw(st.integers(0, 3))):
        value = draw(st.one_of(st.floats(0, 1000), MAYBE))
        high = draw(st.one_of(st.floats(0, 1000), MAYBE))
        resources.append(
            {
                "resourceType": draw(st.sampled_from(["Observation", "Observation", "Bogus"])),
                "id": f"o{i}",
                "status": "final",
                "code": {
                    "coding": [
                        {
                            "system": "http://loinc.org",
                            "code": draw(st.sampled_from(["2160-0", "731-0", "zzz"])),
                        }
                    ]
                },
                "subject": {"reference": draw(st.sampled_from(["Patient/P1", "Patient/P9"]))},
                "effectiveDateTime": draw(st.one_of(st.just("2015-02-05"), MAYBE)),
                "valueQuantity": {
                    "value": value,
                    "system": "http://unitsofmeasure.org",
                    "code": draw(st.one_of(st.sampled_from(["umol/L", "10*9/L"]), MAYBE)),
                },
                "referenceRange": [{"high": {"value": high}}],
            }
        )
    return resources


@FUZZ
@given(
    resources=fhir_resources(),
    as_bundle=st.booleans(),
    splice=st.one_of(st.none(), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=6))),
)
def test_fuzzed_fhir(store: str, resources: list[dict], as_bundle: bool, splice) -> None:
    if as_bundle:
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in resources],
        }
        name, data = "clinic.json", json.dumps(bundle).encode()
    else:
        name = "clinic.ndjson"
        data = b"".join(json.dumps(r).encode() + b"\n" for r in resources)
    if splice is not None:
        where, junk = splice
        at = int(where * len(data))
        data = data[:at] + junk + data[at:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        _import(store, "--fhir", str(path))
