"""XGBoost training (local and xgboost.spark) and scoring the result through Quasar's TreeEnsemble."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from proml_lab.errors import TrainingError
from proml_lab.quasar import compile
from proml_lab.quasar.engine import LocalEngine, QueryBatch
from proml_lab.training.trees import default_device, fit_trees, fit_trees_spark

FEATURES = ["f0", "f1", "f2", "f3"]
PARAMS = {"max_depth": 3, "eta": 0.2, "nthread": 1}  # one thread: steady timings on a busy machine
PROGRAM = "\n".join(f"INPUT DOCUMENT double {f};" for f in FEATURES) + """
TRAINABLE trees = TreeEnsemble([f0, f1, f2, f3]);
double score = DecisionTreesScorer(trees);
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
"""


def make_data(n: int, seed: int = 0, offset_scale: float = 0.0):
    """A nonlinear signal in 4 features, plus (optionally) a per-row offset the features do not show."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    signal = 1.5 * x[:, 0] - x[:, 1] + x[:, 2] * x[:, 3]
    offset = offset_scale * rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal + offset)))).astype(np.float64)
    return x, y, signal, offset


def test_local_fit_learns_a_signal():
    x, y, _, _ = make_data(4_000)
    xt, yt, _, _ = make_data(2_000, seed=1)
    booster = fit_trees(x, y, params=PARAMS, num_rounds=60)
    assert booster.num_boosted_rounds() == 60
    assert roc_auc_score(yt, booster.inplace_predict(xt)) > 0.8


def test_dataframe_columns_become_feature_names():
    x, y, _, _ = make_data(500)
    booster = fit_trees(pd.DataFrame(x, columns=FEATURES), y, params=PARAMS, num_rounds=5)
    assert booster.feature_names == FEATURES


def test_base_margin_carries_the_offset_and_trees_learn_the_residual():
    x, y, signal, offset = make_data(6_000, offset_scale=3.0)
    with_offset = fit_trees(x, y, params=PARAMS, num_rounds=60, base_margin=offset)
    without = fit_trees(x, y, params=PARAMS, num_rounds=60)
    margin = with_offset.inplace_predict(x.astype(np.float32), predict_type="margin")
    # the trees alone recover the residual signal, on a larger scale than a model blind to the offset
    assert np.corrcoef(margin, signal)[0, 1] > 0.9
    assert np.std(margin) > 1.3 * np.std(without.inplace_predict(x, predict_type="margin"))
    # predictions with the offset added are the model's margin plus the offset
    full = with_offset.predict(xgb.DMatrix(x, base_margin=offset), output_margin=True)
    np.testing.assert_allclose(full, margin + offset, rtol=0, atol=1e-4)
    assert roc_auc_score(y, full) > roc_auc_score(y, without.inplace_predict(x)) + 0.05


def test_callback_is_called_every_round_with_metrics():
    x, y, _, _ = make_data(1_000)
    xv, yv, _, _ = make_data(300, seed=2)
    seen: list[tuple[int, dict[str, float]]] = []
    fit_trees(x, y, params=PARAMS, num_rounds=7, eval_set=(xv, yv), callback=lambda r, m: seen.append((r, m)))
    assert [r for r, _ in seen] == list(range(7))
    assert set(seen[-1][1]) == {"train-logloss", "valid-logloss"}
    assert seen[-1][1]["train-logloss"] < seen[0][1]["train-logloss"]


def test_early_stopping_keeps_the_best_rounds():
    x, y, _, _ = make_data(800)
    xv, yv, _, _ = make_data(400, seed=3)
    booster = fit_trees(x, y, params={"max_depth": 6, "eta": 1.0, "nthread": 1}, num_rounds=200,
                        eval_set=(xv, yv), early_stopping_rounds=5)
    assert booster.num_boosted_rounds() == booster.best_iteration + 1 < 200


def test_errors_say_what_is_wrong():
    x, y, _, _ = make_data(100)
    with pytest.raises(TrainingError, match="X has 100 rows but y has 99"):
        fit_trees(x, y[:99])
    bad = y.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(TrainingError, match="y has 2 NaN label"):
        fit_trees(x, bad)
    with pytest.raises(TrainingError, match=r"'objective' parameter of fit_trees must be one of .*"
                                            r"Got 'rank:ndcg' instead"):
        fit_trees(x, y, params={"objective": "rank:ndcg"})
    with pytest.raises(TrainingError, match="base_margin has 5 values but X has 100 rows"):
        fit_trees(x, y, base_margin=np.zeros(5))
    with pytest.raises(TrainingError, match="needs an eval_set"):
        fit_trees(x, y, early_stopping_rounds=3)
    with pytest.raises(TrainingError, match=r"labels in \[0, 1\]"):
        fit_trees(x, y * 2)
    with pytest.raises(TrainingError, match="XGBoost cannot read X"):
        fit_trees(pd.DataFrame({"f0": ["a"] * 100}), y)


def test_default_device_is_cpu_without_a_gpu():
    assert default_device() == "cpu"


def test_trained_booster_scores_through_quasar_tree_ensemble():
    x, y, _, _ = make_data(2_000)
    booster = fit_trees(x, y, params=PARAMS, num_rounds=30)
    rng = np.random.default_rng(5)
    counts = [40, 25, 60]
    docs = {f: rng.normal(size=sum(counts)) for f in FEATURES}
    batch = QueryBatch(documents=docs, query_index=np.repeat(np.arange(len(counts)), counts))
    result = LocalEngine(compile(PROGRAM), state={"trees": booster}).rank(batch, explain=True)
    matrix = np.stack([docs[f] for f in FEATURES], axis=1).astype(np.float32)
    ref = booster.inplace_predict(matrix, predict_type="margin").astype(np.float64)
    np.testing.assert_allclose(result.scores, ref[result.document_rows], rtol=0, atol=1e-6)


@pytest.mark.spark
def test_spark_fit_is_as_good_as_local(spark):
    x, y, _, offset = make_data(2_000, seed=7, offset_scale=1.0)
    xt, yt, _, offset_t = make_data(2_000, seed=8, offset_scale=1.0)
    pdf = pd.DataFrame(x, columns=FEATURES).assign(label=y, offset=offset)
    params = PARAMS  # its nthread is dropped on Spark, where spark.task.cpus sets the threads
    booster = fit_trees_spark(spark.createDataFrame(pdf), FEATURES, "label", params=params, num_rounds=40,
                              base_margin_col="offset", num_workers=2)
    local = fit_trees(x, y, params=params, num_rounds=40, base_margin=offset)
    assert booster.num_boosted_rounds() == 40
    auc_spark = roc_auc_score(yt, booster.inplace_predict(xt, predict_type="margin") + offset_t)
    auc_local = roc_auc_score(yt, local.inplace_predict(xt, predict_type="margin") + offset_t)
    assert auc_spark > 0.8 and abs(auc_spark - auc_local) < 0.02


@pytest.mark.spark
def test_spark_fit_rejects_more_workers_than_slots(spark):
    df = spark.createDataFrame(pd.DataFrame({"f0": [0.0, 1.0], "label": [0.0, 1.0]}))
    with pytest.raises(TrainingError, match="num_workers=8 needs that many free Spark task slots"):
        fit_trees_spark(df, ["f0"], "label", num_workers=8)
    with pytest.raises(TrainingError, match="Columns nope are not in the DataFrame"):
        fit_trees_spark(df, ["nope"], "label")
