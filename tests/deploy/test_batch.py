"""Batch scoring on Spark: the same scores and rankings as the local engine, at cluster scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proml_lab.deploy.batch import evaluate_batch, recommend_batch, score_batch
from proml_lab.quasar.engine import QueryBatch
from proml_lab.quasar.errors import QuasarError
from proml_lab.training.connect import train

pytestmark = pytest.mark.spark

PROGRAM = """
MODEL batch_glmix;
INPUT MEMBER double m1;
INPUT DOCUMENT double x1;
INPUT DOCUMENT double x2;
INPUT DOCUMENT Categorical company;
KEEP TOP 12 DOCUMENTS BY x1;
TRAINABLE glmix = GLMix([x1, x2, m1], {"per_member": [x1, 1], "per_document": [1], "l2": 1.0});
ranked = ORDER DOCUMENTS BY glmix WITH DESC;
diverse = DIVERSIFY ranked BY company MAX 2;
shown = TOP 5 OF diverse;
RETURN shown;
TRAINING CONFIG {label: y, metrics: ["auc", "logloss", "ndcg@5"]}
"""
MEMBERS, JOBS = 40, 30


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(members, jobs, rows)``: entity tables and labelled (member, job) rows joined from them."""
    rng = np.random.default_rng(5)
    members = pd.DataFrame({"member_id": np.arange(MEMBERS), "m1": rng.normal(size=MEMBERS)})
    jobs = pd.DataFrame({"job_id": np.arange(100, 100 + JOBS), "x1": rng.normal(size=JOBS),
                         "x2": rng.normal(size=JOBS), "company": [f"c{i % 7}" for i in range(JOBS)]})
    n = 3_000
    rows = pd.DataFrame({"member_id": rng.integers(0, MEMBERS, n), "job_id": rng.integers(100, 100 + JOBS, n)})
    rows = rows.merge(members, on="member_id").merge(jobs, on="job_id")
    slope = rng.normal(0, 0.8, MEMBERS)[rows["member_id"]]
    eta = 0.8 * rows["x1"] - 0.5 * rows["x2"] + 0.3 * rows["m1"] + slope * rows["x1"]
    rows["y"] = (rng.random(len(rows)) < 1 / (1 + np.exp(-eta))).astype(float)
    return members, jobs, rows


@pytest.fixture(scope="module")
def model(tables):
    return train(PROGRAM, tables[2])


def test_batch_scores_equal_the_models_own_scores(spark, tables, model):
    rows = tables[2].assign(row=np.arange(len(tables[2])))
    scored = score_batch(model, spark.createDataFrame(rows)).toPandas().sort_values("row")
    assert list(scored.columns) == [*rows.columns, "score"]
    assert scored["row"].tolist() == rows["row"].tolist()
    np.testing.assert_allclose(scored["score"], model.score(rows), rtol=1e-9, atol=1e-12)

    with pytest.raises(QuasarError, match="already has a column 'y'"):
        score_batch(model, spark.createDataFrame(rows), output_column="y")


def test_recommendations_equal_the_local_engines_ranking(spark, tables, model):
    members, jobs, _ = tables
    recs = recommend_batch(model, spark.createDataFrame(members), spark.createDataFrame(jobs)).toPandas()
    assert list(recs.columns) == ["member_id", "rank", "job_id", "score"]

    # the same queries, ranked in one local batch: every member against every job
    member_rows = np.repeat(np.arange(MEMBERS), JOBS)
    job_rows = np.tile(np.arange(JOBS), MEMBERS)
    batch = QueryBatch(documents={c: jobs[c].to_numpy()[job_rows] for c in ("x1", "x2", "company")},
                       member={"m1": members["m1"].to_numpy()}, query_index=member_rows,
                       member_ids=members["member_id"].to_numpy(),
                       document_ids=jobs["job_id"].to_numpy()[job_rows])
    local = model.engine().rank(batch)
    per_member = local.per_query()
    assert {len(p) for p in per_member} == {5}
    recs = recs.sort_values(["member_id", "rank"])
    for member, got in recs.groupby("member_id"):
        expected = jobs["job_id"].to_numpy()[job_rows[per_member[member]]]
        assert got["rank"].tolist() == [1, 2, 3, 4, 5]
        assert got["job_id"].tolist() == expected.tolist()
    np.testing.assert_allclose(recs["score"], local.scores, rtol=1e-9)

    top2 = recommend_batch(model, spark.createDataFrame(members), spark.createDataFrame(jobs), k=2,
                           candidates=spark.createDataFrame(pd.DataFrame({"member_id": [0, 0, 1, 1, 1],
                                                                          "job_id": [100, 101, 102, 103, 104]})))
    top2 = top2.toPandas().sort_values(["member_id", "rank"])
    assert top2.groupby("member_id").size().to_dict() == {0: 2, 1: 2}


def test_batch_evaluation_equals_the_models_evaluation(spark, tables, model):
    rows = tables[2]
    got = evaluate_batch(model, spark.createDataFrame(rows))
    expected = model.evaluate(rows)
    assert got.keys() == expected.keys() == {"auc", "logloss", "ndcg@5"}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9)
