"""Gamma-Poisson Shrinker (DuMouchel 1999): the empirical-Bayes EBGM, EB05 and EB95.

A pair's count is N ~ Poisson(lambda E) and lambda has a two-gamma mixture prior
P Gamma(alpha1, beta1) + (1 - P) Gamma(alpha2, beta2) (shape, rate), shared by all pairs.
Marginally N is a mixture of two negative binomials, so the five hyperparameters are
fitted by maximum likelihood of that marginal over all pairs; each pair's posterior is
again a two-gamma mixture, Gamma(alpha_i + n, beta_i + E) with weight Q_n, whose
geometric mean (EBGM) and 5%/95% quantiles (EB05/EB95) shrink small counts towards the
database-wide ratio. That is what makes EB05 >= 2 a stable signal where n/E is not.

Conventions follow the FDA's openEBGM (Canida & Ihrie 2017, R Journal 9(2)), so results
can be checked against its published numbers:

* The likelihood is truncated at N >= N* (``truncate_at``, default 1; DuMouchel &
  Pregibon 2001): pairs never reported are not in the data, and each pair's marginal is
  divided by P(N >= N*). openEBGM's negLL / negLLsquash; ``truncate_at=0`` is negLLzero.
* Several starting points (openEBGM's vignette set by default), each optimised with
  L-BFGS-B on log(alpha), log(beta), logit(P) with the analytic gradient, alpha and beta
  bounded above by ``param_limit`` = 100 as in openEBGM's exploreHypers; the smallest
  -logL wins and is reported.
* Optional data squashing (``squash=True``): openEBGM's autoSquash / squashData (bin the
  pairs with the same n by sorted E, bin means, weighted likelihood), an approximation.
* Without it the fit is exact on all pairs and still fast: identical (n, E) points are
  collapsed into weights (exact), and on large tables the starting points are explored
  on squashed data before the best is optimised on all points, by quasi-Newton steps
  from the squashed data's Hessian (a few evaluations of all points, not dozens).
* EB05/EB95 are exact quantiles of the posterior mixture, found for all pairs together
  by a bracketed Halley iteration on log(lambda); openEBGM's quantBisect bisects to
  +-0.005 and rounds to two decimals, ours agree with scipy's brentq to 1e-10.

Whole arrays throughout; large ones are split over a thread pool (ufuncs drop the GIL).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from dmtwatch.pv.measures import LN2, distinct_counts

FloatArray = NDArray[np.float64]

# openEBGM's starting points (the theta_init of its posterior-calculation vignette); the
# first row is DuMouchel's (1999) "lightly justified" guess.
DEFAULT_STARTS: tuple[tuple[float, float, float, float, float], ...] = (
    (0.2, 0.1, 2.0, 4.0, 1 / 3),
    (0.1, 0.1, 10.0, 10.0, 0.2),
    (0.3, 0.5, 6.0, 6.0, 0.5),
    (0.5, 0.3, 12.0, 12.0, 0.8),
    (0.2, 0.2, 5.0, 5.0, 0.4),
)
PARAM_LIMIT = 100.0  # openEBGM's param_limit: largest acceptable alpha or beta
_PARAM_FLOOR = 1e-6
_LOGIT_LIMIT = 30.0


@dataclass(frozen=True)
class Prior:
    """A fitted two-gamma mixture prior: P Gamma(alpha1, beta1) + (1-P) Gamma(alpha2, beta2).

    ``neg_log_likelihood`` is the minimised -logL (natural log, constants included, as
    openEBGM reports it) of all pairs with n >= ``truncate_at`` (of the squashed points
    when ``squashed``), held as ``n_points`` distinct weighted points. ``starts`` holds
    (start index, -logL, converged) for every starting point, on the data the starts ran
    on (auto-squashed when the table is large, see ``fit_prior``). ``at_bound`` warns that
    a parameter ended on a bound (alpha or beta at 1e-6 or ``param_limit``, P at 0 or 1),
    which openEBGM would report as out of bounds: a degenerate mixture.
    """

    alpha1: float
    beta1: float
    alpha2: float
    beta2: float
    p: float
    neg_log_likelihood: float = float("nan")
    truncate_at: int = 1
    squashed: bool = False
    n_points: int = 0
    converged: bool = True
    at_bound: bool = False
    starts: tuple[tuple[int, float, bool], ...] = ()

    @property
    def theta(self) -> tuple[float, float, float, float, float]:
        """(alpha1, beta1, alpha2, beta2, P) in openEBGM's order."""
        return (self.alpha1, self.beta1, self.alpha2, self.beta2, self.p)

    def to_dict(self) -> dict[str, float]:
        """The prior as the `signals` JSON contract spells it."""
        return {
            "alpha1": self.alpha1,
            "beta1": self.beta1,
            "alpha2": self.alpha2,
            "beta2": self.beta2,
            "p": self.p,
            "neg_log_likelihood": self.neg_log_likelihood,
        }


