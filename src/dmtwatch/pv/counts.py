"""Counting for disproportionality, on unique reports, as whole-table DuckDB queries.

For every drug-event pair with at least one report: n (reports naming both), the drug's
and the event's report counts and the number of reports N; the expected count
E = n_drug * n_event / N, or, with strata, the sum over strata of the same product
computed within each stratum (openEBGM's convention: unique report ids throughout).

A long table (a reports CSV: a row is one drug-event pair, not necessarily the cross
product of a report's drugs and events) is counted row by row in DuckDB; reports held
as FAERS holds them (:class:`ReportSets`) go to the sparse product of
:mod:`dmtwatch.pv.set_counts`, the same numbers some 5 times faster.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from dmtwatch.pv.report_sets import ReportSets
from dmtwatch.pv.set_counts import count_report_sets

PAIR_COLUMNS = ("drug", "event", "n", "n_drug", "n_event", "n_total", "expected")


def count_pairs(
    reports: pa.Table | ReportSets, strata: list[str] | None = None
) -> tuple[pa.Table, int]:
    """Pairs with their counts and expected counts, and the number of unique reports.

    A report belongs to one stratum: where a report's rows disagree (they should not),
    the first value in sort order is used.
    """
    if isinstance(reports, ReportSets):
        return count_report_sets(reports, strata)
    strata = strata or []
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.register("reports", reports)
    con.execute(
        "CREATE TEMP TABLE rde AS SELECT DISTINCT report_id, drug, event FROM reports "
        "WHERE report_id IS NOT NULL AND drug IS NOT NULL AND event IS NOT NULL"
    )
    n_total = con.sql("SELECT count(DISTINCT report_id) FROM rde").fetchall()[0][0]
    con.execute(
        "CREATE TEMP TABLE pairs AS SELECT drug, event, count(*) AS n FROM rde GROUP BY ALL"
    )
    con.execute(
        "CREATE TEMP TABLE drugs AS SELECT drug, count(DISTINCT report_id) AS n_drug FROM rde GROUP BY ALL"
    )
    con.execute(
        "CREATE TEMP TABLE events AS SELECT event, count(DISTINCT report_id) AS n_event FROM rde GROUP BY ALL"
    )
    if strata:
        stratum = " || '\x1f' || ".join(f"coalesce(CAST(\"{s}\" AS VARCHAR), '')" for s in strata)
        con.execute(
            f"CREATE TEMP TABLE rs AS SELECT report_id, min({stratum}) AS s FROM reports "
            "WHERE report_id IS NOT NULL GROUP BY report_id"
        )
        con.execute(
            """
            CREATE TEMP TABLE expected AS
            WITH ds AS (SELECT r.drug, s.s, count(DISTINCT r.report_id) AS c
                          FROM rde r JOIN rs s USING (report_id) GROUP BY ALL),
                 es AS (SELECT r.event, s.s, count(DISTINCT r.report_id) AS c
                          FROM rde r JOIN rs s USING (report_id) GROUP BY ALL),
                 ns AS (SELECT s, count(DISTINCT report_id) AS c
                          FROM rs WHERE report_id IN (SELECT report_id FROM rde) GROUP BY ALL)
            SELECT p.drug, p.event, sum(ds.c::DOUBLE * es.c / ns.c) AS expected
              FROM pairs p JOIN ds ON ds.drug = p.drug JOIN es ON es.event = p.event AND es.s = ds.s
              JOIN ns ON ns.s = ds.s
             GROUP BY ALL
            """
        )
        expected = "x.expected"
        join = "JOIN expected x USING (drug, event)"
    else:
        expected = f"d.n_drug::DOUBLE * e.n_event / {n_total}"
        join = ""
    table = con.sql(
        f"""
        SELECT p.drug, p.event, p.n, d.n_drug, e.n_event, {n_total}::BIGINT AS n_total,
               {expected} AS expected
          FROM pairs p JOIN drugs d USING (drug) JOIN events e USING (event) {join}
         ORDER BY p.drug, p.event
        """
    ).to_arrow_table()
    return table, n_total
