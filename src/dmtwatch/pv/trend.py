"""A pair's measures quarter by quarter, on the reports received up to each quarter, so
one can see when a signal would first have been seen. Whole-table: cumulative counts by
window sums over a pairs x quarters grid, then the measures on all rows at once. Reports
held as sets (FAERS) are turned into rows only for the reports that name a drug or an
event of the pairs asked for: no other report changes those pairs' counts."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dmtwatch.pv.measures import disproportionality
from dmtwatch.pv.report_sets import ReportSets


def quarterly_trend(
    reports: pa.Table | ReportSets, pairs: list[tuple[str, str]], column: str = "quarter"
) -> pa.Table:
    """drug, event, quarter, n, expected, ic025, prr for each pair and each quarter."""
    if column not in reports.column_names or not pairs:
        return pa.table(
            {
                "drug": [],
                "event": [],
                "quarter": [],
                "n": [],
                "expected": [],
                "ic025": [],
                "prr": [],
            }
        )
    con = duckdb.connect()
    if isinstance(reports, ReportSets):
        rows, every_report = _rows_of_sets(reports, pairs, column)
        con.register("reports", rows)
        con.register("every_report", every_report)
    else:
        con.register("reports", reports.select(["report_id", "drug", "event", column]))
        con.execute("CREATE VIEW every_report AS SELECT * FROM reports")
    con.register(
        "wanted", pa.table({"drug": [p[0] for p in pairs], "event": [p[1] for p in pairs]})
    )
    rows = con.sql(
        f"""
        WITH rq AS (SELECT report_id, min("{column}") AS q FROM every_report GROUP BY 1),
        rde AS (SELECT DISTINCT r.report_id, r.drug, r.event, rq.q FROM reports r JOIN rq USING (report_id)),
        quarters AS (SELECT DISTINCT q FROM rq),
        grid AS (SELECT w.drug, w.event, quarters.q FROM wanted w CROSS JOIN quarters),
        tot AS (SELECT q, sum(count(*)) OVER (ORDER BY q) AS n_total FROM rq GROUP BY q),
        pq AS (SELECT drug, event, q, count(*) AS c FROM rde JOIN wanted USING (drug, event) GROUP BY ALL),
        dq AS (SELECT drug, q, count(DISTINCT report_id) AS c FROM rde
                WHERE drug IN (SELECT drug FROM wanted) GROUP BY ALL),
        eq AS (SELECT event, q, count(DISTINCT report_id) AS c FROM rde
                WHERE event IN (SELECT event FROM wanted) GROUP BY ALL)
        SELECT g.drug, g.event, g.q AS quarter,
               sum(coalesce(pq.c, 0)) OVER w AS n,
               sum(coalesce(dq.c, 0)) OVER w AS n_drug,
               sum(coalesce(eq.c, 0)) OVER w AS n_event,
               tot.n_total
          FROM grid g
          LEFT JOIN pq ON pq.drug = g.drug AND pq.event = g.event AND pq.q = g.q
          LEFT JOIN dq ON dq.drug = g.drug AND dq.q = g.q
          LEFT JOIN eq ON eq.event = g.event AND eq.q = g.q
          JOIN tot ON tot.q = g.q
        WINDOW w AS (PARTITION BY g.drug, g.event ORDER BY g.q)
        ORDER BY g.drug, g.event, g.q
        """
    ).to_arrow_table()
    n = rows["n"].to_numpy().astype(float)
    nd = rows["n_drug"].to_numpy().astype(float)
    ne = rows["n_event"].to_numpy().astype(float)
    nt = rows["n_total"].to_numpy().astype(float)
    expected = nd * ne / nt
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = disproportionality(n, nd, ne, nt, expected)
    return pa.table(
        {
            "drug": rows["drug"],
            "event": rows["event"],
            "quarter": rows["quarter"].cast(pa.string()),
            "n": rows["n"],
            "expected": expected,
            "ic025": cols["ic025"],
            "prr": cols["prr"],
        }
    )


def _rows_of_sets(
    sets: ReportSets, pairs: list[tuple[str, str]], column: str
) -> tuple[pa.Table, pa.Table]:
    """The long rows of the reports naming a wanted drug or event, and every counted
    report (one with a drug and an event) with its quarter."""
    n = sets.num_reports
    counted = (np.bincount(sets.drug_report, minlength=n) > 0) & (
        np.bincount(sets.event_report, minlength=n) > 0
    )
    named = np.zeros(n, dtype=bool)
    for report, code, names, wanted in (
        (sets.drug_report, sets.drug, sets.drug_names, {p[0] for p in pairs}),
        (sets.event_report, sets.event, sets.event_names, {p[1] for p in pairs}),
    ):
        hit = pc.is_in(names, value_set=pa.array(sorted(wanted))).to_numpy(zero_copy_only=False)
        named[report[hit[code]]] = True
    every = sets.reports.select(["report_id", column]).filter(pa.array(counted))
    return sets.to_table(named & counted), every
