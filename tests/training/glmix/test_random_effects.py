"""The batched random-effect solver against a per-entity reference fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, Ridge

from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix
from proml_lab.training.glmix.families import get_family
from proml_lab.training.glmix.random_effects import group_entities, newton_solve, row_hashes, solve_blocks


def _entities(n: int = 3000, num: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    entity = (num * rng.random(n) ** 3).astype(np.int64) ** 2  # sparse ids, skewed counts: several buckets
    x = np.c_[rng.normal(size=(n, 2)), np.ones(n)]  # intercept last, as GLMix lays it out
    off = rng.normal(scale=0.5, size=n)
    return rng, entity, x, off


def test_logistic_entities_match_per_entity_sklearn():
    rng, entity, x, _off = _entities()
    y = (rng.random(len(entity)) < 0.35).astype(float)
    blocks = group_entities(entity, x, y, np.ones(len(y)))
    assert len(blocks.buckets) >= 3
    # with a zero offset the per-entity problem is exactly sklearn's (penalized intercept column)
    coefs, _ = solve_blocks(blocks, np.zeros(len(y)), get_family("logistic"), l2=0.8, steps=30, tol=1e-12)
    for k, e in list(enumerate(blocks.ids))[::3]:  # every third entity keeps the reference loop short
        rows = entity == e
        ref = LogisticRegression(C=1 / 0.8, fit_intercept=False, tol=1e-12, max_iter=10_000)
        if len(np.unique(y[rows])) < 2:
            continue  # sklearn refuses one-class data; the offset test below covers those
        np.testing.assert_allclose(coefs[k], ref.fit(x[rows], y[rows]).coef_[0], atol=1e-4)


@pytest.mark.parametrize("family", ["logistic", "poisson"])
def test_entities_with_offsets_and_weights_match_scipy(family: str):
    rng, entity, x, off = _entities(n=1500, num=60, seed=1)
    y = ((rng.random(len(entity)) < 0.4).astype(float) if family == "logistic"
         else rng.poisson(1.5, len(entity)).astype(float))
    w = rng.uniform(0.5, 2.0, len(y))
    fam = get_family(family)
    blocks = group_entities(entity, x, y, w)
    coefs, _ = solve_blocks(blocks, off, fam, l2=0.5, steps=30, tol=1e-12)
    for k, e in enumerate(blocks.ids):
        r = entity == e

        def objective(b: np.ndarray, r: np.ndarray = r) -> float:
            return float(np.sum(w[r] * fam.loss(y[r], x[r] @ b + off[r])) + 0.25 * b @ b)

        ref = minimize(objective, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
        np.testing.assert_allclose(coefs[k], ref, atol=1e-4)


def test_linear_entities_match_ridge_in_one_newton_step():
    rng, entity, x, _off = _entities(seed=2)
    y = rng.normal(size=len(entity))
    blocks = group_entities(entity, x, y, np.ones(len(y)))
    coefs, steps = solve_blocks(blocks, np.zeros(len(y)), get_family("linear"), l2=2.0, steps=10, tol=1e-10)
    for k, e in enumerate(blocks.ids[:40]):
        r = entity == e
        ref = Ridge(alpha=2.0, fit_intercept=False).fit(x[r], y[r]).coef_
        np.testing.assert_allclose(coefs[k], ref, atol=1e-8)
    assert steps <= 2 * len(blocks.buckets)  # one step solves a quadratic; the second sees no move


def test_lower_bound_drops_small_entities():
    entity = np.array([1, 1, 1, 2, 3, 3])
    blocks = group_entities(entity, np.ones((6, 1)), np.zeros(6), np.ones(6), lower_bound=2)
    assert blocks.ids.tolist() == [1, 3]
    assert blocks.row_entity.tolist() == [0, 0, 0, -1, 1, 1]


def test_upper_bound_samples_reproducibly_and_reweights():
    rng = np.random.default_rng(3)
    entity = np.repeat(["big", "small"], [50, 5])
    x = np.c_[rng.normal(size=(55, 1)), np.ones(55)]
    y = rng.normal(size=55)
    keys = row_hashes([x, y], 55)
    a = group_entities(entity, x, y, np.ones(55), upper_bound=8, seed=7, row_keys=keys)
    b = group_entities(entity, x, y, np.ones(55), upper_bound=8, seed=7, row_keys=keys)
    c = group_entities(entity, x, y, np.ones(55), upper_bound=8, seed=8, row_keys=keys)
    big = next(bk for bk in a.buckets if 0 in bk.entities)
    row = list(big.entities).index(0)
    assert np.count_nonzero(big.w[row]) == 8
    np.testing.assert_allclose(big.w[row][big.w[row] > 0], 50 / 8)
    rows_a = np.sort(big.rows[row][big.w[row] > 0])
    big_b = next(bk for bk in b.buckets if 0 in bk.entities)
    assert np.array_equal(rows_a, np.sort(big_b.rows[row][big_b.w[row] > 0]))
    big_c = next(bk for bk in c.buckets if 0 in bk.entities)
    assert not np.array_equal(rows_a, np.sort(big_c.rows[row][big_c.w[row] > 0]))  # the seed matters
    small = next(bk for bk in a.buckets if 1 in bk.entities)
    np.testing.assert_allclose(small.w[list(small.entities).index(1)][:5], 1.0)


def test_warm_start_reduces_newton_work():
    rng, entity, x, off = _entities(seed=4)
    y = (rng.random(len(entity)) < 0.3).astype(float)
    blocks = group_entities(entity, x, y, np.ones(len(y)))
    fam = get_family("logistic")
    cold, cold_steps = solve_blocks(blocks, off, fam, l2=1.0, steps=20, tol=1e-10)
    warm, warm_steps = solve_blocks(blocks, off + 0.01, fam, l2=1.0, init=cold, steps=20, tol=1e-10)
    again, _ = solve_blocks(blocks, off + 0.01, fam, l2=1.0, steps=20, tol=1e-10)
    assert warm_steps < cold_steps
    np.testing.assert_allclose(warm, again, atol=1e-8)


def test_unseen_entities_score_zero():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"member_id": rng.integers(0, 10, 500), "x": rng.normal(size=500)})
    df["label"] = (rng.random(500) < 0.5).astype(int)
    spec = GLMixSpec(features=(), random_effects=(RandomEffect("per_member", "member_id", ("x",)),), passes=1)
    model = fit_glmix(df, spec)
    new = pd.DataFrame({"member_id": [3, 999], "x": [1.0, 1.0]})
    part = model.effect_margin(new, "per_member")
    assert part[1] == 0.0 and part[0] != 0.0
    assert model.predict_margin(new)[1] == pytest.approx(model.fixed_["intercept"])


def test_kernel_runs_on_any_array_api_namespace():
    xps = pytest.importorskip("array_api_strict")
    rng, entity, x, off = _entities(n=600, num=30, seed=6)
    y = (rng.random(len(entity)) < 0.4).astype(float)
    blocks = group_entities(entity, x, y, np.ones(len(y)))
    fam = get_family("logistic")
    ref, _ = solve_blocks(blocks, off, fam, l2=1.0, steps=15, tol=1e-12)
    bucket = blocks.buckets[-1]
    args = [xps.asarray(a) for a in (bucket.x, bucket.y, bucket.w, off[bucket.rows])]
    beta, _ = newton_solve(*args, xps.zeros((len(bucket.entities), 3), dtype=xps.float64), fam, l2=1.0,
                           steps=15, tol=1e-12)
    np.testing.assert_allclose(np.asarray(beta), ref[bucket.entities], atol=1e-10)
