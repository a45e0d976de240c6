"""The fixed effect against scikit-learn and a direct scipy minimization."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge

from proml_lab.training.glmix.families import get_family
from proml_lab.training.glmix.fixed import fit_fixed


def _data(n: int = 600, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    eta = x @ np.linspace(-1, 1, d) + 0.3
    return x, eta


def test_logistic_l2_matches_sklearn():
    x, eta = _data()
    y = (np.random.default_rng(1).random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(float)
    res = fit_fixed(x, y, get_family("logistic"), l2=2.0, max_iter=500, tol=1e-12)
    ref = LogisticRegression(C=1 / 2.0, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(res.coefficients, ref.coef_[0], atol=1e-4)
    assert res.intercept == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_logistic_l1_matches_saga_and_is_sparse():
    x, eta = _data(d=6)
    x[:, 3:] *= 0.05  # weak features that L1 zeroes out
    y = (np.random.default_rng(2).random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(float)
    res = fit_fixed(x, y, get_family("logistic"), l2=0.0, l1=8.0, max_iter=1000, tol=1e-14)
    ref = LogisticRegression(l1_ratio=1.0, solver="saga", C=1 / 8.0, tol=1e-12, max_iter=200_000).fit(x, y)
    np.testing.assert_allclose(res.coefficients, ref.coef_[0], atol=1e-4)
    assert res.intercept == pytest.approx(ref.intercept_[0], abs=1e-4)
    assert np.sum(res.coefficients == 0.0) == np.sum(np.abs(ref.coef_[0]) < 1e-8) > 0


def test_linear_l2_matches_ridge():
    x, eta = _data()
    y = eta + np.random.default_rng(3).normal(size=len(eta))
    res = fit_fixed(x, y, get_family("linear"), l2=5.0, max_iter=500, tol=1e-14)
    ref = Ridge(alpha=5.0, tol=1e-12).fit(x, y)
    np.testing.assert_allclose(res.coefficients, ref.coef_, atol=1e-6)
    assert res.intercept == pytest.approx(ref.intercept_, abs=1e-6)


def test_poisson_matches_sklearn_with_alpha_l2_over_n():
    x, eta = _data()
    y = np.random.default_rng(4).poisson(np.exp(0.5 * eta)).astype(float)
    res = fit_fixed(x, y, get_family("poisson"), l2=3.0, max_iter=500, tol=1e-14)
    ref = PoissonRegressor(alpha=3.0 / len(y), tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(res.coefficients, ref.coef_, atol=1e-4)
    assert res.intercept == pytest.approx(ref.intercept_, abs=1e-4)


@pytest.mark.parametrize("family", ["logistic", "poisson"])
def test_offsets_and_weights_match_direct_minimization(family: str):
    x, eta = _data(n=400, d=3, seed=5)
    rng = np.random.default_rng(6)
    y = ((rng.random(400) < 1 / (1 + np.exp(-eta))).astype(float) if family == "logistic"
         else rng.poisson(np.exp(0.3 * eta)).astype(float))
    w, off = rng.uniform(0.2, 3.0, 400), rng.normal(scale=0.5, size=400)
    fam = get_family(family)
    res = fit_fixed(x, y, fam, weights=w, offset=off, l2=0.5, max_iter=500, tol=1e-14)

    def objective(theta: np.ndarray) -> float:
        e = x @ theta[:3] + theta[3] + off
        return float(np.sum(w * fam.loss(y, e)) + 0.25 * theta[:3] @ theta[:3])

    ref = minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(np.r_[res.coefficients, res.intercept], ref, atol=1e-4)
