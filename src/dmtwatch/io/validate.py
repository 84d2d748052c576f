"""Validate raw text tables into the canonical tables, on whole tables in DuckDB.

Each contract column compiles to two SQL expressions: its parsed value and the reason it
is invalid (NULL when valid). One query per table computes both for every row; problems
are the non-NULL reasons, unpivoted. No Python runs per row, so a 20M-row labs file
costs a few column scans, and every problem of the input is found in one pass.
"""

from __future__ import annotations

from contextlib import closing
from functools import cache

import pyarrow as pa

from dmtwatch import duck
from dmtwatch.duck import sql_literal
from dmtwatch.io.problems import InputRejected, Problem
from dmtwatch.io.tabular import MAX_FIELD, ROW, RawTable
from dmtwatch.model.dataset import Dataset, arrow_schema
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import (
    EVENT_DATE,
    LAB_COLUMNS,
    PRESENTATION_COLUMNS,
    TABLES,
    Column,
    Table,
)

# YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS]: the length picks the format, strptime refuses
# anything else (impossible dates included); cheaper than a regex on millions of cells.
_DATE_PARSE = (
    "CASE length({v}) WHEN 10 THEN CAST(try_strptime({v}, '%Y-%m-%d') AS DATE) "
    "WHEN 16 THEN CAST(try_strptime({v}, ['%Y-%m-%dT%H:%M', '%Y-%m-%d %H:%M']) AS DATE) "
    "WHEN 19 THEN CAST(try_strptime({v}, ['%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M:%S']) AS DATE) END"
)
_PARTIAL_RE = r"^\d{4}(-\d{2}(-\d{2})?)?$"
# Years a clinical date can have: outside them a date is a typo or a placeholder (0000,
# 9999), and the store and Python's dates cannot hold every such year (year 0).
YEARS = (1900, 2100)
_YEARS_REASON = f"is outside the years {YEARS[0]} to {YEARS[1]}"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(sql_literal(v) for v in values) + "]"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _trimmed(c: str) -> str:
    """`c` without surrounding spaces; trimming allocates, so only cells that need it."""
    return f"CASE WHEN {c} LIKE ' %' OR {c} LIKE '% ' THEN trim({c}) ELSE {c} END"


def compile_column(col: Column, v: str, p: str) -> tuple[str, str]:
    """SQL for one column: (parsed value from the text `v`, reason invalid or NULL).

    The reason refers to the parsed value by its column name `p`: the validator computes
    text, then parsed values, then reasons, in three layers, so no expression is
    evaluated twice per row.
    """
    present = f"{v} <> ''"
    rules: list[tuple[str, str]] = []  # (condition for an error, reason), checked in order
    if col.kind == "text":
        parsed = f"nullif({v}, '')"
        # PostgreSQL cannot store a NUL character (other kinds fail to parse with one)
        rules.append((f"contains({v}, chr(0))", "contains a NUL character (not text)"))
        rules.append((f"length({v}) > {MAX_FIELD}", f"is longer than {MAX_FIELD} characters"))
    elif col.kind == "enum":
        lower = _list([x.lower() for x in col.vocabulary])
        parsed = f"({_list(col.vocabulary)})[list_position({lower}, lower({v}))]"
        rules.append((f"{present} AND {p} IS NULL", "is not one of " + ", ".join(col.vocabulary)))
    elif col.kind == "date":
        parsed = _DATE_PARSE.format(v=v)
        rules.append((f"{present} AND {p} IS NULL", "is not a date (YYYY-MM-DD)"))
        rules.append((f"year({p}) NOT BETWEEN {YEARS[0]} AND {YEARS[1]}", _YEARS_REASON))
    elif col.kind == "partial_date":
        full = f"{v} || CASE length({v}) WHEN 4 THEN '-01-01' WHEN 7 THEN '-01' ELSE '' END"
        ok = f"regexp_matches({v}, {sql_literal(_PARTIAL_RE)}) AND try_cast({full} AS DATE) IS NOT NULL"
        parsed = f"CASE WHEN {ok} THEN {v} END"
        rules.append((f"{present} AND {p} IS NULL", "is not a date (YYYY-MM-DD, YYYY-MM or YYYY)"))
        rules.append(
            (
                f"CAST(left({p}, 4) AS INTEGER) NOT BETWEEN {YEARS[0]} AND {YEARS[1]}",
                _YEARS_REASON,
            )
        )
    elif col.kind == "int":
        parsed = f"CASE WHEN regexp_matches({v}, '^[+-]?[0-9]+$') THEN try_cast({v} AS INTEGER) END"
        rules.append((f"{present} AND {p} IS NULL", "is not a whole number"))
    elif col.kind == "number":
        parsed = f"try_cast({v} AS DOUBLE)"
        rules.append(
            (f"{present} AND ({p} IS NULL OR isnan({p}) OR isinf({p}))", "is not a number")
        )
    elif col.kind == "bool":
        parsed = (
            f"CASE WHEN lower({v}) IN {tuple(_TRUE)} THEN true "
            f"WHEN lower({v}) IN {tuple(_FALSE)} THEN false END"
        )
        rules.append((f"{present} AND {p} IS NULL", "is not true or false"))
    else:  # lab columns are compiled by _labs_layers
        raise ValueError(col.kind)
    if col.minimum is not None and col.maximum is not None:
        rules.append(
            (
                f"{p} < {col.minimum} OR {p} > {col.maximum}",
                f"is outside the range {_fmt(col.minimum)} to {_fmt(col.maximum)}",
            )
        )
    elif col.minimum is not None:
        rules.append((f"{p} < {col.minimum}", f"is below the minimum {_fmt(col.minimum)}"))
    if col.step is not None:
        rules.append(
            (f"{p} / {col.step} <> round({p} / {col.step})", f"is not in steps of {col.step}")
        )
    if col.required:
        rules.insert(0, (f"NOT ({present})", "is required"))
    return parsed, _reason(rules)


