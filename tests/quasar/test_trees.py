"""TreeEnsemble / DecisionTreesScorer with a real (tiny) XGBoost booster, ranked by the local engine."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from proml_lab.quasar.engine import LocalEngine, QueryBatch
from proml_lab.quasar.ir import compile


FEATURES = ["f0", "f1", "f2", "f3", "f4"]
INPUTS = "\n".join(f"INPUT DOCUMENT double {f};" for f in FEATURES)
EXHAUSTIVE = f"""
{INPUTS}
TRAINABLE trees = TreeEnsemble([f0, f1, f2, f3, f4], {{"num_trees": 20, "max_depth": 3}});
double score = DecisionTreesScorer(trees);
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
"""
PHASED = f"""
{INPUTS}
INPUT DOCUMENT double cheap;
KEEP TOP 7 DOCUMENTS BY cheap;
TRAINABLE trees = TreeEnsemble([f0, f1, f2, f3, f4], {{"num_trees": 20, "max_depth": 3}});
double score = DecisionTreesScorer(trees);
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
"""


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - x[:, 3] + 0.3 * rng.normal(size=2_000) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=20)


def make_batch(counts, seed=1):
    rng = np.random.default_rng(seed)
    n = int(sum(counts))
    docs = {f: rng.normal(size=n) for f in FEATURES}
    docs["cheap"] = rng.normal(size=n)
    return QueryBatch(documents=docs, query_index=np.repeat(np.arange(len(counts)), counts))


def matrix(batch, rows=slice(None)):
    return np.stack([np.asarray(batch.documents[f])[rows] for f in FEATURES], axis=1).astype(np.float32)


def test_tree_scores_equal_inplace_predict(booster):
    counts = [50, 30, 80]
    batch = make_batch(counts)
    result = LocalEngine(compile(EXHAUSTIVE), state={"trees": booster}).rank(batch, explain=True)
    ref = booster.inplace_predict(matrix(batch), predict_type="margin").astype(np.float64)
    assert len(result) == sum(counts)
    np.testing.assert_allclose(result.scores, ref[result.document_rows], rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.explain["trees"], ref[result.document_rows], rtol=0, atol=1e-6)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for q, got in enumerate(result.per_query()):
        lo, hi = bounds[q], bounds[q + 1]
        np.testing.assert_array_equal(got, lo + np.argsort(-ref[lo:hi], kind="stable"))


def test_phased_program_scores_only_the_kept_rows(booster, monkeypatch):
    counts = [40, 25, 60, 12]
    batch = make_batch(counts, seed=2)
    seen: list[int] = []
    real = xgb.Booster.inplace_predict

    def spy(self, data, *args, **kwargs):
        seen.append(len(data))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(xgb.Booster, "inplace_predict", spy)
    result = LocalEngine(compile(PHASED), state={"trees": booster}).rank(batch)
    assert seen == [7 * len(counts)]  # the tree scorer saw Q * k rows only
    monkeypatch.setattr(xgb.Booster, "inplace_predict", real)

    ref = booster.inplace_predict(matrix(batch), predict_type="margin").astype(np.float64)
    np.testing.assert_allclose(result.scores, ref[result.document_rows], rtol=0, atol=1e-6)
    cheap = batch.documents["cheap"]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for q, got in enumerate(result.per_query()):
        lo, hi = bounds[q], bounds[q + 1]
        kept = np.sort(lo + np.argsort(-cheap[lo:hi], kind="stable")[:7])
        np.testing.assert_array_equal(got, kept[np.argsort(-ref[kept], kind="stable")])
