"""Build small clinics as real CSV files for tests, and run the real pipeline on them."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from dmtwatch.engine.run import Findings, run_check
from dmtwatch.io import read_clinic
from dmtwatch.model.tables import TABLES


def write_clinic(folder: Path, **tables: list[dict]) -> Path:
    """Write each table (a list of row dicts) as `<name>.csv` with the contract's header.

    `patients` defaults to the patients named in the other tables.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if "patients" not in tables:
        ids = sorted({r["patient_id"] for rows in tables.values() for r in rows})
        tables["patients"] = [{"patient_id": i, "sex": "F", "birth_date": "1980"} for i in ids]
    for name, rows in tables.items():
        columns = list(TABLES[name].column_names)
        extra = [k for r in rows for k in r if k not in columns]
        with (folder / f"{name}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns + sorted(set(extra)))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _text(v) for k, v in r.items()})
    return folder


def _text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def check(folder: Path, as_of: dt.date | str) -> Findings:
    as_of = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    dataset, _ = read_clinic(folder)
    return run_check(dataset, as_of)


def findings(folder: Path, as_of: dt.date | str, code: str | None = None) -> list[dict]:
    """The findings as dicts, optionally of one code."""
    rows = check(folder, as_of).findings.to_pylist()
    return [r for r in rows if code is None or r["code"] == code]


def day(start: str | dt.date, n: int) -> dt.date:
    start = dt.date.fromisoformat(start) if isinstance(start, str) else start
    return start + dt.timedelta(days=n)


def alemtuzumab_course(pid: str, start: str | dt.date, days: int = 5, course: int = 1) -> dict:
    start = dt.date.fromisoformat(start) if isinstance(start, str) else start
    return {
        "patient_id": pid,
        "drug": "alemtuzumab",
        "start_date": start,
        "end_date": day(start, days - 1),
        "course": course,
        "dose": 12,
        "dose_unit": "mg",
    }


def lab(
    pid: str, date: str | dt.date, test: str, value: object, unit: str = "", **extra: object
) -> dict:
    return {"patient_id": pid, "date": date, "test": test, "value": value, "unit": unit, **extra}
