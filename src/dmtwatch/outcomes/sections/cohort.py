"""Cohort: who started the drug (day 0), what they had before and why it stopped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    Table,
    as_number,
    by_count,
    counted,
    fmt_fixed,
    fmt_int,
    fmt_median_iqr,
    join_or,
    records,
    records_table,
    words,
)
from dmtwatch.outcomes.sections.base import Section
from dmtwatch.outcomes.summaries import counts, quartiles

SEX_LABELS = {"F": "Female", "M": "Male", "U": "Unknown"}


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


class Cohort(Section):
    key = "cohort"
    n_patients: int | None = None
    switch_reasons: dict[str, Any] | None = None
    prior_drug: dict[str, Any] | None = None
    sex: dict[str, Any] | None = None
    age_at_day0: dict[str, Any] | None = None
    disease_duration_years: dict[str, Any] | None = None
    prior_therapies: dict[str, Any] | None = None
    follow_up_years: dict[str, Any] | None = None
    patients: list[dict[str, Any]] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext) -> Cohort:
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
        return cls.model_validate(
            {
                "n_patients": len(patients),
                "switch_reasons": counts([p["switch_reason"] for p in patients if p["prior_drug"]]),
                "prior_drug": counts([p["prior_drug"] for p in patients], missing="none"),
                "sex": counts([p["sex"] for p in patients]),
                "age_at_day0": quartiles([p["age_at_day0"] for p in patients]),
                "disease_duration_years": quartiles(
                    [p["disease_duration_years"] for p in patients]
                ),
                "prior_therapies": quartiles([p["n_prior_therapies"] for p in patients]),
                "follow_up_years": follow_up,
                "patients": patients,
            }
        )

    @property
    def n(self) -> int:
        """Patients: the stated count, else the per-patient records."""
        n = as_number(self.n_patients)
        return int(n) if n is not None else len(records(self.patients or []))

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(records(self.patients or []))

    def view(self, drug: str) -> dict[str, Any]:
        n = self.n
        rows = [["Patients", fmt_int(n)]]
        if self.sex:
            rows.append(["Sex", counted(self.sex, n, lambda k: SEX_LABELS.get(str(k), str(k)))])
        if self.age_at_day0:
            rows.append(["Age at day 0, years: median (IQR)", fmt_median_iqr(self.age_at_day0)])
        if self.disease_duration_years:
            rows.append(
                [
                    "Disease duration at day 0, years: median (IQR)",
                    fmt_median_iqr(self.disease_duration_years),
                ]
            )
        if self.prior_therapies:
            summary = self.prior_therapies
            values = [as_number(summary.get(k)) for k in ("median", "q1", "q3")]
            decimals = 0 if all(v is None or v == int(v) for v in values) else 1
            rows.append(
                [
                    "Prior disease-modifying therapies: median (IQR)",
                    fmt_median_iqr(summary, decimals),
                ]
            )
        if self.prior_drug:
            rows.append([f"Therapy before {drug}", counted(self.prior_drug, n)])
        if self.switch_reasons:
            rows.append(["Reason for switching", counted(self.switch_reasons, n)])
        fu = self.follow_up_years
        if fu:
            text = fmt_median_iqr(fu)
            if as_number(fu.get("total")) is not None:
                text += f"; {fmt_fixed(fu['total'])} patient-years in all"
            rows.append(["Follow-up after day 0, years: median (IQR)", text])
        return {"table": Table(["", "Value"], rows, align="ll", css="keyvalue")}

    def brief(self, drug: str) -> list[str]:
        n = self.n
        out = []
        prior = self.prior_drug or {}
        s = f"{n} patient{'s' if n != 1 else ''} started {drug}"
        if len(prior) == 1:
            s += f" after {words(next(iter(prior)))}"
        elif prior:
            s += " after " + join_or([f"{words(k)} ({fmt_int(v)})" for k, v in by_count(prior)])
        reasons = self.switch_reasons
        reason_words = ""
        if reasons:
            reason_words = ", ".join(f"{fmt_int(v)} {words(k)}" for k, v in by_count(reasons))
            if len(prior) <= 1:
                s += f" ({reason_words})"
        fu = self.follow_up_years
        if fu and as_number(fu.get("median")) is not None:
            s += f", followed for a median of {fmt_median_iqr(fu).replace(' (', ' years (IQR ')}"
        out.append(s + ".")
        if reason_words and len(prior) > 1:
            out.append(f"Reasons for switching: {reason_words}.")
        return out

    def appendix(self, limit: int | None = None) -> list[Table]:
        table = records_table(
            "Patients",
            records(self.patients or []),
            [
                ("Patient", "patient_id", "l"),
                ("Day 0", "day0", "l"),
                ("Sex", "sex", "l"),
                ("Age at day 0", "age_at_day0", "r", lambda r: fmt_fixed(r.get("age_at_day0"), 1)),
                (
                    "Disease duration, years",
                    "disease_duration_years",
                    "r",
                    lambda r: fmt_fixed(r.get("disease_duration_years"), 1),
                ),
                ("Prior drug", "prior_drug", "l", lambda r: words(r.get("prior_drug") or "")),
                (
                    "Switch reason",
                    "switch_reason",
                    "l",
                    lambda r: words(r.get("switch_reason") or ""),
                ),
                ("Prior therapies", "n_prior_therapies", "r"),
                ("Follow-up, days", "follow_up_days", "r"),
            ],
            limit,
        )
        return [table] if table else []
