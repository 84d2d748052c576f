"""Disproportionality measures and the Gamma-Poisson Shrinker against published values.

References (all read in place from ../shared/data, never copied):
* pvda 0.0.4 (WHO-UMC) documented PRR, ROR and IC examples;
* openEBGM 0.9.1 (FDA; Canida & Ihrie 2017): processRaw's documented N, E, RR, PRR on its
  toy tables (vignette "Raw data processing", tests/testthat/testA_Counts.R), the
  hyperparameter fit on caers.csv (-logL 4162.456 unsquashed; 4162.496 and 4161.93 on
  squashed data; autoSquash's bin table), and the EBGM / QUANT_05 / QUANT_95 printed in
  its posterior-calculation vignette;
* independent scipy per-pair computations (nbinom likelihood, brentq quantiles, quad
  integrals) where nothing is published.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal, getcontext
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from dmtwatch.pv import gps
from dmtwatch.pv.gps import (
    Prior,
    _Likelihood,
    auto_squash,
    collapse,
    ebgm_quantities,
    fit_prior,
    neg_log_likelihood,
    posterior_weight,
    squash_data,
)
from dmtwatch.pv.measures import disproportionality

SHARED = Path(__file__).parents[2] / "shared" / "data"
CAERS = SHARED / "caers" / "caers.csv"
TOY_A = SHARED / "caers" / "toy_testA_dat2.csv"
TOY_V2 = SHARED / "caers" / "toy_vignette02_dat.csv"

# openEBGM's published fit of the unsquashed caers data (data/README.md) and the fit its
# posterior-calculation vignette used for the printed EB scores (squashed data)
PUBLISHED_THETA = (3.25596685, 0.39998994, 2.02376139, 1.90614108, 0.06530755)
PUBLISHED_NLL = 4162.456
VIGNETTE_THETA = (3.25380903, 0.39989105, 2.02613680, 1.90808515, 0.06534565)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data {path} not found (expects ../shared/data beside the repo)")
    return path


def count_pairs(path: Path, strata: tuple[str, ...] = (), zeroes: bool = False) -> pd.DataFrame:
    """openEBGM's processRaw counting, for the tests only: N = unique ids per (var1, var2),
    marginals = unique ids, E = sum over strata of N_drug,s N_event,s / N_s (one stratum
    when unstratified); ``zeroes`` adds the never-reported combinations."""
    con = duckdb.connect()
    s = ", ".join(strata) if strata else "'all'"
    con.execute(
        f"CREATE TABLE r AS SELECT DISTINCT id, var1, var2, concat_ws('|', {s}) AS st "
        f"FROM read_csv('{path}', all_varchar = true)"
    )
    grid = "(SELECT DISTINCT var1 FROM r) CROSS JOIN (SELECT DISTINCT var2 FROM r)"
    pairs = grid if zeroes else "(SELECT DISTINCT var1, var2 FROM r)"
    return con.execute(
        f"""
        WITH p AS (SELECT var1, var2, count(DISTINCT id) AS n FROM r GROUP BY ALL),
        nd AS (SELECT var1, count(DISTINCT id) AS nd FROM r GROUP BY ALL),
        ne AS (SELECT var2, count(DISTINCT id) AS ne FROM r GROUP BY ALL),
        sd AS (SELECT st, var1, count(DISTINCT id) AS k FROM r GROUP BY ALL),
        se AS (SELECT st, var2, count(DISTINCT id) AS k FROM r GROUP BY ALL),
        sn AS (SELECT st, count(DISTINCT id) AS k FROM r GROUP BY ALL),
        e AS (SELECT sd.var1, se.var2, sum(sd.k * se.k / sn.k) AS expected
              FROM sd JOIN se USING (st) JOIN sn USING (st) GROUP BY ALL),
        g AS (SELECT * FROM {pairs})
        SELECT g.var1, g.var2, coalesce(p.n, 0)::DOUBLE AS n, nd.nd::DOUBLE AS n_drug,
               ne.ne::DOUBLE AS n_event, (SELECT count(DISTINCT id) FROM r)::DOUBLE AS n_total,
               e.expected
        FROM g LEFT JOIN p USING (var1, var2) JOIN nd USING (var1) JOIN ne USING (var2)
             JOIN e USING (var1, var2)
        ORDER BY g.var1, g.var2
        """
    ).df()


def measures(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return disproportionality(
        df.n.to_numpy(), df.n_drug.to_numpy(), df.n_event.to_numpy(), df.n_total.to_numpy(),
        df.expected.to_numpy(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def caers() -> pd.DataFrame:
    return count_pairs(need(CAERS))


# --------------------------------------------------------------------------------------
# pvda's documented examples, to the printed precision


def test_pvda_prr_example():
    # pvda::prr(obs = 10, n_drug = 1000, n_event_prr = 200, n_tot_prr = 10000) = 0.5
    # (0.266-0.940). pvda's n_event_prr / n_tot_prr are the *background* (reports without
    # the drug): c = 200, c + d = 10000, so n_event = 210 and n_total = 11000 here.
    r = disproportionality(10, 1000, 210, 11000)
    assert round(float(r["prr"]), 3) == 0.5
    assert round(float(r["prr_lo"]), 3) == 0.266
    assert round(float(r["prr_hi"]), 3) == 0.940


def test_pvda_ror_example():
    # pvda::ror(a = 10, b = 20, c = 200, d = 10000) = 25 (11.6-54.1)
    a, b, c, d = 10, 20, 200, 10000
    r = disproportionality(a, a + b, a + c, a + b + c + d)
    assert round(float(r["ror"]), 1) == 25.0
    assert round(float(r["ror_lo"]), 1) == 11.6
    assert round(float(r["ror_hi"]), 1) == 54.1


def test_pvda_ic_example():
    # pvda::ic(obs = 10, exp = 5) = 0.933 (-0.0973 to 1.69); only n and E matter for IC
    r = disproportionality(10, 100, 50, 1000, 5.0)
    assert round(float(r["ic"]), 3) == 0.933
    assert round(float(r["ic025"]), 4) == -0.0973
    assert round(float(r["ic975"]), 2) == 1.69


# --------------------------------------------------------------------------------------
# Formulas by hand, flags and zero cells


def test_formulas_by_hand_and_flags():
    a, b, c, d = 12.0, 88.0, 40.0, 9860.0
    r = disproportionality(a, a + b, a + c, a + b + c + d)
    total = a + b + c + d
    prr = (a / (a + b)) / (c / (c + d))
    se = np.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    chi2 = total * (abs(a * d - b * c) - total / 2) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    ror = a * d / (b * c)
    se_ror = np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    e = (a + b) * (a + c) / total
    assert float(r["rr"]) == pytest.approx(a / e)
    assert float(r["prr"]) == pytest.approx(prr)
    assert float(r["prr_lo"]) == pytest.approx(prr * np.exp(-1.959963984540054 * se))
    assert float(r["prr_hi"]) == pytest.approx(prr * np.exp(1.959963984540054 * se))
    assert float(r["chi2"]) == pytest.approx(chi2)
    assert float(r["ror"]) == pytest.approx(ror)
    assert float(r["ror_lo"]) == pytest.approx(ror * np.exp(-1.959963984540054 * se_ror))
    assert float(r["ic"]) == pytest.approx(np.log2((a + 0.5) / (e + 0.5)))
    lo = stats.gamma.ppf(0.025, a + 0.5, scale=1 / (e + 0.5))
    assert float(r["ic025"]) == pytest.approx(np.log2(lo), rel=1e-10)
    assert bool(r["prr_signal"]) and bool(r["ror_signal"]) and bool(r["ic_signal"])
    # uncorrected chi-square on request; the Yates value is smaller
    plain = disproportionality(a, a + b, a + c, total, yates=False)["chi2"]
    assert float(plain) == pytest.approx(
        total * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))
    )
    assert float(plain) > float(r["chi2"])


def test_evans_criterion_needs_all_three():
    # PRR 2.5 but only 2 cases; PRR >= 2 with 3 cases; PRR < 2 with many cases
    n = np.array([2.0, 3.0, 50.0])
    r = disproportionality(n, np.array([20.0, 10.0, 1000.0]), np.array([42.0, 10.0, 300.0]), 5000.0)
    assert r["prr"][0] >= 2 and not r["prr_signal"][0]
    assert r["prr"][1] >= 2 and r["chi2"][1] >= 4 and r["prr_signal"][1]
    assert r["prr"][2] < 2 and not r["prr_signal"][2]


def test_zero_cells():
    # rows: a = 0; b = 0 (all drug reports have the event); c = 0 (event only with the
    # drug); d = 0 (every other report is the event); drug in every report (c + d = 0)
    a = np.array([0.0, 3.0, 3.0, 3.0, 3.0])
    b = np.array([10.0, 0.0, 7.0, 7.0, 7.0])
    c = np.array([5.0, 5.0, 0.0, 5.0, 0.0])
    d = np.array([85.0, 92.0, 90.0, 0.0, 0.0])
    with np.errstate(all="raise"):  # no warnings leak out
        r = disproportionality(a, a + b, a + c, a + b + c + d)
    # PRR uncorrected: 0 for a = 0, inf for c = 0, NaN without background; CI NaN if a or c is 0
    assert r["prr"][0] == 0 and np.isnan(r["prr_lo"][0]) and np.isnan(r["prr_hi"][0])
    assert r["prr"][2] == np.inf and np.isnan(r["prr_lo"][2])
    assert np.isnan(r["prr"][4])
    assert np.isfinite(r["prr_lo"][1]) and np.isfinite(r["prr_lo"][3])
    # ROR: Haldane-Anscombe (+0.5 on all cells) only where a cell is 0 -> finite everywhere
    ah, bh, ch, dh = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    assert np.allclose(r["ror"], ah * dh / (bh * ch))
    se_h = np.sqrt(1 / ah + 1 / bh + 1 / ch + 1 / dh)
    assert np.allclose(r["ror_lo"], ah * dh / (bh * ch) * np.exp(-1.959963984540054 * se_h))
    full = disproportionality(3.0, 10.0, 8.0, 100.0)  # no zero cell: no correction
    assert float(full["ror"]) == pytest.approx(3 * 85 / (7 * 5))
    plain = disproportionality(a, a + b, a + c, a + b + c + d, haldane=False)
    assert plain["ror"][0] == 0 and plain["ror"][1] == np.inf and np.isnan(plain["ror_lo"][1])
    # a NaN measure never raises a flag
    assert not r["prr_signal"][4]
    assert not plain["ror_signal"][1]


def test_inconsistent_counts_are_refused():
    with pytest.raises(ValueError, match="negative"):
        disproportionality([5.0], [3.0], [10.0], [100.0])


def test_tiny_expected():
    n = np.array([1.0, 1.0, 2.0])
    e = np.array([1e-12, 3e-4, 1e-9])
    r = disproportionality(n, [1.0, 1.0, 2.0], [1.0, 1.0, 2.0], 1e7, e)
    assert np.all(np.isfinite(r["ic"])) and np.all(np.isfinite(r["ic025"]))
    assert r["ic"][0] == pytest.approx(np.log2(1.5 / (0.5 + 1e-12)))
    q = ebgm_quantities(n, e, Prior(*PUBLISHED_THETA))
    for k in ("ebgm", "eb05", "eb95", "ebgm_log2"):
        assert np.all(np.isfinite(q[k])), k
    # scipy's nbinom.sf(0) = 1 - cdf loses digits at E ~ 1e-12; 50-digit decimals do not
    assert neg_log_likelihood(PUBLISHED_THETA, n, e) == pytest.approx(
        decimal_nll(PUBLISHED_THETA, n, e), rel=1e-13
    )


def decimal_nll(theta, n, e):
    """-logL truncated at N >= 1 in 50-digit decimal arithmetic (the gamma-function
    ratio, exact to double precision, is the only float)."""
    getcontext().prec = 50
    a1, b1, a2, b2, p = (Decimal(x) for x in theta)
    total = Decimal(0)
    for k, ek in zip(n, e, strict=True):
        mix = Decimal(0)
        for a, b, share in ((a1, b1, p), (a2, b2, 1 - p)):
            q = b / (b + Decimal(ek))
            qa = (a * q.ln()).exp()
            log_coef = (
                special.gammaln(float(a) + k) - special.gammaln(float(a)) - special.gammaln(k + 1)
            )
            coef = Decimal(np.exp(log_coef))
            mix += share * coef * qa * (1 - q) ** int(k) / (1 - qa)
        total -= mix.ln()
    return float(total)


def test_million_pairs_vectorised():
    rng = np.random.default_rng(7)
    size = 1_000_000
    n_total = 5e6
    n_drug = rng.zipf(1.6, size).clip(1, 200_000).astype(float)
    n_event = rng.zipf(1.5, size).clip(1, 300_000).astype(float)
    n = np.minimum(rng.zipf(2.2, size), np.minimum(n_drug, n_event)).astype(float)
    r = disproportionality(n, n_drug, n_event, n_total)
    pick = rng.choice(size, 40, replace=False)
    for i in pick:
        one = disproportionality(n[i], n_drug[i], n_event[i], n_total)
        for k, v in r.items():
            assert v[i] == one[k] or (np.isnan(v[i]) and np.isnan(one[k])), k
        e = n_drug[i] * n_event[i] / n_total
        assert r["ic975"][i] == pytest.approx(
            np.log2(stats.gamma.ppf(0.975, n[i] + 0.5, scale=1 / (e + 0.5))), rel=1e-9, abs=1e-12
        )
    e_all = n_drug * n_event / n_total
    q = ebgm_quantities(n, e_all, Prior(*PUBLISHED_THETA))
    for i in pick[:15]:
        assert q["eb05"][i] == pytest.approx(
            reference_quantile(0.05, n[i], e_all[i], PUBLISHED_THETA), rel=1e-10
        )
        assert q["eb95"][i] == pytest.approx(
            reference_quantile(0.95, n[i], e_all[i], PUBLISHED_THETA), rel=1e-10
        )


# --------------------------------------------------------------------------------------
# openEBGM's toy tables: N, E, RR, PRR exactly as documented


def test_openebgm_toy_vignette02():
    # openEBGM vignette "Raw data processing": processRaw(dat, stratify = FALSE / TRUE)
    df = count_pairs(need(TOY_V2))
    r = measures(df)
    assert df.n.tolist() == [5, 4, 3, 4, 1]
    expected = [4.7647059, 4.2352941, 3.7058824, 3.2941176, 0.5294118]
    assert np.round(df.expected, 7).tolist() == expected
    assert np.round(r["rr"], 2).tolist() == [1.05, 0.94, 0.81, 1.21, 1.89]
    assert np.round(r["prr"], 2).tolist() == [1.11, 0.89, 0.71, 1.43, 2.00]
    strat = count_pairs(TOY_V2, ("strat1", "strat2"))
    rs = measures(strat)
    expected = [4.3222222, 4.6777778, 4.1222222, 2.8777778, 0.5555556]
    assert np.round(strat.expected, 7).tolist() == expected
    assert np.round(rs["rr"], 2).tolist() == [1.16, 0.86, 0.73, 1.39, 1.80]
    assert np.round(rs["prr"], 2).tolist() == [1.11, 0.89, 0.71, 1.43, 2.00]  # PRR ignores strata
    zero = count_pairs(TOY_V2, zeroes=True)
    rz = measures(zero)
    assert zero.n.tolist()[-1] == 0 and round(zero.expected.iloc[-1], 7) == 0.4705882
    assert rz["rr"][-1] == 0 and rz["prr"][-1] == 0


def test_openebgm_toy_testA():
    # openEBGM tests/testthat/testA_Counts.R, "results match hand calculations" (digits = 4)
    hand = {
        "n": [1, 1, 1, 0, 2, 3, 1, 0, 1],
        "expected": [0.6, 0.9, 1.5, 1, 1.5, 2.5, 0.4, 0.6, 1],
        "rr": [1.6667, 1.1111, 0.6667, 0, 1.3333, 1.2, 2.5, 0, 1],
        "prr": [2.3333, 1.1667, 0.5833, 0, 2, 1.5, 4, 0, 1],
    }
    df = count_pairs(need(TOY_A), zeroes=True)
    r = measures(df)
    assert df.var1.tolist() == ["product_A"] * 3 + ["product_B"] * 3 + ["product_C"] * 3
    assert df.n.tolist() == hand["n"]
    assert np.allclose(df.expected, hand["expected"], atol=1e-12)
    assert np.round(r["rr"], 4).tolist() == hand["rr"]
    assert np.round(r["prr"], 4).tolist() == hand["prr"]
    strat = count_pairs(TOY_A, ("strat1", "strat2"), zeroes=True)
    rs = measures(strat)
    e_s = [0.2, 0.4 + 2 / 3, 0.4 + 4 / 3, 1.1, 1.2 + 1 / 3, 1.7 + 2 / 3, 0.7, 0.4, 0.9]
    assert np.allclose(strat.expected, e_s, atol=1e-12)
    rr_s = [5, 0.9375, 0.5769, 0, 1.3043, 1.2676, 1.4286, 0, 1.1111]
    assert np.round(rs["rr"], 4).tolist() == rr_s
    assert np.round(rs["prr"], 4).tolist() == hand["prr"]


# --------------------------------------------------------------------------------------
# Gamma-Poisson Shrinker on caers


def reference_nll(theta, n, e, n_star, w=None):
    """-logL straight from scipy's negative binomial, as openEBGM's negLL* write it."""
    a1, b1, a2, b2, p = theta
    w = np.ones_like(n) if w is None else w
    f1 = stats.nbinom.pmf(n, a1, b1 / (b1 + e))
    f2 = stats.nbinom.pmf(n, a2, b2 / (b2 + e))
    if n_star > 0:
        f1 = f1 / stats.nbinom.sf(n_star - 1, a1, b1 / (b1 + e))
        f2 = f2 / stats.nbinom.sf(n_star - 1, a2, b2 / (b2 + e))
    return -float(np.sum(w * np.log(p * f1 + (1 - p) * f2)))


def reference_quantile(level, n, e, theta):
    """Posterior-mixture quantile by scipy's brentq, one pair at a time."""
    a1, b1, a2, b2, _ = theta
    q = float(posterior_weight(n, e, Prior(*theta)))

    def cdf(x):
        return (
            q * stats.gamma.cdf(x, a1 + n, scale=1 / (b1 + e))
            + (1 - q) * stats.gamma.cdf(x, a2 + n, scale=1 / (b2 + e))
            - level
        )

    return optimize.brentq(cdf, 1e-12, 1e7, xtol=1e-15, rtol=1e-14, maxiter=500)


