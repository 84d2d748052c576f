"""FAERS and legacy AERS quarterly ASCII files to reports with their drugs and events.

What is read, and why so:

* **Quarters**: a folder (searched recursively, so the FDA's ``ascii/`` or ``ASCII/``
  subfolder is found) or a ``.zip`` as downloaded; a folder holding several quarters or
  several zips is read as all of them. Only DEMO, DRUG and REAC are read
  (``DEMOyyQq.txt``, any case; ``DEMO18Q1_new.txt`` is preferred to ``DEMO18Q1.txt``).
* **Layouts**: current FAERS (2012Q4 on: ``primaryid`` = caseid followed by caseversion,
  ``caseid``) and legacy AERS (2004-2012Q3: ``isr``, ``case``, a ``$`` ending every
  data line but not the header). The layout and the trailing ``$`` are read from each
  file's header and first lines, not from its date.
* **One version per case** over all quarters given: the DEMO row with the latest
  ``fda_dt`` (a valid YYYYMMDD; others count as oldest), then the highest
  ``primaryid`` / ``isr`` (as a number), then the later quarter. Legacy ``case`` and
  current ``caseid`` are taken as one number space. Only the DRUG and REAC rows of
  that version (same quarter file, same primaryid) are used.
* **Deleted cases** (FDA lists from 2019Q1: files in a ``deleted`` folder or named
  ``DELETE*.txt``, one caseid per line) are dropped whichever quarter lists them.
* **Drugs**: rows whose ``role_cod`` is in `roles` (default PS and SS, the suspects).
  Name = ``prod_ai`` when present (upper-cased), else the cleaned ``drugname``
  (:mod:`dmtwatch.pv.drug_names`), then the user's mapping file, applied last.
* **Events**: MedDRA preferred terms (``pt``) as given, trimmed and upper-cased.
* **Output**: :class:`ReportSets`, as FAERS itself keeps them: each report's drugs and
  its events apart (its pairs are every drug with every event), which the counts use
  directly (a sparse product); ``to_table()`` gives the long (report, drug, event) table
  of :data:`COLUMNS`. Only reports with a kept drug and a reaction are in it.
  ``report_id`` is the case id. Strata come from the kept version: ``sex``
  (F, M, else UNK); ``age_group`` (<18, 18-44, 45-64, 65-74, >=75 from age in its unit:
  YR, DEC x10, MON, WK, DY, HR; an age outside 0-120 years or none: <18 when age_grp
  says neonate, infant, child or adolescent, else unknown); ``year`` and ``quarter`` of
  its fda_dt (``2017``, ``2017Q2``; else unknown).

Lines whose number of ``$`` fields differs from the header's (a ``$`` inside a value,
rows run together, a row broken over two lines) are skipped and reported with file and
line, as are lines whose key is not a number; a file, folder or zip that cannot be read
raises :class:`FaersError` naming it.

Speed: files go whole through pyarrow's CSV reader; names and terms are normalised once
per distinct value and stored as integer codes, so DuckDB de-duplicates and joins
integers only; the names stay a vocabulary the codes point into. Python runs per file
and per distinct name, never per row.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.duck import sql_literal
from dmtwatch.errors import InputError
from dmtwatch.io.problems import Problem
from dmtwatch.pv.drug_names import (
    DrugMapError,
    apply_drug_map,
    clean_drug_names,
    normalise_ingredients,
    read_drug_map,
)
from dmtwatch.pv.report_sets import ReportSets
from dmtwatch.pv.textio import Source, blank_rows, head_lines, open_source, read_text_table

DEFAULT_ROLES: tuple[str, ...] = ("PS", "SS")
COLUMNS: tuple[str, ...] = ("report_id", "drug", "event", "sex", "age_group", "year", "quarter")
SEXES: tuple[str, ...] = ("F", "M", "UNK")
AGE_GROUPS: tuple[str, ...] = ("<18", "18-44", "45-64", "65-74", ">=75", "unknown")

_TABLES = ("DEMO", "DRUG", "REAC")
_TABLE_FILE = re.compile(r"^(DEMO|DRUG|REAC)(\d{2})Q([1-4])(_NEW)?\.TXT$", re.IGNORECASE)
_DELETED_FILE = re.compile(r"^DELETE.*\.TXT$", re.IGNORECASE)
_TEXT_FILE = re.compile(r"\.TXT$", re.IGNORECASE)
_TRAILING = "_trailing_"
_UNREADABLE = (OSError, EOFError, zipfile.BadZipFile, zlib.error)

# (target, header names in order of preference, required)
_WANTED: dict[str, tuple[tuple[str, tuple[str, ...], bool], ...]] = {
    "DEMO": (
        ("pid", ("primaryid", "isr"), True),
        ("case_id", ("caseid", "case"), True),
        ("fda_dt", ("fda_dt",), True),
        ("sex", ("sex", "gndr_cod"), False),
        ("age", ("age",), False),
        ("age_cod", ("age_cod",), False),
        ("age_grp", ("age_grp",), False),
    ),
    "DRUG": (
        ("pid", ("primaryid", "isr"), True),
        ("role", ("role_cod",), True),
        ("drugname", ("drugname",), True),
        ("prod_ai", ("prod_ai",), False),
    ),
    "REAC": (
        ("pid", ("primaryid", "isr"), True),
        ("pt", ("pt",), True),
    ),
}
_KEYS = {"DEMO": ("pid", "case_id"), "DRUG": ("pid",), "REAC": ("pid",)}


class FaersError(InputError):
    """A quarter cannot be read at all; the message names the file, folder or zip."""


@dataclass(frozen=True)
class _File:
    label: str  # how messages name it: a path, or "x.zip[ascii/DEMO17Q2.txt]"
    source: Source


@dataclass
class _Plan:
    """How to read one DEMO, DRUG or REAC file, decided from its first lines."""

    file: _File
    table: str
    names: list[str]  # every field of a line
    columns: dict[str, str]  # target -> header name, for the columns present


@dataclass
class _Quarter:
    year: int
    quarter: int
    where: str
    plans: dict[str, _Plan] = field(default_factory=dict)


def read_faers(
    paths: Sequence[Path | str],
    roles: Iterable[str] | None = DEFAULT_ROLES,
    drug_map: Path | str | None = None,
) -> tuple[ReportSets, list[Problem], dict[str, int]]:
    """The kept reports of the quarters given, each with its drugs, events and strata.

    Returns the reports (:class:`ReportSets`: report_id (the case id, a string) and the
    strata (dictionary-encoded strings) per report, unique (report, drug) and (report,
    event) mentions in no particular order; ``to_table()`` is the long table of
    :data:`COLUMNS`, one row per unique (report, drug, event)), the problems (malformed
    lines: file, line, text, why) and counts: quarters, reports_read (DEMO rows, every
    version), versions_dropped, deleted_case_ids, deleted_cases_dropped, reports (kept),
    drug_rows_read, drug_rows_kept (with a wanted role, of kept reports),
    drug_rows_unnamed (wanted role, no name at all), reaction_rows_kept, rows (unique
    report-drug-event triples), reports_with_rows, malformed_lines. Every quarter's files
    are found and their headers checked before any is read, so a broken last quarter
    fails in a second, not after minutes; so does a bad mapping file (FaersError too).
    `roles=None` keeps every drug role.
    """
    if not paths:
        raise FaersError("no FAERS quarter given")
    role_set = None if roles is None else sorted({r.strip().upper() for r in roles})
    if role_set is not None and not role_set:
        raise ValueError("roles is empty: give drug roles (PS, SS, C, I) or None for all")
    try:
        mapping = read_drug_map(drug_map) if drug_map is not None else {}
    except DrugMapError as e:  # one error type for callers: the run cannot start
        raise FaersError(str(e)) from e
    problems: list[Problem] = []
    counts = dict.fromkeys(("reports_read", "drug_rows_read", "drug_rows_unnamed"), 0)
    with ExitStack() as stack:
        quarters: list[_Quarter] = []
        deleted_files: list[_File] = []
        for path in paths:
            found, deleted = _discover(Path(path), stack)
            quarters += found
            deleted_files += deleted
        quarters.sort(key=lambda q: (q.year, q.quarter, q.where))
        deleted_ids: set[int] = set()
        for f in deleted_files:
            deleted_ids |= _read_deleted(f)
        con = _connect(stack)
        drugs, events, cleaned = _Vocabulary(), _Vocabulary(), _CleanCache()
        # one thread parses the next quarter (pyarrow releases the GIL) while this one
        # normalises and stores the current: reading and DuckDB overlap on two cores
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(_read_quarter, quarters[0]) if quarters else None
            for src in range(len(quarters)):
                assert pending is not None
                demo, drug, reac, found = pending.result()
                if src + 1 < len(quarters):
                    pending = reader.submit(_read_quarter, quarters[src + 1])
                problems += found
                counts["reports_read"] += demo.num_rows
                _insert(con, "demo", src, _demo_rows(demo))
                counts["drug_rows_read"] += drug.num_rows
                drug, unnamed = _drug_rows(drug, role_set, cleaned, mapping, drugs)
                counts["drug_rows_unnamed"] += unnamed
                _insert(con, "drug", src, drug)
                _insert(con, "reac", src, _reac_rows(reac, events))
                del demo, drug, reac
        con.execute("INSERT INTO deleted SELECT unnest(?::BIGINT[])", [sorted(deleted_ids)])
        reports, drug_rows, event_rows, found_counts = _assemble(con)
    sets = _report_sets(reports, drug_rows, event_rows, drugs, events)
    del reports, drug_rows, event_rows
    summary = {
        "quarters": len(quarters),
        "reports_read": counts["reports_read"],
        "versions_dropped": counts["reports_read"] - found_counts["cases"],
        "deleted_case_ids": len(deleted_ids),
        "deleted_cases_dropped": found_counts["cases"] - found_counts["reports"],
        "reports": found_counts["reports"],
        "drug_rows_read": counts["drug_rows_read"],
        "drug_rows_kept": found_counts["drug_rows_kept"],
        "drug_rows_unnamed": counts["drug_rows_unnamed"],
        "reaction_rows_kept": found_counts["reaction_rows_kept"],
        "rows": _triples(sets),
        "reports_with_rows": found_counts["reports_with_rows"],
        "malformed_lines": len(problems),
    }
    problems.sort(key=lambda p: (p.file, p.row if p.row is not None else 0))
    return sets, problems, summary


# ---------------------------------------------------------------- finding the files


def _discover(path: Path, stack: ExitStack) -> tuple[list[_Quarter], list[_File]]:
    """The quarters and deleted-case files under a folder or in a zip."""
    if not path.exists():
        raise FaersError(f"{path}: no such file or folder")
    if path.is_dir():
        members = [
            (p.relative_to(path).as_posix(), _File(str(p), p))
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
        if not any(_TABLE_FILE.match(Path(m).name) for m, _ in members):
            zips = [f.source for m, f in members if m.lower().endswith(".zip")]
            if zips:
                quarters: list[_Quarter] = []
                deleted: list[_File] = []
                for z in zips:
                    assert isinstance(z, Path)
                    q, d = _discover(z, stack)
                    quarters += q
                    deleted += d
                return quarters, deleted
    else:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise FaersError(f"{path}: not a readable zip file ({e})") from e
        stack.callback(archive.close)
        members = [
            (info.filename, _File(f"{path}[{info.filename}]", partial(archive.open, info)))
            for info in archive.infolist()
            if not info.is_dir()
        ]
    return _group(str(path), members)


def _group(where: str, members: list[tuple[str, _File]]) -> tuple[list[_Quarter], list[_File]]:
    """Table files by quarter; every quarter must have DEMO, DRUG and REAC."""
    chosen: dict[tuple[int, int, str], tuple[bool, _File]] = {}
    deleted: list[_File] = []
    for member, file in members:
        parts = [p.lower() for p in Path(member).parts]
        name = Path(member).name
        m = _TABLE_FILE.match(name)
        if m:
            table, yy, q, new = m.group(1).upper(), int(m.group(2)), int(m.group(3)), bool(m[4])
            key = (2000 + yy, q, table)
            if key in chosen and chosen[key][0] == new:
                raise FaersError(
                    f"{where}: two {table} files for {key[0]}Q{q}: "
                    f"{chosen[key][1].label} and {file.label}"
                )
            if key not in chosen or new:
                chosen[key] = (new, file)
        elif _TEXT_FILE.search(name) and ("deleted" in parts[:-1] or _DELETED_FILE.match(name)):
            deleted.append(file)
    if not chosen:
        raise FaersError(
            f"{where}: no FAERS quarter found (expected DEMOyyQq.txt, DRUGyyQq.txt and "
            "REACyyQq.txt, in the folder, a subfolder or a zip)"
        )
    quarters: dict[tuple[int, int], _Quarter] = {}
    for (year, q, table), (_, file) in sorted(chosen.items()):
        quarter = quarters.setdefault((year, q), _Quarter(year, q, where))
        quarter.plans[table] = _plan(file, table)
    for quarter in quarters.values():
        missing = [t for t in _TABLES if t not in quarter.plans]
        if missing:
            yyq = f"{quarter.year % 100:02d}Q{quarter.quarter}"
            raise FaersError(
                f"{where}: quarter {quarter.year}Q{quarter.quarter} has no "
                + " and no ".join(f"{t} file ({t}{yyq}.txt)" for t in missing)
            )
    return list(quarters.values()), deleted


def _plan(file: _File, table: str) -> _Plan:
    """Column names from the header; one more when data lines end with '$' (legacy)."""
    try:
        lines = head_lines(file.source)
    except _UNREADABLE as e:
        raise FaersError(f"{file.label}: cannot be read ({e})") from e
    if not lines or not lines[0].strip():
        raise FaersError(f"{file.label}: is empty or has no header line")
    names = [n.strip().lower() for n in lines[0].split("$")]
    while names and not names[-1]:
        names.pop()
    counts = [line.count("$") + 1 for line in lines[1:] if line.strip()]
    if counts and max(set(counts), key=counts.count) == len(names) + 1:
        names.append(_TRAILING)
    names = [n or f"_unnamed_{i}" for i, n in enumerate(names)]
    columns: dict[str, str] = {}
    missing: list[str] = []
    for target, candidates, required in _WANTED[table]:
        present = [c for c in candidates if c in names]
        if present:
            columns[target] = present[0]
        elif required:
            missing.append(" or ".join(candidates))
    if missing:
        raise FaersError(
            f"{file.label}: missing column(s) {', '.join(missing)} "
            f"(header: {'$'.join(n for n in names if n != _TRAILING)})"
        )
    return _Plan(file, table, names, columns)


def _read_deleted(file: _File) -> set[int]:
    """Case ids of a deleted-cases file: the leading number of each line."""
    try:
        with open_source(file.source) as f:
            text = f.read().decode("latin-1")
    except _UNREADABLE as e:
        raise FaersError(f"{file.label}: cannot be read ({e})") from e
    return {int(n) for n in re.findall(r"(?m)^\s*(\d{1,18})\b", text)}


# ---------------------------------------------------------------- reading the files


def _read_quarter(quarter: _Quarter) -> tuple[pa.Table, pa.Table, pa.Table, list[Problem]]:
    """DEMO, DRUG and REAC of a quarter, and the problems of their lines."""
    problems: list[Problem] = []
    tables = [_read(quarter.plans[t], problems) for t in _TABLES]
    return tables[0], tables[1], tables[2], problems


def _read(plan: _Plan, problems: list[Problem]) -> pa.Table:
    """A file's wanted columns under their target names; keys checked, bad lines reported."""
    label = plan.file.label
    include = list(dict.fromkeys(plan.columns.values()))
    try:
        text = read_text_table(plan.file.source, plan.names, include, delimiter="$", quoted=False)
    except (pa.ArrowException, *_UNREADABLE) as e:
        raise FaersError(f"{label}: cannot be read ({e})") from e
    expected = len(plan.names)
    for bad in text.bad_lines:
        problems.append(
            Problem(label, bad.line, None, _shorten(bad.text), _why(bad.fields, expected))
        )
    raw = text.table
    if raw.num_rows == 0 and text.bad_lines:
        raise FaersError(
            f"{label}: none of its {len(text.bad_lines)} lines has the header's "
            f"{expected} '$'-separated fields"
        )
    table = pa.table(
        {
            target: raw[plan.columns[target]]
            if target in plan.columns
            else pa.nulls(raw.num_rows, pa.string())
            for target, _, _ in _WANTED[plan.table]
        }
    )
    keys = _KEYS[plan.table]
    ok = _all_keys(table, keys)
    if not ok.all():
        # rare: keys with spaces around them are fine, anything else is reported
        for key in keys:
            trimmed = pc.utf8_trim_whitespace(table[key])
            table = table.set_column(table.schema.get_field_index(key), key, trimmed)
        ok = _all_keys(table, keys)
        bad = ~ok & ~blank_rows(raw)
        if bad.any():
            lines = text.line_numbers()
            for i in np.flatnonzero(bad):
                key = next(k for k in keys if not _is_key(table[k][int(i) : int(i) + 1])[0])
                problems.append(
                    Problem(
                        label,
                        int(lines[i]),
                        plan.columns[key],
                        _shorten(table[key][int(i)].as_py()),
                        "is not a case or report number; line skipped",
                    )
                )
        table = table.filter(pa.array(ok))
    for key in keys:
        index = table.schema.get_field_index(key)
        table = table.set_column(index, key, pc.cast(table[key], pa.int64()))
    return table


