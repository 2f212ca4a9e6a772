"""Interval estimates and the dose-trend test behind the study's refusal figures. Pure numpy/scipy.

A refusal rate such as 3/80 is reported with an exact (Clopper–Pearson) interval, which keeps its
stated coverage at the small counts and the rates near 0 or 1 that a normal approximation gets wrong.
Rows are not always independent: one prompt is scored at several η, and prompts share a topic, so a
cluster bootstrap (whole clusters resampled) gives the interval that honours that correlation.

"Refusal rises with η" is tested by a logistic regression of the outcome on the dose, fitted by
Firth's bias-reduced likelihood: refusal is often 0 at every low η and 1 at every high η (complete
separation), where the plain maximum-likelihood slope runs off to infinity while Firth's stays finite.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy import sparse
from scipy.special import expit, log_expit
from scipy.stats import beta, norm

_MAX_ITER = 50  # Newton steps per fit; Firth's fits take about 5–10
_TOL = 1e-10  # step size (standardised scale) at which a fit counts as converged
_CHUNK = 2_000_000  # bootstrap replicates × groups fitted at once, to bound memory


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def _codes(labels: Sequence[Hashable], n: int, what: str) -> tuple[np.ndarray, int]:
    """Cluster labels of any hashable kind -> integer codes 0..C-1 (first-seen order) and C."""
    if len(labels) != n:
        raise ValueError(f"{what} has {n} rows but clusters has {len(labels)}")
    seen: dict[Hashable, int] = {}
    codes = np.fromiter((seen.setdefault(lab, len(seen)) for lab in labels), dtype=np.intp, count=n)
    return codes, len(seen)


def _draw(rng: np.random.Generator, n_boot: int, n_clusters: int) -> np.ndarray:
    """(n_boot, C) multiplicities: how often each cluster is drawn when C clusters are drawn with
    replacement. One `integers` call and one bincount, so no Python loop over replicates."""
    idx = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    flat = (idx + n_clusters * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters).astype(float)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials: the beta quantiles that invert the two
    one-sided binomial tests. Conservative by construction, so a small count never looks surer than it is."""
    _check_level(level)
    if n <= 0:
        raise ValueError(f"clopper_pearson needs n >= 1 trials, got n={n!r}")
    if not 0 <= k <= n:
        raise ValueError(f"clopper_pearson needs 0 <= k <= n, got k={k!r} with n={n!r}")
    alpha = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[Hashable], level: float = 0.95,
                      n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval for the pooled mean of `values` when rows within a cluster are correlated.

    Whole clusters are drawn with replacement and the statistic is Σ values / Σ rows over the drawn
    clusters, i.e. the same pooled mean as the point estimate, weighted by cluster size. Computed from
    per-cluster sums and counts, so the cost is O(n_boot × clusters) array work, deterministic per seed."""
    _check_level(level)
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"cluster_bootstrap needs a non-empty 1-d list of values, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("cluster_bootstrap values must be finite")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    codes, n_clusters = _codes(clusters, v.size, "values")
    sums = np.bincount(codes, weights=v, minlength=n_clusters)
    counts = np.bincount(codes, minlength=n_clusters).astype(float)
    mult = _draw(np.random.default_rng(seed), n_boot, n_clusters)
    stats = (mult @ sums) / (mult @ counts)
    alpha = 1.0 - level
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def rate_summary(outcomes: Sequence[bool | int], clusters: Sequence[Hashable] | None = None,
                 level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """k/n with its exact interval and, given cluster labels, the cluster-bootstrap interval too,
    as plain JSON-ready values (lists, ints, floats, None)."""
    y = np.asarray(outcomes, dtype=float)
    if y.ndim != 1 or not np.all((y == 0) | (y == 1)):
        raise ValueError("rate_summary needs a 1-d list of 0/1 (or bool) outcomes")
    k, n = int(y.sum()), int(y.size)
    lo, hi = clopper_pearson(k, n, level)
    out: dict = {"k": k, "n": n, "rate": k / n, "clopper_pearson": [lo, hi], "cluster_bootstrap": None,
                 "clusters": None}
    if clusters is not None:
        out["cluster_bootstrap"] = list(cluster_bootstrap(y, clusters, level, n_boot, seed))
        out["clusters"] = _codes(clusters, n, "outcomes")[1]
    return out


def _firth_parts(b: np.ndarray, z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """For B fits at once (b: (B, 2), weights w: (B, U) over U distinct (z, y) groups): the penalised
    log-likelihood l + ½·log det I, p, the weights w·p(1 − p), the Fisher information's three entries
    and its determinant.
    A weight is a row count, so a group of m identical rows is exactly m rows."""
    eta = b[:, :1] + b[:, 1:] * z
    ll = (w * (y * eta + log_expit(-eta))).sum(axis=1)  # y·log p + (1 − y)·log(1 − p)
    p = expit(eta)
    v = w * p * (1 - p)
    i00, i01, i11 = v.sum(axis=1), (v * z).sum(axis=1), (v * z * z).sum(axis=1)
    det = i00 * i11 - i01 * i01
    with np.errstate(divide="ignore", invalid="ignore"):
        pen = ll + 0.5 * np.log(np.where(det > 0, det, np.nan))
    return np.where(np.isfinite(pen), pen, -np.inf), p, v, i00, i01, i11, det


def _firth_fit(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firth's logistic regression of y on (1, z), B weightings at once; Newton steps on the modified
    score Xᵀ(w(y − p) + h(½ − p)) (h: the hat matrix's diagonal), halved until the penalised likelihood
    does not fall. Returns (coefficients (B, 2), converged (B,), Fisher information inverse (B, 2, 2))."""
    n_fit = w.shape[0]
    b = np.zeros((n_fit, 2))
    pen, p, v, i00, i01, i11, det = _firth_parts(b, z, y, w)
    done = ~np.isfinite(pen)  # a weighting with one distinct z cannot be fitted: left as NaN below
    converged = np.zeros(n_fit, dtype=bool)
    for _ in range(_MAX_ITER):
        act = ~done
        if not act.any():
            break
        d = np.where(det > 0, det, np.inf)[:, None]  # an unfittable weighting takes zero steps
        h = v * (i11[:, None] - 2 * z * i01[:, None] + z * z * i00[:, None]) / d
        r = w * (y - p) + h * (0.5 - p)
        u0, u1 = r.sum(axis=1), (r * z).sum(axis=1)
        step = np.stack([i11 * u0 - i01 * u1, i00 * u1 - i01 * u0], axis=1) / d
        t = np.ones(n_fit)
        new_pen = _firth_parts(b + step, z, y, w)[0]
        bad = act & (new_pen < pen - 1e-12 * np.abs(pen))
        for _ in range(40):  # step-halving, only for the fits whose penalised likelihood fell
            if not bad.any():
                break
            t[bad] /= 2
            new_pen[bad] = _firth_parts(b[bad] + t[bad, None] * step[bad], z, y, w[bad])[0]
            bad = act & (new_pen < pen - 1e-12 * np.abs(pen))
        b[act & ~bad] += t[act & ~bad, None] * step[act & ~bad]
        small = np.abs(step).max(axis=1) < _TOL  # the full Newton step, not the halved one
        converged |= act & small
        done |= small | bad  # a fit no halving can improve stops where it is
        pen, p, v, i00, i01, i11, det = _firth_parts(b, z, y, w)
    bad_fit = ~(det > 0)
    cov = np.stack([np.stack([i11, -i01], -1), np.stack([-i01, i00], -1)], -2)
    cov /= np.where(bad_fit, np.inf, det)[:, None, None]
    b[bad_fit], cov[bad_fit] = np.nan, np.nan
    return b, converged, cov