def test_caers_counts(caers):
    assert len(caers) == 17189  # openEBGM: nrow(processRaw(caers))
    assert caers.n_total.iloc[0] == 3356
    head = caers.iloc[:6]
    # openEBGM posterior vignette, head(processed): E, RR, PRR
    assert np.round(head.expected, 10).tolist() == [
        0.0360548272, 0.0038736591, 0.0002979738, 0.0360548272, 0.0765792610, 0.0527413588
    ]  # fmt: skip
    r = measures(head)
    assert np.round(r["rr"], 2).tolist() == [27.74, 258.15, 3356.00, 27.74, 13.06, 18.96]
    assert np.round(r["prr"], 2).tolist() == [27.96, 279.58, np.inf, 27.96, 13.11, 19.06]


def test_caers_likelihood_at_published_parameters(caers):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    ours = neg_log_likelihood(PUBLISHED_THETA, n, e)
    assert abs(ours - PUBLISHED_NLL) < 0.01
    assert ours == pytest.approx(reference_nll(PUBLISHED_THETA, n, e, 1), rel=1e-12)
    # the untruncated (negLLzero) and N* = 2 versions against scipy as well
    for n_star in (0, 2):
        keep = n >= n_star
        assert neg_log_likelihood(PUBLISHED_THETA, n, e, truncate_at=n_star) == pytest.approx(
            reference_nll(PUBLISHED_THETA, n[keep], e[keep], n_star), rel=1e-12
        )