def _all_keys(table: pa.Table, keys: tuple[str, ...]) -> np.ndarray:
    ok = np.ones(table.num_rows, dtype=bool)
    for key in keys:
        ok &= _is_key(table[key])
    return ok


def _is_key(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which values are a case or report number: 1 to 18 ASCII digits."""
    digits = pc.fill_null(pc.ascii_is_decimal(values), False)
    short = pc.fill_null(pc.less_equal(pc.utf8_length(values), 18), False)
    return np.asarray(pc.and_(digits, short).to_numpy(zero_copy_only=False), dtype=bool)


def _why(fields: int, expected: int) -> str:
    found = f"has {fields} '$'-separated fields, expected {expected}: "
    if fields >= 2 * expected - 1:
        return found + "rows run together on one line; line skipped"
    if fields > expected:
        return found + "a '$' inside a value; line skipped"
    return found + "a row broken over lines or cut short; line skipped"


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- normalising


class _Vocabulary:
    """Strings to dense int32 codes, shared by all quarters (one Python step per new name)."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def encode(self, values: pa.Array) -> pa.Array:
        def codes(distinct: pa.Array) -> pa.Array:
            lookup = self.codes
            out = [None if v is None else lookup.setdefault(v, len(lookup)) for v in distinct]
            return pa.array(out, pa.int32())

        return _per_distinct(values, codes)

    def strings(self) -> pa.Array:
        return pa.array(list(self.codes), pa.string())


class _CleanCache:
    """Cleaned drugnames by raw drugname: most names recur every quarter."""

    def __init__(self) -> None:
        self.cleaned: dict[str, str] = {}

    def clean(self, names: pa.Array) -> pa.Array:
        def lookup(distinct: pa.Array) -> pa.Array:
            raw = distinct.to_pylist()
            new = [v for v in raw if v is not None and v not in self.cleaned]
            if new:
                done = clean_drug_names(pa.array(new, pa.string())).to_pylist()
                self.cleaned.update(zip(new, done, strict=True))
            return pa.array([None if v is None else self.cleaned[v] for v in raw], pa.string())

        return _per_distinct(names, lookup)


def _per_distinct(
    values: pa.Array | pa.ChunkedArray, fn: Callable[[pa.Array], pa.Array]
) -> pa.Array:
    """fn over the distinct values only, spread back to every row."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    distinct = pc.unique(values)
    return pc.take(fn(distinct), pc.index_in(values, value_set=distinct))


def _upper(values: pa.Array) -> pa.Array:
    return pc.utf8_upper(pc.utf8_trim_whitespace(values))


def _non_empty(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.greater(pc.utf8_length(values), 0), values, pa.scalar(None, pa.string()))


_YEARS_PER_UNIT = {"YR": 1.0, "DEC": 10.0, "MON": 1 / 12, "WK": 7 / 365.25, "DY": 1 / 365.25,
                   "HR": 1 / 8766}  # fmt: skip
_AGE_EDGES = np.array([18.0, 45.0, 65.0, 75.0])
_CHILD_AGE_GRP = ("N", "I", "C", "T")  # neonate, infant, child, adolescent: all under 18
_DATE = r"^(19|20)\d\d(0[1-9]|1[0-2])\d\d$"
_NUMBER = r"^\s*\d+(\.\d+)?\s*$"


def _demo_rows(demo: pa.Table) -> pa.Table:
    """(pid, case_id, fda, sex, age): fda a YYYYMMDD number or NULL, the rest codes."""
    fda = pc.utf8_trim_whitespace(demo["fda_dt"])
    fda = pc.if_else(pc.match_substring_regex(fda, _DATE), fda, pa.scalar(None, pa.string()))
    sex = _per_distinct(
        demo["sex"],
        lambda v: pc.fill_null(pc.index_in(_upper(v), value_set=pa.array(SEXES[:2])), 2),
    )
    return pa.table(
        {
            "pid": demo["pid"],
            "case_id": demo["case_id"],
            "fda": pc.cast(fda, pa.int32()),
            "sex": pc.cast(sex, pa.uint8()),
            "age": _age_groups(demo),
        }
    )


def _age_groups(demo: pa.Table) -> pa.Array:
    """Codes into AGE_GROUPS from age x its unit, else from age_grp (<18 or unknown)."""
    age = _per_distinct(
        demo["age"],
        lambda v: pc.if_else(
            pc.fill_null(pc.match_substring_regex(v, _NUMBER), False),
            pc.utf8_trim_whitespace(v),
            pa.scalar(None, pa.string()),
        ).cast(pa.float64()),
    )
    units = pa.array(list(_YEARS_PER_UNIT), pa.string())
    factors = pa.array(list(_YEARS_PER_UNIT.values()), pa.float64())
    factor = _per_distinct(
        demo["age_cod"], lambda v: pc.take(factors, pc.index_in(_upper(v), value_set=units))
    )
    years = np.asarray(pc.multiply(age, factor).to_numpy(zero_copy_only=False), dtype=float)
    band = np.searchsorted(_AGE_EDGES, np.nan_to_num(years, nan=-1.0), side="right")
    with np.errstate(invalid="ignore"):
        unusable = np.isnan(years) | (years < 0) | (years > 120)
    child = _per_distinct(
        demo["age_grp"],
        lambda v: pc.fill_null(pc.is_in(_upper(v), value_set=pa.array(_CHILD_AGE_GRP)), False),
    ).to_numpy(zero_copy_only=False)
    unknown = AGE_GROUPS.index("unknown")
    band = np.where(unusable, np.where(child, 0, unknown), band)
    return pa.array(band.astype(np.uint8))


def _drug_rows(
    drug: pa.Table,
    roles: list[str] | None,
    cleaned: _CleanCache,
    mapping: dict[str, str],
    vocabulary: _Vocabulary,
) -> tuple[pa.Table, int]:
    """(pid, drug code) of rows with a wanted role; and how many of those had no name."""
    if roles is not None:
        wanted = _per_distinct(
            drug["role"], lambda v: pc.is_in(_upper(v), value_set=pa.array(roles))
        )
        drug = drug.filter(pc.fill_null(wanted, False))
    name = _per_distinct(drug["prod_ai"], lambda v: _non_empty(normalise_ingredients(v)))
    need = pc.is_null(name)
    if pc.any(need).as_py():
        names = cleaned.clean(drug["drugname"].combine_chunks().filter(need))
        name = pc.replace_with_mask(name, need, _non_empty(names))
    name = apply_drug_map(name, mapping)
    has_name = pc.is_valid(name)
    rows = pa.table({"pid": drug["pid"], "drug": vocabulary.encode(name)}).filter(has_name)
    return rows, drug.num_rows - rows.num_rows


def _reac_rows(reac: pa.Table, vocabulary: _Vocabulary) -> pa.Table:
    """(pid, event code), the preferred term trimmed and upper-cased; empty terms dropped."""
    event = _per_distinct(reac["pt"], lambda v: _non_empty(_upper(v)))
    return pa.table({"pid": reac["pid"], "event": vocabulary.encode(event)}).filter(
        pc.is_valid(event)
    )


# ---------------------------------------------------------------- DuckDB


def _connect(stack: ExitStack) -> duckdb.DuckDBPyConnection:
    """An in-memory database that may spill to a private temporary folder."""
    spill = stack.enter_context(tempfile.TemporaryDirectory(prefix="dmtwatch-faers-"))
    con = duckdb.connect()
    stack.callback(con.close)
    con.execute(f"SET temp_directory = {sql_literal(spill)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute(
        """
        CREATE TABLE demo (src INTEGER, pid BIGINT, case_id BIGINT, fda INTEGER,
                           sex UTINYINT, age UTINYINT);
        CREATE TABLE drug (src INTEGER, pid BIGINT, drug INTEGER);
        CREATE TABLE reac (src INTEGER, pid BIGINT, event INTEGER);
        CREATE TABLE deleted (case_id BIGINT);
        """
    )
    return con


def _insert(con: duckdb.DuckDBPyConnection, name: str, src: int, rows: pa.Table) -> None:
    con.register("incoming", rows)
    try:
        con.execute(f"INSERT INTO {name} SELECT {src}, * FROM incoming")
    finally:
        con.unregister("incoming")


def _assemble(
    con: duckdb.DuckDBPyConnection,
) -> tuple[pa.Table, pa.Table, pa.Table, dict[str, int]]:
    """Latest version per case, deleted cases out; the reports with a drug and a reaction
    (case_id, sex, age, fda; row i is report i), unique (report, drug) and (report, event)."""
    con.execute(
        """
        CREATE TEMP TABLE latest AS
        SELECT * FROM demo
        QUALIFY row_number() OVER (
            PARTITION BY case_id ORDER BY fda DESC NULLS LAST, pid DESC, src DESC) = 1;
        CREATE TEMP TABLE kept AS
        SELECT * FROM latest ANTI JOIN deleted USING (case_id);
        CREATE TEMP TABLE used AS
        SELECT (row_number() OVER (ORDER BY case_id) - 1)::INTEGER AS report, *
        FROM kept k
        WHERE EXISTS (SELECT 1 FROM drug d WHERE d.src = k.src AND d.pid = k.pid)
          AND EXISTS (SELECT 1 FROM reac r WHERE r.src = k.src AND r.pid = k.pid);
        """
    )
    counts = {
        "cases": _count(con, "SELECT count(*) FROM latest"),
        "reports": _count(con, "SELECT count(*) FROM kept"),
        "drug_rows_kept": _count(con, "SELECT count(*) FROM drug SEMI JOIN kept USING (src, pid)"),
        "reaction_rows_kept": _count(
            con, "SELECT count(*) FROM reac SEMI JOIN kept USING (src, pid)"
        ),
        "reports_with_rows": _count(con, "SELECT count(*) FROM used"),
    }
    reports = con.sql(
        "SELECT CAST(case_id AS VARCHAR) AS report_id, sex, age, fda FROM used ORDER BY report"
    ).to_arrow_table()
    drug_rows = con.sql(
        "SELECT DISTINCT u.report, d.drug FROM used u JOIN drug d USING (src, pid)"
    ).to_arrow_table()
    event_rows = con.sql(
        "SELECT DISTINCT u.report, r.event FROM used u JOIN reac r USING (src, pid)"
    ).to_arrow_table()
    return reports, drug_rows, event_rows, counts


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.sql(sql).fetchall()[0][0])


def _report_sets(
    reports: pa.Table,
    drug_rows: pa.Table,
    event_rows: pa.Table,
    drugs: _Vocabulary,
    events: _Vocabulary,
) -> ReportSets:
    """The output: strata as dictionary-encoded strings (a few distinct values each, so
    some 6 bytes a report), mentions as int32 codes into the name vocabularies."""

    def dictionary(indices: pa.Array | pa.ChunkedArray, values: list[str]) -> pa.Array:
        if isinstance(indices, pa.ChunkedArray):
            indices = indices.combine_chunks()
        return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string()))

    fda = reports["fda"].combine_chunks()
    known = pc.is_valid(fda).to_numpy(zero_copy_only=False)
    date = fda.fill_null(0).to_numpy().astype(np.int64)
    key = np.where(known, date // 10000 * 10 + (date // 100 % 100 + 2) // 3, 0)
    distinct, index = np.unique(key, return_inverse=True)
    period = pa.array(index.astype(np.int16))
    table = pa.table(
        {
            "report_id": reports["report_id"],
            "sex": dictionary(reports["sex"].cast(pa.int8()), list(SEXES)),
            "age_group": dictionary(reports["age"].cast(pa.int8()), list(AGE_GROUPS)),
            "year": dictionary(period, [str(k // 10) if k else "unknown" for k in distinct]),
            "quarter": dictionary(
                period, [f"{k // 10}Q{k % 10}" if k else "unknown" for k in distinct]
            ),
        }
    )

    def column(rows: pa.Table, name: str) -> np.ndarray:
        return rows[name].to_numpy().astype(np.int32, copy=False)

    return ReportSets(
        table,
        column(drug_rows, "report"),
        column(drug_rows, "drug"),
        column(event_rows, "report"),
        column(event_rows, "event"),
        drugs.strings(),
        events.strings(),
    )


def _triples(sets: ReportSets) -> int:
    """Unique (report, drug, event) triples: per report, its drugs times its events."""
    n = sets.num_reports
    per_report = np.bincount(sets.drug_report, minlength=n).astype(np.int64)
    return int(per_report @ np.bincount(sets.event_report, minlength=n))
