"""Relapses before and after day 0: pooled ARR with exact Poisson limits, the exact rate
ratio, a paired per-patient test, a negative binomial model, and Kaplan-Meier of the
time to the first relapse after day 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dmtwatch.outcomes import plotting as P
from dmtwatch.outcomes import stats
from dmtwatch.outcomes.context import AuditContext
from dmtwatch.outcomes.format import (
    NONE,
    Table,
    as_number,
    fmt_ci,
    fmt_est,
    fmt_fixed,
    fmt_int,
    fmt_p,
    fmt_sig,
    records,
    records_table,
    window_label,
)
from dmtwatch.outcomes.sections.base import Section

YEAR = 365.25


class Relapses(Section):
    key = "relapses"
    pre_window_days: int | str | None = None
    post_window_days: int | str | None = None
    patients: list[dict[str, Any]] | None = None
    pre_relapses: int | None = None
    pre_person_years: float | None = None
    post_relapses: int | None = None
    post_person_years: float | None = None
    arr_pre: float | None = None
    arr_pre_ci: list[float | None] | None = None
    arr_post: float | None = None
    arr_post_ci: list[float | None] | None = None
    rate_ratio: float | None = None
    rate_ratio_ci: list[float | None] | None = None
    rate_ratio_estimable: bool | None = None
    rate_ratio_note: str | None = None
    paired: dict[str, Any] | None = None
    negative_binomial: dict[str, Any] | None = None
    negative_binomial_estimable: bool | None = None
    negative_binomial_note: str | None = None
    km: dict[str, Any] | None = None

    @classmethod
    def compute(cls, ctx: AuditContext) -> Relapses:
        return cls.model_validate(_compute(ctx))

    @property
    def summary(self) -> pd.DataFrame:
        rows = []
        for period in ("pre", "post"):
            ci = getattr(self, f"arr_{period}_ci") or [None, None]
            rows.append(
                {
                    "period": period,
                    "window_days": getattr(self, f"{period}_window_days"),
                    "relapses": getattr(self, f"{period}_relapses"),
                    "person_years": getattr(self, f"{period}_person_years"),
                    "arr": getattr(self, f"arr_{period}"),
                    "ci_lower": ci[0],
                    "ci_upper": ci[1],
                }
            )
        return pd.DataFrame(rows).set_index("period")

    # The report ---------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The rates table (before / after) and the comparisons table."""
        if not self.model_fields_set:
            return {}
        compare = self._comparisons()
        return {
            "table": self._rates_table(),
            "compare": Table(["Comparison", "Result"], compare, align="ll", css="keyvalue")
            if compare
            else None,
        }

    def _rates_table(self) -> Table | None:
        cols = []
        for period in ("pre", "post"):
            arr_value = getattr(self, f"arr_{period}")
            if as_number(arr_value) is None and getattr(self, f"{period}_relapses") is None:
                continue
            arr = fmt_fixed(arr_value)
            ci = fmt_ci(getattr(self, f"arr_{period}_ci"))
            cols.append(
                (
                    window_label(getattr(self, f"{period}_window_days"), period),
                    [
                        fmt_int(getattr(self, f"{period}_relapses")),
                        fmt_fixed(getattr(self, f"{period}_person_years")),
                        arr + (f" ({ci})" if ci else ""),
                    ],
                )
            )
        table = None
        if cols:
            labels = ["Relapses", "Person-years", "Annualised relapse rate (95% CI)"]
            rows = [[label, *(c[1][i] for c in cols)] for i, label in enumerate(labels)]
            table = Table(["", *(c[0] for c in cols)], rows)
        return table

    def _comparisons(self) -> list[list[str]]:
        compare = []
        ratio_text = self.rate_ratio_text()
        if ratio_text:
            compare.append(["Rate ratio, after / before (95% CI)", ratio_text])
        paired = self.paired
        if paired:
            bits = []
            if paired.get("n_pairs") is not None:
                bits.append(f"{fmt_int(paired['n_pairs'])} pairs")
            if as_number(paired.get("statistic")) is not None:
                bits.append(f"statistic {fmt_sig(paired['statistic'], 3)}")
            if as_number(paired.get("p_value")) is not None:
                bits.append(fmt_p(paired["p_value"]))
            compare.append([str(paired.get("test") or "Paired test"), ", ".join(bits) or NONE])
        nb = self.negative_binomial
        if nb and as_number(nb.get("rate_ratio")) is not None:
            ci = fmt_ci(nb.get("ci"))
            text = fmt_est(nb["rate_ratio"]) + (f" ({ci})" if ci else "")
            extra = []
            alpha = as_number(nb.get("alpha"))
            if alpha is not None:
                extra.append("dispersion α " + ("< 0.001" if alpha < 0.001 else fmt_sig(alpha, 2)))
            if nb.get("overdispersed") is not None:
                extra.append("overdispersed" if nb["overdispersed"] else "no overdispersion")
            if extra:
                text += "; " + ", ".join(extra)
            compare.append(["Negative binomial rate ratio (95% CI)", text])
        elif self.negative_binomial_estimable is False:
            note = self.negative_binomial_note
            compare.append(
                ["Negative binomial rate ratio", "not estimable" + (f": {note}" if note else "")]
            )
        km = self.km or {}
        if km and (km.get("events") is not None or km.get("censored") is not None):
            compare.append(
                [
                    "Time to first relapse after day 0",
                    f"{fmt_int(km.get('events'))} with a relapse, {fmt_int(km.get('censored'))} censored",
                ]
            )
        return compare

    def rate_ratio_text(self) -> str | None:
        """'0.036 (0.00087–0.22)', or why there is no ratio: with no relapses before day 0
        it is unbounded, said in words with the exact interval's lower limit, never a
        number like 4.9e9. None for a result that says nothing about the ratio."""
        if as_number(self.rate_ratio) is not None:
            ci = fmt_ci(self.rate_ratio_ci)
            return fmt_est(self.rate_ratio) + (f" ({ci})" if ci else "")
        if self.rate_ratio_estimable is not False:
            return None
        note = self.rate_ratio_note
        text = "not estimable" + (f": {note}" if note else "")
        ci = self.rate_ratio_ci
        if ci and len(ci) == 2 and as_number(ci[0]) is not None:
            text += f"; exact 95% CI from {fmt_est(ci[0])}, no upper limit"
        return text

    def brief(self) -> list[str]:
        pre, post = as_number(self.arr_pre), as_number(self.arr_post)
        if pre is None or post is None:
            return []
        verb = "fell" if post < pre else "rose" if post > pre else "was unchanged"
        pre_ci, post_ci = fmt_ci(self.arr_pre_ci), fmt_ci(self.arr_post_ci)
        s = (
            f"The annualised relapse rate {verb} from {pre:.2f}"
            + (f" (95% CI {pre_ci})" if pre_ci else "")
            + f" {window_label(self.pre_window_days, 'pre', phrase=True)} to {post:.2f}"
            + (f" ({post_ci})" if post_ci else "")
            + f" {window_label(self.post_window_days, 'post', phrase=True)}"
        )
        if as_number(self.rate_ratio) is not None:
            rr_ci = fmt_ci(self.rate_ratio_ci)
            s += f" (rate ratio {fmt_est(self.rate_ratio)}" + (
                f", 95% CI {rr_ci})" if rr_ci else ")"
            )
        elif self.rate_ratio_estimable is False:
            s += f" (rate ratio {self.rate_ratio_text()})"
        return [s + "."]

    def appendix(self, limit: int | None = None) -> list[Table]:
        table = records_table(
            "Relapses per patient",
            records(self.patients or []),
            [
                ("Patient", "patient_id", "l"),
                ("Relapses before", "pre", "r"),
                ("Relapses after", "post", "r"),
                ("Days at risk before", "pre_days", "r"),
                ("Days at risk after", "post_days", "r"),
                ("First relapse after, day", "first_relapse_day", "r"),
            ],
            limit,
        )
        return [table] if table else []

    # Figures ------------------------------------------------------------------------

    def plot(self) -> str | None:
        return self.plot_rates()

    def figures(self) -> dict[str, str | None]:
        return {
            "relapse_rates": self.plot_rates(),
            "relapse_free_survival": self.plot_survival(),
        }

    def plot_rates(self) -> str | None:
        """ARR before and after day 0 with 95% CI bars, annotated with counts and person-years."""
        rows = []
        for period in ("pre", "post"):
            arr = as_number(getattr(self, f"arr_{period}"))
            if arr is None:
                continue
            ci = getattr(self, f"arr_{period}_ci")
            ok = isinstance(ci, list | tuple) and len(ci) == 2
            lo, hi = (as_number(ci[0]), as_number(ci[1])) if ok else (None, None)
            label = window_label(getattr(self, f"{period}_window_days"), period)
            rows.append(
                (
                    label,
                    arr,
                    lo,
                    hi,
                    getattr(self, f"{period}_relapses"),
                    getattr(self, f"{period}_person_years"),
                )
            )
        if not rows:
            return None
        with P.figure(P.WIDTH, 2.4) as fig:
            ax = fig.add_subplot()
            xs = list(range(len(rows)))
            colours = [P.GREY, P.BLUE][-len(rows) :] if len(rows) == 2 else [P.BLUE]
            ax.bar(xs, [r[1] for r in rows], width=0.5, color=colours, alpha=0.35, zorder=1)
            top = 0.0
            for x, (_label, arr, lo, hi, _n, _py) in zip(xs, rows, strict=True):
                col = colours[x]
                if lo is not None and hi is not None:
                    ax.errorbar(
                        x,
                        arr,
                        yerr=[[arr - lo], [hi - arr]],
                        fmt="o",
                        color=col,
                        ecolor=col,
                        elinewidth=1.2,
                        capsize=5,
                        markersize=5,
                        zorder=3,
                    )
                    top = max(top, hi)
                else:
                    ax.plot([x], [arr], "o", color=col, zorder=3)
                top = max(top, arr)
            pad = top * 0.04 if top > 0 else 0.05
            for x, (_label, arr, _lo, hi, n, py) in zip(xs, rows, strict=True):
                text = f"ARR {arr:.2f}"
                parts = []
                if n is not None:
                    parts.append(f"{n} relapse{'s' if n != 1 else ''}")
                if as_number(py) is not None:
                    parts.append(f"{float(py):.2f} person-years")
                if parts:
                    text += "\n" + " / ".join(parts)
                y = (hi if hi is not None else arr) + pad
                ax.annotate(text, (x + 0.08, y), ha="left", va="bottom", fontsize=8, color=P.INK)
            ax.set_xticks(xs, [r[0] for r in rows])
            ax.set_xlim(-0.6, len(rows) - 0.4 + 0.5)
            ax.set_ylim(0, (top if top > 0 else 1.0) * 1.35)
            ax.set_ylabel("Relapses per person-year")
            ax.grid(axis="y", color="#eeeeee", linewidth=0.6, zorder=0)
            ax.set_axisbelow(True)
            return P.to_svg(
                fig, "fig-arr", "Annualised relapse rate before and after day 0, with 95% CI"
            )

    def plot_survival(self) -> str | None:
        """Kaplan-Meier curve of time to first relapse after day 0, with CI band, censoring
        ticks (if `censor_days` given) and numbers at risk."""
        km = self.km or {}
        if not P.step_ok(km, "survival"):
            return None
        t = [float(v) for v in km["time_days"]]
        s = [float(v) for v in km["survival"]]
        at_risk = km.get("at_risk") or []
        show_risk = len(at_risk) == len(t)
        with P.figure(P.WIDTH, 3.0 if show_risk else 2.7) as fig:
            ax = fig.add_subplot()
            tm = [P.months(v) for v in t]
            P.ci_band(ax, tm, km, P.BLUE)
            ax.step(tm, s, where="post", color=P.BLUE, lw=1.6, label="Relapse-free")
            cens = [float(v) for v in km.get("censor_days") or [] if as_number(v) is not None]
            if cens:
                ys = [P.step_value(t, s, c) for c in cens]
                ax.plot(
                    [P.months(c) for c in cens],
                    ys,
                    "|",
                    color=P.BLUE,
                    ms=7,
                    mew=1.1,
                    label="Censored",
                )
            end = max(t + cens)
            P.month_ticks(ax, 0, end)
            ax.set_xlim(0, P.months(end) * 1.02 if end else 1)
            ax.set_ylim(0, 1.04)
            ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
            ax.set_ylabel("Relapse-free")
            ax.set_xlabel("Months since day 0")
            ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.legend(loc="lower left")
            if show_risk:
                P.at_risk_row(ax, t, at_risk)
            return P.to_svg(
                fig, "fig-km", "Kaplan-Meier estimate of time to first relapse after day 0"
            )


def _compute(ctx: AuditContext) -> dict:
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
