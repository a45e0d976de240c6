"""Pure, vectorized statistics for A/B analysis: tests, lifts, SRM, CUPED and confidence sequences.

Every function works on summary statistics or on arrays and broadcasts, so a benchmark can evaluate many
simulated experiments (or many peeks of one experiment) in one call; none loops over units in Python.
Conventions: ``var`` is the variance of one unit's value (``ddof=1``); the variance of a mean is
``var / n``. Differences and lifts are treatment minus control.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from proml_lab.errors import ExperimentError

__all__ = [
    "CupedResult", "RatioEstimate", "SequentialResult", "SRMResult", "TestResult", "confidence_sequence",
    "cuped", "normal_power", "ratio_metric", "relative_lift", "rho_for", "srm_test", "two_proportion_test",
    "welch_from_stats", "welch_test",
]

SRM_THRESHOLD = 0.001


def _alpha(alpha: float) -> float:
    if not 0.0 < float(alpha) < 1.0:
        raise ExperimentError(f"The 'alpha' parameter must be a float in (0, 1). Got {alpha!r} instead.")
    return float(alpha)


def _out(x: Any) -> Any:
    """0-d arrays become floats so scalar calls read as scalars."""
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


@dataclass(frozen=True)
class TestResult:
    """A two-sample comparison: ``estimate`` (treatment - control, or a relative lift), CI and p-value."""

    estimate: Any
    ci_low: Any
    ci_high: Any
    p_value: Any
    se: Any
    statistic: Any
    df: Any = math.inf


def welch_from_stats(mean_c, var_c, n_c, mean_t, var_t, n_t, alpha: float = 0.05) -> TestResult:
    """Welch's unequal-variance t-test from per-arm summary statistics (broadcasts over arrays).

    ``d = mean_t - mean_c``, ``se² = var_c/n_c + var_t/n_t``, ``t = d / se``, with Welch–Satterthwaite
    degrees of freedom ``df = se⁴ / ((var_c/n_c)²/(n_c-1) + (var_t/n_t)²/(n_t-1))``; the CI is
    ``d ± t_{1-α/2, df}·se`` and the p-value two-sided (Welch 1947; Satterthwaite 1946).

    Examples
    --------
    >>> r = welch_from_stats(1.0, 4.0, 100, 1.5, 9.0, 100)
    >>> round(r.estimate, 3), round(r.p_value, 4), round(r.df, 1)
    (0.5, 0.1673, 172.5)
    """
    alpha = _alpha(alpha)
    mean_c, var_c, n_c, mean_t, var_t, n_t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (mean_c, var_c, n_c, mean_t, var_t, n_t)))
    with np.errstate(divide="ignore", invalid="ignore"):
        vc, vt = var_c / n_c, var_t / n_t
        se = np.sqrt(vc + vt)
        diff = mean_t - mean_c
        df = (vc + vt) ** 2 / (vc ** 2 / (n_c - 1) + vt ** 2 / (n_t - 1))
        t = diff / se
        p = 2.0 * stats.t.sf(np.abs(t), df)
        q = stats.t.ppf(1.0 - alpha / 2.0, df)
    return TestResult(_out(diff), _out(diff - q * se), _out(diff + q * se), _out(p), _out(se), _out(t),
                      _out(df))


def welch_test(x_control, x_treatment, alpha: float = 0.05) -> TestResult:
    """Welch's t-test on raw per-unit values (along the last axis); see :func:`welch_from_stats`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> r = welch_test(rng.normal(0, 1, 500), rng.normal(0.3, 2, 400))
    >>> r.ci_low < r.estimate < r.ci_high, r.p_value < 0.05
    (True, True)
    """
    xc, xt = np.asarray(x_control, dtype=np.float64), np.asarray(x_treatment, dtype=np.float64)
    if xc.shape[-1] < 2 or xt.shape[-1] < 2:
        raise ExperimentError("Welch's test needs at least two units per arm.")
    return welch_from_stats(xc.mean(-1), xc.var(-1, ddof=1), xc.shape[-1],
                            xt.mean(-1), xt.var(-1, ddof=1), xt.shape[-1], alpha)


def two_proportion_test(successes_c, n_c, successes_t, n_t, alpha: float = 0.05) -> TestResult:
    """Two-proportion z-test: pooled variance for the p-value, unpooled for the CI (broadcasts).

    ``z = (p_t - p_c) / sqrt(p̄(1-p̄)(1/n_c + 1/n_t))`` with ``p̄ = (s_c + s_t)/(n_c + n_t)``; the CI is
    ``(p_t - p_c) ± z_{1-α/2}·sqrt(p_c(1-p_c)/n_c + p_t(1-p_t)/n_t)`` (Wald). ``se`` is the unpooled one.

    Examples
    --------
    >>> r = two_proportion_test(100, 1000, 130, 1000)
    >>> round(r.estimate, 3), round(r.statistic, 3), round(r.p_value, 4)
    (0.03, 2.103, 0.0355)
    """
    alpha = _alpha(alpha)
    s_c, n_c, s_t, n_t = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (successes_c, n_c,
                                                                                        successes_t, n_t)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_c, p_t = s_c / n_c, s_t / n_t
        pooled = (s_c + s_t) / (n_c + n_t)
        diff = p_t - p_c
        z = diff / np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
        p = 2.0 * stats.norm.sf(np.abs(z))
        se = np.sqrt(p_c * (1.0 - p_c) / n_c + p_t * (1.0 - p_t) / n_t)
    q = stats.norm.ppf(1.0 - alpha / 2.0)
    return TestResult(_out(diff), _out(diff - q * se), _out(diff + q * se), _out(p), _out(se), _out(z))


def relative_lift(mean_c, var_c, n_c, mean_t, var_t, n_t, alpha: float = 0.05, cov=0.0) -> TestResult:
    """Relative lift ``mean_t/mean_c - 1`` with a delta-method CI (normal) and p-value (broadcasts).

    With ``V_c = var_c/n_c`` and ``V_t = var_t/n_t`` the variances of the two means and ``cov`` their
    covariance (0 for independent arms), ``Var(T/C) ≈ V_t/C² + T²·V_c/C⁴ - 2·T·cov/C³`` (first-order
    Taylor expansion; e.g. Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics").

    Examples
    --------
    >>> r = relative_lift(0.10, 0.09, 10_000, 0.103, 0.0924, 10_000)
    >>> round(r.estimate, 4), round(r.se, 4)
    (0.03, 0.0433)
    """
    alpha = _alpha(alpha)
    mean_c, var_c, n_c, mean_t, var_t, n_t, cov = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (mean_c, var_c, n_c, mean_t, var_t, n_t, cov)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean_t / mean_c
        var = (var_t / n_t) / mean_c ** 2 + mean_t ** 2 * (var_c / n_c) / mean_c ** 4 \
            - 2.0 * mean_t * cov / mean_c ** 3
        se = np.sqrt(np.maximum(var, 0.0))
        z = (ratio - 1.0) / se
        p = 2.0 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(1.0 - alpha / 2.0)
    lift = ratio - 1.0
    return TestResult(_out(lift), _out(lift - q * se), _out(lift + q * se), _out(p), _out(se), _out(z))


@dataclass(frozen=True)
class RatioEstimate:
    """A per-unit ratio metric ``sum(num)/sum(den)``; ``var`` is the delta-method variance of ``ratio``.

    ``linearized`` holds one value per unit whose mean is ``ratio`` and whose ``var(ddof=1)/n`` is ``var``,
    so Welch's test and CUPED apply to ratio metrics unchanged; ``unit_var`` is that per-unit variance.
    """

    ratio: Any
    var: Any
    n: Any
    unit_var: Any
    linearized: np.ndarray


def ratio_metric(num, den) -> RatioEstimate:
    """Ratio of per-unit sums (e.g. clicks / exposures, unit = member) with a delta-method variance.

    Units, not events, are independent, so with ``R = Σnum/Σden``, ``μ_d = mean(den)``:
    ``Var(R) ≈ (s²_num - 2R·s_num,den + R²·s²_den) / (n·μ_d²)`` (Deng, Knoblich & Lu 2018, §3). The
    linearization ``R + (num_i - R·den_i)/μ_d`` has exactly that variance; the last axis holds units.

    Examples
    --------
    >>> r = ratio_metric([1, 0, 3, 2], [4, 2, 6, 5])
    >>> round(r.ratio, 4), round(r.var, 5)
    (0.3529, 0.00693)
    """
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if num.shape != den.shape or num.shape[-1] < 2:
        raise ExperimentError("ratio_metric needs numerator and denominator arrays of one shape, >= 2 units.")
    n = num.shape[-1]
    mean_d = den.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = num.sum(-1, keepdims=True) / den.sum(-1, keepdims=True)
        lin = ratio + (num - ratio * den) / mean_d
    unit_var = lin.var(-1, ddof=1)
    return RatioEstimate(_out(ratio[..., 0]), _out(unit_var / n), n, _out(unit_var), lin)


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio-mismatch check: Pearson chi-square of arm counts against the planned split."""

    chi2: Any
    p_value: Any
    flagged: Any
    expected: Any


def srm_test(observed_counts, expected_weights=None, *, threshold: float = SRM_THRESHOLD) -> SRMResult:
    """Chi-square goodness-of-fit of arm counts vs the planned split; flags ``p < threshold`` (0.001).

    ``χ² = Σ_k (o_k - e_k)²/e_k`` with ``e_k = N·w_k/Σw``, ``k-1`` degrees of freedom (Fabijan et al.
    2019, "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments"). The last axis holds arms,
    so a stack of experiments is tested in one call; ``expected_weights=None`` means an equal split.

    Examples
    --------
    >>> r = srm_test([101_000, 99_000])
    >>> round(r.chi2, 1), bool(r.flagged)
    (20.0, True)
    >>> bool(srm_test([50_100, 49_900], [0.5, 0.5]).flagged)
    False
    """
    obs = np.asarray(observed_counts, dtype=np.float64)
    k = obs.shape[-1]
    if k < 2:
        raise ExperimentError("An SRM check needs at least two arms.")
    w = np.ones(k) if expected_weights is None else np.asarray(expected_weights, dtype=np.float64)
    if w.shape[-1] != k or np.any(w <= 0):
        raise ExperimentError(f"expected_weights must be {k} positive numbers, one per arm. "
                              f"Got {w!r} instead.")
    expected = obs.sum(-1, keepdims=True) * w / w.sum(-1, keepdims=True)
    chi2 = ((obs - expected) ** 2 / expected).sum(-1)
    p = stats.chi2.sf(chi2, k - 1)
    return SRMResult(_out(chi2), _out(p), p < threshold, expected)


@dataclass(frozen=True)
class CupedResult:
    """CUPED: ``adjusted = y - theta·(x - mean(x))``; ``variance_reduction = 1 - Var(adjusted)/Var(y)``."""

    theta: float
    adjusted: np.ndarray
    variance_reduction: float


def cuped(y, x_pre, groups=None) -> CupedResult:
    """CUPED variance reduction with a pre-period covariate (Deng, Xu, Kohavi & Walker 2013).

    ``θ = Cov(y, x)/Var(x)`` and ``y_adj = y - θ·(x - x̄)``; as ``x`` is measured before assignment,
    ``E[x̄_t - x̄_c] = 0`` and the adjusted difference of means stays unbiased while its variance shrinks by
    ``1 - corr(y, x)²``. With ``groups`` (the arm of each unit) one *pooled* θ is estimated from within-arm
    deviations, so a treatment effect does not leak into θ; ``x̄`` is the grand mean (one constant for all
    arms). ``variance_reduction`` compares pooled within-arm variances.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=10_000)
    >>> y = x + rng.normal(scale=0.5, size=10_000)
    >>> r = cuped(y, x)
    >>> round(r.theta, 2), round(r.variance_reduction, 2)
    (0.99, 0.8)
    """
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x_pre, dtype=np.float64)
    if y.shape != x.shape or y.ndim != 1 or len(y) < 3:
        raise ExperimentError("cuped needs 1-d y and x_pre of one length (at least 3 units).")
    if groups is None:
        codes = np.zeros(len(y), dtype=np.intp)
    else:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ExperimentError("cuped needs one group label per unit.")
        ints = groups.dtype.kind in "iu" and groups.min() >= 0  # arm codes already: skip the sort
        codes = groups.astype(np.intp) if ints else np.unique(groups, return_inverse=True)[1].ravel()
    k = int(codes.max()) + 1
    count = np.maximum(np.bincount(codes, minlength=k), 1)
    yc = y - (np.bincount(codes, y, k) / count)[codes]
    xc = x - (np.bincount(codes, x, k) / count)[codes]
    sxx = float(xc @ xc)
    theta = float(xc @ yc) / sxx if sxx > 0 else 0.0
    adjusted = y - theta * (x - x.mean())
    ac = yc - theta * xc
    syy = float(yc @ yc)
    reduction = 1.0 - float(ac @ ac) / syy if syy > 0 else 0.0
    return CupedResult(theta, adjusted, reduction)


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid confidence sequence ``[low, high]`` for the difference and its always-valid p-value."""

    low: Any
    high: Any
    p_value: Any
    rho: float


def rho_for(n_opt: float, alpha: float = 0.05) -> float:
    """The mixture parameter that makes the confidence sequence tightest at ``n_opt`` units.

    ``ρ = sqrt((-2 ln α + ln(1 - 2 ln α)) / n_opt)`` (Howard et al. 2021, §3.5; Waudby-Smith et al. 2023).

    Examples
    --------
    >>> round(rho_for(10_000), 4)
    0.0282
    """
    alpha = _alpha(alpha)
    if not n_opt > 0:
        raise ExperimentError(f"The 'n_opt' parameter must be a number > 0. Got {n_opt!r} instead.")
    a = -2.0 * math.log(alpha)
    return math.sqrt((a + math.log(1.0 + a)) / n_opt)


def confidence_sequence(diff, var, n, alpha: float = 0.05, rho: float | None = None, *,
                        running: bool = False) -> SequentialResult:
    """Always-valid (asymptotic) confidence sequence for a difference in means, and its always-valid p.

    The two-sided normal-mixture boundary of Robbins, in the form of Howard et al. (2021, eq. 14) made
    asymptotic by Waudby-Smith et al. (2023, "Time-uniform central limit theory", Thm 2.2) — the same
    statistic as Johari et al.'s (2017) mixture SPRT with a normal prior ``N(0, ρ²·var)`` on the effect.
    ``diff`` is the current estimate, ``var`` the per-unit variance such that ``Var(diff) = var/n`` (for two
    arms: ``var = n·(s²_c/n_c + s²_t/n_t)``, ``n = n_c + n_t``), and ``ρ`` is fixed before the experiment
    (:func:`rho_for` of the planned ``n``; default: tuned at the given ``n``, i.e. one look):

    * half-width ``sqrt(var·(nρ²+1)/(n²ρ²) · (ln(nρ²+1) - 2 ln α))``;
    * mixture likelihood ratio ``Λ = (nρ²+1)^{-1/2}·exp(n²ρ²·diff² / (2·var·(nρ²+1)))``, p = min(1, 1/Λ).

    ``P(∃ n: true diff ∉ CS_n) ≤ α`` however often one peeks. With ``running=True`` the last axis holds the
    looks in time order and the result is the running intersection of intervals and running minimum of p.

    Examples
    --------
    >>> r = confidence_sequence(0.5, 4.0, 1000, rho=rho_for(1000))
    >>> round(r.low, 3), round(r.high, 3), round(r.p_value, 5)
    (0.308, 0.692, 0.0)
    >>> r = confidence_sequence(0.05, 4.0, 1000, rho=rho_for(1000))
    >>> r.low < 0 < r.high, r.p_value
    (True, 1.0)
    """
    alpha = _alpha(alpha)
    diff, var, n = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (diff, var, n)))
    if rho is None:
        rho = rho_for(float(np.max(n)) if n.size else 1.0, alpha)
    if not rho > 0:
        raise ExperimentError(f"The 'rho' parameter must be a float > 0. Got {rho!r} instead.")
    r2n = rho * rho * n
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        half = np.sqrt(var * (r2n + 1.0) / (n * r2n) * (np.log1p(r2n) - 2.0 * math.log(alpha)))
        log_lr = -0.5 * np.log1p(r2n) + n * r2n * diff ** 2 / (2.0 * var * (r2n + 1.0))
        p = np.minimum(1.0, np.exp(-log_lr))
    low, high = diff - half, diff + half
    if running:
        low = np.maximum.accumulate(np.nan_to_num(low, nan=-np.inf), axis=-1)
        high = np.minimum.accumulate(np.nan_to_num(high, nan=np.inf), axis=-1)
        p = np.minimum.accumulate(np.nan_to_num(p, nan=1.0), axis=-1)
    return SequentialResult(_out(low), _out(high), _out(p), float(rho))


def normal_power(effect, se, alpha: float = 0.05) -> Any:
    """Power of a two-sided z-test: ``Φ(|δ|/se - z_{1-α/2}) + Φ(-|δ|/se - z_{1-α/2})``.

    Examples
    --------
    >>> round(normal_power(2.8016, 1.0), 3)
    0.8
    """
    q = stats.norm.ppf(1.0 - _alpha(alpha) / 2.0)
    z = np.abs(np.asarray(effect, dtype=np.float64)) / np.asarray(se, dtype=np.float64)
    return _out(special.ndtr(z - q) + special.ndtr(-z - q))
