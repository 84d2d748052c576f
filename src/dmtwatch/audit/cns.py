"""CNS inflammation watch: the cohort's CNS-MRI, CNS-RING and CNS-STROKE findings as
`check` raises them, the days since the last infusion by the engine's own exposure
function (`engine.exposure.last_end_before`), and the rescue therapy (the protocol's
`rescue_drugs`) recorded afterwards."""

from __future__ import annotations

import ibis

from dmtwatch.audit.context import AuditContext
from dmtwatch.engine.exposure import last_end_before
from dmtwatch.engine.run import CLINICAL_KINDS, run_check
from dmtwatch.model.dataset import Dataset

CODES = ("CNS-MRI", "CNS-RING", "CNS-STROKE")


def cns_section(ctx: AuditContext, dataset: Dataset) -> dict:
    findings = run_check(dataset, ctx.as_of, [ctx.options.drug], CLINICAL_KINDS).findings
    findings = findings.select(["patient_id", "code", "severity", "date", "detail"])
    ctx.con.register("check_findings", findings)
    ctx.con.execute(
        "CREATE TEMP TABLE cns_findings AS SELECT f.* FROM check_findings f "
        "JOIN cohort c USING (patient_id) WHERE list_contains(?, f.code)",
        [list(CODES)],
    )
    events = ibis.table(
        {"patient_id": "string", "code": "string", "date": "date"}, name="cns_findings"
    )
    ctx.engine_table(
        "cns_last_infusion", last_end_before(ctx.plan, ctx.protocol.therapy, events, "date")
    )
    rescue = ctx.rescue_drugs
    cases = ctx.rows(
        """
        SELECT f.patient_id, f.code, f.severity, f.date,
               date_diff('day', l.last_infusion, f.date) AS days_after_infusion,
               (SELECT string_agg(t.drug || ' from ' || t.start_date, ', ' ORDER BY t.start_date)
                  FROM in_treatments t
                 WHERE t.patient_id = f.patient_id AND t.start_date >= f.date
                   AND list_contains(?, t.drug)) AS rescue,
               f.detail
          FROM cns_findings f
          LEFT JOIN cns_last_infusion l USING (patient_id, code, date)
         ORDER BY f.date, f.patient_id
        """,
        [rescue],
    )
    for c in cases:
        c["date"] = c["date"].isoformat()
    return {"cases": cases, "rescue_drugs": rescue}
