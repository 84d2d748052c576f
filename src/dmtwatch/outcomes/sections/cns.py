"""CNS inflammation watch: the cohort's CNS-MRI, CNS-RING and CNS-STROKE findings as
`check` raises them, with the days since the last infusion (the finding's own fact,
`facts.days_after_infusion`; the engine's `exposure.last_end_before` for a finding
without it) and the rescue therapy (the protocol's `rescue_drugs`) recorded afterwards
(`engine.clinical.rescue_after`, the list CNS-RING states in its facts)."""

from __future__ import annotations

from typing import Any

import ibis
import pandas as pd

from dmtwatch.engine.clinical import rescue_after
from dmtwatch.engine.exposure import last_end_before
from dmtwatch.engine.run import CLINICAL_KINDS, run_check
from dmtwatch.model.dataset import Dataset
from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    LIST_MAX,
    NONE,
    Table,
    fmt_int,
    lower_first,
    records,
    words,
)
from dmtwatch.outcomes.methods import CNS_CODES
from dmtwatch.outcomes.sections.base import Section

CNS_LABELS = {
    "CNS-RING": "Ring-enhancing lesions after alemtuzumab",
    "CNS-MRI": "Apparent relapse without contrast MRI in window",
}


class Cns(Section):
    key = "cns"
    cases: list[dict[str, Any]] | None = None
    rescue_drugs: list[str] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext, dataset: Dataset) -> Cns:
        return cls.model_validate(_compute(ctx, dataset))

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(records(self.cases or []))

    def view(self) -> dict[str, Any]:
        cases = records(self.cases or [])
        if not cases:
            return {"table": None}
        rows = [
            [
                str(c.get("patient_id") or NONE),
                str(c.get("date") or NONE),
                str(c.get("code") or NONE)
                + (
                    f": {c['detail']}"
                    if c.get("detail")
                    else f": {lower_first(CNS_LABELS[c['code']])}"
                    if c.get("code") in CNS_LABELS
                    else ""
                ),
                fmt_int(c.get("days_after_infusion")),
                words(c["rescue"]) if c.get("rescue") else "none recorded",
            ]
            for c in cases
        ]
        return {
            "table": Table(
                [
                    "Patient",
                    "Date",
                    "Finding",
                    "Days after last infusion",
                    "Rescue therapy recorded",
                ],
                rows,
                align="lllrl",
            )
        }

    def brief(self) -> list[str]:
        """What the watch flagged (nothing to say for a result without the section)."""
        out: list[str] = []
        cases = records(self.cases or [])
        if cases:
            desc = "; ".join(
                f"{c.get('patient_id')}, {c.get('code')}"
                + (
                    f", {fmt_int(c.get('days_after_infusion'))} days after the last infusion"
                    if c.get("days_after_infusion") is not None
                    else ""
                )
                + ("" if c.get("rescue") else ", no rescue therapy recorded")
                for c in cases[:LIST_MAX]
            )
            if len(cases) > LIST_MAX:
                desc += f"; {len(cases) - LIST_MAX} more in the table below"
            out.append(
                f"The CNS inflammation watch flagged {len(cases)} case{'s' if len(cases) != 1 else ''} ({desc})."
            )
        else:
            out.append("The CNS inflammation watch flagged no cases.")
        return out


CODES = CNS_CODES


def _compute(ctx: AuditContext, dataset: Dataset) -> dict:
    findings = run_check(dataset, ctx.as_of, [ctx.options.drug], CLINICAL_KINDS).findings
    findings = findings.select(["patient_id", "code", "severity", "date", "detail", "facts"])
    ctx.con.register("check_findings", findings)
    ctx.con.execute(
        "CREATE TEMP TABLE cns_findings AS SELECT f.* FROM check_findings f "
        "JOIN cohort c USING (patient_id) WHERE list_contains(?, f.code)",
        [list(CODES)],
    )
    events = ibis.table(
        {"patient_id": "string", "code": "string", "date": "date"}, name="cns_findings"
    )
    # two tables: a finding without an infusion before it still lists its rescue therapy
    ctx.engine_table("cns_last", last_end_before(ctx.plan, ctx.protocol.therapy, events, "date"))
    ctx.engine_table(
        "cns_rescue", rescue_after(ctx.plan, ctx.protocol, ctx.rescue_drugs, events, "date")
    )
    cases = ctx.rows(
        """
        SELECT f.patient_id, f.code, f.severity, f.date,
               coalesce(TRY_CAST(json_extract_string(f.facts, '$.days_after_infusion') AS INTEGER),
                        date_diff('day', l.last_infusion, f.date)) AS days_after_infusion,
               r.rescue, f.detail
          FROM cns_findings f
          LEFT JOIN cns_last l USING (patient_id, code, date)
          LEFT JOIN cns_rescue r USING (patient_id, code, date)
         ORDER BY f.date, f.patient_id
        """
    )
    for c in cases:
        c["date"] = c["date"].isoformat()
    return {"cases": cases, "rescue_drugs": ctx.rescue_drugs}
