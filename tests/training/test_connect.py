"""Photon-Connect: training every trainable node of a Quasar program, in DAG order, on real data frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proml_lab.errors import TrainingError
from proml_lab.quasar import compile
from proml_lab.quasar.engine import QueryBatch
from proml_lab.training.connect import train
from proml_lab.training.metrics import auc

GLMIX = """
MODEL synthetic_glmix;
INPUT MEMBER double m1;
INPUT DOCUMENT double x1;
INPUT DOCUMENT double x2;
TRAINABLE glmix = GLMix([x1, x2, m1], {"per_member": [x1, 1], "per_document": [1], "l2": 1.0});
ranked = ORDER DOCUMENTS BY glmix WITH DESC;
RETURN ranked;
TRAINING CONFIG {label: y, metrics: ["auc", "logloss", "ndcg@5"]}
"""


def synthetic(n: int = 12_000, seed: int = 0) -> pd.DataFrame:
    """Rows whose click odds have a global part, a per-member slope and intercept and a per-job intercept."""
    rng = np.random.default_rng(seed)
    members, jobs = rng.integers(0, 300, n), rng.integers(0, 150, n)
    member_bias, member_slope = rng.normal(0, 1.0, 300), rng.normal(0, 0.8, 300)
    job_bias = rng.normal(0, 0.8, 150)
    m1 = rng.normal(size=300)[members]
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    eta = 0.8 * x1 - 0.5 * x2 + 0.3 * m1 + member_bias[members] + member_slope[members] * x1 + job_bias[jobs]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"member_id": members, "job_id": jobs, "m1": m1, "x1": x1, "x2": x2, "y": y})


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = synthetic()
    return data.iloc[:9_000].reset_index(drop=True), data.iloc[9_000:].reset_index(drop=True)


def test_glmix_program_learns_global_and_per_entity_parts(frames):
    train_df, val_df = frames
    events: list[dict] = []
    model = train(GLMIX, train_df, validation=val_df, callback=events.append)

    glmix = model.models["glmix"]
    x1, x2 = glmix.fixed_["coefficients"][:2]
    assert 0.5 < x1 < 1.1 and -0.7 < x2 < -0.3
    assert set(model.metrics) == {"auc", "logloss", "ndcg@5"}
    assert len(glmix.effects_["per_member"]["ids"]) == 300
    assert model.state["glmix"]["per_member"]["coefficients"].shape == (300, 2)  # x1 slope + intercept

    fixed_only = train(GLMIX.replace('"per_member": [x1, 1], "per_document": [1], ', ""), train_df,
                       validation=val_df)
    assert model.metrics["auc"] > fixed_only.metrics["auc"] + 0.05

    kinds = [e["event"] for e in events]
    assert kinds[0] == "node" and kinds[-1] == "done" and "pass" in kinds
    assert model.data_fingerprint == train(GLMIX, train_df, state=model.state).data_fingerprint


def test_trained_state_ranks_in_the_serving_engine_as_it_scores(frames):
    train_df, val_df = frames
    model = train(GLMIX, train_df, validation=val_df)
    one = val_df[val_df["member_id"] == val_df["member_id"].iloc[0]].reset_index(drop=True)
    batch = QueryBatch(documents={"x1": one["x1"].to_numpy(), "x2": one["x2"].to_numpy()},
                       member={"m1": one["m1"].to_numpy()[:1]}, query_index=np.zeros(len(one), np.int64),
                       member_ids=one["member_id"].to_numpy()[:1], document_ids=one["job_id"].to_numpy())
    ranked = model.engine().rank(batch)
    scores = model.score(one)
    np.testing.assert_allclose(ranked.scores, np.sort(scores)[::-1], rtol=1e-9)


def test_trees_train_first_and_glmix_learns_on_top_of_their_margin(frames):
    train_df, val_df = frames
    program = """
INPUT MEMBER double m1;
INPUT DOCUMENT double x1;
INPUT DOCUMENT double x2;
TRAINABLE trees = TreeEnsemble([x1, x2, m1], {"num_trees": 30, "max_depth": 3});
double margin = DecisionTreesScorer(trees);
TRAINABLE glmix = GLMix([x1], {"per_member": [x1, 1], "per_document": [1], "offset": margin});
ranked = ORDER DOCUMENTS BY glmix WITH DESC;
RETURN ranked;
TRAINING CONFIG {label: y}
"""
    events: list[dict] = []
    model = train(program, train_df, validation=val_df, callback=events.append)
    assert [e["node"] for e in events if e["event"] == "node"] == ["trees", "glmix"]
    assert any(e["event"] == "round" for e in events)
    trees_only = auc(val_df["y"], model.score(val_df, "margin"))
    assert model.metrics["auc"] > trees_only + 0.05  # per-entity effects on top of the trees


def test_logistic_scorer_matches_scikit_learn(frames):
    from sklearn.linear_model import LogisticRegression

    train_df, _ = frames
    program = """
