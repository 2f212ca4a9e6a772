"""The study's intervals and trend test (pvlora.core.intervals) against numbers derived independently:
closed forms of the exact binomial interval, scipy's own binomtest, the normal approximation, a plain
maximum-likelihood fit and a direct maximisation of Firth's penalised likelihood done here with
scipy.optimize, and the Haldane–Anscombe log odds ratio that Firth's method equals on a 2×2 table."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_expit
from scipy.stats import binomtest

from pvlora.core.intervals import clopper_pearson, cluster_bootstrap, logistic_trend, rate_summary


# --- Clopper–Pearson -----------------------------------------------------------------------------------------------

def test_clopper_pearson_closed_forms_at_zero_and_all():
    # k=0: the upper bound solves (1−p)^n = α/2; k=n: the lower bound solves p^n = α/2.
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1), abs=1e-12)
    assert 1 - 0.025 ** 0.1 == pytest.approx(0.30849, abs=1e-5)
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** 0.1, 1.0), abs=1e-12)
    assert clopper_pearson(0, 5, level=0.9) == pytest.approx((0.0, 1 - 0.05 ** 0.2), abs=1e-12)


@pytest.mark.parametrize("k,n", [(1, 7), (3, 80), (12, 30), (49, 50), (250, 1000)])
def test_clopper_pearson_matches_scipy_binomtest_exact(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_clopper_pearson_the_reported_figure_3_of_80():
    lo, hi = clopper_pearson(3, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0078, 0.1057)


@pytest.mark.parametrize("k,n,level,named", [(0, 0, 0.95, "n=0"), (-1, 5, 0.95, "k=-1"), (6, 5, 0.95, "k=6"),
                                             (1, 5, 1.0, "1.0"), (1, 5, 0.0, "0.0")])
def test_clopper_pearson_rejects_bad_input_naming_the_value(k, n, level, named):
    with pytest.raises(ValueError, match=named):
        clopper_pearson(k, n, level)


# --- cluster bootstrap of a mean -----------------------------------------------------------------------------------

def test_cluster_bootstrap_collapses_when_every_cluster_has_the_same_mean():
    # clusters of different sizes, each with mean 0.25: every resample's pooled mean is 0.25
    values = [1, 0, 0, 0] + [1, 0, 0, 0, 0, 1, 0, 0] + [0, 1, 0, 0]
    clusters = ["a"] * 4 + ["b"] * 8 + ["c"] * 4
    assert cluster_bootstrap(values, clusters) == pytest.approx((0.25, 0.25), abs=1e-12)


def test_cluster_bootstrap_is_deterministic_per_seed_and_contains_the_pooled_mean():
    rng = np.random.default_rng(1)
    clusters = rng.integers(0, 30, 300).tolist()
    values = (rng.random(300) < 0.3).astype(float).tolist()
    first = cluster_bootstrap(values, clusters, seed=7)
    assert cluster_bootstrap(values, clusters, seed=7) == first
    assert cluster_bootstrap(values, clusters, seed=8) != first
    assert first[0] < np.mean(values) < first[1]


def test_cluster_bootstrap_of_singletons_matches_the_normal_width_and_correlation_widens_it():
    rng = np.random.default_rng(2)
    n, p = 4000, 0.3
    values = (rng.random(n) < p).astype(float)
    normal_width = 2 * 1.96 * math.sqrt(p * (1 - p) / n)
    lo, hi = cluster_bootstrap(values, list(range(n)))
    assert hi - lo == pytest.approx(normal_width, rel=0.15)
    # clusters of 10 identical outcomes carry 400 independent draws, not 4000: ~√10 wider
    same = np.repeat((rng.random(n // 10) < p).astype(float), 10)
    lo, hi = cluster_bootstrap(same, np.repeat(np.arange(n // 10), 10))
    assert hi - lo > 2 * normal_width


def test_cluster_bootstrap_rejects_empty_and_mismatched_input():
    with pytest.raises(ValueError):
        cluster_bootstrap([], [])
    with pytest.raises(ValueError, match="3 rows"):
        cluster_bootstrap([1.0, 0.0, 1.0], ["a", "b"])


def test_rate_summary_reports_counts_and_both_intervals():
    out = rate_summary([True, False, False, True] * 5, clusters=[0, 0, 1, 1] * 5, n_boot=200)
    assert (out["k"], out["n"], out["rate"], out["clusters"]) == (10, 20, 0.5, 2)
    assert out["clopper_pearson"] == pytest.approx(list(clopper_pearson(10, 20)))
    assert out["cluster_bootstrap"] == pytest.approx([0.5, 0.5])  # both clusters have mean 0.5
    bare = rate_summary([0, 0, 1])
    assert bare["cluster_bootstrap"] is None and bare["clusters"] is None and bare["k"] == 1


# --- Firth logistic trend ------------------------------------------------------------------------------------------

def _neg_loglik(params, x, y, firth):
    a, b = params
    eta = a + b * x
    ll = np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta))
    if firth:  # Jeffreys prior: + ½ log det(Xᵀ W X)
        v = np.exp(log_expit(eta) + log_expit(-eta))
        info = np.array([[v.sum(), (v * x).sum()], [(v * x).sum(), (v * x * x).sum()]])
        ll += 0.5 * np.linalg.slogdet(info)[1]
    return -ll


def _maximise(x, y, firth):
    res = minimize(_neg_loglik, np.zeros(2), args=(x, y, firth), method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    return res.x


def test_firth_is_close_to_and_shrunk_from_the_plain_mle_and_maximises_the_penalised_likelihood():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 120)
    y = (rng.random(120) < 1 / (1 + np.exp(-(-1.5 + 3 * x)))).astype(float)
    out = logistic_trend(x, y)
    a_mle, b_mle = _maximise(x, y, firth=False)
    assert 0 < out["slope"] < b_mle
    assert out["slope"] == pytest.approx(b_mle, rel=0.15)
    a_f, b_f = _maximise(x, y, firth=True)
    assert (out["intercept"], out["slope"]) == pytest.approx((a_f, b_f), abs=1e-5)
    assert out["converged"] and out["n"] == 120


def test_firth_recovers_a_true_slope_of_2_with_a_wald_interval_around_it():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 4000)
    y = rng.random(4000) < 1 / (1 + np.exp(-(0.3 + 2 * x)))
    out = logistic_trend(x, y)
    assert abs(out["slope"] - 2) < 0.15
    assert out["wald_ci"][0] < 2 < out["wald_ci"][1]
    assert out["p_value"] < 1e-10


def test_firth_stays_finite_under_complete_separation():
    x = np.linspace(0, 1, 20)
    out = logistic_trend(x, x > 0.5)
    assert out["converged"]
    assert 0 < out["slope"] < 100 and np.isfinite(out["wald_ci"]).all()
    # the plain likelihood keeps rising along the separating direction: no finite MLE exists
    assert _neg_loglik((-40, 80), x, (x > 0.5).astype(float), False) < _neg_loglik(
        (-8, 16), x, (x > 0.5).astype(float), False)


def test_firth_on_a_2x2_table_is_the_haldane_anscombe_log_odds_ratio():
    # y=1 in 3 of 10 rows at x=0 and 7 of 10 at x=1; Firth adds ½ to each cell of the table
    x = [0] * 10 + [1] * 10
    y = [1] * 3 + [0] * 7 + [1] * 7 + [0] * 3
    out = logistic_trend(x, y)
    assert out["slope"] == pytest.approx(math.log((7.5 / 3.5) / (3.5 / 7.5)), abs=1e-6)
    assert out["intercept"] == pytest.approx(math.log(3.5 / 7.5), abs=1e-6)
    # on x scaled by 2 the slope halves (the estimate is equivariant) and the p-value stays
    scaled = logistic_trend([2 * v for v in x], y)
    assert scaled["slope"] == pytest.approx(out["slope"] / 2, abs=1e-6)
    assert scaled["p_value"] == pytest.approx(out["p_value"], abs=1e-9)


def test_firth_with_constant_outcome_gives_a_finite_slope_near_0_with_a_wide_interval():
    out = logistic_trend(np.linspace(0, 1, 20), np.zeros(20))
    assert abs(out["slope"]) < 0.5 and out["converged"]
    assert out["wald_ci"][1] - out["wald_ci"][0] > 5


def test_logistic_trend_needs_two_distinct_x_values():
    with pytest.raises(ValueError, match="logistic_trend needs at least two distinct x values"):
        logistic_trend([0.5] * 6, [0, 1, 0, 1, 1, 0])


def test_cluster_bootstrap_slope_interval_contains_the_estimate_and_matches_wald_for_singletons():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 1500)
    y = rng.random(1500) < 1 / (1 + np.exp(-(-2 + 3 * x)))
    out = logistic_trend(x, y, clusters=list(range(1500)), n_boot=500, seed=1)
    lo, hi = out["cluster_bootstrap_ci"]
    assert lo < out["slope"] < hi
    assert logistic_trend(x, y, clusters=list(range(1500)), n_boot=500, seed=1)["cluster_bootstrap_ci"] == [lo, hi]
    # independent rows: resampling rows is the ordinary bootstrap, whose width the Wald width matches
    assert hi - lo == pytest.approx(out["wald_ci"][1] - out["wald_ci"][0], rel=0.2)


def test_cluster_bootstrap_slope_interval_widens_when_a_cluster_shares_one_outcome():
    # 150 topics, each at its own dose with 10 rows of one shared outcome: 150 draws of evidence,
    # not 1500, so the honest interval is about √10 times the Wald interval that counts rows
    rng = np.random.default_rng(5)
    dose = rng.uniform(0, 1, 150)
    shared = rng.random(150) < 1 / (1 + np.exp(-(-2 + 4 * dose)))
    x, y, cl = np.repeat(dose, 10), np.repeat(shared, 10), np.repeat(np.arange(150), 10)
    out = logistic_trend(x, y, clusters=cl.tolist(), n_boot=500)
    lo, hi = out["cluster_bootstrap_ci"]
    assert lo < out["slope"] < hi
    assert hi - lo > 2 * (out["wald_ci"][1] - out["wald_ci"][0])
