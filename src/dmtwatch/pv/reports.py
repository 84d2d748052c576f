"""A plain reports CSV (one row per report, drug and event) to the canonical Arrow table.

The contract (interchange.md section 6): columns ``report_id, drug, event`` plus any
stratum columns (e.g. ``sex``). Names are matched without regard to case or surrounding
spaces; values are trimmed and otherwise kept as given (no upper-casing, no name
cleaning), so counts match tools such as openEBGM on the same file.

A file without a required column is refused as a whole (:class:`ReportsError`, naming
the file and the columns). A row with an empty report_id, drug or event, or with the
wrong number of fields, is reported (file, row as a spreadsheet shows it, column, why)
and dropped; the rest is read. Repeated (report, drug, event) rows are kept once.
Strata describe a report, so a report given two values of one stratum keeps its first
and the others are reported as warnings: counting it in two strata would break the
stratified expected counts.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.errors import InputError
from dmtwatch.io.problems import Problem
from dmtwatch.pv.textio import blank_rows, read_text_table

REQUIRED: tuple[str, ...] = ("report_id", "drug", "event")
_ORDER = "_order_"


class ReportsError(InputError):
    """The reports file cannot be used at all; `file` and `missing` say why."""

    def __init__(self, file: str, message: str, missing: tuple[str, ...] = ()):
        self.file = file
        self.missing = missing
        super().__init__(f"{file}: {message}")


def read_reports_csv(
    path: Path | str, columns: Mapping[str, str] | None = None
) -> tuple[pa.Table, list[Problem]]:
    """The reports of a CSV file: ``report_id, drug, event`` then the strata, all strings.

    `columns` optionally names the file's columns for the required ones, e.g.
    ``{"report_id": "id", "drug": "var1", "event": "var2"}`` for openEBGM's caers.csv.
    Returns the table and the problems of rows that were dropped or changed.
    """
    path = Path(path)
    label = str(path)
    header = _header(path, label)
    lookup = {h.strip().lower(): h for h in header}
    wanted = {c: (columns or {}).get(c, c) for c in REQUIRED}
    found = {c: lookup.get(name.strip().lower()) for c, name in wanted.items()}
    missing = tuple(wanted[c] for c in REQUIRED if found[c] is None)
    if missing:
        raise ReportsError(
            label,
            f"missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(h.strip() for h in header) or 'no columns'})",
            missing,
        )
    problems: list[Problem] = []
    required_names = {found[c] for c in REQUIRED}
    strata = [h for h in header if h not in required_names and h.strip()]
    if any(not h.strip() for h in header):
        problems.append(
            Problem(label, 1, None, None, "has a column without a name; ignored", "warning")
        )
    stripped = [s.strip() for s in strata]
    if len(set(stripped)) < len(stripped) or set(stripped) & set(REQUIRED):
        raise ReportsError(label, f"has repeated column names ({', '.join(stripped)})")
    names = [f"_c{i}_" for i in range(len(header))]
    by_header = dict(zip(header, names, strict=True))
    include = [by_header[found[c]] for c in REQUIRED] + [by_header[s] for s in strata]
    try:
        text = read_text_table(path, names, include, delimiter=",", quoted=True)
    except (pa.ArrowException, OSError) as e:
        raise ReportsError(label, f"cannot be read as CSV ({e})") from e
    for bad in text.bad_lines:
        problems.append(
            Problem(
                label,
                bad.line,
                None,
                bad.text[:120],
                f"has {bad.fields} fields, the header has {bad.expected}; row dropped",
            )
        )
    if text.encoding != "utf8":
        problems.append(
            Problem(label, None, None, None, "is not UTF-8; read as Latin-1", "warning")
        )
    raw = text.table
    out_names = list(REQUIRED) + stripped
    table = pa.table(
        {
            out: pc.utf8_trim_whitespace(raw[col])
            for out, col in zip(out_names, include, strict=True)
        }
    )
    lines = text.line_numbers()
    keep = ~blank_rows(raw)
    for c in REQUIRED:
        empty = pc.equal(pc.utf8_length(table[c]), 0).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(empty & keep):
            problems.append(
                Problem(label, int(lines[i]), found[c].strip(), None, "is empty; row dropped")
            )
        keep &= ~empty
    table = table.append_column(_ORDER, pa.array(lines)).filter(pa.array(keep))
    table, conflicts = _unique(table, stripped)
    for report_id, column, line in conflicts:
        problems.append(
            Problem(
                label,
                line,
                column,
                report_id,
                "has another value of this stratum on an earlier row; the first is kept",
                "warning",
            )
        )
    problems.sort(key=lambda p: (p.row if p.row is not None else 0, p.column or ""))
    return table, problems


def _header(path: Path, label: str) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            header = next(csv.reader(f), None)
    except OSError as e:
        raise ReportsError(label, f"cannot be read ({e.strerror or e})") from e
    if not header or not any(h.strip() for h in header):
        raise ReportsError(label, "has no header row", REQUIRED)
    return header


def _unique(table: pa.Table, strata: list[str]) -> tuple[pa.Table, list[tuple[str, str, int]]]:
    """Unique (report, drug, event) in file order, each report with its first row's strata.

    Also the (report, stratum, first line) where a report's later row disagrees.
    """
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("rows", table)
        quoted = {s: '"' + s.replace('"', '""') + '"' for s in strata}
        firsts = ", ".join(f"arg_min({q}, {_ORDER}) AS {q}" for q in quoted.values())
        con.execute(
            "CREATE TEMP TABLE firsts AS SELECT report_id"
            + (f", {firsts}" if strata else "")
            + " FROM rows GROUP BY report_id"
        )
        conflicts: list[tuple[str, str, int]] = []
        for s, q in quoted.items():
            found = con.sql(
                f"""
                SELECT r.report_id, min(r.{_ORDER}) FROM rows r JOIN firsts f USING (report_id)
                WHERE r.{q} IS DISTINCT FROM f.{q} GROUP BY r.report_id
                """
            ).fetchall()
            conflicts += [(report, s, line) for report, line in found]
        strata_columns = "".join(f", f.{q}" for q in quoted.values())
        result = con.sql(
            f"""
            SELECT t.report_id, t.drug, t.event{strata_columns}
            FROM (SELECT report_id, drug, event, min({_ORDER}) AS {_ORDER}
                  FROM rows GROUP BY report_id, drug, event) t
            JOIN firsts f USING (report_id)
            ORDER BY t.{_ORDER}
            """
        ).to_arrow_table()
    finally:
        con.close()
    schema = pa.schema([(c, pa.string()) for c in result.column_names])
    return result.cast(schema), sorted(conflicts, key=lambda c: c[2])
