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


# The parts of NEDA-3 a patient may lack the data for, in the order the report names them.
NEDA_PARTS = ("follow_up", "mri", "edss")


def neda_section(ctx: AuditContext) -> dict:
    """NEDA-3 at year 1 and 2: no relapse, no new T2 or enhancing lesion on the scan nearest
    the anniversary (within the MRI window shifted by a year), no confirmed EDSS worsening.

    Decided per patient, and missing is never "no activity": a patient is evaluable only
    with data for every part (followed for the whole year, scanned in the window, an EDSS
    on or before day 0 and one in that year). Without EDSS anywhere NEDA-3 is not
    evaluable at all, never "13 of 15". `neda` is null for a patient who is not evaluable
    and `neda_n` null when nobody is; `missing_n` counts the patients lacking each part.
    """
    out = {}
    recorded = {
        "mri": bool(ctx.value("SELECT count(*) FROM in_mri JOIN cohort USING (patient_id)")),
        "edss": bool(ctx.value("SELECT count(*) FROM in_edss JOIN cohort USING (patient_id)")),
    }
    for year in (1, 2):
        records = [_neda_record(r, year) for r in _neda_rows(ctx, year)]
        evaluable_n = sum(r["evaluable"] for r in records)
        out[f"year{year}"] = {
            "evaluable_n": evaluable_n,
            "neda_n": sum(bool(r["neda"]) for r in records) if evaluable_n else None,
            "not_evaluable_n": len(records) - evaluable_n,
            "missing_n": {part: sum(part in r["missing"] for r in records) for part in NEDA_PARTS},
            "recorded": recorded,
            "patients": records,
        }
    return out


def _neda_rows(ctx: AuditContext, year: int) -> list[dict]:
    """Per patient for one year: follow-up, relapses in the year, the year's scan, whether
    the EDSS part can be judged (a baseline, and a score in the year or a confirmed
    worsening already) and whether EDSS worsened (confirmed)."""
    o = ctx.options
    lo, hi = o.mri_post_window
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
        in_year AS (SELECT DISTINCT patient_id FROM e WHERE d BETWEEN {end - 364} AND {end}),
        worse AS (
          SELECT DISTINCT x.patient_id FROM e x JOIN base USING (patient_id)
           WHERE x.d BETWEEN 1 AND {end}
             AND x.score >= b + CASE WHEN b = 0 THEN 1.5 WHEN b <= 5 THEN 1.0 ELSE 0.5 END
             AND EXISTS (SELECT 1 FROM e y WHERE y.patient_id = x.patient_id
                         AND y.d >= x.d + {CONFIRM_DAYS}
                         AND y.score >= b + CASE WHEN b = 0 THEN 1.5 WHEN b <= 5 THEN 1.0 ELSE 0.5 END))
        SELECT c.patient_id, c.follow_up_days, rel.n AS relapses,
               w.patient_id IS NOT NULL AS edss_worsened,
               b.patient_id IS NOT NULL AND (y.patient_id IS NOT NULL OR w.patient_id IS NOT NULL)
                 AS edss_evaluable
          FROM cohort c JOIN rel USING (patient_id) LEFT JOIN worse w USING (patient_id)
          LEFT JOIN base b USING (patient_id) LEFT JOIN in_year y USING (patient_id)
         ORDER BY c.patient_id
        """
    )
    return [r | {"end": end, "scan": scans.get(r["patient_id"])} for r in rows]


def _neda_record(r: dict, year: int) -> dict:
    """One patient's NEDA-3 for a year: the parts, what is missing, and the verdict (null
    when a part is missing: the patient is not evaluable, not free of activity)."""
    scan = r["scan"]
    active = None if scan is None else (scan["new_t2"] or 0) > 0 or (scan["gd_enhancing"] or 0) > 0
    has = {
        "follow_up": r["follow_up_days"] >= r["end"],
        "mri": scan is not None,
        "edss": bool(r["edss_evaluable"]),
    }
    missing = [part for part in NEDA_PARTS if not has[part]]
    evaluable = not missing
    return {
        "patient_id": r["patient_id"],
        "evaluable": evaluable,
        "neda": (r["relapses"] == 0 and not active and not r["edss_worsened"])
        if evaluable
        else None,
        "relapses": r["relapses"],
        "mri_active": active,
        "edss_worsened": r["edss_worsened"] if has["edss"] else None,
        "missing": missing,
    }
