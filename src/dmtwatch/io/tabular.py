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


def read_raw(
    path: Path, max_unpacked: int | None = None
) -> tuple[dict[str, RawTable], list[Problem]]:
    """Raw tables of a folder of CSVs or a workbook, and the problems of their shape.

    `max_unpacked` bounds a workbook's uncompressed size in bytes (default
    `XLSX_MAX_UNPACKED`, or the environment's DMTWATCH_XLSX_MAX_BYTES).
    """
    if path.is_dir():
        raws, problems = _read_folder(path)
    elif path.suffix.lower() == ".xlsx" and path.is_file():
        raws, problems = _read_workbook(path, max_unpacked)
    else:
        raise InputRejected(
            [Problem(str(path), None, None, None, "is neither a folder of CSV files nor an .xlsx")]
        )
    for raw in raws.values():
        problems += _check_columns(raw)
    # a patients file that is there but unreadable has its own problems: not "missing"
    unreadable = any(p.level == "error" and _table_of(p.file) == "patients" for p in problems)
    if "patients" not in raws and not unreadable:
        problems.append(Problem("patients.csv", None, None, None, "is required but missing"))
    return raws, problems


def _table_of(label: str) -> str:
    """The table a problem's file names: "labs.csv" and "clinic.xlsx[Labs]" name labs."""
    if label.endswith("]") and "[" in label:
        return _sheet_table(label[label.rindex("[") + 1 : -1])
    return label.removesuffix(".csv")


def _sheet_table(title: str) -> str:
    return title.strip().lower().removesuffix(".csv")


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
        with _open_text(file) as f, _field_limit():
            header = next(csv.reader(f), None)
    except csv.Error as e:
        return None, [Problem(label, 1, None, None, f"has a header that is not CSV ({e})")]
    except OSError as e:  # a folder named like the file, no permission to read it
        return None, [Problem(label, None, None, None, f"could not be read ({e.strerror or e})")]
    if not header:
        return None, [Problem(label, 1, None, None, "has no header row")]
    header = [h.strip() for h in header]
    broken = [
        Problem(label, 1, None, _shown_bytes(h), "is not UTF-8 text") for h in header if _bad(h)
    ]
    if broken:
        return None, broken
    duplicated = _duplicated_columns(label, header)
    if duplicated:
        return None, duplicated
    header = _name_blank_columns(header)
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
        with _quiet_handler() as failed:
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
        if failed:  # a broken row pyarrow could not even hand over (bytes not UTF-8)
            raise pa.ArrowInvalid(str(failed[0]))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        # pyarrow names neither row nor column: read again, slowly, to locate the cause
        located = _scan_csv(file, label, header)
        return None, located or [Problem(label, None, None, None, f"could not be read as CSV: {e}")]
    lines = np.arange(data.num_rows, dtype=np.int64) + 2
    for skipped in sorted([p.row for p in bad_rows if p.row is not None] + blank_lines):
        lines[lines >= skipped] += 1
    data = data.append_column(ROW, pa.array(lines))
    too_long = _long_fields(label, data)
    if too_long:
        return None, bad_rows + too_long
    return RawTable(name, label, _drop_blank_rows(data)), bad_rows


# The longest cell an import takes (characters): longer is a broken export or an attack.
MAX_FIELD = 100_000


def _long_fields(label: str, data: pa.Table) -> list[Problem]:
    """Cells over MAX_FIELD characters; a column shorter in total needs no look."""
    import pyarrow.compute as pc

    out = []
    for name in data.column_names:
        column = data[name]
        if name == ROW or column.nbytes <= MAX_FIELD:
            continue
        # bytes first (from the offsets, no scan of the text): never fewer than characters
        if pc.max(pc.binary_length(column)).as_py() <= MAX_FIELD:
            continue
        lengths = pc.utf8_length(column)
        mask = pc.greater(lengths, MAX_FIELD)
        rows = pc.filter(data[ROW], mask).to_pylist()
        sizes = pc.filter(lengths, mask).to_pylist()
        texts = pc.filter(column, mask).to_pylist()
        out += [
            Problem(label, r, name, t[:40] + "...", f"is {n} characters long (at most {MAX_FIELD})")
            for r, n, t in zip(rows, sizes, texts, strict=True)
        ]
    return out


class _quiet_handler:
    """pyarrow calls the invalid-row handler from C: an exception there (a broken row whose
    bytes are not UTF-8) is printed as a traceback and lost. Catch it instead."""

    def __enter__(self) -> list[BaseException]:
        import sys

        self.failed: list[BaseException] = []
        self.old = sys.unraisablehook

        def hook(u) -> None:
            if getattr(u.object, "__name__", "") == "on_invalid" and u.exc_value is not None:
                self.failed.append(u.exc_value)
            else:
                self.old(u)

        sys.unraisablehook = hook
        return self.failed

    def __exit__(self, *exc: object) -> None:
        import sys

        sys.unraisablehook = self.old