INPUT DOCUMENT double x1;
INPUT DOCUMENT double x2;
TRAINABLE lin = LogisticScorer([x1, x2], {"l2": 2.0});
ranked = ORDER DOCUMENTS BY lin WITH DESC;
RETURN ranked;
"""
    model = train(program, train_df, label="y")
    ref = LogisticRegression(C=1 / 2.0, tol=1e-10, max_iter=10_000).fit(train_df[["x1", "x2"]], train_df["y"])
    np.testing.assert_allclose(model.state["lin"]["coefficients"], ref.coef_[0], atol=1e-4)
    assert model.state["lin"]["intercept"] == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_clear_errors_for_what_training_cannot_do(frames):
    train_df, _ = frames
    with pytest.raises(TrainingError, match=r"no label: pass label=\.\.\. or write TRAINING CONFIG"):
        train(GLMIX.split("TRAINING CONFIG")[0], train_df)
    with pytest.raises(TrainingError, match="the training data has no label column 'clicked'"):
        train(GLMIX, train_df, label="clicked")
    keras = """
INPUT DOCUMENT double x1;
TRAINABLE k = KerasModel([x1]);
ranked = ORDER DOCUMENTS BY k WITH DESC;
RETURN ranked;
"""
    with pytest.raises(TrainingError) as err:
        train(keras, train_df, label="y")
    assert str(err.value) == "node 'k' (KerasModel) has no trainer; pass its trained state with state={'k': ...}"
    with pytest.raises(Exception, match="no column for input feature"):
        train(GLMIX, train_df.drop(columns=["x2"]))


@pytest.mark.spark
def test_a_spark_frame_is_scored_and_fitted_on_spark_to_the_same_model(spark, frames):
    train_df, val_df = frames
    program = GLMIX.replace("TRAINABLE glmix = GLMix([x1, x2, m1]", "double x12 = x1 * x2;\n"
                            "TRAINABLE glmix = GLMix([x1, x2, m1, x12]")
    local = train(program, train_df, validation=val_df)
    on_spark = train(program, spark.createDataFrame(train_df), validation=val_df)
    for part in ("per_member", "per_document"):
        np.testing.assert_array_equal(on_spark.state["glmix"][part]["ids"], local.state["glmix"][part]["ids"])
        np.testing.assert_allclose(on_spark.state["glmix"][part]["coefficients"],
                                   local.state["glmix"][part]["coefficients"], atol=1e-4)
    np.testing.assert_allclose(on_spark.state["glmix"]["fixed"]["coefficients"],
                               local.state["glmix"]["fixed"]["coefficients"], atol=1e-4)
    assert on_spark.metrics["auc"] == pytest.approx(local.metrics["auc"], abs=1e-4)


def test_tracking_logs_parameters_metrics_per_pass_and_the_program(workspace, frames):
    from proml_lab.training.tracking import Tracker

    train_df, val_df = frames
    tracker = Tracker(workspace)
    with tracker.start_run("synthetic") as run:
        model = train(GLMIX, train_df, validation=val_df, run=run)
    assert model.run_id == run.run_id
    runs = tracker.runs()
    row = runs[runs["run_id"] == run.run_id].iloc[0]
    assert row["status"] == "FINISHED" and row["metrics.auc"] == pytest.approx(model.metrics["auc"])
    assert row["params.glmix.l2"] == "1.0" and row["params.label"] == "y"
    assert "metrics.ndcg_at_5" in runs.columns  # '@' is not allowed in MLflow metric names
    history = tracker.metric_history(run.run_id, "glmix.validation_metric")
    assert [step for step, _ in history] == [1, 2]
    artifacts = workspace.mlflow_artifact_root / "proml" / run.run_id / "artifacts"
    assert "TRAINABLE glmix = GLMix" in (artifacts / "program.quasar").read_text()
    assert compile(GLMIX).to_json()["nodes"][0]["id"] in (artifacts / "ir.json").read_text()


def test_a_categorical_input_is_one_hot_encoded_with_the_vocabulary_serving_uses(frames):
    train_df, val_df = frames
    regions = np.array(["north", "south", "east"])
    train_df = train_df.assign(region=regions[train_df["job_id"] % 3])
    train_df["y"] = np.where(train_df["region"] == "south", 1.0, train_df["y"])  # south: always clicked
    program = """
INPUT DOCUMENT double x1;
INPUT DOCUMENT Categorical region;
TRAINABLE glmix = GLMix([x1, region], {"l2": 0.1});
ranked = ORDER DOCUMENTS BY glmix WITH DESC;
RETURN ranked;
"""
    model = train(program, train_df, label="y")
    assert model.state["glmix"]["vocabularies"] == {"features.1": ["east", "north", "south"]}
    east, north, south = model.state["glmix"]["fixed"]["coefficients"][1:]
    assert south > east + 2 and south > north + 2
    probe = pd.DataFrame({"x1": [0.0, 0.0], "region": ["south", "north"]})
    high, low = model.score(probe)
    assert high - low == pytest.approx(south - north)


def test_scoring_an_unordered_program_asks_for_the_node(frames):
    train_df, val_df = frames
    unordered = """
INPUT DOCUMENT double x1;
TRAINABLE lin = LogisticScorer([x1]);
likely = FILTER DOCUMENTS WHERE lin > 0.5;
RETURN likely;
"""
    model = train(unordered, train_df, label="y")
    with pytest.raises(Exception, match=r"RETURN is not ordered by a score \(no ORDER \.\.\. BY\); name the node"):
        model.score(val_df)
    assert model.score(val_df, "lin").shape == (len(val_df),)