def test_caers_fit_matches_openebgm(caers):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    prior = fit_prior(n, e)
    assert abs(prior.neg_log_likelihood - PUBLISHED_NLL) < 0.01
    assert prior.neg_log_likelihood <= PUBLISHED_NLL + 5e-4  # no worse than openEBGM's optimum
    assert prior.neg_log_likelihood == pytest.approx(
        neg_log_likelihood(prior.theta, n, e), abs=1e-8
    )
    assert prior.converged and not prior.at_bound
    assert prior.truncate_at == 1 and not prior.squashed
    assert len(prior.starts) == 5
    assert tuple(prior.to_dict()) == (
        "alpha1",
        "beta1",
        "alpha2",
        "beta2",
        "p",
        "neg_log_likelihood",
    )


def test_large_table_path_explores_squashed_then_polishes(caers, monkeypatch):
    # above EXPLORE_LIMIT distinct points the starts run on auto-squashed data and the
    # best is optimised on all points by quasi-Newton steps from the squash's Hessian:
    # same optimum as the full multi-start
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    full = fit_prior(n, e)
    monkeypatch.setattr(gps, "EXPLORE_LIMIT", 100)
    polished = []
    newton = gps._newton

    def spy(*args, **kwargs):
        polished.append(newton(*args, **kwargs))
        return polished[-1]

    monkeypatch.setattr(gps, "_newton", spy)
    prior = fit_prior(n, e)
    assert polished and polished[0] is not None  # no fallback to a full L-BFGS-B run
    assert abs(prior.neg_log_likelihood - PUBLISHED_NLL) < 0.01
    assert prior.neg_log_likelihood == pytest.approx(full.neg_log_likelihood, abs=1e-5)
    assert prior.n_points == 1723 and not prior.squashed


