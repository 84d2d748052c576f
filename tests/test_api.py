"""`import dmtwatch`: the same readers, engine, audit and signals as the commands."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import dmtwatch
import dmtwatch.api
from dmtwatch.engine.findings import OUTPUT_COLUMNS

AS_OF = "2016-01-15"


@pytest.fixture(scope="module")
def clinic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic clinic in the contract's CSV format (as `dmtwatch synth` writes)."""
    from dmtwatch.synth import generate, write_csv

    folder = tmp_path_factory.mktemp("api") / "clinic"
    write_csv(generate(40, 3, dt.date.fromisoformat(AS_OF)), folder)
    return folder


@pytest.fixture(scope="module")
def clinic(clinic_dir: Path) -> dmtwatch.Clinic:
    return dmtwatch.read_clinic(clinic_dir)


def _cli(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dmtwatch", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_public_api_is_small_and_versioned() -> None:
    assert dmtwatch.__version__ and dmtwatch.__version__[0].isdigit()
    for name in dmtwatch.__all__:
        assert getattr(dmtwatch, name) is not None, name
    for name in ("read_clinic", "check", "audit", "signals", "DmtwatchError", "InputRejected"):
        assert name in dmtwatch.__all__
    for name in ("read_clinic", "check", "audit", "signals"):
        function = getattr(dmtwatch.api, name)
        assert function.__doc__ and function.__annotations__
        assert inspect.signature(getattr(dmtwatch, name)) == inspect.signature(function)


def test_dmtwatch_audit_is_the_function_whatever_was_imported_first() -> None:
    """The audit's package is dmtwatch.outcomes, so importing it never hides the API's
    `dmtwatch.audit` function (Python sets a package's attribute to a subpackage)."""
    import dmtwatch.outcomes.report
    import dmtwatch.outcomes.run

    assert dmtwatch.outcomes.run.run_audit
    from dmtwatch import audit

    assert audit is dmtwatch.audit is dmtwatch.api.audit
    assert inspect.isfunction(dmtwatch.audit)


def test_check_gives_the_findings_of_the_cli_json(
    clinic: dmtwatch.Clinic, clinic_dir: Path
) -> None:
    worklist = dmtwatch.check(clinic, AS_OF)
    cli = json.loads(_cli("check", "--data", str(clinic_dir), "--as-of", AS_OF, "--format", "json"))
    assert len(worklist) == len(cli["findings"]) > 10
    assert worklist.as_of == dt.date.fromisoformat(AS_OF) and cli["as_of"] == AS_OF
    assert json.loads(worklist.to_json()) == cli
    for finding, shown in zip(worklist, cli["findings"], strict=True):
        assert isinstance(finding, dmtwatch.Finding)
        as_json = {
            "code": finding.code,
            "patient_id": finding.patient_id,
            "severity": finding.severity,
            "date": finding.date.isoformat(),
            "title": finding.title,
            "detail": finding.detail,
            "action": finding.action,
            "source": finding.source,
            "protocol": finding.protocol,
            "evidence": [
                {
                    "table": e.table,
                    "date": e.date.isoformat() if e.date else None,
                    "item": e.item,
                    "value": e.value,
                }
                for e in finding.evidence
            ],
        }
        if finding.test is not None:
            as_json["test"] = finding.test
        if finding.grade is not None:
            as_json["grade"] = finding.grade
        assert {k: shown[k] for k in as_json} == as_json


def test_a_finding_is_typed_and_frozen(clinic: dmtwatch.Clinic) -> None:
    finding = next(iter(dmtwatch.check(clinic, AS_OF)))
    names = {f.name for f in dataclasses.fields(finding)}
    assert set(OUTPUT_COLUMNS) <= names
    assert isinstance(finding.date, dt.date) and isinstance(finding.facts, dict)
    assert isinstance(finding.key, str) and len(finding.key) == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.code = "X"  # type: ignore[misc]


def test_worklist_tables_and_summary(clinic: dmtwatch.Clinic) -> None:
    worklist = dmtwatch.check(clinic, dt.date.fromisoformat(AS_OF))
    table = worklist.to_arrow()
    assert isinstance(table, pa.Table) and table.num_rows == len(worklist)
    frame = worklist.to_pandas()
    assert list(frame["code"]) == [f.code for f in worklist]
    assert isinstance(worklist.evidence, pa.Table) and worklist.evidence.num_rows > 0
    counts = worklist.counts()
    assert sum(counts.values()) == len(worklist)
    summary = worklist.summary
    assert summary["findings"].to_dict() == counts
    assert (summary[["urgent", "high", "routine", "info"]].sum(axis=1) == summary["findings"]).all()
    assert "finding(s)" in repr(worklist)


def test_check_with_one_protocol(clinic: dmtwatch.Clinic) -> None:
    only = dmtwatch.check(clinic, AS_OF, protocols=["natalizumab"])
    assert {f.protocol for f in only} <= {"natalizumab"}


def test_read_clinic_takes_a_workbook_fhir_and_a_store(
    clinic: dmtwatch.Clinic, clinic_dir: Path, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    expected = dmtwatch.check(clinic, AS_OF).to_json()

    book = Workbook()
    book.remove(book.active)
    for path in sorted(clinic_dir.glob("*.csv")):
        sheet = book.create_sheet(path.stem)
        with path.open(newline="") as f:
            for row in csv.reader(f):
                sheet.append(row)
    book.save(tmp_path / "clinic.xlsx")
    from_xlsx = dmtwatch.read_clinic(tmp_path / "clinic.xlsx")
    assert from_xlsx.row_counts() == clinic.row_counts()

    _cli("synth", "--patients", "40", "--seed", "3", "--until", AS_OF, "--format", "fhir",
         "--out", str(tmp_path / "fhir"))  # fmt: skip
    from_fhir = dmtwatch.read_clinic(tmp_path / "fhir" / "ndjson")
    assert from_fhir.provenance is not None
    assert from_fhir.row_counts()["patients"] == clinic.row_counts()["patients"]

    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    _cli("import", "--data", str(clinic_dir), "--db", url)
    from_store = dmtwatch.read_clinic(url)
    assert dmtwatch.check(from_store, AS_OF).to_json() == expected


def test_bad_input_raises_input_rejected_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("patient_id,sex\nP1,Q\nP2,Z\n")
    with pytest.raises(dmtwatch.InputRejected) as caught:
        dmtwatch.read_clinic(tmp_path)
    assert [p.row for p in caught.value.problems] == [2, 3]
    assert isinstance(caught.value, dmtwatch.DmtwatchError)
    with pytest.raises(dmtwatch.InputRejected):
        dmtwatch.read_clinic(tmp_path / "absent")
    with pytest.raises(dmtwatch.StoreError):
        dmtwatch.read_clinic(f"sqlite:///{tmp_path / 'absent.db'}")


def test_a_bad_argument_is_a_usage_error(clinic: dmtwatch.Clinic) -> None:
    with pytest.raises(dmtwatch.UsageError, match="is not a date"):
        dmtwatch.check(clinic, "2016-02-30")
    with pytest.raises(dmtwatch.UsageError, match="cannot select a subgroup by"):
        dmtwatch.audit(clinic, AS_OF, where={"colour": "blue"})
    with pytest.raises(dmtwatch.UsageError):
        dmtwatch.signals()


def test_audit_is_the_cli_audit(clinic: dmtwatch.Clinic, clinic_dir: Path, tmp_path: Path) -> None:
    report = dmtwatch.audit(clinic, AS_OF)
    cli = json.loads(
        _cli("audit", "--data", str(clinic_dir), "--as-of", AS_OF, "--format", "json", "--out", "-")
    )
    assert report.to_dict() == cli
    assert report.n_patients == cli["cohort"]["n_patients"] > 0
    assert report.to_html().lstrip().lower().startswith("<!doctype html")
    pdf = report.write_pdf(tmp_path / "reports" / "audit.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    therapy = dmtwatch.audit(clinic, AS_OF, pre_window="therapy", where={"sex": "F"})
    assert therapy.n_patients <= report.n_patients


def _reports(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["report_id", "drug", "event", "sex"])
        n = 0
        for i, drug in enumerate(["ALEMTUZUMAB", "NATALIZUMAB", "FINGOLIMOD", "OTHER", "X"]):
            for j, event in enumerate(["HEADACHE", "NAUSEA", "PML", "ITP", "RASH"]):
                for k in range(1 + (i * 7 + j * 3) % 11):
                    n += 1
                    w.writerow([f"r{n}", drug, event, "F" if k % 2 else "M"])
    return path


def test_signals_is_the_cli_signals(tmp_path: Path) -> None:
    reports = _reports(tmp_path / "reports.csv")
    result = dmtwatch.signals(reports, drugs=["ALEMTUZUMAB"])
    cli = json.loads(
        _cli("signals", "--reports", str(reports), "--drug", "ALEMTUZUMAB", "--format", "json")
    )
    assert json.loads(json.dumps(result.to_dict())) == cli
    assert len(result) == result.to_pandas().shape[0] == len(cli["pairs"]) > 0
    stratified = dmtwatch.signals(reports, stratify=["sex"])
    assert len(stratified) >= len(result)
    with pytest.raises(dmtwatch.InputError, match="no stratum column"):
        dmtwatch.signals(reports, stratify=["age"])


def test_the_command_line_does_not_load_the_audit_libraries() -> None:
    """`import dmtwatch` (which every command and the CDS service do) loads the API's
    names on first use: a `dmtwatch check` never waits for SciPy, matplotlib or lifelines
    (they took ~3 s of every command's start before)."""
    heavy = ("matplotlib", "lifelines", "statsmodels", "scipy", "weasyprint", "pandas")
    code = f"import sys, dmtwatch, dmtwatch.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert callable(dmtwatch.check) and dmtwatch.Audit.__name__ == "Audit"