def _open_text(file: Path):
    """The file as text; bytes that are not UTF-8 kept as surrogates, to be located."""
    return file.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


class _field_limit:
    """Python's csv module refuses fields over 128 KiB; the scan wants to see them."""

    def __enter__(self) -> None:
        import sys

        self.old = csv.field_size_limit(sys.maxsize)

    def __exit__(self, *exc: object) -> None:
        csv.field_size_limit(self.old)


def _bad(text: str) -> bool:
    """Holds bytes that were not UTF-8 (decoded as surrogates)."""
    return not text.isascii() and any("\udc80" <= c <= "\udcff" for c in text)


def _shown_bytes(text: str) -> str:
    """Text with its non-UTF-8 bytes shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _scan_csv(file: Path, label: str, header: list[str]) -> list[Problem]:
    """The slow path, only for a file pyarrow refused: every cell that is not UTF-8 or is
    over-long, by row (line where the record starts) and column."""
    out: list[Problem] = []
    try:
        with _open_text(file) as f, _field_limit():
            reader = csv.reader(f)
            next(reader, None)
            line = reader.line_num + 1
            for record in reader:
                if record and any(record) and len(record) != len(header):
                    out.append(
                        Problem(
                            label,
                            line,
                            None,
                            _shown_bytes(",".join(record))[:80],
                            f"has {len(record)} fields, the header has {len(header)}",
                        )
                    )
                for i, cell in enumerate(record):
                    column = header[i] if i < len(header) else f"(column {i + 1})"
                    if _bad(cell):
                        out.append(
                            Problem(
                                label, line, column, _shown_bytes(cell)[:80], "is not UTF-8 text"
                            )
                        )
                    elif len(cell) > MAX_FIELD:
                        out.append(
                            Problem(
                                label,
                                line,
                                column,
                                cell[:40] + "...",
                                f"is {len(cell)} characters long (at most {MAX_FIELD})",
                            )
                        )
                line = reader.line_num + 1
    except csv.Error as e:
        out.append(Problem(label, line, None, None, f"is not CSV ({e})"))
    return out


def _duplicated_columns(label: str, header: list[str]) -> list[Problem]:
    """A column named twice: which of the two holds the data is anyone's guess."""
    first: dict[str, int] = {}
    out = []
    for i, name in enumerate(header, start=1):
        if not name:
            continue
        if name in first:
            out.append(
                Problem(
                    label, 1, name, None, f"is in the header twice (columns {first[name]} and {i})"
                )
            )
        else:
            first[name] = i
    return out


def _name_blank_columns(header: list[str]) -> list[str]:
    """Columns without a name (a trailing comma) get one, so they can be warned about."""
    return [h or f"(column {i})" for i, h in enumerate(header, start=1)]


def _drop_blank_rows(data: pa.Table) -> pa.Table:
    """Rows whose every cell is empty (blank lines) carry no data; their numbers stay used."""
    import pyarrow.compute as pc

    blank = None
    for name in data.column_names:
        if name != ROW:
            empty = pc.equal(pc.utf8_length(data[name]), 0)
            blank = empty if blank is None else pc.and_(blank, empty)
    return data if blank is None else data.filter(pc.invert(blank))


# The most a workbook may unpack to (bytes): the zip directory is checked before openpyxl
# opens anything, so a zip bomb (8.5 MB unpacking to gigabytes) is refused at once.
XLSX_MAX_UNPACKED = 512 * 1024 * 1024
_MAX_ENV = "DMTWATCH_XLSX_MAX_BYTES"


def _unpack_limit(given: int | None) -> int:
    import os

    if given is not None:
        return given
    try:
        return int(os.environ.get(_MAX_ENV, XLSX_MAX_UNPACKED))
    except ValueError:
        return XLSX_MAX_UNPACKED


def _check_zip(path: Path, limit: int) -> tuple[list[Problem], bool]:
    """Problems of the workbook's zip directory, and whether any sheet holds a formula."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limit:
                return [
                    Problem(
                        path.name,
                        None,
                        None,
                        None,
                        f"would unpack to {total:,} bytes, over the limit of {limit:,} "
                        f"(a zip bomb, or a workbook too large: set {_MAX_ENV} to allow it)",
                    )
                ], False
            sheets = [i for i in infos if i.filename.startswith("xl/worksheets/")]
            return [], any(_has_formula(z, i) for i in sheets)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        return [
            Problem(path.name, None, None, None, f"could not be read as a workbook: {e}")
        ], False


def _has_formula(z, info) -> bool:
    """A sheet's XML holds a formula element (`<f>`, `<f ...>` or a prefixed `<x:f>`)."""
    import re

    pattern = re.compile(rb"<(?:\w+:)?f[\s>/]")
    tail = b""
    with z.open(info) as f:
        while chunk := f.read(1 << 20):
            if pattern.search(tail + chunk):
                return True
            tail = chunk[-16:]
    return False


