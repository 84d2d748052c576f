"""MRI activity before and after day 0, and NEDA-3 at 1 and 2 years where data allow.

Before: the last scan in the window before day 0. After: the scan nearest the anniversary
within its window. A patient without a scan there is missing, never inactive.
"""

from __future__ import annotations

from dmtwatch.audit.context import AuditContext

# Confirmed EDSS worsening (alemtuzumab programme, S13/S55): an increase of 1.5 from a
# baseline of 0, 1.0 up to 5.0, 0.5 above 5.0, still present at a visit 168 or more days on.
CONFIRM_DAYS = 168


def _scans(ctx: AuditContext, window: tuple[int, int], target: int | None) -> list[dict]:
    """One scan per patient in [window] days from day 0: the last one, or the nearest `target`."""
    order = "d DESC" if target is None else f"abs(d - {target}), d"
    return ctx.rows(
        f"""
        SELECT patient_id, d AS day, new_t2, gd_enhancing, ring_enhancing FROM (
          SELECT m.patient_id, date_diff('day', c.day0, m.date) AS d, m.new_t2, m.gd_enhancing,
                 m.ring_enhancing,
                 row_number() OVER (PARTITION BY m.patient_id ORDER BY {order}) AS rn
            FROM in_mri m JOIN cohort c USING (patient_id)
           WHERE coalesce(m.region, 'brain') = 'brain'
             AND date_diff('day', c.day0, m.date) BETWEEN {window[0]} AND {window[1]}
             AND m.date <= c.fu_end)
        WHERE rn = 1 ORDER BY patient_id
        """
    )


def _summary(scans: list[dict], n: int) -> dict:
    return {
        "scanned_n": len(scans),
        "new_t2_n": sum((s["new_t2"] or 0) > 0 for s in scans),
        "gd_n": sum((s["gd_enhancing"] or 0) > 0 for s in scans),
        "missing_n": n - len(scans),
    }


def mri_section(ctx: AuditContext) -> dict:
    o = ctx.options
    n = ctx.value("SELECT count(*) FROM cohort")
    pre = _scans(ctx, (-o.mri_pre_days, -1), None)
    post = _scans(ctx, o.mri_post_window, 365)
    return {
        "pre": _summary(pre, n),
        "post": _summary(post, n),
        "windows": {"pre_days": o.mri_pre_days, "post": list(o.mri_post_window)},
        "scans": [{"when": "pre", **s} for s in pre] + [{"when": "post", **s} for s in post],
    }


def neda_section(ctx: AuditContext) -> dict:
    """NEDA-3 at year 1 and 2: no relapse, no new T2 or enhancing lesion on the scan nearest
    the anniversary (within the MRI window shifted by a year), no confirmed EDSS worsening.
    Evaluable: followed for the whole year and scanned in the window."""
    o = ctx.options
    lo, hi = o.mri_post_window
    out = {}
    for year in (1, 2):
        end = 365 * year
        scans = {s["patient_id"]: s for s in _scans(ctx, (lo + end - 365, hi + end - 365), end)}
        rows = ctx.rows(
            f"""
            WITH rel AS (
              SELECT c.patient_id, count(r.onset_date) AS n FROM cohort c
              LEFT JOIN in_relapses r ON r.patient_id = c.patient_id AND coalesce(r.confirmed, true)
               AND date_diff('day', c.day0, r.onset_date) BETWEEN 0 AND {end - 1}
              GROUP BY 1),
            e AS (SELECT e.patient_id, date_diff('day', c.day0, e.date) AS d, e.score
                    FROM in_edss e JOIN cohort c USING (patient_id)),
            base AS (SELECT patient_id, arg_max(score, d) AS b FROM e WHERE d <= 0 GROUP BY 1),
            worse AS (
              SELECT DISTINCT x.patient_id FROM e x JOIN base USING (patient_id)
               WHERE x.d BETWEEN 1 AND {end}
                 AND x.score >= b + CASE WHEN b = 0 THEN 1.5 WHEN b <= 5 THEN 1.0 ELSE 0.5 END
                 AND EXISTS (SELECT 1 FROM e y WHERE y.patient_id = x.patient_id
                             AND y.d >= x.d + {CONFIRM_DAYS}
                             AND y.score >= b + CASE WHEN b = 0 THEN 1.5 WHEN b <= 5 THEN 1.0 ELSE 0.5 END))
            SELECT c.patient_id, c.follow_up_days, rel.n AS relapses,
                   w.patient_id IS NOT NULL AS edss_worsened
              FROM cohort c JOIN rel USING (patient_id) LEFT JOIN worse w USING (patient_id)
             ORDER BY c.patient_id
            """
        )
        records = []
        for r in rows:
            scan = scans.get(r["patient_id"])
            evaluable = r["follow_up_days"] >= end and scan is not None
            active = scan is not None and (
                (scan["new_t2"] or 0) > 0 or (scan["gd_enhancing"] or 0) > 0
            )
            records.append(
                {
                    "patient_id": r["patient_id"],
                    "evaluable": evaluable,
                    "neda": evaluable
                    and r["relapses"] == 0
                    and not active
                    and not r["edss_worsened"],
                    "relapses": r["relapses"],
                    "mri_active": active if scan is not None else None,
                    "edss_worsened": r["edss_worsened"],
                }
            )
        out[f"year{year}"] = {
            "evaluable_n": sum(r["evaluable"] for r in records),
            "neda_n": sum(r["neda"] for r in records),
            "patients": records,
        }
    return out
