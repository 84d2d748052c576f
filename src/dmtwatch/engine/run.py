"""Run every protocol over the whole cohort and keep one finding per patient and code.

Each rule is a whole-table query; the results are stacked, reduced to the most severe
(then latest) finding per (patient, code, test for MON-*), and ordered most urgent first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from dmtwatch.engine.clinical import imaging_findings, infusion_proximity, relapse_imaging
from dmtwatch.engine.context import make_context
from dmtwatch.engine.findings import EVIDENCE_COLUMNS, FINDING_COLUMNS
from dmtwatch.engine.labs import exposure_flag_findings, flag_findings, grading_findings
from dmtwatch.engine.schedule import missing_baseline, overdue
from dmtwatch.model.dataset import Dataset
from dmtwatch.protocols.schema import SEVERITY_ORDER, Protocol, load_protocols

# Codes whose findings are kept per test, not per patient (contract section 4).
PER_TEST_CODES = ("MON-OVERDUE", "MON-BASELINE")


@dataclass
class Findings:
    as_of: dt.date
    findings: pa.Table  # FINDING_COLUMNS, most urgent first
    evidence: pa.Table  # EVIDENCE_COLUMNS, rows behind each kept finding

    def counts(self) -> dict[str, int]:
        codes = self.findings.column("code").to_pylist()
        return {c: codes.count(c) for c in sorted(set(codes))}


def run_check(
    dataset: Dataset, as_of: dt.date, protocols: list[Protocol] | None = None
) -> Findings:
    ctx = make_context(dataset, as_of)
    pairs = []
    for protocol in protocols or load_protocols():
        for maker in (overdue, missing_baseline):
            found, ev = maker(ctx, protocol)
            if found is not None:
                pairs.append((found, ev))
        for maker in (
            grading_findings,
            flag_findings,
            exposure_flag_findings,
            relapse_imaging,
            imaging_findings,
            infusion_proximity,
        ):
            pairs += maker(ctx, protocol)
    found = [ctx.con.to_pyarrow(f.select(*FINDING_COLUMNS)) for f, _ in pairs]
    evidence = [ctx.con.to_pyarrow(e.select(*EVIDENCE_COLUMNS)) for _, e in pairs]
    return _reduce(as_of, pa.concat_tables(found), pa.concat_tables(evidence))


def _reduce(as_of: dt.date, found: pa.Table, evidence: pa.Table) -> Findings:
    con = duckdb.connect()
    con.register("found", found)
    con.register("evidence", evidence)
    rank = " ".join(f"WHEN '{s}' THEN {i}" for s, i in SEVERITY_ORDER.items())
    per_test = ", ".join(f"'{c}'" for c in PER_TEST_CODES)
    con.execute(
        f"""
        CREATE TABLE kept AS
        SELECT * EXCLUDE (rn, key_test, sev) FROM (
          SELECT *, CASE WHEN code IN ({per_test}) THEN test ELSE '' END AS key_test,
                 CASE severity {rank} END AS sev,
                 row_number() OVER (
                   PARTITION BY patient_id, code, CASE WHEN code IN ({per_test}) THEN test ELSE '' END
                   ORDER BY CASE severity {rank} END, date DESC, test) AS rn
          FROM found)
        WHERE rn = 1
        """
    )
    kept = con.sql(
        f"SELECT * FROM kept ORDER BY CASE severity {rank} END, date, patient_id, code, test"
    ).to_arrow_table()
    ev = con.sql(
        """
        SELECT DISTINCT e.* FROM evidence e JOIN kept k
          ON e.code = k.code AND e.patient_id = k.patient_id
         AND coalesce(e.test, '') = coalesce(k.test, '')
        ORDER BY e.patient_id, e.code, e.date
        """
    ).to_arrow_table()
    return Findings(as_of, kept, ev)
