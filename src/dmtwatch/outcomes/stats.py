"""The statistics of the audit, each the field's standard method.

Exact Poisson limits and the exact conditional rate-ratio interval come from SciPy's
chi-square and beta quantiles (Garwood; binomial conditioning on the total), the
negative binomial from statsmodels, Kaplan-Meier from lifelines.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

Z = 0.95


def poisson_rate_ci(events: int, person_years: float, level: float = Z) -> tuple[float, float]:
    """Exact (Garwood) limits of a Poisson rate: events / person-years."""
    a = 1 - level
    lo = stats.chi2.ppf(a / 2, 2 * events) / 2 if events > 0 else 0.0
    hi = stats.chi2.ppf(1 - a / 2, 2 * events + 2) / 2
    return lo / person_years, hi / person_years


def rate_ratio_ci(
    events_1: int, py_1: float, events_0: int, py_0: float, level: float = Z
) -> tuple[float, float, float]:
    """Rate ratio (1 vs 0) with its exact interval, conditional on the total count:
    events_1 ~ Binomial(n, p) with p = RR*py_1 / (RR*py_1 + py_0); Clopper-Pearson on p."""
    n = events_1 + events_0
    ratio = (events_1 / py_1) / (events_0 / py_0) if events_0 > 0 else math.inf
    if n == 0:
        return math.nan, 0.0, math.inf
    a = 1 - level
    p_lo = stats.beta.ppf(a / 2, events_1, n - events_1 + 1) if events_1 > 0 else 0.0
    p_hi = stats.beta.ppf(1 - a / 2, events_1 + 1, n - events_1) if events_1 < n else 1.0
    scale = py_0 / py_1
    lo = p_lo / (1 - p_lo) * scale
    hi = p_hi / (1 - p_hi) * scale if p_hi < 1 else math.inf
    return ratio, lo, hi


def negative_binomial_ratio(
    pre: np.ndarray, post: np.ndarray, pre_py: np.ndarray, post_py: np.ndarray
) -> dict | None:
    """Post vs pre rate ratio from a negative binomial GLM with a log person-time offset,
    with patient-clustered (robust) standard errors; None when it cannot be fitted."""
    import statsmodels.api as sm

    y = np.concatenate([pre, post]).astype(float)
    if len(pre) < 3 or pre.sum() == 0 or post.sum() == 0:
        # With no events in one period the maximum-likelihood log ratio is -inf or +inf:
        # the optimiser stops wherever it gives up (a "ratio" of 4.9e9 or 7e-11 with a
        # tight interval). Absent, never an absurd number.
        return None
    period = np.concatenate([np.zeros(len(pre)), np.ones(len(post))])
    offset = np.log(np.concatenate([pre_py, post_py]))
    groups = np.concatenate([np.arange(len(pre)), np.arange(len(post))])
    x = sm.add_constant(period)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sm.NegativeBinomial(y, x, offset=offset)
            fit = model.fit(disp=0, cov_type="cluster", cov_kwds={"groups": groups}, maxiter=200)
            # overdispersion: Pearson chi-square per degree of freedom of the Poisson model
            poisson = sm.GLM(y, x, family=sm.families.Poisson(), offset=offset).fit()
        if not fit.mle_retvals.get("converged", True):
            return None
        beta, se = float(fit.params[1]), float(fit.bse[1])
        alpha = float(fit.params[-1])
        dispersion = float(poisson.pearson_chi2 / poisson.df_resid)
    except Exception:  # a degenerate fit (e.g. no post events) is reported as absent
        return None
    if not (math.isfinite(beta) and math.isfinite(se)):
        return None
    return {
        "rate_ratio": math.exp(beta),
        "ci": [math.exp(beta - 1.959964 * se), math.exp(beta + 1.959964 * se)],
        "alpha": alpha,
        "poisson_dispersion": dispersion,
        "overdispersed": dispersion > 1.2,
    }


def paired_test(pre_rates: np.ndarray, post_rates: np.ndarray) -> dict | None:
    """Wilcoxon signed-rank test of per-patient annualised rates, post vs pre."""
    diff = post_rates - pre_rates
    if len(diff) < 2 or np.all(diff == 0):
        return None
    res = stats.wilcoxon(post_rates, pre_rates, zero_method="wilcox")
    return {
        "test": "Wilcoxon signed-rank",
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "n_pairs": len(diff),
        "median_difference": float(np.median(diff)),
    }


def kaplan_meier(durations: np.ndarray, events: np.ndarray) -> dict:
    """Kaplan-Meier survival with Greenwood (lifelines) 95% limits, as plain lists."""
    from lifelines import KaplanMeierFitter

    if len(durations) == 0:
        return {
            "time_days": [],
            "survival": [],
            "ci_lower": [],
            "ci_upper": [],
            "at_risk": [],
            "events": 0,
            "censored": 0,
        }
    km = KaplanMeierFitter().fit(durations, event_observed=events)
    sf = km.survival_function_.iloc[:, 0]
    ci = km.confidence_interval_survival_function_
    table = km.event_table
    return {
        "time_days": [float(t) for t in sf.index],
        "survival": [float(v) for v in sf.to_numpy()],
        "ci_lower": [float(v) for v in ci.iloc[:, 0].to_numpy()],
        "ci_upper": [float(v) for v in ci.iloc[:, 1].to_numpy()],
        "at_risk": [int(v) for v in table["at_risk"].reindex(sf.index).fillna(0).to_numpy()],
        "events": int(np.sum(events)),
        "censored": int(len(events) - np.sum(events)),
        "censor_days": sorted(float(d) for d, e in zip(durations, events, strict=True) if not e),
    }
