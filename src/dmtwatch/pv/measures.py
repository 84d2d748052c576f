"""Disproportionality measures for every drug-event pair at once: PRR, ROR, IC and flags.

Spontaneous reports have no denominator of exposed patients, so signals are sought as
*disproportions*: an event reported more often with a drug than with the rest of the
database. Each pair is a 2x2 table of unique reports,

                      event     not event
    drug                a           b          a + b = n_drug
    not drug            c           d          c + d = n_total - n_drug
                    a + c = n_event

and every measure below is a closed form of (a, b, c, d) or of the observed count n = a
and the expected count E, so all pairs are computed together as whole NumPy arrays (tens
of millions of pairs take seconds; no Python loop over pairs).

Conventions:

* PRR = (a / (a + b)) / (c / (c + d)) with the 95% CI of the log method (Rothman;
  Evans et al. 2001; Gravel 2009): SE(ln PRR) = sqrt(1/a - 1/(a+b) + 1/c - 1/(c+d)).
  No correction: c = 0 gives PRR = inf (openEBGM prints Inf too) and a = 0 gives 0; in
  both cases the SE is infinite, so the limits are NaN.
* chi2 is Pearson's 1-df chi-square of the 2x2 table *with Yates' continuity
  correction*, N (|ad - bc| - N/2)^2 / ((a+b)(c+d)(a+c)(b+d)), the |ad - bc| - N/2
  term floored at 0. Evans et al. (2001) state their criterion (PRR >= 2, chi2 >= 4,
  n >= 3) with the Yates-corrected statistic, the usual reading in pharmacovigilance; it
  is the smaller of the two, so the flag is the conservative one. ``yates=False`` gives
  the uncorrected Pearson statistic.
* ROR = ad / (bc) with Woolf's 95% CI, SE(ln ROR) = sqrt(1/a + 1/b + 1/c + 1/d)
  (Woolf 1955; Rothman, Modern Epidemiology). When any cell of a pair is 0 the
  Haldane-Anscombe correction (+0.5 to all four cells) is applied to that pair only, so
  ROR and its limits stay finite and rankable (pvda leaves them Inf/NaN instead;
  ``haldane=False`` does the same here: the plain formula, NaN limits).
* IC = log2((n + 0.5) / (E + 0.5)), the BCPNN information component with the usual
  +0.5 shrinkage (Bate et al. 1998; Noren et al. 2006, 2013), and IC025/IC975 are the
  2.5%/97.5% quantiles of the Gamma(n + 0.5, rate E + 0.5) posterior on the log2 scale,
  exact (scipy's inverse regularised incomplete gamma), as in WHO-UMC's pvda.
* rr = n / E and IC use ``expected`` (stratified when the caller stratified); PRR, ROR and
  chi2 use the crude 2x2 table, which is what their criteria were defined on.

Flags: prr_signal = PRR >= 2 & chi2 >= 4 & n >= 3 (Evans 2001); ror_signal = ROR025 > 1
(never on a Haldane-corrected pair, one with a zero cell);
ic_signal = IC025 > 0. A NaN measure never raises a flag.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

Z975: float = float(special.ndtri(0.975))  # 1.959963984540054, the two-sided 95% normal quantile
LN2: float = float(np.log(2.0))

FloatArray = NDArray[np.float64]


def disproportionality(
    n: ArrayLike,
    n_drug: ArrayLike,
    n_event: ArrayLike,
    n_total: ArrayLike,
    expected: ArrayLike | None = None,
    *,
    yates: bool = True,
    haldane: bool = True,
) -> dict[str, NDArray]:
    """PRR, chi2, ROR, IC with their intervals and the standard flags, for all pairs at once.

    ``n``: reports with the drug and the event; ``n_drug``/``n_event``: reports with the
    drug / the event; ``n_total``: all reports (scalar or array); ``expected``: E for the
    pair (stratified or not; ``None`` means the crude n_drug * n_event / n_total).
    Arrays broadcast. Returns float64 arrays ``rr, prr, prr_lo, prr_hi, chi2, ror, ror_lo,
    ror_hi, ic, ic025, ic975`` and boolean ``prr_signal, ror_signal, ic_signal``; the module
    docstring gives the formulas, sources and zero-cell conventions.
    """
    a, n_drug_f, n_event_f, n_total_f = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (n, n_drug, n_event, n_total))
    )
    b = n_drug_f - a
    c = n_event_f - a
    d = n_total_f - n_drug_f - c
    with np.errstate(invalid="ignore"):
        bad = (a < 0) | (b < 0) | (c < 0) | (d < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            "inconsistent counts: a 2x2 cell is negative at position "
            f"{i} (n={a.flat[i]}, n_drug={n_drug_f.flat[i]}, n_event={n_event_f.flat[i]}, "
            f"n_total={n_total_f.flat[i]})"
        )
    if expected is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            e = n_drug_f * n_event_f / n_total_f
    else:
        e = np.broadcast_to(np.asarray(expected, dtype=np.float64), a.shape)

    out: dict[str, NDArray] = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out["rr"] = a / e
        out.update(_prr(a, b, c, d))
        out["chi2"] = _chi2(a, b, c, d, yates=yates)
        out.update(_ror(a, b, c, d, haldane=haldane))
        out.update(_ic(a, e))
        out["prr_signal"] = (out["prr"] >= 2.0) & (out["chi2"] >= 4.0) & (a >= 3.0)
        # a pair whose ROR needed the Haldane correction (a zero cell) never flags: the
        # correction keeps the number finite, it is not evidence (pvda leaves it NaN)
        zero_cell = (a == 0) | (b == 0) | (c == 0) | (d == 0)
        out["ror_signal"] = (out["ror_lo"] > 1.0) & ~zero_cell
        out["ic_signal"] = out["ic025"] > 0.0
    return out


def _prr(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray) -> dict[str, FloatArray]:
    """PRR and its log-method 95% CI (Evans 2001; Rothman); uncorrected, see the module doc."""
    prr = (a / (a + b)) / (c / (c + d))
    se = np.sqrt(1.0 / a - 1.0 / (a + b) + 1.0 / c - 1.0 / (c + d))
    se = np.where(np.isfinite(se), se, np.nan)  # a = 0 or c = 0: no interval
    half = np.exp(Z975 * se)
    return {"prr": prr, "prr_lo": prr / half, "prr_hi": prr * half}


def _chi2(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray, *, yates: bool) -> FloatArray:
    """Pearson's 1-df chi-square of the 2x2 table, Yates-corrected by default (Evans 2001)."""
    total = a + b + c + d
    diff = np.abs(a * d - b * c)
    if yates:
        diff = np.maximum(diff - 0.5 * total, 0.0)
    return total * diff * diff / ((a + b) * (c + d) * (a + c) * (b + d))