def test_newton_polish_declines_a_hessian_that_is_not_positive_definite(caers):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    lik = _Likelihood(n, e, np.ones_like(n), 1)
    u = np.array([np.log(2.0), np.log(0.3), np.log(3.0), np.log(2.5), special.logit(0.2)])
    bounds = [(np.log(1e-6), np.log(100.0))] * 4 + [(-30.0, 30.0)]
    assert gps._newton(lik, u, -np.eye(5), bounds) is None


def test_likelihood_gradient(caers):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    u = np.array([np.log(2.0), np.log(0.3), np.log(3.0), np.log(2.5), special.logit(0.2)])
    for n_star in (0, 1, 2):
        keep = n >= n_star
        lik = _Likelihood(n[keep], e[keep], np.ones(int(keep.sum())), n_star)
        _, grad = lik(u)
        for j in range(5):
            step = np.zeros(5)
            step[j] = 1e-6
            numeric = (lik(u + step)[0] - lik(u - step)[0]) / 2e-6
            assert grad[j] == pytest.approx(numeric, rel=1e-5, abs=1e-4), (n_star, j)


def test_threaded_likelihood_sums_the_same(caers, monkeypatch):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    u = np.array([np.log(2.0), np.log(0.3), np.log(3.0), np.log(2.5), special.logit(0.2)])
    one = _Likelihood(n, e, np.ones_like(n), 1)
    monkeypatch.setattr(gps, "_PARALLEL_MIN", 1000)
    monkeypatch.setattr(gps.os, "cpu_count", lambda: 3)
    many = _Likelihood(n, e, np.ones_like(n), 1)
    assert len(one.chunks) == 1 and len(many.chunks) == 3
    (v1, g1), (v3, g3) = one(u), many(u)
    assert v3 == pytest.approx(v1, rel=1e-13) and np.allclose(g3, g1, rtol=1e-11)