def _reason(rules: list[tuple[str, str]]) -> str:
    if not rules:
        return "CAST(NULL AS VARCHAR)"
    return "CASE " + " ".join(f"WHEN {c} THEN {sql_literal(r)}" for c, r in rules) + " END"


@cache
def _catalogue_tables() -> dict[str, pa.Table]:
    """The lab catalogue as the small tables the labs checks join."""
    cat = lab_catalogue()
    units = cat.unit_factors()
    return {
        "lab_codes": pa.table(
            {"code": list(cat.code_to_test()), "test": list(cat.code_to_test().values())}
        ),
        "lab_units": pa.table(
            {
                "test": [u[0] for u in units],
                "unit_key": [u[1] for u in units],
                "factor": [u[2] for u in units],
            }
        ),
        "lab_canonical": pa.table(
            {
                "test": list(cat.tests),
                "canonical_unit": [t.unit for t in cat.tests.values()],
                "qualitative": [t.is_qualitative for t in cat.tests.values()],
                # for the messages: what a test accepts
                "answers": [", ".join(t.qualitative or []) for t in cat.tests.values()],
                "units": [", ".join(sorted(t.units)) for t in cat.tests.values()],
            }
        ),
    }


class _Validator:
    def __init__(self, raws: dict[str, RawTable]):
        self.raws = raws
        self.con = duck.cursor()
        self.problems: list[Problem] = []
        self.pending: list[str] = []  # problem queries of the table being checked
        self.has_patients = False
        self.checked: dict[str, pa.Table] = {}
        for name, table in _catalogue_tables().items():
            self.con.register(name, table)
        for raw in raws.values():
            self.con.register(f"raw_{raw.name}", raw.data)

    def text(self, table: str, column: str, alias: str = "r") -> str:
        """The text of a column without surrounding spaces, or '' where the file lacks it."""
        if column not in self.raws[table].data.column_names:
            return "''"
        return _trimmed(f'{alias}."{column}"')

    def check(self, table: Table) -> None:
        """Parse and check every row of a table in one query of three layers."""
        raw = self.raws[table.name]
        if table.name == "labs":
            texts, parsed, out, reasons = self._labs_layers()
        else:
            texts, parsed, out, reasons = {}, {}, {}, {}
            for col in table.columns:
                text = self.text(table.name, col.name)
                if col.default is not None:
                    text = f"coalesce(nullif({text}, ''), {sql_literal(col.default)})"
                texts[col.name] = text
                parsed[col.name], reasons[col.name] = compile_column(
                    col, f'"t_{col.name}"', f'"p_{col.name}"'
                )
                out[col.name] = f'"p_{col.name}"'
        layer1 = ", ".join(f'{e} AS "t_{c}"' for c, e in texts.items())
        layer2 = ", ".join(f'{e} AS "p_{c}"' for c, e in parsed.items())
        layer3 = ", ".join(
            [f'{e} AS "{c}"' for c, e in out.items()]
            + [f'{e} AS "_err_{c}"' for c, e in reasons.items()]
        )
        joins = self._labs_joins() if table.name == "labs" else ""
        extra = ", c.*" if table.name == "labs" else ""
        # One pass to Arrow (not a DuckDB table): the canonical table is then a zero-copy
        # column selection of it, and later checks scan it in place.
        checked = duck.arrow(
            self.con,
            f"SELECT {ROW}, {layer3} FROM (SELECT *, {layer2} FROM ("
            f"SELECT r.{ROW}, {layer1}{extra} FROM raw_{table.name} r {joins}))",
            rows=raw.data.num_rows,
        )
        self.checked[table.name] = checked
        self.con.register(f"chk_{table.name}", checked)
        # only columns with a reason somewhere (Arrow keeps null counts: no query to know)
        failing = [c for c in reasons if checked[f"_err_{c}"].null_count < checked.num_rows]
        self._collect(table, raw.file, {c: self.text(table.name, c) for c in failing})
        self._cross_checks(table, raw.file)
        self._flush(raw.file)

    def _labs_layers(self) -> tuple[dict, dict, dict, dict]:
        """Texts, parsed values, outputs and reasons of the labs table.

        `c` (joined by _labs_joins) is the resolved test: name, canonical unit, factor.
        """
        names = ("patient_id", "date", "test", "value", "unit", "ref_low", "ref_high")
        texts = {c: self.text("labs", c) for c in names}
        pid = compile_column(
            Column("patient_id", "text", required=True), '"t_patient_id"', '"p_patient_id"'
        )
        date = compile_column(Column("date", "date", required=True), '"t_date"', '"p_date"')
        answers = " ".join(
            f"WHEN {sql_literal(name)} THEN ({_list(t.qualitative)})"
            f'[list_position({_list(t.qualitative)}, lower("t_value"))]'
            for name, t in lab_catalogue().tests.items()
            if t.qualitative
        )
        parsed = {
            "patient_id": pid[0],
            "date": date[0],
            "value": 'try_cast("t_value" AS DOUBLE)',
            "answer": f"CASE WHEN qualitative THEN CASE test {answers} END END",
            "ref_low": 'try_cast("t_ref_low" AS DOUBLE)',
            "ref_high": 'try_cast("t_ref_high" AS DOUBLE)',
        }
        numeric = "NOT qualitative"
        convert = lambda x: f"CASE WHEN {numeric} THEN round({x} * factor, 9) END"  # noqa: E731
        out = {
            "patient_id": '"p_patient_id"',
            "date": '"p_date"',
            "test": "test",
            "value": convert('"p_value"'),
            "value_text": '"p_answer"',
            "unit": "canonical_unit",
            "ref_low": convert('"p_ref_low"'),
            "ref_high": convert('"p_ref_high"'),
            # contract v1.1: the value and unit as given (trimmed), beside the canonical ones
            "value_reported": "nullif(\"t_value\", '')",
            "unit_reported": "nullif(\"t_unit\", '')",
        }
        num = '"p_value"'
        reasons = {
            "patient_id": pid[1],
            "date": date[1],
            "test": _reason(
                [
                    ("\"t_test\" = ''", "is required"),
                    ("test IS NULL", "is not a known test (short name or LOINC code)"),
                ]
            ),
            "value": "CASE WHEN \"t_value\" = '' THEN 'is required' "
            "WHEN qualitative AND \"p_answer\" IS NULL THEN 'is not one of ' || answers "
            f"WHEN {numeric} AND ({num} IS NULL OR isnan({num}) OR isinf({num})) "
            "THEN 'is not a number' "
            f"WHEN {numeric} AND {num} < 0 THEN 'is negative (a count or level cannot be below 0)' "
            f"WHEN {numeric} AND isinf({num} * factor) THEN 'is too large' END",
            "unit": "CASE WHEN qualitative AND \"t_unit\" <> '' THEN 'is given for a qualitative test' "
            f"WHEN {numeric} AND factor IS NULL AND \"t_unit\" = '' "
            "THEN 'is missing: a numeric result needs its unit' "
            f"WHEN {numeric} AND factor IS NULL THEN 'is not a known unit for ' || test || "
            "' (accepted: ' || units || ')' END",
        }
        for ref in ("ref_low", "ref_high"):
            t, p = f'"t_{ref}"', f'"p_{ref}"'
            reasons[ref] = _reason(
                [
                    (f"{t} <> '' AND qualitative", "is given for a qualitative test"),
                    (f"{t} <> '' AND {p} IS NULL", "is not a number"),
                    # the contract's ranges apply to limits too: an infinite upper limit
                    # would silence every check against it, a NaN one is no limit at all
                    (f"isnan({p}) OR isinf({p})", "is not a finite number"),
                    (f"{p} < 0", "is negative"),
                    (f"{numeric} AND isinf({p} * factor)", "is too large"),
                ]
            )
        return texts, parsed, out, reasons

    def _labs_joins(self) -> str:
        """Test and unit are resolved once per distinct (test, unit) pair, then joined back
        on the raw text: the per-row work is one hash join, not three."""
        has = self.raws["labs"].data.column_names
        raw = lambda c: f'r."{c}"' if c in has else "''"  # noqa: E731
        pairs = (
            f"SELECT DISTINCT {raw('test')} AS raw_test, {raw('unit')} AS raw_unit FROM raw_labs r"
        )
        unit_key = f"lower(replace(replace({_trimmed('k.raw_unit')}, 'µ', 'u'), 'μ', 'u'))"
        return (
            "LEFT JOIN (SELECT k.raw_test, k.raw_unit, c.test, c.canonical_unit, c.qualitative, "
            f"c.answers, c.units, u.factor FROM ({pairs}) k "
            f"LEFT JOIN lab_codes lc ON lc.code = lower({_trimmed('k.raw_test')}) "
            "LEFT JOIN lab_canonical c ON c.test = lc.test "
            f"LEFT JOIN lab_units u ON u.test = c.test AND u.unit_key = {unit_key}) c "
            f"ON c.raw_test = {raw('test')} AND c.raw_unit = {raw('unit')}"
        )

    def _collect(self, table: Table, file: str, columns: dict[str, str]) -> None:
        """Problems: every non-NULL reason, with the raw text looked up for those rows only."""
        if not columns:
            return
        union = " UNION ALL ".join(
            f'SELECT {ROW}, {sql_literal(c)} AS col, "_err_{c}" AS reason '
            f'FROM chk_{table.name} WHERE "_err_{c}" IS NOT NULL'
            for c in columns
        )
        raw_text = " ".join(f"WHEN {sql_literal(c)} THEN {text}" for c, text in columns.items())
        self._add(
            f"SELECT e.{ROW}, e.col, CASE e.col {raw_text} END, e.reason FROM ({union}) e "
            f"JOIN raw_{table.name} r USING ({ROW})",
            file,
        )

    def _add(self, sql: str, file: str, level: str = "error") -> None:
        """Queue a problem query (row, column, value, reason); `_flush` runs them as one.

        One statement per table instead of ~6: for a small input (one patient's record in
        the CDS service) DuckDB's planning of each statement is most of the cost.
        """
        self.pending.append(
            f"SELECT CAST(p1 AS BIGINT) AS row, CAST(p2 AS VARCHAR) AS col, "
            f"CAST(p3 AS VARCHAR) AS val, CAST(p4 AS VARCHAR) AS reason, {sql_literal(level)} AS level "
            f"FROM ({sql}) AS _p(p1, p2, p3, p4)"
        )

    def _flush(self, file: str) -> None:
        if not self.pending:
            return
        sql = " UNION ALL ".join(f"({part})" for part in self.pending)
        self.pending = []
        for row, col, val, reason, level in self.con.execute(sql).fetchall():
            self.problems.append(
                Problem(file, row, col, None if val in (None, "") else val, reason, level)
            )

    def _cross_checks(self, table: Table, file: str) -> None:
        chk = f"chk_{table.name}"
        if table.name == "patients":
            self._add(
                f"SELECT {ROW}, 'patient_id', patient_id, 'is a duplicate patient_id (first at row ' "
                f"|| first_row || ')' FROM (SELECT {ROW}, patient_id, min({ROW}) OVER "
                f"(PARTITION BY patient_id) AS first_row FROM {chk} WHERE patient_id IS NOT NULL) "
                f"WHERE {ROW} > first_row",
                file,
            )
            return
        patients_file = self.raws["patients"].file if "patients" in self.raws else "patients.csv"
        known = "(SELECT patient_id FROM chk_patients)" if self.has_patients else "(SELECT NULL)"
        self._add(
            f"SELECT {ROW}, 'patient_id', patient_id, 'is not in {patients_file}' FROM {chk} "
            f"WHERE patient_id IS NOT NULL AND patient_id NOT IN {known}",
            file,
        )
        pairs = {
            "treatments": ("end_date", "start_date"),
            "adverse_events": ("resolution_date", "onset_date"),
        }
        if table.name in pairs:
            late, early = pairs[table.name]
            self._add(
                f"SELECT {ROW}, '{late}', CAST({late} AS VARCHAR), 'is before {early} ' || "
                f"CAST({early} AS VARCHAR) FROM {chk} WHERE {late} < {early}",
                file,
            )
        if table.name == "mri":
            self._add(
                f"SELECT {ROW}, 'ring_enhancing', CAST(ring_enhancing AS VARCHAR), "
                "'is more than gd_enhancing ' || gd_enhancing || ' (ring-enhancing lesions are "
                f"enhancing lesions)' FROM {chk} WHERE ring_enhancing > gd_enhancing",
                file,
            )
        if table.name == "labs":
            self._add(
                f"SELECT {ROW}, 'ref_low', CAST(ref_low AS VARCHAR), 'is above ref_high ' || "
                f"ref_high FROM {chk} WHERE ref_low > ref_high",
                file,
            )
        self._warn_duplicates(table, file)
        self._warn_before_birth(table, file)

    def _warn_duplicates(self, table: Table, file: str) -> None:
        """Identical rows: found by a row hash first, so only candidate rows are compared.

        Presentation columns (a lab value as reported) do not count: the store keys rows
        without them too, so such rows are stored once."""
        skip = PRESENTATION_COLUMNS.get(table.name, ())
        cols = ", ".join(f'"{c}"' for c in self._output_columns(table) if c not in skip)
        self._add(
            f"WITH h AS (SELECT {ROW}, hash({cols}) AS k FROM chk_{table.name}), "
            f"dup AS (SELECT k FROM h GROUP BY k HAVING count(*) > 1), "
            f"cand AS (SELECT c.* FROM chk_{table.name} c JOIN h USING ({ROW}) JOIN dup USING (k)) "
            f"SELECT {ROW}, NULL, NULL, 'repeats row ' || first_row || '; stored once' FROM "
            f"(SELECT {ROW}, min({ROW}) OVER (PARTITION BY {cols}) AS first_row FROM cand) "
            f"WHERE {ROW} > first_row",
            file,
            "warning",
        )

    def _warn_before_birth(self, table: Table, file: str) -> None:
        if not self.has_patients:
            return
        date = EVENT_DATE[table.name]
        # the earliest day the (possibly partial) birth date allows: warn only when certain
        born = (
            "try_cast(p.birth_date || CASE length(p.birth_date) WHEN 4 THEN '-01-01' "
            "WHEN 7 THEN '-01' ELSE '' END AS DATE)"
        )
        self._add(
            f"SELECT x.{ROW}, '{date}', CAST(x.{date} AS VARCHAR), 'is before the birth date ' "
            f"|| p.birth_date || ' of the patient' FROM chk_{table.name} x JOIN chk_patients p "
            f"USING (patient_id) WHERE x.{date} < {born}",
            file,
            "warning",
        )

    @staticmethod
    def _output_columns(table: Table) -> tuple[str, ...]:
        return LAB_COLUMNS if table.name == "labs" else table.column_names

    def dataset(self) -> Dataset:
        tables = {}
        for name, checked in self.checked.items():  # a broken table rejected the input
            tables[name] = checked.select(arrow_schema(name).names)
        return Dataset(tables)


def validate(raws: dict[str, RawTable], problems: list[Problem]) -> tuple[Dataset, list[Problem]]:
    """The canonical Dataset and its warnings; raises InputRejected listing every error."""
    v = _Validator(raws)
    v.problems = list(problems)
    header_broken = {p.file for p in problems if p.row == 1 and p.level == "error"}
    order = sorted(raws, key=lambda name: name != "patients")  # patients first
    with closing(v.con):
        for name in order:
            if raws[name].file not in header_broken:
                v.check(TABLES[name])
                v.has_patients |= name == "patients"
    errors = [p for p in v.problems if p.level == "error"]
    if errors:
        raise InputRejected(errors)
    return v.dataset(), [p for p in v.problems if p.level == "warning"]