# ---------------------------------------------------------------------------------------
# Likelihood


# one slice of the points: n, E, weight, index into the distinct counts, log E (N* > 1)
_Chunk = tuple[FloatArray, FloatArray, FloatArray, NDArray[np.intp], FloatArray | None]


class _Likelihood:
    """-logL of the (truncated) negative-binomial mixture and its gradient in the
    transformed parameters u = (log a1, log b1, log a2, log b2, logit P).

    Per point, component i: log f_i(n) = lgamma(a+n) - lgamma(a) - lgamma(n+1)
    - a log(1 + E/b) + n log(E/(b+E)); truncation divides by S_i = P_i(N >= N*). The
    parameter-free part -lgamma(n+1) + n log E is summed once (``const``); functions of n
    alone are evaluated per distinct count. Large inputs are cut into chunks summed on a
    thread pool (NumPy and SciPy ufuncs release the GIL).
    """

    def __init__(self, n: FloatArray, e: FloatArray, w: FloatArray, truncate_at: int) -> None:
        self.truncate_at = int(truncate_at)
        self.values, inverse = distinct_counts(n)
        self.const = float(np.sum(w * (special.xlogy(n, e) - special.gammaln(n + 1.0))))
        self.total_w = float(np.sum(w))
        self.size = n.size
        workers = _workers(n.size)
        bounds = np.linspace(0, n.size, workers + 1).astype(int)
        self.chunks: list[_Chunk] = [
            (n[i:j], e[i:j], w[i:j], inverse[i:j], np.log(e[i:j]) if truncate_at > 1 else None)
            for i, j in itertools.pairwise(bounds)
        ]

    def __call__(self, u: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        a1, b1, a2, b2 = (float(x) for x in np.exp(u[:4]))
        p = float(special.expit(u[4]))
        # per-count terms, shared by all chunks
        per_count = [
            (
                special.gammaln(a + self.values) - special.gammaln(a),
                special.digamma(a + self.values) - special.digamma(a),
            )
            for a in (a1, a2)
        ]
        theta = (a1, b1, a2, b2, p)
        if len(self.chunks) == 1:
            parts = [self._partial(theta, per_count, self.chunks[0])]
        else:
            with ThreadPoolExecutor(len(self.chunks)) as pool:
                parts = list(pool.map(lambda c: self._partial(theta, per_count, c), self.chunks))
        value = -(sum(v for v, _ in parts) + self.const)
        grad = -np.sum([g for _, g in parts], axis=0)
        grad[4] += p * self.total_w  # d/d logit P of sum w log L is sum w (r1 - P)
        if not np.isfinite(value):
            return np.inf, np.zeros(5)
        return value, grad

    def _partial(
        self,
        theta: tuple[float, float, float, float, float],
        per_count: list[tuple[FloatArray, FloatArray]],
        chunk: _Chunk,
    ) -> tuple[float, NDArray[np.float64]]:
        """Sum over one chunk of w log L and of w d(log L)/du (the P term without -P sum w)."""
        a1, b1, a2, b2, p = theta
        n, e, w, inverse, log_e = chunk
        l1, da1, db1 = self._component(a1, b1, *per_count[0], n, e, inverse, log_e)
        l2, da2, db2 = self._component(a2, b2, *per_count[1], n, e, inverse, log_e)
        x1 = np.log(p) + l1
        x2 = np.log1p(-p) + l2
        ll = np.logaddexp(x1, x2)
        wr1 = w * np.exp(x1 - ll)  # weight x posterior probability of component 1
        wr2 = w - wr1
        # multiply-and-sum rather than np.dot: BLAS threads contend on a busy machine and
        # turn a 20k-point dot product into tens of milliseconds
        grad = np.array(
            [
                np.sum(wr1 * da1),
                np.sum(wr1 * db1),
                np.sum(wr2 * da2),
                np.sum(wr2 * db2),
                np.sum(wr1),
            ]
        )
        return float(np.sum(w * ll)), grad

    def _component(
        self,
        alpha: float,
        beta: float,
        lg: FloatArray,
        dig: FloatArray,
        n: FloatArray,
        e: FloatArray,
        inverse: NDArray[np.intp],
        log_e: FloatArray | None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """log(f / S) without const, and its derivatives in log(alpha) and log(beta)."""
        ell = np.log1p(e / beta)  # log(1 + E/beta), accurate for tiny E
        inv_be = 1.0 / (beta + e)
        logf = lg[inverse] - alpha * ell - n * (np.log(beta) + ell)
        d_alpha = dig[inverse] - ell
        d_beta = alpha / beta - (alpha + n) * inv_be
        if self.truncate_at >= 1:
            log_s, ds_alpha, ds_beta = self._log_survival(alpha, beta, ell, inv_be, e, log_e)
            logf -= log_s
            d_alpha -= ds_alpha
            d_beta -= ds_beta
        d_alpha *= alpha
        d_beta *= beta
        return logf, d_alpha, d_beta

    def _log_survival(
        self,
        alpha: float,
        beta: float,
        ell: FloatArray,
        inv_be: FloatArray,
        e: FloatArray,
        log_e: FloatArray | None,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """log S = log P(N >= N*) and d log S / d alpha, d log S / d beta.

        N* = 1: S = 1 - (b/(b+E))^a, computed with expm1 so tiny E keeps its digits.
        N* > 1: S from the regularised incomplete beta; derivatives through
        S = 1 - sum_{k<N*} pmf(k).
        """
        x = -alpha * ell
        p0 = np.exp(x)  # pmf(0) = (b/(b+E))^a
        if self.truncate_at == 1:
            s = -np.expm1(x)
            ratio = p0 / s
            # d pmf(0)/d alpha = -ell pmf(0); d pmf(0)/d beta = a E / (b (b+E)) pmf(0)
            return np.log(s), ell * ratio, -(alpha / beta) * (e * inv_be) * ratio
        s = special.betainc(float(self.truncate_at), alpha, e * inv_be)
        ds_alpha = np.zeros_like(e)
        ds_beta = np.zeros_like(e)
        for k in range(self.truncate_at):
            if k == 0:
                pk = p0
            else:
                log_ck = (
                    special.gammaln(alpha + k) - special.gammaln(alpha) - special.gammaln(k + 1.0)
                )
                pk = np.exp(log_ck + x + k * (log_e + np.log(inv_be)))
            ds_alpha -= pk * (special.digamma(alpha + k) - special.digamma(alpha) - ell)
            ds_beta -= pk * (alpha / beta - (alpha + k) * inv_be)
        return np.log(s), ds_alpha / s, ds_beta / s


_PARALLEL_MIN = 200_000  # points below which threads cost more than they save


def _workers(size: int) -> int:
    """Threads for an array of ``size`` points: one per core, none for small inputs."""
    return 1 if size < _PARALLEL_MIN else max(1, min(os.cpu_count() or 1, 8))


def neg_log_likelihood(
    theta: Sequence[float],
    n: ArrayLike,
    expected: ArrayLike,
    weights: ArrayLike | None = None,
    truncate_at: int = 1,
) -> float:
    """-logL of the two-negative-binomial marginal at theta = (a1, b1, a2, b2, P).

    Same value as openEBGM's negLL (``weights=None``) / negLLsquash (weights from
    squashing) with N_star = ``truncate_at``, or negLLzero/negLLzeroSquash with 0. Only
    points with n >= truncate_at are used (openEBGM expects the caller to filter).
    """
    n_f, e_f, w_f = _prepare(n, expected, weights, truncate_at)
    a1, b1, a2, b2, p = (float(x) for x in theta)
    u = np.array([np.log(a1), np.log(b1), np.log(a2), np.log(b2), special.logit(p)])
    return _Likelihood(n_f, e_f, w_f, truncate_at)(u)[0]


def _prepare(
    n: ArrayLike, expected: ArrayLike, weights: ArrayLike | None, truncate_at: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Flat float arrays of the points the truncated likelihood uses."""
    n_f = np.asarray(n, dtype=np.float64).ravel()
    e_f = np.asarray(expected, dtype=np.float64).ravel()
    if n_f.shape != e_f.shape:
        raise ValueError(f"n and expected differ in length ({n_f.size} vs {e_f.size})")
    w_f = (
        np.ones_like(n_f)
        if weights is None
        else np.asarray(weights, dtype=np.float64).ravel().copy()
    )
    if w_f.shape != n_f.shape:
        raise ValueError("weights must have the length of n")
    if truncate_at < 0:
        raise ValueError("truncate_at must be >= 0")
    keep = (n_f >= truncate_at) & np.isfinite(n_f) & np.isfinite(e_f) & (e_f > 0)
    if not keep.all():
        n_f, e_f, w_f = n_f[keep], e_f[keep], w_f[keep]
    return n_f, e_f, w_f


# ---------------------------------------------------------------------------------------
# Data squashing (DuMouchel & Pregibon 2001, as openEBGM implements it) and exact collapsing


def collapse(
    n: ArrayLike, expected: ArrayLike, weights: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.intp]]:
    """Distinct (n, E) points with summed weights, and each input's index into them.

    Exact, unlike squashing: pairs with the same count and the same expected count have
    the same likelihood term and the same posterior. Long-tailed report data repeat
    (n, E) a lot (caers: 17,189 pairs, 1,723 distinct points), since E = n_drug n_event /
    N repeats whenever the marginals do. Hash-based (pandas.factorize), O(size).
    """
    n_f = np.asarray(n, dtype=np.float64).ravel()
    e_f = np.asarray(expected, dtype=np.float64).ravel()
    code_e, uniq_e = pd.factorize(e_f, use_na_sentinel=False)
    code_n, uniq_n = pd.factorize(n_f, use_na_sentinel=False)
    width = max(len(uniq_n), 1)
    inverse, keys = pd.factorize(code_e.astype(np.int64) * width + code_n)
    n_u = np.asarray(uniq_n, dtype=np.float64)[keys % width]
    e_u = np.asarray(uniq_e, dtype=np.float64)[keys // width]
    w_in = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    w_u = np.bincount(inverse, weights=w_in, minlength=keys.size).astype(np.float64)
    return n_u, e_u, w_u, inverse.astype(np.intp)


def squash_data(
    n: ArrayLike,
    expected: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    count: float = 1,
    bin_size: int = 50,
    keep_pts: int = 100,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """openEBGM's squashData: the points with n == ``count``, sorted by E, are cut into
    consecutive bins of ``bin_size`` (the last may be partial), each replaced by its mean E
    with the bin's total weight; the ``keep_pts`` largest E stay as they are. Other counts
    pass through. Returns (n, E, weight) ordered by n.

    With unit weights this is openEBGM's algorithm exactly; with weights, bins are cut
    by cumulative weight and E is weight-averaged (the same bins as expanding each point
    into ``weight`` unit points, up to a point straddling a bin boundary).
    """
    n_f = np.asarray(n, dtype=np.float64).ravel()
    e_f = np.asarray(expected, dtype=np.float64).ravel()
    w_f = np.ones_like(n_f) if weights is None else np.asarray(weights, np.float64).ravel()
    hit = n_f == count
    order = np.argsort(e_f[hit], kind="stable")
    e_sq, w_sq = e_f[hit][order], w_f[hit][order]
    if float(np.sum(w_sq)) - keep_pts < bin_size:
        raise ValueError(f"too few points with n = {count} to squash: reduce bin_size or keep_pts")
    seg_e, seg_w = _squash_segment(e_sq, w_sq, keep_pts, bin_size)
    out_n = np.concatenate([n_f[~hit], np.full(seg_e.size, float(count))])
    out_e = np.concatenate([e_f[~hit], seg_e])
    out_w = np.concatenate([w_f[~hit], seg_w])
    order = np.argsort(out_n, kind="stable")
    return out_n[order], out_e[order], out_w[order]


def _squash_segment(
    e: FloatArray, w: FloatArray, keep: float, bin_size: float
) -> tuple[FloatArray, FloatArray]:
    """One count's points, sorted by E: the bins' weighted mean E and total weight, then
    the kept (largest-E) points unchanged."""
    before = np.cumsum(w) - w  # weight of the points below each one
    kept = before >= float(np.sum(w)) - keep
    bins = np.floor(before[~kept] / bin_size).astype(np.intp)
    bin_w = np.bincount(bins, weights=w[~kept])
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_e = np.bincount(bins, weights=(w * e)[~kept]) / bin_w
    full = bin_w > 0
    return (
        np.concatenate([bin_e[full], e[kept]]),
        np.concatenate([bin_w[full], w[kept]]),
    )


def auto_squash(
    n: ArrayLike,
    expected: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    keep_pts: Sequence[int] = (100, 75, 50, 25),
    cut_offs: Sequence[float] = (500, 1e3, 1e4, 1e5, 5e5, 1e6, 5e6),
    num_super_pts: Sequence[int] = (50, 75, 150, 500, 750, 1000, 2000, 5000),
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """openEBGM's autoSquash: squash every count with more than max(keep_pts) + 1 points.

    The j-th such count (in increasing n) keeps keep_pts[j] (the last value thereafter)
    largest-E points unsquashed and squashes the other m into bins of floor(m / s) points
    (at least 2), s = num_super_pts[k] with k the first cut-off above m. Weights (e.g.
    from ``collapse``) count as that many points. One sort; the loop is over distinct
    counts, not pairs. Returns (n, E, weight) ordered by n.
    """
    n_f = np.asarray(n, dtype=np.float64).ravel()
    e_f = np.asarray(expected, dtype=np.float64).ravel()
    w_f = np.ones_like(n_f) if weights is None else np.asarray(weights, np.float64).ravel()
    order = np.lexsort((e_f, n_f))
    n_s, e_s, w_s = n_f[order], e_f[order], w_f[order]
    values, starts = np.unique(n_s, return_index=True)
    ends = np.append(starts[1:], n_s.size)
    limit = max(keep_pts) + 1
    cuts = np.asarray(cut_offs, dtype=np.float64)
    out_n, out_e, out_w = [], [], []
    position = 0
    for value, start, end in zip(values, starts, ends, strict=True):
        seg = slice(start, end)
        size = float(np.sum(w_s[seg]))
        if size <= limit:
            out_n.append(n_s[seg])
            out_e.append(e_s[seg])
            out_w.append(w_s[seg])
            continue
        keep = keep_pts[min(position, len(keep_pts) - 1)]
        position += 1
        to_squash = size - keep
        k = int(np.searchsorted(cuts, to_squash, side="right"))
        supers = num_super_pts[min(k, len(num_super_pts) - 1)]
        bin_size = max(int(np.floor(to_squash / supers)), 2)
        seg_e, seg_w = _squash_segment(e_s[seg], w_s[seg], keep, bin_size)
        out_n.append(np.full(seg_e.size, value))
        out_e.append(seg_e)
        out_w.append(seg_w)
    if not out_n:
        return n_s, e_s, w_s
    return np.concatenate(out_n), np.concatenate(out_e), np.concatenate(out_w)


# ---------------------------------------------------------------------------------------
# Fitting


def fit_prior(
    n: ArrayLike,
    expected: ArrayLike,
    truncate_at: int = 1,
    squash: bool = False,
    starts: Sequence[Sequence[float]] | None = None,
    *,
    weights: ArrayLike | None = None,
    param_limit: float = PARAM_LIMIT,
) -> Prior:
    """Maximum-likelihood two-gamma prior for all pairs (DuMouchel 1999; openEBGM autoHyper).

    ``n``/``expected``: every pair's count and expected count; pairs with n <
    ``truncate_at`` are left out of the truncated likelihood. ``squash=True`` fits on
    openEBGM's auto-squashed points (an approximation, as in openEBGM) instead of all
    pairs. ``starts``: rows of (alpha1, beta1, alpha2, beta2, P), openEBGM's set by
    default. ``weights`` lets a caller pass already-squashed points.

    Without squashing the fit is exact on all pairs, made cheap by collapsing identical
    (n, E) points; when more than ``EXPLORE_LIMIT`` distinct points remain, the starting
    points are first run on coarsely squashed data, the best is refined on openEBGM's
    squash and then optimised on all points by Newton steps with the squash's Hessian
    (L-BFGS-B if those fail), so all points are evaluated a few times, not hundreds (the
    -logL reported is always that of the data fitted).
    """
    n_f, e_f, w_f = _prepare(n, expected, weights, truncate_at)
    if n_f.size == 0:
        raise ValueError(f"no pair with n >= {truncate_at} and E > 0 to fit the prior on")
    if squash:
        if weights is not None:
            raise ValueError("pass either weights (already squashed) or squash=True")
        points = auto_squash(n_f, e_f)
    else:
        points = collapse(n_f, e_f, w_f)[:3]
    objective = _Likelihood(*points, truncate_at)
    rows = DEFAULT_STARTS if starts is None else tuple(tuple(map(float, s)) for s in starts)
    if any(len(r) != 5 for r in rows) or not rows:
        raise ValueError("starts are rows of (alpha1, beta1, alpha2, beta2, P)")
    bounds = [(np.log(_PARAM_FLOOR), np.log(param_limit))] * 4 + [(-_LOGIT_LIMIT, _LOGIT_LIMIT)]
    u_starts = [_to_u(r, bounds) for r in rows]
    explore = objective
    if points[0].size > EXPLORE_LIMIT:
        order = np.lexsort((points[1], points[0]))  # sorted once for both squashes below
        points = tuple(x[order] for x in points)
        explore = _Likelihood(*auto_squash(*points, **_EXPLORE_SQUASH), truncate_at)
    # The optimiser's BLAS calls are tiny (5 parameters), yet OpenBLAS hands them to worker
    # threads that then spin and, on a busy 2-core machine, take the cores from the
    # likelihood's own work (1M reports under load: 1.7 s with default threads, 0.4 s one).
    with threadpool_limits(limits=1, user_api="blas"):
        report, best = _optimise(objective, explore, points, u_starts, bounds, truncate_at)
    value, u, ok = best
    low, high = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    at_bound = bool(np.any((u <= low + 1e-6) | (u >= high - 1e-6)))
    a1, b1, a2, b2 = (float(x) for x in np.exp(u[:4]))
    return Prior(
        alpha1=a1,
        beta1=b1,
        alpha2=a2,
        beta2=b2,
        p=float(special.expit(u[4])),
        neg_log_likelihood=value,
        truncate_at=int(truncate_at),
        squashed=bool(squash or weights is not None),
        n_points=int(points[0].size),
        converged=ok,
        at_bound=at_bound,
        starts=tuple(report),
    )


def _optimise(
    objective: _Likelihood,
    explore: _Likelihood,
    points: tuple[FloatArray, FloatArray, FloatArray],
    u_starts: list[NDArray[np.float64]],
    bounds: list[tuple[float, float]],
    truncate_at: int,
) -> tuple[list[tuple[int, float, bool]], tuple[float, NDArray[np.float64], bool]]:
    """Every start on ``explore``; the best, when ``explore`` is squashed data, refined on
    openEBGM's squash and polished on all points. The starts' report and the optimum."""
    report: list[tuple[int, float, bool]] = []
    best: tuple[float, NDArray[np.float64], bool] | None = None
    for i, u0 in enumerate(u_starts):
        value, u, ok = _minimise(explore, u0, bounds)
        report.append((i, value, ok))
        if np.isfinite(value) and (best is None or value < best[0]):
            best = (value, u, ok)
    if best is None:
        raise RuntimeError("the prior fit failed from every starting point")
    if explore is not objective:
        # refine on openEBGM's (finer) squash, cheap; then on all points, quasi-Newton
        # steps from the squash's Hessian (a few full evaluations), else L-BFGS-B
        refine = _Likelihood(*auto_squash(*points), truncate_at)
        near = _minimise(refine, best[1], bounds)[1]
        polished = _newton(objective, near, _hessian(refine, near), bounds)
        best = polished if polished is not None else _minimise(objective, near, bounds)
    return report, best


EXPLORE_LIMIT = 50_000
# coarser than openEBGM's defaults (about half the points): the exploration only has to
# find the basin; a run on openEBGM's squash and then on all points follow
_EXPLORE_SQUASH = {"keep_pts": (50, 25, 10), "num_super_pts": (25, 40, 60, 100, 150, 200, 250, 300)}


def _to_u(theta: Sequence[float], bounds: list[tuple[float, float]]) -> NDArray[np.float64]:
    """(a1, b1, a2, b2, P) -> (log a1, log b1, log a2, log b2, logit P), inside the bounds."""
    a1, b1, a2, b2, p = theta
    if min(a1, b1, a2, b2) <= 0 or not 0 < p < 1:
        raise ValueError(f"a start needs positive alphas and betas and 0 < P < 1: {theta}")
    u = np.array([np.log(a1), np.log(b1), np.log(a2), np.log(b2), special.logit(p)])
    return np.clip(u, [b[0] for b in bounds], [b[1] for b in bounds])


def _ftol(objective: _Likelihood) -> float:
    """Relative tolerance on -logL: ~1e-5 absolute (scaled by the total weight, the order
    of -logL), far below the 0.01 that separates fits."""
    return min(1e-10, 1e-5 / max(objective.total_w, 1.0))


def _minimise(
    objective: _Likelihood, u0: NDArray[np.float64], bounds: list[tuple[float, float]]
) -> tuple[float, NDArray[np.float64], bool]:
    """One bounded quasi-Newton run (L-BFGS-B, analytic gradient).

    It stops when an iteration lowers -logL by less than :func:`_ftol` of it.
    """
    ftol = _ftol(objective)
    res = optimize.minimize(
        objective,
        u0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "maxfun": 5000, "ftol": ftol, "gtol": 1e-9},
    )
    return float(res.fun), np.asarray(res.x), bool(res.success)


def _hessian(objective: _Likelihood, u: NDArray[np.float64], h: float = 1e-4) -> FloatArray:
    """Central differences of the analytic gradient: 10 evaluations, symmetrised."""
    columns = []
    for j in range(u.size):
        step = np.zeros_like(u)
        step[j] = h
        columns.append((objective(u + step)[1] - objective(u - step)[1]) / (2 * h))
    hess = np.array(columns)
    return (hess + hess.T) / 2


def _newton(
    objective: _Likelihood,
    u0: NDArray[np.float64],
    hessian: FloatArray,
    bounds: list[tuple[float, float]],
    max_steps: int = 30,
) -> tuple[float, NDArray[np.float64], bool] | None:
    """The optimum on all points by quasi-Newton steps that start from the squashed
    data's Hessian (close to the full data's, which an L-BFGS-B run has to learn from
    scratch, evaluation by evaluation) and update it by BFGS: a handful of full
    evaluations instead of twenty or thirty. Stops as L-BFGS-B does (:func:`_ftol`), on a
    full step. None, for an L-BFGS-B run instead, when the Hessian is not positive
    definite, no step inside the bounds lowers -logL, or ``max_steps`` do not converge."""
    if not np.all(np.linalg.eigvalsh(hessian) > 0):
        return None
    low, high = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    ftol = _ftol(objective)
    u, h = u0, hessian
    value, grad = objective(u)
    for _ in range(max_steps):
        direction = -np.linalg.solve(h, grad)
        for halvings in range(6):  # backtrack: full step first
            u_next = u + direction / 2**halvings
            if np.all((u_next > low) & (u_next < high)):
                next_value, next_grad = objective(u_next)
                if next_value <= value:
                    break
        else:
            return None
        done = halvings == 0 and value - next_value <= ftol * max(abs(value), 1.0)
        s, y = u_next - u, next_grad - grad
        if s @ y > 0:  # BFGS update, kept positive definite
            hs = h @ s
            h = h - np.outer(hs, hs) / (s @ hs) + np.outer(y, y) / (s @ y)
        u, value, grad = u_next, next_value, next_grad
        if done:
            return value, u, True
    return None


# ---------------------------------------------------------------------------------------
# Posterior quantities


def ebgm_quantities(
    n: ArrayLike,
    expected: ArrayLike,
    prior: Prior,
    *,
    lower: float = 0.05,
    upper: float = 0.95,
) -> dict[str, FloatArray]:
    """EBGM, EB05, EB95 and E[log2 lambda] of every pair's posterior (DuMouchel 1999).

    Q_n (eq. 6) is the posterior weight of component 1; EBGM = exp(E[log lambda]) with
    E[log lambda] = sum_i w_i (digamma(alpha_i + n) - log(beta_i + E)) (eqs. 9-11);
    EB05/EB95 solve Q F1(x) + (1 - Q) F2(x) = 0.05 / 0.95 (vectorised Halley iteration).
    ``lower``/``upper`` change the quantile levels, keeping the key names.
    """
    n_all, e_all = np.broadcast_arrays(
        np.asarray(n, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    )
    shape = n_all.shape
    # the posterior depends on (n, E) only: compute once per distinct point, then gather
    n_f, e_f, _, back = collapse(n_all, e_all)
    a1, b1, a2, b2, p = prior.theta
    values, inverse = distinct_counts(n_f)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r1 = b1 + e_f
        r2 = b2 + e_f
        log_r1 = np.log(r1)
        log_r2 = np.log(r2)
        lg1 = special.gammaln(a1 + values)[inverse]
        lg2 = special.gammaln(a2 + values)[inverse]
        z1 = np.log(p) + _log_marginal(a1, b1, n_f, log_r1, lg1)
        z2 = np.log1p(-p) + _log_marginal(a2, b2, n_f, log_r2, lg2)
        q = special.expit(z1 - z2)  # Q_n, eq. 6
        elog = q * (special.digamma(a1 + values)[inverse] - log_r1) + (1.0 - q) * (
            special.digamma(a2 + values)[inverse] - log_r2
        )
        out = {"ebgm": np.exp(elog), "ebgm_log2": elog / LN2}
        out["eb05"], out["eb95"] = _mixture_quantiles((lower, upper), q, a1, a2, r1, r2, n_f)
    return {k: out[k][back].reshape(shape) for k in ("ebgm", "eb05", "eb95", "ebgm_log2")}


def posterior_weight(n: ArrayLike, expected: ArrayLike, prior: Prior) -> FloatArray:
    """Q_n, the posterior probability of the first prior component (openEBGM's Qn)."""
    n_f = np.asarray(n, dtype=np.float64)
    e_f = np.asarray(expected, dtype=np.float64)
    a1, b1, a2, b2, p = prior.theta
    z1 = np.log(p) + _log_marginal(a1, b1, n_f, np.log(b1 + e_f), special.gammaln(a1 + n_f))
    z2 = np.log1p(-p) + _log_marginal(a2, b2, n_f, np.log(b2 + e_f), special.gammaln(a2 + n_f))
    return special.expit(z1 - z2)


def _log_marginal(
    alpha: float, beta: float, n: FloatArray, log_rate: FloatArray, lgamma_an: FloatArray
) -> FloatArray:
    """log of the negative-binomial marginal of n without the terms both components
    share (-lgamma(n + 1) + n log E): lgamma(a + n) - lgamma(a) + a log b - (a + n) log(b + E)."""
    return lgamma_an - special.gammaln(alpha) + alpha * np.log(beta) - (alpha + n) * log_rate


def _mixture_quantiles(
    levels: Sequence[float],
    q: FloatArray,
    a1: float,
    a2: float,
    r1: FloatArray,
    r2: FloatArray,
    n: FloatArray,
) -> list[FloatArray]:
    """The posterior-mixture quantiles at each level, chunks of pairs on a thread pool."""
    workers = _workers(n.size)
    bounds = np.linspace(0, n.size, workers + 1).astype(int)
    tasks = [(lv, slice(i, j)) for lv in levels for i, j in itertools.pairwise(bounds)]

    def solve(task: tuple[float, slice]) -> FloatArray:
        level, part = task
        values, inverse = distinct_counts(n[part])
        return _mixture_quantile(level, q[part], a1, a2, r1[part], r2[part], values, inverse)

    if workers == 1:
        done = [solve(t) for t in tasks]
    else:
        with ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(solve, tasks))
    return [np.concatenate(done[i * workers : (i + 1) * workers]) for i in range(len(levels))]


def _mixture_quantile(
    level: float,
    q: FloatArray,
    a1: float,
    a2: float,
    r1: FloatArray,
    r2: FloatArray,
    values: FloatArray,
    inverse: NDArray[np.intp],
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> FloatArray:
    """x with q F1(x) + (1-q) F2(x) = level, Fi the CDF of Gamma(ai + n, rate ri), per pair.

    The root lies between the two component quantiles (each component CDF is monotone),
    which cost one gammaincinv per *distinct count*; inside that bracket, Halley steps on
    t = log x (F' and F'' in closed form) converge cubically, a step leaving the bracket
    falls back to bisection, and converged pairs drop out of the working set. A Halley
    step below 1e-7 leaves an error of order 1e-21 after it; bisection stops at ``tol``.
    """
    shape1 = a1 + values
    shape2 = a2 + values
    x1 = special.gammaincinv(shape1, level)[inverse] / r1
    x2 = special.gammaincinv(shape2, level)[inverse] / r2
    lo = np.log(np.minimum(x1, x2))
    hi = np.log(np.maximum(x1, x2))
    # start inside the bracket, nearer the component with the larger weight
    t = q * np.log(x1) + (1.0 - q) * np.log(x2)
    result = np.exp(t)
    active = np.flatnonzero(np.isfinite(t) & (hi - lo > tol) & (q > 0) & (q < 1))
    result[~np.isfinite(result)] = np.nan
    lga1 = special.gammaln(shape1)
    lga2 = special.gammaln(shape2)
    for _ in range(max_iter):
        if active.size == 0:
            break
        idx = inverse[active]
        s1, s2 = shape1[idx], shape2[idx]
        rr1, rr2, w = r1[active], r2[active], q[active]
        tt, tlo, thi = t[active], lo[active], hi[active]
        x = np.exp(tt)
        y1, y2 = rr1 * x, rr2 * x
        g = w * special.gammainc(s1, y1) + (1.0 - w) * special.gammainc(s2, y2) - level
        # x * density of each component: exp(s log(r x) - r x - lgamma(s))
        h1 = w * np.exp(s1 * np.log(y1) - y1 - lga1[idx])
        h2 = (1.0 - w) * np.exp(s2 * np.log(y2) - y2 - lga2[idx])
        d1 = h1 + h2  # dF/dt
        d2 = h1 * (s1 - y1) + h2 * (s2 - y2)  # d2F/dt2
        tlo = np.where(g < 0, tt, tlo)
        thi = np.where(g > 0, tt, thi)
        step = 2.0 * g * d1 / (2.0 * d1 * d1 - g * d2)
        tn = tt - step
        outside = ~((tn > tlo) & (tn < thi))
        tn = np.where(outside, 0.5 * (tlo + thi), tn)
        scale = np.maximum(1.0, np.abs(tt))
        done = (~outside & (np.abs(step) <= 1e-7 * scale)) | (g == 0) | (thi - tlo <= tol * scale)
        t[active] = tn
        lo[active] = tlo
        hi[active] = thi
        result[active] = np.exp(tn)
        active = active[~done]
    return result
