"""The fitted model: save/load, coefficient tables and parity with the Quasar GLMix operator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proml_lab.errors import TrainingError
from proml_lab.quasar.engine import LocalEngine
from proml_lab.quasar.engine.local import QueryBatch
from proml_lab.quasar.ir import compile
from proml_lab.training.glmix import GLMixModel, GLMixSpec, RandomEffect, fit_glmix


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 3000
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                       "member_id": rng.integers(0, 40, n),
                       "doc_id": np.char.add("job", rng.integers(0, 25, n).astype(str)).astype(object)})
    eta = df.x1 - 0.5 * df.x2 + 0.5 * np.sin(df.member_id) * df.x1 + 0.3 * np.cos(rng.integers(0, 3, n))
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


@pytest.fixture(scope="module")
def model(data: pd.DataFrame) -> GLMixModel:
    spec = GLMixSpec(features=("x1", "x2"), passes=2,
                     random_effects=(RandomEffect("per_member", "member_id", ("x1",)),
                                     RandomEffect("per_document", "doc_id", (), lower_bound=100)))
    return fit_glmix(data, spec)


def test_save_load_round_trip_scores_identically(model: GLMixModel, data: pd.DataFrame, tmp_path):
    path = tmp_path / "glmix"
    model.save(path)
    assert sorted(p.name for p in path.iterdir()) == ["coefficients", "fixed.json", "spec.json"]
    assert sorted(p.name for p in (path / "coefficients").iterdir()) == ["per_document.parquet",
                                                                         "per_member.parquet"]
    model.save(path)  # replacing an existing model is atomic too
    loaded = GLMixModel.load(path)
    assert loaded.spec == model.spec and loaded.best_pass_ == model.best_pass_
    pd.testing.assert_frame_equal(pd.DataFrame(loaded.history_), pd.DataFrame(model.history_))
    np.testing.assert_array_equal(loaded.predict_margin(data), model.predict_margin(data))
    pd.testing.assert_frame_equal(loaded.coefficient_table("per_document"),
                                  model.coefficient_table("per_document"), check_dtype=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_load_of_a_missing_model_is_clear(tmp_path):
    with pytest.raises(TrainingError, match="no GLMix model at .* \\(spec.json is missing\\)"):
        GLMixModel.load(tmp_path / "none")


def test_coefficient_tables(model: GLMixModel):
    members = model.coefficient_table("per_member")
    assert members.columns.tolist() == ["member_id", "x1", "intercept"]
    assert len(members) == 40
    docs = model.coefficient_table("per_document")
    assert docs.columns.tolist() == ["doc_id", "intercept"]
    assert len(docs) < 25  # lower_bound=100 leaves some documents out (they score 0)
    with pytest.raises(TrainingError,
                       match="unknown random effect 'per_x'; this model has per_member, per_document"):
        model.coefficient_table("per_x")


PROGRAM = """
INPUT DOCUMENT double x1;
INPUT DOCUMENT double x2;
TRAINABLE double glmix = GLMix([x1, x2], {"per_member": [x1, 1], "per_document": [1]});
ranked = ORDER DOCUMENTS BY glmix WITH DESC;
RETURN ranked;
"""


def test_quasar_state_scores_like_predict_margin(model: GLMixModel, data: pd.DataFrame):
    # one query per member, its rows as the candidates (the intercept is the program's trailing `1`)
    rows = data.sort_values("member_id", kind="stable").reset_index(drop=True)
    extra = pd.DataFrame({"x1": [0.5], "x2": [1.0], "member_id": [999], "doc_id": ["unseen"], "label": [0]})
    rows = pd.concat([rows, extra], ignore_index=True)  # an unknown member and document score 0
    members, query_index = np.unique(rows.member_id.to_numpy(), return_inverse=True)
    batch = QueryBatch(documents={"x1": rows.x1.to_numpy(), "x2": rows.x2.to_numpy()},
                       query_index=query_index, member_ids=members, document_ids=rows.doc_id.to_numpy())
    engine = LocalEngine(compile(PROGRAM), state={"glmix": model.to_quasar_state()})
    result = engine.rank(batch, explain=True)
    expected = model.predict_margin(rows)
    assert len(result) == len(rows)
    np.testing.assert_allclose(result.explain["glmix"], expected[result.document_rows], rtol=0, atol=1e-9)
    beta = model.fixed_["coefficients"]
    assert expected[-1] == pytest.approx(0.5 * beta[0] + beta[1] + model.fixed_["intercept"])