def test_caers_squashing_matches_openebgm(caers):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    # squashData(processed) with defaults: 1,568 rows; nlm's optimum of negLLsquash on it
    sn, se, sw = squash_data(n, e)
    assert sn.size == 1568 and sw.sum() == n.size
    nlm_theta = (3.25164477, 0.39974616, 2.02567548, 1.90789320, 0.06537599)
    assert round(neg_log_likelihood(nlm_theta, sn, se, sw), 3) == 4162.496
    # squashData(squashed, count = 2, bin_size = 10, keep_pts = 50), autoHyper -> 4161.93
    s2 = squash_data(sn, se, sw, count=2, bin_size=10, keep_pts=50)
    prior = fit_prior(s2[0], s2[1], weights=s2[2])
    assert abs(prior.neg_log_likelihood - 4161.93) < 0.01 and prior.squashed
    # autoSquash(processed): ftable(N x weight) as printed in openEBGM's vignette
    an, _, aw = auto_squash(n, e)
    table = Counter(zip(an.astype(int).tolist(), aw.astype(int).tolist(), strict=True))
    assert {k: v for k, v in table.items() if k[0] <= 3} == {
        (1, 1): 100, (1, 6): 1, (1, 31): 514, (2, 1): 75, (2, 3): 1, (2, 8): 79, (3, 1): 51, (3, 2): 71,
    }  # fmt: skip
    assert table[(4, 1)] == 80 and table[(54, 1)] == 1 and aw.sum() == n.size
    # a fit on auto-squashed data lands next to the full fit
    quick = fit_prior(n, e, squash=True)
    assert neg_log_likelihood(quick.theta, n, e) - PUBLISHED_NLL < 0.1


