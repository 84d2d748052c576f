"""CNS inflammation watch: the cohort's CNS-MRI, CNS-RING and CNS-STROKE findings as
`check` raises them, and the rescue therapy recorded afterwards."""

from __future__ import annotations

from dmtwatch.audit.context import AuditContext
from dmtwatch.engine.run import CLINICAL_KINDS, run_check
from dmtwatch.model.dataset import Dataset
from dmtwatch.protocols.schema import load_protocol

CODES = ("CNS-MRI", "CNS-RING", "CNS-STROKE")


def cns_section(ctx: AuditContext, dataset: Dataset) -> dict:
    findings = run_check(dataset, ctx.as_of, [ctx.options.drug], CLINICAL_KINDS).findings
    ctx.con.register("check_findings", findings)
    rescue = sorted(
        {d for r in load_protocol(ctx.options.drug).imaging_findings for d in r.rescue_drugs}
    )
    cases = ctx.rows(
        f"""
        SELECT f.patient_id, f.code, f.severity, f.date,
               date_diff('day', (SELECT max(least(coalesce(t.end_date, t.start_date), f.date))
                                   FROM in_treatments t
                                  WHERE t.patient_id = f.patient_id AND t.drug = ?
                                    AND t.start_date <= f.date), f.date) AS days_after_infusion,
               (SELECT string_agg(t.drug || ' from ' || t.start_date, ', ' ORDER BY t.start_date)
                  FROM in_treatments t
                 WHERE t.patient_id = f.patient_id AND t.start_date >= f.date
                   AND t.drug IN ({", ".join("?" for _ in rescue)})) AS rescue,
               f.detail
          FROM check_findings f JOIN cohort c USING (patient_id)
         WHERE f.code IN {CODES}
         ORDER BY f.date, f.patient_id
        """,
        [ctx.options.drug, *rescue],
    )
    for c in cases:
        c["date"] = c["date"].isoformat()
    return {"cases": cases, "rescue_drugs": rescue}
