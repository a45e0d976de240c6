"""Metrics agree with scikit-learn and with hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, mean_squared_error, ndcg_score, roc_auc_score

from proml_lab.errors import TrainingError
from proml_lab.training.metrics import (
    auc,
    evaluate,
    logloss,
    ndcg_at_k,
    per_entity_auc,
    precision_at_k,
    rmse,
)


# -- point metrics ----------------------------------------------------------------------------------


def test_auc_equals_sklearn_with_ties_and_weights(binary):
    y, score, weight = binary
    assert auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert auc(y, score, weight) == pytest.approx(roc_auc_score(y, score, sample_weight=weight), abs=1e-12)


def test_auc_by_hand():
    # pairs (pos, neg): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both) -> 3 of 4
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # a tie between the only positive and the only negative counts as half
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert auc([True, False, True], [3, 1, 2]) == 1.0


def test_auc_rejects_one_class_and_non_binary_labels():
    with pytest.raises(TrainingError, match="needs both classes"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(TrainingError, match=r"needs binary labels 0/1 in y. Got other values \[2.0\]"):
        auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(TrainingError, match="score must have one value per row of y"):
        auc([0, 1], [0.1])
    with pytest.raises(TrainingError, match="NaN"):
        auc([0, 1], [0.1, np.nan])


def test_logloss_equals_sklearn_and_hand_value(binary):
    y, score, weight = binary
    p = 1.0 / (1.0 + np.exp(-score))
    assert logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-12)
    assert logloss(y, p, weight) == pytest.approx(log_loss(y, p, sample_weight=weight), rel=1e-12)
    assert logloss([1, 0], [0.8, 0.2]) == pytest.approx(-np.log(0.8))


def test_logloss_clips_certain_mistakes_and_rejects_margins():
    assert np.isfinite(logloss([1, 0], [0.0, 1.0]))
    assert logloss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(1e-15))
    with pytest.raises(TrainingError, match="apply scipy.special.expit"):
        logloss([1, 0], [2.5, -1.0])


def test_rmse_equals_sklearn_and_hand_value(binary):
    _, score, weight = binary
    target = score * 2 + 1
    pred = target + np.sin(score)
    expected = np.sqrt(mean_squared_error(target, pred, sample_weight=weight))
    assert rmse(target, pred, weight) == pytest.approx(expected, rel=1e-12)
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(np.sqrt(4 / 3))


# -- ranking metrics --------------------------------------------------------------------------------


@pytest.fixture
def queries() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """60 queries of 8 rows each, graded relevance 0..3, every query with a relevant row; shuffled."""
    rng = np.random.default_rng(3)
    rel = rng.integers(0, 4, (60, 8)).astype(float)
    rel[:, 0] = np.maximum(rel[:, 0], 1)
    score = rel + rng.normal(scale=1.5, size=rel.shape)
    group = np.repeat(np.arange(60) * 7 + 100, 8)
    perm = rng.permutation(rel.size)
    return rel, score, (rel.ravel()[perm], score.ravel()[perm], group[perm])


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_ndcg_equals_sklearn_with_exponential_gains(queries, k):
    rel, score, (y, s, g) = queries
    expected = ndcg_score(2**rel - 1, score, k=k)
    assert ndcg_at_k(y, s, g, k) == pytest.approx(expected, rel=1e-12)


def test_ndcg_averages_tied_scores_like_sklearn(queries):
    rel, score, (y, s, g) = queries
    expected = ndcg_score(2**rel - 1, np.round(score), k=4)
    assert ndcg_at_k(y, np.round(s), g, 4) == pytest.approx(expected, rel=1e-12)


def test_ndcg_by_hand_and_groups_without_relevance_left_out():
    # query a: relevant item ranked second -> 1 / log2(3); query b: perfect -> 1; query c: no relevance
    y = [0, 1, 2, 1, 0, 0]
    score = [0.9, 0.1, 0.8, 0.3, 0.5, 0.2]
    group = ["a", "a", "b", "b", "c", "c"]
    assert ndcg_at_k(y, score, group, k=2) == pytest.approx((1 / np.log2(3) + 1.0) / 2)
    with pytest.raises(TrainingError, match="no query group has a relevant row"):
        ndcg_at_k([0, 0], [0.1, 0.2], ["a", "a"], k=2)


def test_precision_at_k_by_hand():
    y = [1, 0, 1, 0, 0, 1, 1, 0, 0]
    score = [0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.5, 0.4]
    group = [1, 1, 1, 1, 2, 2, 2, 3, 3]
    # group 1 top-2: [1, 0] -> 1/2; group 2 top-2: [1 (0.3), 1 (0.2)] -> 1; group 3 has no positive
    assert precision_at_k(y, score, group, k=2) == pytest.approx(0.75)
    # k larger than the groups: divide by the group size -> (2/4 + 2/3) / 2
    assert precision_at_k(y, score, group, k=10) == pytest.approx((0.5 + 2 / 3) / 2)
    # a tie across the cut-off counts as its expected value: top-1 of [1, 0] tied -> 0.5
    assert precision_at_k([1, 0], [0.5, 0.5], ["q", "q"], k=1) == 0.5


def test_precision_matches_a_per_group_loop(queries):
    _, _, (y, s, g) = queries
    frame = pd.DataFrame({"y": y > 0, "s": s, "g": g})
    expected = frame.groupby("g").apply(lambda d: d.nlargest(3, "s")["y"].mean(), include_groups=False).mean()
    assert precision_at_k(y, s, g, 3) == pytest.approx(expected)


def test_ranking_metrics_validate_k():
    message = r"^The 'k' parameter must be an int in \[1, inf\). Got 0 instead.$"
    with pytest.raises(TrainingError, match=message):
        precision_at_k([1], [0.1], [1], k=0)


# -- per-entity AUC ---------------------------------------------------------------------------------


def test_per_entity_auc_matches_a_groupby_loop(binary):
    y, score, _ = binary
    entity = np.random.default_rng(1).choice(["m1", "m2", "m3", "m4", "m5", "m6", "solo"], size=y.size)
    entity[entity == "solo"] = "m1"
    y = y.copy()
    y[entity == "m6"] = 1  # one entity with a single class: no AUC
    mean, table = per_entity_auc(y, score, entity, min_rows=5)

    aucs, rows = {}, {}
    for key, frame in pd.DataFrame({"y": y, "s": score, "e": entity}).groupby("e"):
        rows[key] = len(frame)
        if frame["y"].nunique() == 2:
            aucs[key] = roc_auc_score(frame["y"], frame["s"])
    assert list(table.columns) == ["entity", "rows", "positives", "auc"]
    assert table["entity"].tolist() == sorted(rows)
    assert table.set_index("entity")["rows"].to_dict() == rows
    assert np.isnan(table.set_index("entity").loc["m6", "auc"])
    for key, value in aucs.items():
        assert table.set_index("entity").loc[key, "auc"] == pytest.approx(value, abs=1e-12)
    expected = sum(rows[e] * a for e, a in aucs.items()) / sum(rows[e] for e in aucs)
    assert mean == pytest.approx(expected, abs=1e-12)


def test_per_entity_auc_min_rows_drops_small_entities():
    y = [0, 1, 0, 1, 1, 0]
    score = [0.1, 0.9, 0.8, 0.2, 0.7, 0.3]
    entity = ["big", "big", "big", "big", "small", "small"]
    mean, table = per_entity_auc(y, score, entity, min_rows=3)
    assert mean == 0.75 and np.isnan(table.set_index("entity").loc["small", "auc"])
    mean_all, _ = per_entity_auc(y, score, entity)
    assert mean_all == pytest.approx((4 * 0.75 + 2 * 1.0) / 6)
    with pytest.raises(TrainingError, match="no entity has both classes and at least 10 rows"):
        per_entity_auc(y, score, entity, min_rows=10)


# -- evaluate ---------------------------------------------------------------------------------------


def test_evaluate_collects_metrics_by_name(queries):
    _, _, (y, s, g) = queries
    label = (y > 1).astype(int)
    prob = 1 / (1 + np.exp(-s))
    got = evaluate(label, prob, metrics=("auc", "logloss", "precision", "ndcg@3", "per_entity_auc"),
                   group=g, entity=g, k=5)
    assert list(got) == ["auc", "logloss", "precision@5", "ndcg@3", "per_entity_auc"]
    assert got["auc"] == pytest.approx(roc_auc_score(label, prob))
    assert got["ndcg@3"] == ndcg_at_k(label, prob, g, 3)
    assert got["precision@5"] == precision_at_k(label, prob, g, 5)


def test_evaluate_errors_name_the_fix():
    with pytest.raises(TrainingError, match="Unknown metric 'acu'. Use one of: auc, logloss"):
        evaluate([0, 1], [0.2, 0.8], metrics=("acu",))
    with pytest.raises(TrainingError, match="pass group=<query ids>"):
        evaluate([0, 1], [0.2, 0.8], metrics=("ndcg",))