def _read_workbook(
    path: Path, max_unpacked: int | None = None
) -> tuple[dict[str, RawTable], list[Problem]]:
    from openpyxl import load_workbook

    zip_problems, formulas = _check_zip(path, _unpack_limit(max_unpacked))
    if zip_problems:
        raise InputRejected(zip_problems)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
        # a formula's cell holds the value it had when last saved; a workbook written by a
        # program may hold none: read the formulas too, to tell such a cell from an empty one
        fwb = load_workbook(path, read_only=True, data_only=False) if formulas else None
    except Exception as e:  # openpyxl raises many kinds for a broken file
        raise InputRejected(
            [Problem(path.name, None, None, None, f"could not be read as a workbook: {e}")]
        ) from e
    raws: dict[str, RawTable] = {}
    problems: list[Problem] = []
    first_sheet: dict[str, str] = {}
    for sheet in wb.worksheets:
        name = _sheet_table(sheet.title)
        label = f"{path.name}[{sheet.title}]"
        if name not in TABLES:
            problems.append(
                Problem(
                    label, None, None, None, "is not a table of the contract; ignored", "warning"
                )
            )
            continue
        if name in first_sheet:
            problems.append(
                Problem(
                    label,
                    None,
                    None,
                    None,
                    f"is a second sheet of {name} (the first: "
                    f"{first_sheet[name]}); which one holds the data is unclear",
                )
            )
            continue
        first_sheet[name] = sheet.title
        if sheet.sheet_state != "visible":
            problems.append(
                Problem(
                    label,
                    None,
                    None,
                    None,
                    f"is {sheet.sheet_state} in the workbook; read like the visible sheets",
                    "warning",
                )
            )
        shadow = fwb[sheet.title] if fwb is not None else None
        done = [0]  # the last row read, to name the one openpyxl failed on
        try:
            raw, found = _read_sheet(name, label, sheet, shadow, done)
        except Exception as e:  # openpyxl: a cell it cannot convert (e.g. a date overflow)
            reason = f"could not be read: {type(e).__name__}: {e}"
            raw, found = None, [Problem(label, done[0] + 1, None, None, reason)]
        problems += found
        if raw is not None:
            raws[name] = raw
    wb.close()
    if fwb is not None:
        fwb.close()
    return raws, problems


def _read_sheet(
    name: str, label: str, sheet, shadow, done: list[int]
) -> tuple[RawTable | None, list[Problem]]:
    """One sheet as a raw table. `shadow` is the same sheet with formulas as text (None
    when the workbook has none): a formula without a value is an error, not missing.
    `done[0]` follows the last row read."""
    rows = sheet.iter_rows(values_only=True)
    formulas = shadow.iter_rows(values_only=True) if shadow is not None else None
    header = next(rows, None)
    if formulas is not None:
        next(formulas, None)
    if header is None:
        return None, [Problem(label, 1, None, None, "has no header row")]
    done[0] = 1
    names = [_cell_text(h) for h in header]
    problems = _duplicated_columns(label, names)
    if problems:
        return None, problems
    keep = [i for i, h in enumerate(names) if h]
    columns: list[list[str]] = [[] for _ in keep]
    lines: list[int] = []
    for line, row in enumerate(rows, start=2):
        shadow_row = next(formulas, None) if formulas is not None else None
        if shadow_row is not None:
            problems += _uncached_formulas(label, line, names, row or (), shadow_row)
        if row is None or all(v is None for v in row):
            done[0] = line
            continue
        lines.append(line)
        for out, i in zip(columns, keep, strict=True):
            value = row[i] if i < len(row) else None
            if isinstance(value, str) and value in _ERRORS:
                problems.append(
                    Problem(
                        label,
                        line,
                        names[i],
                        value,
                        "is a spreadsheet error value (the formula or value behind it failed)",
                    )
                )
            out.append(_cell_text(value))
        done[0] = line
    # the table is still checked: with these errors, every other problem is named too
    table = {names[i]: pa.array(col, pa.string()) for i, col in zip(keep, columns, strict=True)}
    table[ROW] = pa.array(lines, pa.int64())
    return RawTable(name, label, pa.table(table)), problems


# what a cell shows when its formula failed (openpyxl reads these as text)
_ERRORS = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))


def _uncached_formulas(
    label: str, line: int, names: list[str], row: tuple, formulas: tuple
) -> list[Problem]:
    out = []
    for i, formula in enumerate(formulas):
        if (
            isinstance(formula, str)
            and formula.startswith("=")
            and (i >= len(row) or row[i] is None)
        ):
            column = names[i] if i < len(names) and names[i] else _letter(i)
            out.append(
                Problem(
                    label,
                    line,
                    column,
                    formula[:80],
                    "is a formula without a saved value (open and save the workbook in a "
                    "spreadsheet program, or export its values)",
                )
            )
    return out


def _letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"({get_column_letter(i + 1)})"


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
