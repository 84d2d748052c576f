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
    if t0 > 0 and t1 > 0 and k0 > 0:
        ratio, lo, hi = stats.rate_ratio_ci(k1, t1, k0, t0)
        out["rate_ratio"], out["rate_ratio_ci"] = ratio, [lo, hi]
    keep = (pre_py > 0) & (post_py > 0)
    out["paired"] = stats.paired_test(pre[keep] / pre_py[keep], post[keep] / post_py[keep])
    out["negative_binomial"] = stats.negative_binomial_ratio(
        pre[keep], post[keep], pre_py[keep], post_py[keep]
    )
    first = np.array(
        [r["first_relapse_day"] if r["first_relapse_day"] is not None else -1 for r in rows]
    )
    fu = np.array([r["follow_up_days"] for r in rows])
    event = first >= 0
    out["km"] = stats.kaplan_meier(np.where(event, first, fu).astype(float), event.astype(int))
    return out
