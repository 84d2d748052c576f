"""Cohort: who started the drug (day 0), what they had before and why it stopped."""

from __future__ import annotations

import datetime as dt

from dmtwatch.audit.context import AuditContext
from dmtwatch.audit.summaries import counts, quartiles


def _age(birth: str | None, day0: dt.date) -> float | None:
    """Age at day 0; a partial birth date (YYYY or YYYY-MM) uses the middle of its period."""
    if not birth:
        return None
    if len(birth) == 10:
        born = dt.date.fromisoformat(birth)
    elif len(birth) == 7:
        born = dt.date.fromisoformat(birth + "-15")
    else:
        born = dt.date(int(birth), 7, 2)
    return (day0 - born).days / 365.25


def cohort_section(ctx: AuditContext) -> dict:
    rows = ctx.rows("SELECT * FROM cohort ORDER BY patient_id")
    patients = []
    for r in rows:
        onset = r["ms_onset_date"]
        patients.append(
            {
                "patient_id": r["patient_id"],
                "day0": r["day0"].isoformat(),
                "sex": r["sex"],
                "age_at_day0": _age(r["birth_date"], r["day0"]),
                "disease_duration_years": (r["day0"] - onset).days / 365.25 if onset else None,
                "prior_drug": r["prior_drug"],
                "switch_reason": r["switch_reason"],
                "n_prior_therapies": r["n_prior_therapies"],
                "follow_up_days": r["follow_up_days"],
            }
        )
    fu = [p["follow_up_days"] / 365.25 for p in patients]
    follow_up = quartiles(fu)
    if follow_up is not None:
        follow_up["total"] = float(sum(fu))
    return {
        "n_patients": len(patients),
        "switch_reasons": counts([p["switch_reason"] for p in patients if p["prior_drug"]]),
        "prior_drug": counts([p["prior_drug"] for p in patients], missing="none"),
        "sex": counts([p["sex"] for p in patients]),
        "age_at_day0": quartiles([p["age_at_day0"] for p in patients]),
        "disease_duration_years": quartiles([p["disease_duration_years"] for p in patients]),
        "prior_therapies": quartiles([p["n_prior_therapies"] for p in patients]),
        "follow_up_years": follow_up,
        "patients": patients,
    }
