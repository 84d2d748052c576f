"""Read a clinic's FHIR R4 data into the canonical tables (`spec/fhir-profile.md`).

Resources are gathered and parsed by DuckDB (load.py), mapped to the CSV contract's
text columns in SQL (mapping.py), then checked by the same validator as CSV input, so
units, vocabularies and dates follow one set of rules whatever the format. Problems name
the resource (`Observation/abc`) and the element; resources and codes we do not use are
counted and reported as warnings, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from dmtwatch import duck
from dmtwatch.duck import sql_literal
from dmtwatch.fhir import r4_models
from dmtwatch.fhir.codes import COURSE_DRUG
from dmtwatch.fhir.load import load_files, load_resources
from dmtwatch.fhir.mapping import (
    ELEMENTS,
    classify,
    in_list,
    register_code_tables,
    table_queries,
)
from dmtwatch.io.problems import InputRejected, Problem, element_problem
from dmtwatch.io.tabular import ROW, RawTable
from dmtwatch.io.validate import validate
from dmtwatch.model.dataset import Dataset
from dmtwatch.model.lab_catalogue import lab_catalogue
from dmtwatch.model.tables import EVENT_DATE, TABLES

PROVENANCE = pa.schema(
    [
        ("table", pa.string()),
        ("patient_id", pa.string()),
        ("date", pa.date32()),
        ("test", pa.string()),
        ("drug", pa.string()),
        ("ref", pa.string()),
    ]
)


@dataclass
class FhirData:
    """A validated clinic read from FHIR, and where each canonical row came from."""

    dataset: Dataset
    warnings: list[Problem] = field(default_factory=list)
    # table, patient_id, date, test (labs), drug (treatments), ref ("Observation/abc"):
    # one row per resource
    provenance: pa.Table = field(default_factory=PROVENANCE.empty_table)
    resources: dict[str, int] = field(default_factory=dict)  # resources read, by type


def read_fhir(path: Path | str) -> FhirData:
    """A Bundle (.json), an NDJSON file, or a folder of Bulk Data *.ndjson / Bundle files."""
    with closing(duck.cursor()) as con:
        return _read(con, load_files(con, Path(path)))


def read_fhir_resources(resources: Iterable[dict]) -> FhirData:
    """Resources already in memory: a CDS Hooks prefetch, a FHIR server's search results."""
    with closing(duck.cursor()) as con:
        return _read(con, load_resources(con, resources))


def _read(con: duckdb.DuckDBPyConnection, problems: list[Problem]) -> FhirData:
    if any(p.level == "error" for p in problems):
        raise InputRejected(problems)
    register_code_tables(con)
    classify(con)
    problems += _reference_problems(con) + _model_problems(con) + _identity_problems(con)
    warnings = _unused_warnings(con)
    raws = _raw_tables(con)
    refs = _RefIndex(raws)
    try:
        dataset, found = validate({name: _without(raw, "ref") for name, raw in raws.items()}, [])
    except InputRejected as rejected:
        problems += [_locate(p, refs) for p in rejected.problems]
        raise InputRejected(problems) from None
    if any(p.level == "error" for p in problems):
        raise InputRejected(problems)
    counts = dict(
        con.execute("SELECT coalesce(rtype, '?'), count(*) FROM cls GROUP BY ALL").fetchall()
    )
    return FhirData(
        dataset, warnings + [_locate(p, refs) for p in found], _provenance(con, raws), counts
    )


