"""The commands as a user runs them: real processes, real files, real databases."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

VIGNETTES = Path(__file__).parent / "vignettes"


def dmtwatch(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dmtwatch", *args], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_check_json_follows_the_contract() -> None:
    proc = dmtwatch(
        "check",
        "--data",
        str(VIGNETTES / "ring_relapse_6_months"),
        "--as-of",
        "2015-09-01",
        "--format",
        "json",
    )
    doc = json.loads(proc.stdout)
    assert doc["as_of"] == "2015-09-01"
    ring = [f for f in doc["findings"] if f["code"] == "CNS-RING"]
    assert len(ring) == 1
    f = ring[0]
    assert {
        "code",
        "patient_id",
        "severity",
        "date",
        "title",
        "detail",
        "action",
        "evidence",
        "source",
    } <= set(f)
    assert f["severity"] == "urgent" and f["date"] == "2015-08-30" and f["patient_id"] == "H02"
    assert f["evidence"] == [
        {
            "table": "mri",
            "date": "2015-08-30",
            "item": "mri brain",
            "value": "ring_enhancing=9, gd_enhancing=20",
        }
    ]
    assert "Haghikia" in f["source"]
    assert "plasma exchange" in f["action"]
    order = {"urgent": 0, "high": 1, "routine": 2, "info": 3}
    ranks = [order[x["severity"]] for x in doc["findings"]]
    assert ranks == sorted(ranks), "most urgent first"


def test_import_then_check_db_equals_check_data(tmp_path: Path) -> None:
    data = str(VIGNETTES / "ring_relapse_rescued")
    db = f"sqlite:///{tmp_path / 'clinic.db'}"
    first = dmtwatch("import", "--data", data, "--db", db)
    assert "treatments 6/6" in first.stdout
    again = dmtwatch("import", "--data", data, "--db", db)
    assert "treatments 0/6" in again.stdout
    from_db = dmtwatch("check", "--db", db, "--as-of", "2015-10-01", "--format", "json").stdout
    from_files = dmtwatch(
        "check", "--data", data, "--as-of", "2015-10-01", "--format", "json"
    ).stdout
    assert json.loads(from_db) == json.loads(from_files)
    assert json.loads(from_db)["findings"], "the vignette raises findings"


@pytest.mark.postgres
def test_import_and_check_on_postgresql(pg_url: str) -> None:
    data = str(VIGNETTES / "relapse_without_mri")
    dmtwatch("import", "--data", data, "--db", pg_url)
    doc = json.loads(
        dmtwatch("check", "--db", pg_url, "--as-of", "2015-06-20", "--format", "json").stdout
    )
    assert [f["severity"] for f in doc["findings"] if f["code"] == "CNS-MRI"] == ["urgent"]


def test_rejected_import_exits_2_names_the_problem_and_stores_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    (folder / "patients.csv").write_text("patient_id\nP1\n")
    (folder / "labs.csv").write_text(
        "patient_id,date,test,value,unit\nP1,2015-13-45,tsh,1,mIU/L\nP1,2015-01-01,tsh,1,parsecs\n"
    )
    db = tmp_path / "clinic.db"
    proc = dmtwatch("import", "--data", str(folder), "--db", f"sqlite:///{db}", check=False)
    assert proc.returncode == 2
    assert "labs.csv row 2, column date: '2015-13-45' is not a date (YYYY-MM-DD)" in proc.stderr
    assert "labs.csv row 3, column unit: 'parsecs' is not a known unit for tsh" in proc.stderr
    assert "nothing was stored" in proc.stderr
    assert not db.exists()


def _deep(tmp_path: Path) -> Path:
    """A folder whose path is far longer than any terminal: 160+ characters wherever
    the checkout or the temporary directory lives."""
    deep = tmp_path.joinpath(*(f"level-{i}-of-a-deeply-nested-clinic-export" for i in range(4)))
    deep.mkdir(parents=True)
    assert len(str(deep)) > 160
    return deep


def test_error_output_to_a_pipe_is_never_wrapped(tmp_path: Path) -> None:
    """People grep error output in logs: every message is one line, however long."""
    deep = _deep(tmp_path)
    missing = deep / "clinic-export-that-is-not-there"
    proc = dmtwatch("check", "--data", str(missing), check=False)
    assert proc.returncode == 2
    assert f"  {missing}: is neither a folder of CSV files nor an .xlsx" in proc.stderr.splitlines()

    # a usage error (Typer's): one plain line, not a Rich panel cut at 80 columns; exit 64
    # (EX_USAGE), not 2, which means a rejected input (contract v1.2)
    item = "switch_reason" + "-and-more" * 20
    proc = dmtwatch("audit", "--data", str(missing), "--where", item, check=False)
    assert proc.returncode == 64
    assert any(f"'{item}' is not KEY=VALUE" in line for line in proc.stderr.splitlines())
    assert "╭" not in proc.stderr


def test_output_lines_to_a_pipe_are_never_wrapped(tmp_path: Path) -> None:
    target = _deep(tmp_path) / "audit.json"
    data = str(VIGNETTES / "relapse_without_mri")
    args = ("audit", "--data", data, "--as-of", "2015-06-20", "--format", "json")
    proc = dmtwatch(*args, "--out", str(target))
    assert proc.stdout.splitlines()[0].startswith(f"wrote {target} (")


def test_csv_and_table_formats(tmp_path: Path) -> None:
    data = str(VIGNETTES / "relapse_without_mri")
    out = dmtwatch("check", "--data", data, "--as-of", "2015-06-20", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    cns = [r for r in rows if r["code"] == "CNS-MRI"]
    assert cns and cns[0]["severity"] == "urgent" and "relapses 2015-06-15" in cns[0]["evidence"]
    table = dmtwatch("check", "--data", data, "--as-of", "2015-06-20", "--summary").stdout
    assert "CNS-MRI" in table and "worklist as of 2015-06-20" in table
    assert "1 urgent" in table


def test_bad_as_of_is_refused() -> None:
    proc = dmtwatch(
        "check",
        "--data",
        str(VIGNETTES / "relapse_without_mri"),
        "--as-of",
        "2015-02-30",
        check=False,
    )
    assert proc.returncode != 0
    assert "is not a date" in proc.stderr
