"""MRI activity before and after day 0, and NEDA-3 at 1 and 2 years where data allow.

Before: the last scan in the window before day 0. After: the scan nearest the anniversary
within its window. A patient without a scan there is missing, never inactive. Confirmed
EDSS worsening is defined in settings.yaml (`edss_worsening`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    DASH,
    Table,
    as_number,
    fmt_int,
    fmt_n_of,
    fmt_pct,
    humanise,
    records,
    records_table,
    some_of,
    words,
)
from dmtwatch.outcomes.sections.base import Section
from dmtwatch.outcomes.settings import settings


class Mri(Section):
    key = "mri"
    pre: dict[str, Any] | None = None
    post: dict[str, Any] | None = None
    windows: dict[str, Any] | None = None
    scans: list[dict[str, Any]] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext) -> Mri:
        return cls.model_validate(_compute_mri(ctx))

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame({k: v for k, v in (("pre", self.pre), ("post", self.post)) if v}).T

    def view(self) -> dict[str, Any]:
        mri = self.to_dict()
        cols = []
        windows = self.windows or {}
        notes = []
        for period, name in (("pre", "Before day 0"), ("post", "About 1 year after")):
            m = mri.get(period)
            if not isinstance(m, Mapping) or not m:
                continue
            if period == "pre" and as_number(windows.get("pre_days")) is not None:
                notes.append(
                    f"Before: the last scan in the {fmt_int(windows['pre_days'])} days before day 0."
                )
            post_w = windows.get("post")
            if period == "post" and isinstance(post_w, Sequence) and len(post_w) == 2:
                notes.append(
                    f"After: the scan nearest day 365, within days {fmt_int(post_w[0])}{DASH}{fmt_int(post_w[1])}."
                )
            scanned = m.get("scanned_n")
            cols.append(
                (
                    name,
                    [
                        fmt_int(scanned),
                        fmt_n_of(m.get("new_t2_n"), scanned),
                        fmt_n_of(m.get("gd_n"), scanned),
                        fmt_int(m.get("missing_n")),
                    ],
                )
            )
        if not cols:
            return {}
        labels = [
            "Patients scanned in window",
            "At least one new T2 lesion",
            "At least one gadolinium-enhancing lesion",
            "No scan in window",
        ]
        rows = [[label, *(c[1][i] for c in cols)] for i, label in enumerate(labels)]
        return {"table": Table(["", *(c[0] for c in cols)], rows, note=" ".join(notes))}

    def brief(self) -> list[str]:
        out: list[str] = []
        mri = self.to_dict()
        pre_m, post_m = mri.get("pre"), mri.get("post")
        bits = []
        if isinstance(pre_m, Mapping) and as_number(pre_m.get("scanned_n")) == 0:
            bits.append("no patient was scanned in the window before day 0")  # missing, not none
        elif isinstance(pre_m, Mapping) and pre_m.get("scanned_n") is not None:
            bits.append(
                f"before day 0, {some_of(pre_m.get('new_t2_n'), pre_m['scanned_n'])} scanned patients had new T2 lesions"
                f" and {some_of(pre_m.get('gd_n'), pre_m['scanned_n'])} gadolinium-enhancing lesions"
            )
        if isinstance(post_m, Mapping) and as_number(post_m.get("scanned_n")) == 0:
            bits.append("no patient was scanned in the window about a year after")
        elif isinstance(post_m, Mapping) and post_m.get("scanned_n") is not None:
            t2, gd, sc = (
                as_number(post_m.get("new_t2_n")),
                as_number(post_m.get("gd_n")),
                post_m["scanned_n"],
            )
            if t2 == 0 and gd == 0:
                bits.append(
                    f"on the scan about a year after, {some_of(0, sc)} had new T2 or gadolinium-enhancing lesions"
                )
            else:
                bits.append(
                    f"on the scan about a year after, {some_of(t2, sc)} had new T2 lesions"
                    f" and {some_of(gd, sc)} gadolinium-enhancing lesions"
                )
        if bits:
            out.append("MRI: " + "; ".join(bits) + ".")
        return out

    def appendix(self, limit: int | None = None) -> list[Table]:
        table = records_table(
            "MRI scans",
            records(self.scans or []),
            [
                ("Patient", "patient_id", "l"),
                (
                    "Scan",
                    "when",
                    "l",
                    lambda r: {"pre": "before", "post": "after"}.get(
                        str(r.get("when")), words(r.get("when") or "")
                    ),
                ),
                ("Day", "day", "r"),
                ("New T2 lesions", "new_t2", "r"),
                ("Gd-enhancing lesions", "gd_enhancing", "r"),
                ("Ring-enhancing", "ring_enhancing", "r"),
            ],
            limit,
        )
        return [table] if table else []


def year_label(key: Any) -> str:
    """'year1' -> 'Year 1'."""
    text = str(key)
    return f"Year {text[4:]}" if text.startswith("year") and text[4:].isdigit() else humanise(key)


NEDA_MISSING_WORDS = {  # after a count of patients: "13 without an EDSS ..."
    "edss": "without an EDSS on or before day 0 and one in the year",
    "mri": "without a scan in the window",
    "follow_up": "not followed for the whole year",
}
NEDA_EVALUABLE_NOTE = (
    "A patient is evaluable only with data for every part: followed for the whole year, a"
    " scan in the window, an EDSS on or before day 0 and one in the year. A patient without"
    " them is not evaluable, never counted as free of activity."
)


def neda_missing(year: Mapping[str, Any]) -> str:
    """'13 without an EDSS on or before day 0 and one in the year, 2 without a scan in the
    window'; '' when the result does not say."""
    missing = year.get("missing_n")
    if not isinstance(missing, Mapping):
        return ""
    return ", ".join(
        f"{fmt_int(count)} {NEDA_MISSING_WORDS.get(str(part), 'without ' + words(part))}"
        for part, count in missing.items()
        if as_number(count)
    )


