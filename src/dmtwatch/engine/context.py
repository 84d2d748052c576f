"""The tables the engine reads: the canonical Dataset in DuckDB, cut at the as-of date.

Nothing dated after `as_of` exists here, so no rule can see the future: treatments that
start later are dropped and courses that run past it end on it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import ibis

from dmtwatch.model.dataset import Dataset
from dmtwatch.model.tables import EVENT_DATE


def add_days(date: ibis.DateValue, days: int | ibis.IntegerValue) -> ibis.DateValue:
    """`date` plus a number of days, still a date (DuckDB widens date + interval)."""
    step = ibis.interval(days=days) if isinstance(days, int) else ibis.interval(days=1) * days
    return (date + step).cast("date")


@dataclass
class Context:
    con: ibis.BaseBackend
    as_of: dt.date
    tables: dict[str, ibis.Table]

    @property
    def as_of_lit(self) -> ibis.Value:
        return ibis.literal(self.as_of, type="date")

    def observations(self) -> ibis.Table:
        """Lab results and MRI scans as (patient_id, date, test): what a schedule counts.

        An MRI counts as test `mri_<region>` so a protocol can schedule scans like labs.
        """
        labs = self.tables["labs"].select("patient_id", "date", "test")
        mri = self.tables["mri"]
        mri = mri.select("patient_id", "date", test=ibis.literal("mri_").concat(mri.region))
        return labs.union(mri)


def make_context(dataset: Dataset, as_of: dt.date) -> Context:
    raw = duckdb.connect()
    raw.execute("SET preserve_insertion_order = false")
    con = ibis.duckdb.from_connection(raw)
    tables = {}
    for name, arrow in dataset.tables.items():
        raw.register(f"src_{name}", arrow)
        table = con.table(f"src_{name}")
        if name in EVENT_DATE:
            table = table.filter(table[EVENT_DATE[name]] <= ibis.literal(as_of, type="date"))
        tables[name] = table
    return Context(con, as_of, tables)