def logistic_trend(x: Sequence[float], y: Sequence[bool | int], clusters: Sequence[Hashable] | None = None,
                   level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Trend of a binary outcome with a dose: P(y=1) = sigmoid(a + b·x), fitted by Firth's method.

    The slope b is the log odds ratio per unit of x. The Wald interval and two-sided p-value come from
    the inverse Fisher information at the Firth estimate (finite even under complete separation, where
    they are wide). With `clusters`, whole clusters are resampled and refitted for a percentile interval
    of b that honours within-cluster correlation; refits run vectorised over (x, y) groups weighted by
    how often each is drawn, which is exactly a refit on the expanded rows."""
    _check_level(level)
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"logistic_trend needs equal-length non-empty 1-d x and y, got {xs.shape} and {ys.shape}")
    if not np.all(np.isfinite(xs)) or not np.all((ys == 0) | (ys == 1)):
        raise ValueError("logistic_trend needs finite x and 0/1 (or bool) y")
    if np.ptp(xs) == 0:
        raise ValueError("logistic_trend needs at least two distinct x values")
    m, s = xs.mean(), xs.std()  # fit on standardised x for conditioning; Firth's estimate is equivariant
    pairs, group = np.unique(np.stack([xs, ys], axis=1), axis=0, return_inverse=True)
    group = group.ravel()
    z, yg = (pairs[:, 0] - m) / s, pairs[:, 1]
    jac = np.array([[1.0, -m / s], [0.0, 1.0 / s]])  # (a, b) = jac @ (a_z, b_z)

    bz, conv, cov_z = _firth_fit(z, yg, np.bincount(group, minlength=len(pairs)).astype(float)[None, :])
    a, b = jac @ bz[0]
    se = float(np.sqrt((jac @ cov_z[0] @ jac.T)[1, 1]))
    q = float(norm.ppf(0.5 + level / 2))
    out: dict = {"slope": float(b), "intercept": float(a), "wald_ci": [float(b - q * se), float(b + q * se)],
                 "p_value": float(2 * norm.sf(abs(b) / se)), "cluster_bootstrap_ci": None, "n": int(xs.size),
                 "converged": bool(conv[0])}
    if clusters is not None:
        if n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
        codes, n_clusters = _codes(clusters, xs.size, "x")
        # rows of each cluster in each (x, y) group; a draw's group weights = multiplicities @ this
        member = sparse.csr_matrix((np.ones(xs.size), (codes, group)), shape=(n_clusters, len(pairs)))
        mult = _draw(np.random.default_rng(seed), n_boot, n_clusters)
        slopes = []
        per = max(1, _CHUNK // len(pairs))
        for start in range(0, n_boot, per):
            w = np.asarray((member.T @ mult[start:start + per].T).T)
            slopes.append(_firth_fit(z, yg, w)[0][:, 1] / s)
        boot = np.concatenate(slopes)
        boot = boot[np.isfinite(boot)]  # a draw holding a single x value has no slope
        if boot.size:
            lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
            out["cluster_bootstrap_ci"] = [float(lo), float(hi)]
    return out
