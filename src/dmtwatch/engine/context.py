"""What rules are written against: the canonical tables as named, unbound Ibis tables.

Rules build Ibis expressions over `in_<table>` (the input already cut at the as-of date)
and the scalar `as_of`. Nothing touches data while a plan is compiled: the expressions
become SQL once per process (compiling is the slow part of Ibis, not running), and the
same SQL then runs on any clinic and any as-of date.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.operations as ops

from dmtwatch.duck import sql_literal
from dmtwatch.model.tables import CANONICAL_TYPES

_IBIS_TYPE = {
    "VARCHAR": "string",
    "DATE": "date",
    "DOUBLE": "float64",
    "INTEGER": "int32",
    "BOOLEAN": "boolean",
}


_SQL_TYPE = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE", "boolean": "BOOLEAN"}


def input_schema(table: str) -> ibis.Schema:
    return ibis.schema({c: _IBIS_TYPE[t] for c, t in CANONICAL_TYPES[table].items()})


def add_days(date: ibis.DateValue, days: int | ibis.IntegerValue) -> ibis.DateValue:
    """`date` plus a number of days, still a date (DuckDB widens date + interval)."""
    step = ibis.interval(days=days) if isinstance(days, int) else ibis.interval(days=1) * days
    # Ibis types date + interval as a date and would drop a plain cast; go via timestamp.
    return (date + step).cast("timestamp").cast("date")


@dataclass(frozen=True)
class Step:
    """A named intermediate table: `CREATE TEMP TABLE name AS sql`; `reads`: the tables
    its query reads (inputs and earlier steps), so a run can leave out steps it does not
    need."""

    name: str
    sql: str
    reads: tuple[str, ...] = ()


def tables_read(expr: ibis.Table) -> tuple[str, ...]:
    return tuple(sorted({t.name for t in expr.op().find(ops.UnboundTable)}))


@dataclass
class Context:
    tables: dict[str, ibis.Table] = field(
        default_factory=lambda: {
            n: ibis.table(input_schema(n), name=f"in_{n}") for n in CANONICAL_TYPES
        }
    )
    steps: list[Step] = field(default_factory=list)
    _memo: dict[str, ibis.Table] = field(default_factory=dict)

    @property
    def as_of_lit(self) -> ibis.DateValue:
        """The as-of date, read from the one-row `params` table at run time."""
        return ibis.table({"as_of": "date"}, name="params").as_of.max().as_scalar()

    def materialize(self, name: str, expr: ibis.Table) -> ibis.Table:
        """Compute `expr` once into a named table that later rules read by name."""
        if name not in self._memo:
            self.steps.append(Step(name, ibis.to_sql(expr, dialect="duckdb"), tables_read(expr)))
            self._memo[name] = ibis.table(expr.schema(), name=name)
        return self._memo[name]

    def stage(self, expr: ibis.Table) -> ibis.Table:
        """Materialize a rule's rows so its findings and evidence both read them cheaply."""
        return self.materialize(f"stage_{len(self.steps)}", expr)

    def constants(self, name: str, schema: dict[str, str], rows: list[tuple]) -> ibis.Table:
        """A small table of protocol values (e.g. the schedule), as a named step."""
        values = ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in rows)
        cols = ", ".join(f'"{c}"' for c in schema)
        casts = ", ".join(f'CAST("{c}" AS {_SQL_TYPE[t]}) AS "{c}"' for c, t in schema.items())
        sql = f"SELECT {casts} FROM (VALUES {values}) AS v({cols})"
        if name not in self._memo:
            self.steps.append(Step(name, sql))
            self._memo[name] = ibis.table(schema, name=name)
        return self._memo[name]

    def observations(self) -> ibis.Table:
        """Lab results and MRI scans as (patient_id, date, test): what a schedule counts.

        An MRI counts as test `mri_<region>` so a protocol can schedule scans like labs.
        """
        labs = self.tables["labs"].select("patient_id", "date", "test")
        mri = self.tables["mri"]
        mri = mri.select("patient_id", "date", test=ibis.literal("mri_").concat(mri.region))
        return self.materialize("observations", labs.union(mri))