def test_collapse_is_exact(caers):
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    cn, ce, cw, back = collapse(n, e)
    assert cn.size == 1723 and cw.sum() == n.size
    assert np.array_equal(cn[back], n) and np.array_equal(ce[back], e)
    assert neg_log_likelihood(PUBLISHED_THETA, cn, ce, cw) == pytest.approx(
        neg_log_likelihood(PUBLISHED_THETA, n, e), rel=1e-13
    )


def test_caers_eb_scores_match_openebgm_vignette(caers):
    # openEBGM posterior vignette at its theta_hat: ebgm() is rounded to 2 decimals;
    # quantBisect() bisects to +-0.005 and then rounds, so its quantiles are within 0.01
    q = ebgm_quantities(caers.n.to_numpy(), caers.expected.to_numpy(), Prior(*VIGNETTE_THETA))
    assert np.round(q["ebgm"][:6], 2).tolist() == [2.23, 2.58, 2.63, 2.23, 1.92, 2.09]
    assert np.allclose(q["eb05"][:6], [0.49, 0.52, 0.52, 0.49, 0.47, 0.48], atol=0.0101)
    assert np.allclose(q["eb95"][:6], [13.85, 15.78, 16.02, 13.85, 11.77, 12.95], atol=0.0101)
    # fmt: off
    top = {
        ("REUMOFAN PLUS", "WEIGHT INCREASED"): (16, 15.68, 23.26, 33.48),
        ("HYDROXYCUT REGULAR RAPID RELEASE CAPLETS", "EMOTIONAL DISTRESS"): (19, 11.65, 16.78, 23.55),
        ("REUMOFAN PLUS", "IMMOBILE"): (6, 10.16, 18.28, 30.83),
        ("HYDROXYCUT HARDCORE CAPSULES", "CARDIO-RESPIRATORY DISTRESS"): (8, 9.00, 15.25, 24.52),
        ("HYDROXYCUT REGULAR RAPID RELEASE CAPLETS", "INJURY"): (11, 8.98, 14.28, 21.78),
    }
    # fmt: on
    index = {k: i for i, k in enumerate(zip(caers.var1, caers.var2, strict=True))}
    for pair, (count, q05, gm, q95) in top.items():
        i = index[pair]
        assert caers.n.iloc[i] == count
        assert round(float(q["ebgm"][i]), 2) == gm
        assert abs(q["eb05"][i] - q05) < 0.0101 and abs(q["eb95"][i] - q95) < 0.0101
    # "131 of 17189 pairs have QUANT_05 >= 2"
    assert int(np.sum(np.round(q["eb05"], 2) >= 2)) == 131
    assert np.all(q["eb05"] <= q["ebgm"]) and np.all(q["ebgm"] <= q["eb95"])


