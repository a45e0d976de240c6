"""The statistics behind experiment analysis agree with scipy and keep their promises in simulation."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import stats as sps

from proml_lab.errors import ExperimentError
from proml_lab.experiments import stats


def test_docstring_examples_run():
    assert doctest.testmod(stats, raise_on_error=False).failed == 0


def test_welch_matches_scipy():
    rng = np.random.default_rng(0)
    xc, xt = rng.normal(1.0, 1.0, 300), rng.exponential(1.3, 250)
    r = stats.welch_test(xc, xt, alpha=0.1)
    ref = sps.ttest_ind(xt, xc, equal_var=False)
    ci = ref.confidence_interval(0.9)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert r.df == pytest.approx(ref.df, rel=1e-10)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_welch_broadcasts_over_experiments():
    rng = np.random.default_rng(1)
    xc, xt = rng.normal(size=(5, 100)), rng.normal(size=(5, 120))
    r = stats.welch_test(xc, xt)
    ref = sps.ttest_ind(xt, xc, axis=-1, equal_var=False)
    np.testing.assert_allclose(r.p_value, ref.pvalue, rtol=1e-10)


def test_two_proportion_test_is_the_textbook_z():
    s_c, n_c, s_t, n_t = 480, 5000, 560, 5100
    r = stats.two_proportion_test(s_c, n_c, s_t, n_t)
    p_c, p_t, pooled = s_c / n_c, s_t / n_t, (s_c + s_t) / (n_c + n_t)
    z = (p_t - p_c) / np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    assert r.statistic == pytest.approx(z)
    assert r.p_value == pytest.approx(2 * sps.norm.sf(abs(z)))
    # the pooled z-test is the chi-square test of the 2x2 table without continuity correction
    chi2 = sps.chi2_contingency([[s_c, n_c - s_c], [s_t, n_t - s_t]], correction=False)
    assert r.p_value == pytest.approx(chi2.pvalue)
    half = 1.959964 * np.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    assert (r.ci_low, r.ci_high) == pytest.approx((p_t - p_c - half, p_t - p_c + half), rel=1e-5)


def test_relative_lift_delta_method_covers_the_truth():
    rng = np.random.default_rng(2)
    runs, n = 2000, 400
    xc, xt = rng.exponential(2.0, (runs, n)), rng.exponential(2.2, (runs, n))
    r = stats.relative_lift(xc.mean(1), xc.var(1, ddof=1), n, xt.mean(1), xt.var(1, ddof=1), n)
    covered = np.mean((r.ci_low <= 0.1) & (0.1 <= r.ci_high))
    assert 0.93 <= covered <= 0.97
    assert np.std(r.estimate) == pytest.approx(np.mean(r.se), rel=0.1)


def test_ratio_metric_variance_matches_simulation():
    rng = np.random.default_rng(3)
    runs, n = 3000, 500
    den = 1 + rng.poisson(4.0, (runs, n))
    num = rng.binomial(den, rng.beta(2, 18, (runs, n)))
    r = stats.ratio_metric(num, den)
    assert np.mean(r.var) == pytest.approx(np.var(r.ratio), rel=0.08)
    np.testing.assert_allclose(r.linearized.mean(-1), r.ratio)


def test_srm_agrees_with_scipy_chisquare_and_flags_a_skewed_split():
    counts = np.array([101_000, 99_000])
    r = stats.srm_test(counts)
    ref = sps.chisquare(counts)
    assert (r.chi2, r.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    rng = np.random.default_rng(4)
    skewed = rng.binomial(200_000, 0.505, 2000)
    fair = rng.binomial(200_000, 0.5, 2000)
    flag = lambda t: stats.srm_test(np.c_[200_000 - t, t]).flagged.mean()  # noqa: E731
    assert flag(skewed) > 0.8
    assert flag(fair) < 0.005
    three = stats.srm_test([5000, 2600, 2400], [2, 1, 1])
    assert not three.flagged and three.expected.tolist() == [5000, 2500, 2500]


def test_cuped_reduces_variance_and_stays_unbiased():
    rng = np.random.default_rng(5)
    runs, n, effect = 400, 2000, 0.1
    estimates, adjusted, reductions = [], [], []
    for _ in range(runs):
        pre = rng.gamma(2.0, 1.0, n)
        arm = rng.random(n) < 0.5
        y = 0.8 * pre + rng.normal(size=n) + effect * arm
        r = stats.cuped(y, pre, groups=arm.astype(int))
        estimates.append(y[arm].mean() - y[~arm].mean())
        adjusted.append(r.adjusted[arm].mean() - r.adjusted[~arm].mean())
        reductions.append(r.variance_reduction)
    estimates, adjusted = np.array(estimates), np.array(adjusted)
    corr2 = 0.8 ** 2 * 2 / (0.8 ** 2 * 2 + 1)  # Var(pre) = 2 for gamma(2, 1)
    assert np.mean(reductions) == pytest.approx(corr2, abs=0.02)
    assert np.var(adjusted) < 0.6 * np.var(estimates)
    assert abs(np.mean(adjusted) - effect) < 3 * np.std(adjusted) / np.sqrt(runs)


def test_cuped_theta_is_pooled_within_arms():
    rng = np.random.default_rng(6)
    x = rng.normal(size=4000)
    arm = np.repeat([0, 1], 2000)
    y = 2.0 * x + 5.0 * arm + rng.normal(scale=0.1, size=4000)  # a big effect must not leak into theta
    assert stats.cuped(y, x, groups=arm).theta == pytest.approx(2.0, abs=0.01)


def test_confidence_sequence_covers_at_every_look():
    rng = np.random.default_rng(7)
    runs, n, looks, delta, alpha = 400, 4000, 40, 0.2, 0.05
    arm = rng.random((runs, n)) < 0.5
    y = rng.normal(size=(runs, n)) * np.where(arm, 1.5, 1.0) + delta * arm
    at = np.linspace(n / looks, n, looks).astype(int) - 1
    n_t, n_c = np.cumsum(arm, 1)[:, at], np.cumsum(~arm, 1)[:, at]
    s_t, s_c = np.cumsum(y * arm, 1)[:, at], np.cumsum(y * ~arm, 1)[:, at]
    q_t, q_c = np.cumsum(y * y * arm, 1)[:, at], np.cumsum(y * y * ~arm, 1)[:, at]
    m_t, m_c = s_t / n_t, s_c / n_c
    v_t, v_c = (q_t - n_t * m_t ** 2) / (n_t - 1), (q_c - n_c * m_c ** 2) / (n_c - 1)
    total = n_t + n_c
    cs = stats.confidence_sequence(m_t - m_c, total * (v_t / n_t + v_c / n_c), total, alpha,
                                   stats.rho_for(n, alpha), running=True)
    always_covered = np.all((cs.low <= delta) & (delta <= cs.high), axis=1)
    assert always_covered.mean() >= 1 - alpha - 0.01
    # the running p-value only decreases, and the fixed-horizon test would reject more at the last look
    assert np.all(np.diff(cs.p_value, axis=1) <= 0)
    z = stats.welch_from_stats(m_c[:, -1], v_c[:, -1], n_c[:, -1], m_t[:, -1], v_t[:, -1], n_t[:, -1])
    assert (z.p_value < alpha).mean() > (cs.p_value[:, -1] < alpha).mean()


def test_confidence_sequence_p_value_matches_its_interval():
    cs = stats.confidence_sequence(np.linspace(-1, 1, 201), 4.0, 500, 0.05, rho=0.1)
    excludes_zero = (cs.low > 0) | (cs.high < 0)
    np.testing.assert_array_equal(excludes_zero, cs.p_value < 0.05)


def test_normal_power():
    assert stats.normal_power(0.0, 1.0) == pytest.approx(0.05)
    assert stats.normal_power(1.959964 + 0.841621, 1.0) == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize("call, message", [
    (lambda: stats.welch_test([1.0], [1.0, 2.0]), "at least two units"),
    (lambda: stats.srm_test([10, 20], [1, 0]), "positive"),
    (lambda: stats.two_proportion_test(1, 10, 2, 10, alpha=1.5), "The 'alpha' parameter"),
    (lambda: stats.confidence_sequence(0.1, 1.0, 10, rho=0.0), "The 'rho' parameter"),
])
def test_bad_inputs_raise_experiment_errors(call, message):
    with pytest.raises(ExperimentError, match=message):
        call()