def _reference_problems(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    rows = con.execute(
        "SELECT rtype, ref, subject_ref FROM used WHERE patient_id IS NULL ORDER BY n"
    ).fetchall()
    out = []
    for rtype, ref, subject in rows:
        if rtype == "Patient":
            why = "is missing: a Patient needs an id, the patient_id of every table"
            out.append(element_problem(ref, "id", None, why))
        elif subject is None:
            why = "is missing: every resource dmtwatch reads names its patient"
            out.append(element_problem(ref, "subject", None, why))
        else:
            why = "does not resolve to a Patient in the input"
            out.append(element_problem(ref, "subject.reference", subject, why))
    if not con.execute("SELECT 1 FROM cls WHERE rtype = 'Patient' LIMIT 1").fetchall():
        out.append(element_problem("input", None, None, "holds no Patient resource"))
    return out


def _identity_problems(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    """Two different resources of a type with one id would make references ambiguous."""
    rows = con.execute(
        "WITH twice AS (SELECT rtype, rid FROM cls WHERE rid IS NOT NULL "
        "  GROUP BY ALL HAVING count(*) > 1) "
        "SELECT c.rtype, c.rid, count(*) FROM cls c JOIN twice USING (rtype, rid) "
        "JOIN (SELECT rowid AS rn, coalesce(json, to_json(r)) AS text FROM res) x ON x.rn = c.n "
        "GROUP BY ALL HAVING count(DISTINCT x.text) > 1 ORDER BY ALL"
    ).fetchall()
    return [
        element_problem(f"{t}/{i}", "id", i, f"is the id of {k} different {t} resources")
        for t, i, k in rows
    ]


def _model_problems(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    """R4 model checks of the first resource of each shape (type + top-level elements).

    Every value we read is checked in every resource by the validator; what the models
    add is structure (an element R4 lacks, an R5 shape), which is the same for every
    resource of one shape. One pydantic object per Observation would cost minutes.
    """
    types = in_list(r4_models.MODEL_CHECKED)
    rows = con.execute(
        f"""WITH firsts AS (
              SELECT rtype, min(n) AS first, count(*) AS n FROM cls
              WHERE rtype IN {types} GROUP BY rtype, shape)
            SELECT f.rtype, c.ref, coalesce(x.json, to_json(x.r)), f.n FROM firsts f
            JOIN cls c ON c.n = f.first
            JOIN (SELECT rowid AS rn, r, json FROM res) x ON x.rn = f.first ORDER BY f.first"""
    ).fetchall()
    problems = []
    for rtype, ref, text, n in rows:
        try:
            found = r4_models.check([(rtype, ref, text)])
        except (orjson.JSONDecodeError, RecursionError) as e:
            # DuckDB read it, but it is no JSON the R4 models take (NaN, nesting too deep)
            reason = f"is not JSON the FHIR R4 models read ({str(e) or type(e).__name__})"
            found = [element_problem(ref, None, None, reason)]
        if n > 1:
            found = [_also(p, n - 1) for p in found]
        problems += found
    return problems


def _also(problem: Problem, others: int) -> Problem:
    reason = f"{problem.reason}; {others} other resource(s) have the same shape"
    return element_problem(problem.file, problem.column, problem.value, reason, problem.level)


def _unused_warnings(con: duckdb.DuckDBPyConnection) -> list[Problem]:
    """What we read but did not use: by type, by code (with an example), by status."""
    out: list[Problem] = []
    mapped = in_list(r4_models.MODEL_CHECKED)  # the types we map
    for rtype, n, example in con.execute(
        f"SELECT coalesce(rtype, '(no resourceType)'), count(*), min(ref) FROM cls "
        f"WHERE rtype IS NULL OR rtype NOT IN {mapped} GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        out.append(
            element_problem(
                rtype,
                None,
                None,
                f"{n} resource(s) of this type not used (e.g. {example})",
                "warning",
            )
        )
    code = (
        "CASE WHEN rtype IN ('MedicationAdministration', 'MedicationStatement') "
        "THEN x.r.medicationCodeableConcept ELSE x.r.code END"
    )
    for rtype, system, value, display, n, example in con.execute(
        f"""SELECT rtype, ({code}).coding[1].system, coalesce(({code}).coding[1].code, '(none)'),
                   coalesce(({code}).coding[1].display, ({code}).text), count(*), min(ref)
            FROM cls JOIN (SELECT rowid AS rn, r FROM res) x ON x.rn = cls.n
            WHERE target IS NULL AND rtype IN {mapped} GROUP BY ALL ORDER BY ALL"""
    ).fetchall():
        element = "medicationCodeableConcept" if rtype.startswith("Medication") else "code"
        shown = f"{system}|{value}" if system else value
        if display:
            shown += f" ({display})"
        out.append(
            element_problem(
                example,
                element,
                shown,
                f"is not a code dmtwatch reads: {n} {rtype} resource(s) with it not used",
                "warning",
            )
        )
    for rtype, status, n, example in con.execute(
        "SELECT rtype, coalesce(status, actuality, verification), count(*), min(ref) "
        "FROM cls WHERE skip GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        out.append(
            element_problem(
                example,
                "status",
                status,
                f"means it did not happen: {n} {rtype} resource(s) with it skipped",
                "warning",
            )
        )
    return out


def _raw_tables(con: duckdb.DuckDBPyConnection) -> dict[str, RawTable]:
    """The contract's tables as text, for the validator; a table with no resource is left
    out (the Dataset has it empty), which spares one patient's record ~10 statements."""
    present = dict(con.execute("SELECT target, count(*) FROM usable GROUP BY ALL").fetchall())
    queries = table_queries()
    raws: dict[str, RawTable] = {}
    for name, sql in queries.items():
        if name != "patients" and name not in present:
            continue
        if name == "treatments":
            sql = _courses(sql)
        table = duck.arrow(con, sql, rows=present.get(name, 0))
        con.register(f"raw_{name}", table)  # for _provenance
        data = table.select([*TABLES[name].column_names, "ref", ROW])
        raws[name] = RawTable(name, f"fhir:{name}", data)
    return raws


def _courses(sql: str) -> str:
    """Merge consecutive daily alemtuzumab administrations into courses; number courses.

    A new course starts when an administration begins more than a day after the end of
    every earlier one. Refs are kept as a list: each source resource stays traceable.
    """
    drug = sql_literal(COURSE_DRUG)
    return f"""
        WITH t AS (SELECT *, try_cast(start_date AS DATE) AS s,
                          coalesce(try_cast(end_date AS DATE), try_cast(start_date AS DATE)) AS e,
                          drug = {drug} AND administered AND try_cast(start_date AS DATE) IS NOT NULL
                            AS mergeable
                   FROM ({sql})),
        g AS (SELECT *, sum(new) OVER (PARTITION BY patient_id ORDER BY s, _row) AS island FROM (
                SELECT *, CASE WHEN s > max(e) OVER (PARTITION BY patient_id ORDER BY s, _row
                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + 1 THEN 1 ELSE 0 END
                  AS new FROM t WHERE mergeable)),
        merged AS (
          SELECT min(_row) AS _row, list(ref ORDER BY s, _row) AS refs, patient_id,
                 {drug} AS drug, strftime(min(s), '%Y-%m-%d') AS start_date,
                 strftime(max(e), '%Y-%m-%d') AS end_date,
                 arg_min(dose, s) AS dose, arg_min(dose_unit, s) AS dose_unit,
                 max(stop_reason) AS stop_reason
          FROM g GROUP BY patient_id, island),
        rows AS (
          SELECT _row, refs, patient_id, drug, start_date, end_date, dose, dose_unit, stop_reason
          FROM merged
          UNION ALL
          SELECT _row, [ref], patient_id, drug, start_date, end_date, dose, dose_unit, stop_reason
          FROM t WHERE NOT mergeable)
        SELECT _row, refs[1] AS ref, refs, patient_id, drug, start_date, end_date,
               CASE WHEN drug = {drug} THEN CAST(row_number() OVER (
                 PARTITION BY patient_id, drug = {drug} ORDER BY start_date, _row) AS VARCHAR)
               ELSE '' END AS course,
               dose, dose_unit, stop_reason
        FROM rows
    """


def _without(raw: RawTable, column: str) -> RawTable:
    return RawTable(raw.name, raw.file, raw.data.drop_columns([column]))


class _RefIndex:
    """Raw-table row -> resource reference, built for a table only when it has problems."""

    def __init__(self, raws: dict[str, RawTable]):
        self.raws = raws
        self.index: dict[str, dict[int, str]] = {}

    def ref(self, table: str, row: int) -> str:
        if table not in self.index:
            data = self.raws[table].data
            self.index[table] = dict(
                zip(data[ROW].to_pylist(), data["ref"].to_pylist(), strict=True)
            )
        return self.index[table].get(row, f"{table} row {row}")


def _locate(problem: Problem, refs: _RefIndex) -> Problem:
    """A validator problem on a raw table row, as the resource and element it came from."""
    if not problem.file.startswith("fhir:"):
        return problem
    table = problem.file.removeprefix("fhir:")
    ref = refs.ref(table, problem.row) if problem.row is not None else table
    element = ELEMENTS[table].get(problem.column or "", problem.column)
    return element_problem(ref, element, problem.value, problem.reason, problem.level)


def _provenance(con: duckdb.DuckDBPyConnection, raws: dict[str, RawTable]) -> pa.Table:
    cat = lab_catalogue()
    codes = cat.code_to_test()
    con.register("prov_tests", pa.table({"k": list(codes), "v": list(codes.values())}))
    parts = []
    for name, date in EVENT_DATE.items():
        if name not in raws:
            continue
        test = "t.v" if name == "labs" else "NULL"
        drug = "r.drug" if name == "treatments" else "NULL"
        join = "LEFT JOIN prov_tests t ON t.k = lower(r.test)" if name == "labs" else ""
        ref = "unnest(r.refs)" if name == "treatments" else "r.ref"
        parts.append(
            f"SELECT '{name}' AS \"table\", r.patient_id, try_cast(r.{date} AS DATE) AS date, "
            f"{test} AS test, {drug} AS drug, {ref} AS ref FROM raw_{name} r {join}"
        )
    if not parts:
        return PROVENANCE.empty_table()
    return con.sql(" UNION ALL ".join(parts)).to_arrow_table().cast(PROVENANCE)