def _ror(
    a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray, *, haldane: bool
) -> dict[str, FloatArray]:
    """ROR with Woolf's 95% CI; Haldane-Anscombe +0.5 only on pairs with a zero cell."""
    if haldane:
        zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
        if zero.any():
            shift = np.where(zero, 0.5, 0.0)
            a, b, c, d = a + shift, b + shift, c + shift, d + shift
    ror = (a * d) / (b * c)
    se = np.sqrt(1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d)
    se = np.where(np.isfinite(se), se, np.nan)
    half = np.exp(Z975 * se)
    return {"ror": ror, "ror_lo": ror / half, "ror_hi": ror * half}


def _ic(n: FloatArray, e: FloatArray) -> dict[str, FloatArray]:
    """BCPNN IC with +0.5 shrinkage and exact Gamma(n + 0.5, E + 0.5) quantiles (Noren 2006).

    The quantile of Gamma(shape k, rate r) is gammaincinv(k, p) / r, and gammaincinv only
    depends on n, so it is evaluated once per distinct count and gathered.
    """
    rate = e + 0.5
    ic = np.log2((n + 0.5) / rate)
    values, inverse = distinct_counts(n)
    log_rate = np.log(rate)
    lo = np.log(special.gammaincinv(values + 0.5, 0.025))[inverse]
    hi = np.log(special.gammaincinv(values + 0.5, 0.975))[inverse]
    return {"ic": ic, "ic025": (lo - log_rate) / LN2, "ic975": (hi - log_rate) / LN2}


def distinct_counts(n: ArrayLike) -> tuple[FloatArray, NDArray[np.intp]]:
    """Distinct values of ``n`` and each element's index into them (values[inverse] == n).

    Functions of the count alone (log-gamma, digamma, gamma quantiles) are then evaluated
    once per distinct count instead of once per pair: pair counts have few distinct
    values (mostly 1, 2, 3, ...). Small non-negative integer counts use a direct table,
    which is O(size) rather than a sort; NaN and anything else go through np.unique.
    """
    arr = np.asarray(n, dtype=np.float64)
    flat = arr.ravel()
    if flat.size:
        top = float(np.max(flat))  # NaN if any NaN
        low = float(np.min(flat))
        if low >= 0 and top <= 4 * flat.size + 1024:
            ints = flat.astype(np.intp)
            if np.array_equal(ints, flat):
                present = np.zeros(int(top) + 1, dtype=bool)
                present[ints] = True
                values = np.flatnonzero(present)
                position = np.cumsum(present, dtype=np.intp) - 1
                return values.astype(np.float64), position[ints].reshape(arr.shape)
    values, inverse = np.unique(flat, return_inverse=True)
    return values, inverse.reshape(arr.shape)
