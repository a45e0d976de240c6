"""The Spark path fits the same model as the local path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proml_lab.errors import TrainingError
from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix, fit_glmix_spark

pytestmark = pytest.mark.spark


def _data(n: int = 2500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "v": list(rng.normal(size=(n, 2))),
                       "member_id": rng.integers(0, 60, n),
                       "doc_id": np.char.add("job", rng.integers(0, 20, n).astype(str)).astype(object),
                       "w": rng.uniform(0.5, 2.0, n), "off": rng.normal(scale=0.2, size=n)})
    eta = df.x1 + 0.5 * np.sin(df.member_id) + 0.3 * np.stack(df.v)[:, 0]
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


def test_spark_fit_equals_local_fit(spark):
    df = _data()
    spec = GLMixSpec(features=("x1", "v"), passes=2, l1=0.5,
                     random_effects=(RandomEffect("per_member", "member_id", ("x1",), upper_bound=30,
                                                  lower_bound=3),
                                     RandomEffect("per_document", "doc_id", (), lower_bound=125)))
    events: list[dict] = []
    local = fit_glmix(df, spec, weight="w", offset="off", validation=df.head(500))
    sdf = spark.createDataFrame(df.assign(v=df.v.map(lambda a: [float(t) for t in a])))
    valid = spark.createDataFrame(sdf.toPandas().head(500))  # a Spark validation set is read to the driver
    remote = fit_glmix_spark(sdf, spec, weight="w", offset="off", validation=valid,
                             callback=events.append)
    assert remote.fixed_["features"] == local.fixed_["features"] == ["x1", "v_0", "v_1"]
    np.testing.assert_allclose(remote.fixed_["coefficients"], local.fixed_["coefficients"], atol=1e-4)
    assert remote.fixed_["intercept"] == pytest.approx(local.fixed_["intercept"], abs=1e-4)
    for name in ("per_member", "per_document"):
        a, b = local.coefficient_table(name), remote.coefficient_table(name)
        assert a.iloc[:, 0].tolist() == b.iloc[:, 0].tolist()
        if name == "per_document":
            assert 0 < len(a) < 20  # lower_bound=125 leaves the smaller documents without a model
        np.testing.assert_allclose(b.iloc[:, 1:].to_numpy(), a.iloc[:, 1:].to_numpy(), atol=1e-4)
    np.testing.assert_allclose([h["train_loss"] for h in remote.history_],
                               [h["train_loss"] for h in local.history_], rtol=1e-6)
    assert [e["coordinate"] for e in events if e["event"] == "coordinate"] == [
        "fixed", "per_member", "per_document"] * 2
    np.testing.assert_allclose(remote.predict_margin(df), local.predict_margin(df), atol=1e-4)


def test_spark_errors_read_like_local_ones(spark):
    df = _data(200)
    df.loc[5, "x1"] = np.nan
    sdf = spark.createDataFrame(df.drop(columns=["v"]))
    with pytest.raises(TrainingError) as info:
        fit_glmix_spark(sdf, GLMixSpec(features=("x1",)))
    assert str(info.value) == ("column 'x1' has 1 row(s) with NaN or infinite values; fill or drop them "
                               "before fitting")
    with pytest.raises(TrainingError,
                       match="column 'nope' \\(listed in fixed-effect features\\) is missing from the"):
        fit_glmix_spark(sdf, GLMixSpec(features=("nope",)))
