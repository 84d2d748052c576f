"""Relapses before and after day 0: pooled ARR with exact Poisson limits, the exact rate
ratio, a paired per-patient test, a negative binomial model, and Kaplan-Meier of the
time to the first relapse after day 0.
"""

from __future__ import annotations

import numpy as np

from dmtwatch.audit import stats
from dmtwatch.audit.context import AuditContext

YEAR = 365.25


def relapse_section(ctx: AuditContext) -> dict:
    o = ctx.options
    if o.pre_window == "therapy":
        # the prior therapy's exposure, up to the day before day 0
        pre = "c.prior_start", "least(c.prior_end, c.day0 - 1)"
    else:
        pre = f"c.day0 - {int(o.pre_window)}", "c.day0 - 1"
    post_end = f"least(c.day0 + {int(o.post_window_days) - 1}, c.fu_end)"
    rows = ctx.rows(
        f"""
        WITH w AS (
          SELECT c.patient_id, c.day0, c.fu_end, {pre[0]} AS pre_from, {pre[1]} AS pre_to,
                 c.day0 AS post_from, {post_end} AS post_to FROM cohort c),
        r AS (SELECT DISTINCT patient_id, onset_date FROM in_relapses WHERE coalesce(confirmed, true))
        SELECT w.patient_id,
               greatest(date_diff('day', w.pre_from, w.pre_to) + 1, 0) AS pre_days,
               greatest(date_diff('day', w.post_from, w.post_to) + 1, 0) AS post_days,
               count(r.onset_date) FILTER (WHERE r.onset_date BETWEEN w.pre_from AND w.pre_to) AS pre,
               count(r.onset_date) FILTER (WHERE r.onset_date BETWEEN w.post_from AND w.post_to) AS post,
               min(date_diff('day', w.day0, r.onset_date))
                 FILTER (WHERE r.onset_date BETWEEN w.day0 AND w.fu_end) AS first_relapse_day,
               date_diff('day', w.day0, w.fu_end) AS follow_up_days
          FROM w LEFT JOIN r USING (patient_id)
         GROUP BY ALL ORDER BY w.patient_id
        """
    )
    out: dict = {
        "pre_window_days": o.pre_window if o.pre_window != "therapy" else "therapy",
        "post_window_days": o.post_window_days,
        "patients": rows,
    }
    if not rows:
        return out
    pre = np.array([r["pre"] for r in rows])
    post = np.array([r["post"] for r in rows])
    pre_py = np.array([r["pre_days"] for r in rows]) / YEAR
    post_py = np.array([r["post_days"] for r in rows]) / YEAR
    k0, k1, t0, t1 = int(pre.sum()), int(post.sum()), float(pre_py.sum()), float(post_py.sum())
    out |= {
        "pre_relapses": k0,
        "pre_person_years": t0,
        "post_relapses": k1,
        "post_person_years": t1,
    }
    if t0 > 0:
        out["arr_pre"] = k0 / t0
        out["arr_pre_ci"] = list(stats.poisson_rate_ci(k0, t0))
    if t1 > 0:
        out["arr_post"] = k1 / t1
        out["arr_post_ci"] = list(stats.poisson_rate_ci(k1, t1))
    out |= rate_ratio(k0, t0, k1, t1)
    keep = (pre_py > 0) & (post_py > 0)
    out["paired"] = stats.paired_test(pre[keep] / pre_py[keep], post[keep] / post_py[keep])
    nb = stats.negative_binomial_ratio(pre[keep], post[keep], pre_py[keep], post_py[keep])
    out["negative_binomial"] = nb
    out["negative_binomial_estimable"] = nb is not None
    out["negative_binomial_note"] = (
        None if nb is not None else _nb_not_estimable(pre[keep], post[keep])
    )
    first = np.array(
        [r["first_relapse_day"] if r["first_relapse_day"] is not None else -1 for r in rows]
    )
    fu = np.array([r["follow_up_days"] for r in rows])
    event = first >= 0
    out["km"] = stats.kaplan_meier(np.where(event, first, fu).astype(float), event.astype(int))
    return out


def rate_ratio(k0: int, t0: float, k1: int, t1: float) -> dict:
    """The after / before rate ratio with its exact conditional interval, or why there is
    none: `rate_ratio` is null whenever the point estimate is not a finite number, so a
    reader never meets an infinite or absurd ratio.

    With no relapses before day 0 (k0 = 0, k1 > 0) the ratio is unbounded, yet the exact
    interval still has a finite lower limit (binomial conditioning on k0 + k1): it is
    kept, with a null upper limit. With none after (k1 = 0) the ratio is 0 and the exact
    upper limit is finite. With none at all there is nothing to compare.
    """
    no_ratio = {"rate_ratio": None, "rate_ratio_ci": None, "rate_ratio_estimable": False}
    if t0 <= 0 or t1 <= 0:
        period = "before" if t0 <= 0 else "after"
        return no_ratio | {"rate_ratio_note": f"no person-time {period} day 0"}
    if k0 == 0 and k1 == 0:
        return no_ratio | {"rate_ratio_note": "no relapses before or after day 0"}
    ratio, lo, hi = stats.rate_ratio_ci(k1, t1, k0, t0)
    if k0 == 0:
        return no_ratio | {
            "rate_ratio_ci": [lo, None],
            "rate_ratio_note": "no relapses before day 0, so the ratio is unbounded",
        }
    return {
        "rate_ratio": ratio,
        "rate_ratio_ci": [lo, hi],
        "rate_ratio_estimable": True,
        "rate_ratio_note": None,
    }


def _nb_not_estimable(pre: np.ndarray, post: np.ndarray) -> str:
    """Why the negative binomial model gave no ratio, in words for the report."""
    if len(pre) < 3:
        return "fewer than 3 patients with time before and after day 0"
    if pre.sum() == 0 and post.sum() == 0:
        return "no relapses before or after day 0"
    if pre.sum() == 0:
        return "no relapses before day 0, so the ratio is unbounded"
    if post.sum() == 0:
        return "no relapses after day 0, so the model's ratio would be 0 with no usable interval"
    return "the model did not converge"
