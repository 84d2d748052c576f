"""Validate raw text tables into the canonical tables, on whole tables in DuckDB.

Each contract column compiles to two SQL expressions: its parsed value and the reason it
is invalid (NULL when valid). One query per table computes both for every row; problems
are the non-NULL reasons, unpivoted. No Python runs per row, so a 20M-row labs file
costs a few column scans, and every problem of the input is found in one pass.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from dmtwatch.io.problems import InputRejected, Problem
from dmtwatch.io.tabular import ROW, RawTable
from dmtwatch.model.dataset import Dataset, arrow_schema
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import EVENT_DATE, LAB_COLUMNS, TABLES, Column, Table

_DATE_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
_PARTIAL_RE = r"^\d{4}(-\d{2}(-\d{2})?)?$"
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(q(v) for v in values) + "]"


def _fmt(x: float) -> str:
    return f"{x:g}"


def compile_column(col: Column, v: str) -> tuple[str, str]:
    """(parsed value, reason invalid) SQL for a text expression `v` of column `col`."""
    if col.default is not None:
        v = f"coalesce(nullif({v}, ''), {q(col.default)})"
    present = f"{v} <> ''"
    rules: list[tuple[str, str]] = []  # (condition for an error, reason), checked in order
    if col.kind == "text":
        parsed = f"nullif({v}, '')"
    elif col.kind == "enum":
        lower = _list([x.lower() for x in col.vocabulary])
        parsed = f"({_list(col.vocabulary)})[list_position({lower}, lower({v}))]"
        rules.append(
            (f"{present} AND {parsed} IS NULL", "is not one of " + ", ".join(col.vocabulary))
        )
    elif col.kind == "date":
        parsed = (
            f"CASE WHEN regexp_matches({v}, {q(_DATE_RE)}) THEN try_cast(left({v}, 10) AS DATE) END"
        )
        rules.append((f"{present} AND {parsed} IS NULL", "is not a date (YYYY-MM-DD)"))
    elif col.kind == "partial_date":
        full = f"{v} || CASE length({v}) WHEN 4 THEN '-01-01' WHEN 7 THEN '-01' ELSE '' END"
        ok = f"regexp_matches({v}, {q(_PARTIAL_RE)}) AND try_cast({full} AS DATE) IS NOT NULL"
        parsed = f"CASE WHEN {ok} THEN {v} END"
        rules.append((f"{present} AND NOT ({ok})", "is not a date (YYYY-MM-DD, YYYY-MM or YYYY)"))
    elif col.kind == "int":
        parsed = f"CASE WHEN regexp_matches({v}, '^[+-]?[0-9]+$') THEN try_cast({v} AS INTEGER) END"
        rules.append((f"{present} AND {parsed} IS NULL", "is not a whole number"))
    elif col.kind == "number":
        parsed = f"try_cast({v} AS DOUBLE)"
        rules.append(
            (
                f"{present} AND ({parsed} IS NULL OR isnan({parsed}) OR isinf({parsed}))",
                "is not a number",
            )
        )
    elif col.kind == "bool":
        parsed = (
            f"CASE WHEN lower({v}) IN {tuple(_TRUE)} THEN true "
            f"WHEN lower({v}) IN {tuple(_FALSE)} THEN false END"
        )
        rules.append((f"{present} AND {parsed} IS NULL", "is not true or false"))
    else:  # lab columns are compiled by _labs_select
        raise ValueError(col.kind)
    if col.minimum is not None and col.maximum is not None:
        rules.append(
            (
                f"{parsed} < {col.minimum} OR {parsed} > {col.maximum}",
                f"is outside the range {_fmt(col.minimum)} to {_fmt(col.maximum)}",
            )
        )
    elif col.minimum is not None:
        rules.append((f"{parsed} < {col.minimum}", f"is below the minimum {_fmt(col.minimum)}"))
    if col.step is not None:
        rules.append(
            (
                f"{parsed} / {col.step} <> round({parsed} / {col.step})",
                f"is not in steps of {col.step}",
            )
        )
    if col.required:
        rules.insert(0, (f"NOT ({present})", "is required"))
    if not rules:
        return parsed, "CAST(NULL AS VARCHAR)"
    reason = "CASE " + " ".join(f"WHEN {c} THEN {q(r)}" for c, r in rules) + " END"
    return parsed, reason


class _Validator:
    def __init__(self, raws: dict[str, RawTable]):
        self.raws = raws
        self.con = duckdb.connect()
        self.con.execute("SET preserve_insertion_order = false")
        self.problems: list[Problem] = []
        self.has_patients = False
        cat = lab_catalogue()
        self.con.register(
            "lab_codes",
            pa.table({"code": list(cat.code_to_test()), "test": list(cat.code_to_test().values())}),
        )
        units = cat.unit_factors()
        self.con.register(
            "lab_units",
            pa.table(
                {
                    "test": [u[0] for u in units],
                    "unit_key": [u[1] for u in units],
                    "factor": [u[2] for u in units],
                }
            ),
        )
        qual = [(n, v) for n, t in cat.tests.items() for v in (t.qualitative or [])]
        self.con.register(
            "lab_qualitative",
            pa.table({"test": [x[0] for x in qual], "answer": [x[1] for x in qual]}),
        )
        self.con.register(
            "lab_canonical",
            pa.table(
                {
                    "test": list(cat.tests),
                    "canonical_unit": [t.unit for t in cat.tests.values()],
                    "qualitative": [t.is_qualitative for t in cat.tests.values()],
                }
            ),
        )
        for raw in raws.values():
            self.con.register(f"raw_{raw.name}", raw.data)

    def text(self, table: str, column: str) -> str:
        """The raw text of a column, or '' where the file does not have it."""
        present = column in self.raws[table].data.column_names
        return f'r."{column}"' if present else "''"

    def check(self, table: Table) -> None:
        raw = self.raws[table.name]
        selects, checks = [], []
        if table.name == "labs":
            selects, checks = self._labs_select()
        else:
            for col in table.columns:
                parsed, reason = compile_column(col, self.text(table.name, col.name))
                selects.append(f'{parsed} AS "{col.name}"')
                checks.append((col.name, self.text(table.name, col.name), reason))
        selects += [f'{raw_text} AS "_raw_{name}"' for name, raw_text, _ in checks]
        selects += [f'{reason} AS "_err_{name}"' for name, _, reason in checks]
        self.con.execute(
            f"CREATE TABLE chk_{table.name} AS SELECT r.{ROW}, {', '.join(selects)} "
            f"FROM raw_{table.name} r {self._labs_joins() if table.name == 'labs' else ''}"
        )
        self._collect(table, raw.file, [name for name, _, _ in checks])
        self._cross_checks(table, raw.file)

    def _labs_select(self) -> tuple[list[str], list[tuple[str, str, str]]]:
        t = lambda c: self.text("labs", c)  # noqa: E731
        value, unit = t("value"), t("unit")
        pid = compile_column(Column("patient_id", "text", required=True), t("patient_id"))
        date = compile_column(Column("date", "date", required=True), t("date"))
        num = f"try_cast({value} AS DOUBLE)"
        factor = "u.factor"
        convert = lambda x: f"round(try_cast({x} AS DOUBLE) * {factor}, 9)"  # noqa: E731
        numeric = "NOT c.qualitative"
        selects = [
            f'{pid[0]} AS "patient_id"',
            f'{date[0]} AS "date"',
            'c.test AS "test"',
            f'CASE WHEN {numeric} THEN {convert(value)} END AS "value"',
            'CASE WHEN c.qualitative THEN ql.answer END AS "value_text"',
            'c.canonical_unit AS "unit"',
            f'CASE WHEN {numeric} THEN {convert(t("ref_low"))} END AS "ref_low"',
            f'CASE WHEN {numeric} THEN {convert(t("ref_high"))} END AS "ref_high"',
        ]
        checks = [
            ("patient_id", t("patient_id"), pid[1]),
            ("date", t("date"), date[1]),
            (
                "test",
                t("test"),
                f"CASE WHEN {t('test')} = '' THEN 'is required' WHEN c.test IS NULL "
                "THEN 'is not a known test (short name or LOINC code)' END",
            ),
            (
                "value",
                value,
                f"CASE WHEN {value} = '' THEN 'is required' "
                f"WHEN c.qualitative AND ql.answer IS NULL THEN 'is not one of ' || "
                f"(SELECT string_agg(answer, ', ') FROM lab_qualitative x WHERE x.test = c.test) "
                f"WHEN {numeric} AND ({num} IS NULL OR isnan({num}) OR isinf({num})) "
                "THEN 'is not a number' "
                f"WHEN {numeric} AND {num} < 0 THEN 'is negative (a count or level cannot be below 0)' END",
            ),
            (
                "unit",
                unit,
                f"CASE WHEN c.qualitative AND {unit} <> '' THEN 'is given for a qualitative test' "
                f"WHEN {numeric} AND u.factor IS NULL AND {unit} = '' "
                "THEN 'is missing: a numeric result needs its unit' "
                f"WHEN {numeric} AND u.factor IS NULL THEN 'is not a known unit for ' || c.test || "
                "' (accepted: ' || (SELECT string_agg(DISTINCT x.unit_key, ', ' ORDER BY x.unit_key) "
                "FROM lab_units x WHERE x.test = c.test) || ')' END",
            ),
        ]
        for ref in ("ref_low", "ref_high"):
            rv = t(ref)
            checks.append(
                (
                    ref,
                    rv,
                    f"CASE WHEN {rv} <> '' AND c.qualitative THEN 'is given for a qualitative test' "
                    f"WHEN {rv} <> '' AND try_cast({rv} AS DOUBLE) IS NULL THEN 'is not a number' "
                    f"WHEN {rv} <> '' AND try_cast({rv} AS DOUBLE) < 0 THEN 'is negative' END",
                )
            )
        return selects, checks

    def _labs_joins(self) -> str:
        t = lambda c: self.text("labs", c)  # noqa: E731
        unit_key = f"lower(replace(replace({t('unit')}, 'µ', 'u'), 'μ', 'u'))"
        return (
            f"LEFT JOIN lab_codes lc ON lc.code = lower({t('test')}) "
            "LEFT JOIN lab_canonical c ON c.test = lc.test "
            f"LEFT JOIN lab_units u ON u.test = c.test AND u.unit_key = {unit_key} "
            f"LEFT JOIN lab_qualitative ql ON ql.test = c.test AND ql.answer = lower({t('value')})"
        )

    def _collect(self, table: Table, file: str, columns: list[str]) -> None:
        union = " UNION ALL ".join(
            f'SELECT {ROW}, {q(c)} AS col, "_raw_{c}" AS val, "_err_{c}" AS reason '
            f'FROM chk_{table.name} WHERE "_err_{c}" IS NOT NULL'
            for c in columns
        )
        self._add(union, file)

    def _add(self, sql: str, file: str, level: str = "error") -> None:
        for row, col, val, reason in self.con.sql(sql).fetchall():
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
        cols = ", ".join(f'"{c}"' for c in self._output_columns(table))
        self._add(
            f"SELECT {ROW}, NULL, NULL, 'repeats row ' || first_row || '; stored once' FROM "
            f"(SELECT {ROW}, min({ROW}) OVER (PARTITION BY {cols}) AS first_row FROM chk_{table.name}) "
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
        for name in self.raws:  # every table was checked: a broken one rejected the input
            cols = ", ".join(f'"{c}"' for c in arrow_schema(name).names)
            tables[name] = self.con.sql(f"SELECT {cols} FROM chk_{name}").to_arrow_table()
        return Dataset(tables)


def validate(raws: dict[str, RawTable], problems: list[Problem]) -> tuple[Dataset, list[Problem]]:
    """The canonical Dataset and its warnings; raises InputRejected listing every error."""
    v = _Validator(raws)
    v.problems = list(problems)
    header_broken = {p.file for p in problems if p.row == 1 and p.level == "error"}
    order = sorted(raws, key=lambda name: name != "patients")  # patients first
    for name in order:
        if raws[name].file not in header_broken:
            v.check(TABLES[name])
            v.has_patients |= name == "patients"
    errors = [p for p in v.problems if p.level == "error"]
    if errors:
        raise InputRejected(errors)
    return v.dataset(), [p for p in v.problems if p.level == "warning"]