def neda_not_evaluable(year: Mapping[str, Any]) -> str:
    """Why nobody is evaluable, in words: a part not recorded for anyone comes first."""
    recorded = year.get("recorded") if isinstance(year.get("recorded"), Mapping) else {}
    if recorded.get("edss") is False:
        return "not evaluable: no EDSS recorded"
    if recorded.get("mri") is False:
        return "not evaluable: no MRI recorded"
    return "not evaluable" if "not_evaluable_n" in year else "not yet evaluable"


class Neda(Section):
    """NEDA-3 per year (`year1`, `year2`: the extra keys of a saved result are years too)."""

    key = "neda"
    year1: dict[str, Any] | None = None
    year2: dict[str, Any] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext) -> Neda:
        return cls.model_validate(_compute_neda(ctx))

    @property
    def summary(self) -> pd.DataFrame:
        rows = {
            k: {c: v.get(c) for c in ("evaluable_n", "neda_n", "not_evaluable_n")}
            for k, v in self.to_dict().items()
            if isinstance(v, Mapping)
        }
        return pd.DataFrame(rows).T

    def view(self) -> dict[str, Any]:
        neda = self.to_dict()
        years = [(k, neda[k]) for k in sorted(neda, key=str) if isinstance(neda[k], Mapping)]
        if not years:
            return {}
        header = ["", "Evaluable patients", "NEDA-3"]
        per_patient = any("not_evaluable_n" in v for _k, v in years)
        if per_patient:
            header.append("Not evaluable")
        rows = []
        for key, v in years:
            ev = as_number(v.get("evaluable_n"))
            row = [year_label(key), fmt_int(ev or 0)]
            row.append(fmt_n_of(v.get("neda_n"), ev) if ev else neda_not_evaluable(v))
            if per_patient:
                why = neda_missing(v)
                row.append(fmt_int(v.get("not_evaluable_n")) + (f" ({why})" if why else ""))
            rows.append(row)
        return {"table": Table(header, rows, note=NEDA_EVALUABLE_NOTE if per_patient else "")}

    def brief(self) -> list[str]:
        out: list[str] = []
        neda = self.year1 or {}
        if as_number(neda.get("evaluable_n")):
            s = (
                f"At one year, {some_of(neda.get('neda_n'), neda['evaluable_n'])} evaluable patients"
                f" ({fmt_pct(neda.get('neda_n'), neda['evaluable_n'])}) had no evidence of disease activity (NEDA-3)"
            )
            if as_number(neda.get("not_evaluable_n")):
                why = neda_missing(neda)
                s += f"; {fmt_int(neda['not_evaluable_n'])} were not evaluable" + (
                    f" ({why})" if why else ""
                )
            out.append(s + ".")
        elif as_number(neda.get("not_evaluable_n")):
            s = f"NEDA-3 at one year is {neda_not_evaluable(neda)}"
            if s.endswith("not evaluable") and neda_missing(neda):
                s += f": no patient has data for every part ({neda_missing(neda)})"
            out.append(s + ".")

        return out

    def records_by_patient(self) -> list[dict[str, Any]]:
        neda = self.to_dict()
        by_patient: dict[str, dict[str, Any]] = {}
        for year in sorted(k for k in neda if isinstance(neda[k], Mapping)):
            for r in records(neda[year].get("patients")):
                pid = str(r.get("patient_id"))
                if not r.get("evaluable"):
                    missing = [
                        NEDA_MISSING_WORDS.get(str(m), str(m)) for m in r.get("missing") or []
                    ]
                    text = "not evaluable" + (f": {', '.join(missing)}" if missing else "")
                elif r.get("neda"):
                    text = "NEDA-3"
                else:
                    why = [
                        label
                        for key, label in (
                            ("relapses", "relapse"),
                            ("mri_active", "MRI activity"),
                            ("edss_worsened", "EDSS worsening"),
                        )
                        if r.get(key)
                    ]
                    text = "activity" + (f": {', '.join(why)}" if why else "")
                by_patient.setdefault(pid, {"patient_id": pid})[year] = text
        return list(by_patient.values())

    def appendix(self, limit: int | None = None) -> list[Table]:
        neda = self.to_dict()
        years = sorted(k for k in neda if isinstance(neda[k], Mapping))
        table = records_table(
            "NEDA-3 per patient",
            self.records_by_patient(),
            [("Patient", "patient_id", "l"), *((year_label(y), y, "l") for y in years)],
            limit,
        )
        return [table] if table else []