def test_eb_scores_against_independent_scipy(caers):
    rng = np.random.default_rng(3)
    n, e = caers.n.to_numpy(), caers.expected.to_numpy()
    pick = np.concatenate([rng.choice(n.size, 60, replace=False), np.argsort(n)[-5:]])
    theta = PUBLISHED_THETA
    q = ebgm_quantities(n[pick], e[pick], Prior(*theta))
    a1, b1, a2, b2, _ = theta
    for j, i in enumerate(pick):
        assert q["eb05"][j] == pytest.approx(reference_quantile(0.05, n[i], e[i], theta), rel=1e-10)
        assert q["eb95"][j] == pytest.approx(reference_quantile(0.95, n[i], e[i], theta), rel=1e-10)
    for j, i in enumerate(pick[:8]):
        w = float(posterior_weight(n[i], e[i], Prior(*theta)))

        def dens(x, i=i, w=w):
            f1 = stats.gamma.pdf(x, a1 + n[i], scale=1 / (b1 + e[i]))
            f2 = stats.gamma.pdf(x, a2 + n[i], scale=1 / (b2 + e[i]))
            return w * f1 + (1 - w) * f2

        mean_log = integrate.quad(lambda x, d=dens: np.log(x) * d(x), 0, np.inf, limit=200)[0]
        assert q["ebgm"][j] == pytest.approx(np.exp(mean_log), rel=1e-8)
        assert q["ebgm_log2"][j] == pytest.approx(mean_log / np.log(2), rel=1e-6, abs=1e-9)


def test_posterior_weight_against_scipy(caers):
    n, e = caers.n.to_numpy()[:200], caers.expected.to_numpy()[:200]
    a1, b1, a2, b2, p = PUBLISHED_THETA
    f1 = p * stats.nbinom.pmf(n, a1, b1 / (b1 + e))
    f2 = (1 - p) * stats.nbinom.pmf(n, a2, b2 / (b2 + e))
    assert np.allclose(posterior_weight(n, e, Prior(*PUBLISHED_THETA)), f1 / (f1 + f2), rtol=1e-10)
