"""Read a CSV folder or an XLSX workbook into raw text tables, one per contract table.

Every cell stays text here (empty = missing; the validator trims spaces) and each row keeps
its line number as a spreadsheet shows it (header = row 1), so the validator can name
file, row and column.
CSV files go through pyarrow's multithreaded reader; workbooks through openpyxl.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from dmtwatch.io.problems import InputRejected, Problem
from dmtwatch.model.tables import TABLES

ROW = "_row"


@dataclass
class RawTable:
    name: str  # contract table name, e.g. "labs"
    file: str  # how problems name the source, e.g. "labs.csv" or "clinic.xlsx[labs]"
    data: pa.Table  # all columns text, plus ROW (int64)


def read_raw(path: Path) -> tuple[dict[str, RawTable], list[Problem]]:
    """Raw tables of a folder of CSVs or a workbook, and the problems of their shape."""
    if path.is_dir():
        raws, problems = _read_folder(path)
    elif path.suffix.lower() == ".xlsx" and path.is_file():
        raws, problems = _read_workbook(path)
    else:
        raise InputRejected(
            [Problem(str(path), None, None, None, "is neither a folder of CSV files nor an .xlsx")]
        )
    for raw in raws.values():
        problems += _check_columns(raw)
    if "patients" not in raws:
        problems.append(Problem("patients.csv", None, None, None, "is required but missing"))
    return raws, problems


def _check_columns(raw: RawTable) -> list[Problem]:
    spec = TABLES[raw.name]
    present = set(raw.data.column_names)
    out = [
        Problem(raw.file, 1, c.name, None, "is a required column but missing")
        for c in spec.columns
        if c.required and c.name not in present
    ]
    out += [
        Problem(raw.file, 1, name, None, "is not a column of the contract; ignored", "warning")
        for name in raw.data.column_names
        if name != ROW and name not in spec.column_names
    ]
    return out


def _read_folder(folder: Path) -> tuple[dict[str, RawTable], list[Problem]]:
    raws: dict[str, RawTable] = {}
    problems: list[Problem] = []
    for name in TABLES:
        file = folder / f"{name}.csv"
        if file.exists():
            raw, found = _read_csv(name, file)
            problems += found
            if raw is not None:
                raws[name] = raw
    return raws, problems


def _read_csv(name: str, file: Path) -> tuple[RawTable | None, list[Problem]]:
    label = file.name
    try:
        with file.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError as e:
        return None, [Problem(label, None, None, None, f"is not UTF-8 text ({e.reason})")]
    if not header:
        return None, [Problem(label, 1, None, None, "has no header row")]
    header = [h.strip() for h in header]
    bad_rows: list[Problem] = []
    blank_lines: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if not row.text.strip():  # a blank line: skipped, but it still counts as a line
            blank_lines.append(row.number)
            return "skip"
        bad_rows.append(
            Problem(
                label,
                row.number,
                None,
                row.text[:80],
                f"has {row.actual_columns} fields, the header has {row.expected_columns}",
            )
        )
        return "skip"

    try:
        data = pacsv.read_csv(
            file,
            # single-threaded: only then does pyarrow number the lines it skips (and it is
            # no slower here: converting the text dominates)
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=False),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        return None, [Problem(label, None, None, None, f"could not be read as CSV: {e}")]
    lines = np.arange(data.num_rows, dtype=np.int64) + 2
    for skipped in sorted([p.row for p in bad_rows if p.row is not None] + blank_lines):
        lines[lines >= skipped] += 1
    data = data.append_column(ROW, pa.array(lines))
    return RawTable(name, label, _drop_blank_rows(data)), bad_rows


def _drop_blank_rows(data: pa.Table) -> pa.Table:
    """Rows whose every cell is empty (blank lines) carry no data; their numbers stay used."""
    import pyarrow.compute as pc

    blank = None
    for name in data.column_names:
        if name != ROW:
            empty = pc.equal(pc.utf8_length(data[name]), 0)
            blank = empty if blank is None else pc.and_(blank, empty)
    return data if blank is None else data.filter(pc.invert(blank))


def _read_workbook(path: Path) -> tuple[dict[str, RawTable], list[Problem]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a broken file
        raise InputRejected(
            [Problem(path.name, None, None, None, f"could not be read as a workbook: {e}")]
        ) from e
    raws: dict[str, RawTable] = {}
    problems: list[Problem] = []
    for sheet in wb.worksheets:
        name = sheet.title.strip().lower().removesuffix(".csv")
        label = f"{path.name}[{sheet.title}]"
        if name not in TABLES:
            problems.append(
                Problem(
                    label, None, None, None, "is not a table of the contract; ignored", "warning"
                )
            )
            continue
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            problems.append(Problem(label, 1, None, None, "has no header row"))
            continue
        names = [_cell_text(h) for h in header]
        keep = [i for i, h in enumerate(names) if h]
        columns: list[list[str]] = [[] for _ in keep]
        lines: list[int] = []
        for line, row in enumerate(rows, start=2):
            if row is None or all(v is None for v in row):
                continue
            lines.append(line)
            for out, i in zip(columns, keep, strict=True):
                out.append(_cell_text(row[i]) if i < len(row) else "")
        table = {names[i]: pa.array(col, pa.string()) for i, col in zip(keep, columns, strict=True)}
        table[ROW] = pa.array(lines, pa.int64())
        raws[name] = RawTable(name, label, pa.table(table))
    wb.close()
    return raws, problems


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV export would hold (dates as ISO 8601)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
