"""The Methods section: every definition the audit uses, in words, with its parameters."""

from __future__ import annotations

from dmtwatch.audit.context import AuditOptions
from dmtwatch.protocols import in_force


def methods(o: AuditOptions, as_of: str) -> list[dict]:
    pre = (
        "the exposure to the therapy that ended last before day 0, up to the day before day 0"
        if o.pre_window == "therapy"
        else f"the {o.pre_window} days before day 0 (days -{o.pre_window} to -1)"
    )
    lo, hi = o.mri_post_window
    return [
        in_force().methods_entry(),  # the protocols in force and every LOCAL-POLICY change
        {
            "term": "Cohort",
            "definition": f"Every patient with a recorded {o.drug} infusion on or before {as_of}."
            + (
                " Subgroup: " + ", ".join(f"{k} = {v}" for k, v in o.where.items()) + "."
                if o.where
                else ""
            ),
        },
        {
            "term": "Day 0",
            "definition": f"The first {o.drug} infusion (start of the first course). Days are counted from it.",
        },
        {
            "term": "End of follow-up",
            "definition": f"The patient's last dated record (treatment, lab, relapse, MRI, EDSS, adverse event), or {as_of} if earlier. Person-time is cut there.",
        },
        {
            "term": "Switch reason",
            "definition": "The stop reason of the disease-modifying therapy that ended last before day 0 (relapse treatment and rescue therapies excluded).",
        },
        {
            "term": "Age",
            "definition": "Age at day 0; a birth date given only as a year or a month is taken at the middle of that period.",
        },
        {
            "term": "Relapse",
            "definition": "A relapse recorded as confirmed (the default); relapses on the same day count once.",
        },
        {
            "term": "Relapse windows",
            "definition": f"Before: {pre}. After: the {o.post_window_days} days from day 0 (days 0 to {o.post_window_days - 1}), cut at the end of follow-up.",
        },
        {
            "term": "Annualised relapse rate (ARR)",
            "definition": "Pooled: relapses divided by person-years (days / 365.25) over all patients. 95% confidence intervals are exact Poisson (Garwood) limits.",
        },
        {
            "term": "Rate ratio",
            "definition": "ARR after divided by ARR before, with an exact 95% interval conditional on the total number of relapses (binomial, Clopper-Pearson). Not estimable without relapses before day 0 (the ratio is unbounded; the exact interval keeps its lower limit) or without relapses at all.",
        },
        {
            "term": "Paired comparison",
            "definition": "Wilcoxon signed-rank test of each patient's annualised rate after versus before.",
        },
        {
            "term": "Negative binomial model",
            "definition": "Relapse counts by period with a log person-time offset and patient-clustered standard errors; reported with the overdispersion of the counts. Not fitted when either period has no relapses (its ratio would be 0 or unbounded) or the fit does not converge.",
        },
        {
            "term": "Time to first relapse",
            "definition": "Kaplan-Meier estimate from day 0 to the first relapse on or after day 0, censored at the end of follow-up.",
        },
        {
            "term": "Lab episode",
            "definition": "Per patient and analyte: from the first result after day 0 below the lower limit (graded 1 or worse by the protocol's CTCAE v5 criteria; the laboratory's own limit when given, otherwise the default), nadir the lowest result from then on, grade the worst grade, normal day the first later result back at or above the limit. The same grading as `dmtwatch check`.",
        },
        {
            "term": "Lymphocyte trajectory",
            "definition": "Median and interquartile range of lymphocyte counts by month since day 0 (month = days / 30.44, rounded; month 0 includes days -15 to 15).",
        },
        {
            "term": "TPO antibody conversion",
            "definition": "The first thyroid peroxidase antibody result after day 0 above the upper limit, in a patient without a positive result on or before day 0.",
        },
        {
            "term": "Biochemical hypothyroidism",
            "definition": "The first TSH after day 0 above the upper limit, unless the free T4 nearest to it (within 14 days) is high.",
        },
        {
            "term": "Biochemical hyperthyroidism",
            "definition": "The first TSH after day 0 below the lower limit, unless the free T4 nearest to it (within 14 days) is low.",
        },
        {
            "term": "Thyroid cumulative incidence",
            "definition": "One minus the Kaplan-Meier estimate of time to the first biochemical hypo- or hyperthyroidism, censored at the end of follow-up.",
        },
        {
            "term": "Infections and adverse events",
            "definition": "Adverse events with onset from day 0 to the end of follow-up; patients with any, and with any serious, by term and category. Data without any adverse event are reported as not recorded, not as none.",
        },
        {
            "term": "MRI before",
            "definition": f"The last brain scan in the {o.mri_pre_days} days before day 0.",
        },
        {
            "term": "MRI after",
            "definition": f"The brain scan nearest day 365 within days {lo} to {hi}. A patient without one is counted as missing, not as inactive.",
        },
        {
            "term": "MRI activity",
            "definition": "At least one new or enlarging T2 lesion (new T2), or at least one gadolinium-enhancing lesion (Gd).",
        },
        {
            "term": "NEDA-3",
            "definition": f"At year 1 (and 2): no relapse, no MRI activity on the scan nearest the anniversary (window {lo}-{hi} days, shifted by a year for year 2), and no confirmed EDSS worsening (1.5 points from 0, 1.0 up to 5.0, 0.5 above, confirmed at least 168 days later). Decided per patient: evaluable only with data for every part (followed for the whole period, scanned in the window, an EDSS on or before day 0 and one in the year); a patient without them is not evaluable, never counted as free of activity.",
        },
        {
            "term": "CNS inflammation watch",
            "definition": "The cohort's CNS-MRI, CNS-RING and CNS-STROKE findings as `dmtwatch check` raises them on the as-of date, with any rescue therapy (plasma exchange, immunoadsorption, B-cell depletion) started on or after the finding.",
        },
    ]