def _scans(ctx: AuditContext, window: tuple[int, int], target: int | None) -> list[dict]:
    """One scan per patient in [window] days from day 0: the last one, or the nearest `target`."""
    order = "d DESC" if target is None else f"abs(d - {int(target)}), d"
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


def _compute_mri(ctx: AuditContext) -> dict:
    o = ctx.options
    n = ctx.value("SELECT count(*) FROM cohort")
    pre = _scans(ctx, (-o.mri_pre_days, -1), None)
    post = _scans(ctx, o.mri_post_window, settings().windows.mri_target_day)
    return {
        "pre": _summary(pre, n),
        "post": _summary(post, n),
        "windows": {"pre_days": o.mri_pre_days, "post": list(o.mri_post_window)},
        "scans": [{"when": "pre", **s} for s in pre] + [{"when": "post", **s} for s in post],
    }


# The parts of NEDA-3 a patient may lack the data for, in the order the report names them.
NEDA_PARTS = ("follow_up", "mri", "edss")


def _compute_neda(ctx: AuditContext) -> dict:
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
    edss = settings().edss_worsening
    needed = edss.needed_sql("b")
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
             AND x.score >= b + {needed}
             AND EXISTS (SELECT 1 FROM e y WHERE y.patient_id = x.patient_id
                         AND y.d >= x.d + {int(edss.confirm_days)}
                         AND y.score >= b + {needed}))
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
