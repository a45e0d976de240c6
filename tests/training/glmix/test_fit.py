"""Coordinate descent end to end: random effects help, the best pass is kept, errors are clear."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proml_lab.errors import TrainingError
from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix

MEMBERS, DOCS = 200, 60
_TRUE = np.random.default_rng(99)
MEMBER_EFFECT = _TRUE.normal(size=(MEMBERS, 2))  # per-member intercept and slope on x1
DOC_EFFECT = _TRUE.normal(size=DOCS)


def simulate(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                       "member_id": rng.integers(0, MEMBERS, n),
                       "doc_id": np.char.add("job", rng.integers(0, DOCS, n).astype(str)).astype(object)})
    doc = df["doc_id"].str[3:].astype(int).to_numpy()
    eta = (0.8 * df.x1 - 0.5 * df.x2 + MEMBER_EFFECT[df.member_id, 0] + MEMBER_EFFECT[df.member_id, 1] * df.x1
           + DOC_EFFECT[doc])
    df["label"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


TRAIN, VALID = simulate(12_000, 1), simulate(4_000, 2)
EFFECTS = (RandomEffect("per_member", "member_id", ("x1",)), RandomEffect("per_document", "doc_id", ()))


def test_random_effects_improve_validation_auc_and_events_are_reported():
    events: list[dict] = []
    spec = GLMixSpec(features=("x1", "x2"), random_effects=EFFECTS, passes=3)
    model = fit_glmix(TRAIN, spec, validation=VALID, callback=events.append)
    fixed_only = fit_glmix(TRAIN, GLMixSpec(features=("x1", "x2"), passes=1), validation=VALID)
    auc = max(h["validation_metric"] for h in model.history_)
    base = fixed_only.history_[0]["validation_metric"]
    assert auc > base + 0.08
    coords = [(e["pass"], e["coordinate"]) for e in events if e["event"] == "coordinate"]
    assert coords == [(p, c) for p in (1, 2, 3) for c in ("fixed", "per_member", "per_document")]
    passes = [e for e in events if e["event"] == "pass"]
    assert [e["pass"] for e in passes] == [1, 2, 3]
    assert set(passes[0]) == {"event", "pass", "train_loss", "validation_metric", "seconds"}
    assert passes[-1]["train_loss"] < passes[0]["train_loss"]
    assert model.history_[model.best_pass_ - 1]["validation_metric"] == auc
    # the true per-member slopes are recovered (shrunk, but strongly correlated)
    table = model.coefficient_table("per_member")
    assert table.columns.tolist() == ["member_id", "x1", "intercept"]
    assert np.corrcoef(table["x1"], MEMBER_EFFECT[table["member_id"], 1])[0, 1] > 0.6


def test_best_pass_is_kept_not_the_last():
    calls: list[dict] = []
    # a validation set whose labels the random effects get wrong: pass 1 (fixed + effects) gets worse later
    spec = GLMixSpec(features=("x1", "x2"), random_effects=EFFECTS, passes=3)
    flipped = VALID.assign(label=np.where(VALID.member_id % 2 == 0, 1 - VALID.label, VALID.label))
    model = fit_glmix(TRAIN, spec, validation=flipped, callback=calls.append)
    metrics = [h["validation_metric"] for h in model.history_]
    assert model.best_pass_ == int(np.argmax(metrics)) + 1 < 3  # here the first pass validates best
    scores = model.predict_margin(flipped)
    from proml_lab.training.glmix.fit import validation_metric

    assert validation_metric("logistic", flipped.label.to_numpy(), scores) == pytest.approx(max(metrics))
    no_valid = fit_glmix(TRAIN, spec)
    assert no_valid.best_pass_ == 3 and np.isnan(no_valid.history_[0]["validation_metric"])


def test_external_fixed_margin_replaces_the_fixed_effect():
    margin = 0.8 * TRAIN.x1.to_numpy() - 0.5 * TRAIN.x2.to_numpy()
    spec = GLMixSpec(random_effects=EFFECTS, passes=2)
    model = fit_glmix(TRAIN, spec, fixed_margin=margin, validation=VALID,
                      validation_fixed_margin=0.8 * VALID.x1.to_numpy() - 0.5 * VALID.x2.to_numpy())
    assert model.fixed_["external"] and model.history_[-1]["validation_metric"] > 0.75
    scores = model.predict_margin(VALID, fixed_margin=np.zeros(len(VALID)))
    np.testing.assert_allclose(scores, model.effect_margin(VALID, "per_member")
                               + model.effect_margin(VALID, "per_document"))
    with pytest.raises(TrainingError, match="fitted on an external fixed margin; pass fixed_margin="):
        model.predict_margin(VALID)


@pytest.mark.parametrize("family", ["linear", "poisson"])
def test_other_families_fit_and_report_their_metric(family: str):
    rng = np.random.default_rng(7)
    df = TRAIN.copy()
    eta = 0.3 * df.x1 + 0.2 * MEMBER_EFFECT[df.member_id, 0]
    df["label"] = eta + rng.normal(size=len(df)) if family == "linear" else rng.poisson(np.exp(eta))
    spec = GLMixSpec(family=family, features=("x1",), random_effects=EFFECTS[:1])
    model = fit_glmix(df, spec, validation=df)
    assert model.history_[-1]["validation_metric"] < model.history_[0]["validation_metric"] + 1e-9
    assert model.predict(df).shape == (len(df),)


def test_vector_features_expand_to_their_width():
    df = TRAIN.head(2000).assign(v=list(np.c_[TRAIN.x1.head(2000), TRAIN.x2.head(2000)]))
    a = fit_glmix(df, GLMixSpec(features=("v",), passes=1))
    b = fit_glmix(df, GLMixSpec(features=("x1", "x2"), passes=1))
    assert a.fixed_["features"] == ["v_0", "v_1"]
    np.testing.assert_allclose(a.fixed_["coefficients"], b.fixed_["coefficients"], atol=1e-10)


# ---- errors ------------------------------------------------------------------------------------------


def _error(df: pd.DataFrame, spec: GLMixSpec, **kw) -> str:
    with pytest.raises(TrainingError) as info:
        fit_glmix(df, spec, **kw)
    return str(info.value)


def test_unknown_family():
    assert _error(TRAIN, GLMixSpec(family="gamma")) == (
        "unknown GLM family 'gamma'; choose one of logistic, linear, poisson")


def test_missing_column():
    assert _error(TRAIN, GLMixSpec(features=("x1", "nope"))) == (
        "column 'nope' (listed in fixed-effect features) is missing from the data; add it or remove it "
        "from the spec")
    spec = GLMixSpec(random_effects=(RandomEffect("per_member", "member", ()),))
    assert _error(TRAIN, spec) == (
        "entity column 'member' of random effect 'per_member' is missing from the data")


def test_nan_in_a_feature():
    df = TRAIN.head(100).copy()
    df.loc[[3, 7], "x2"] = np.nan
    assert _error(df, GLMixSpec(features=("x1", "x2"))) == (
        "column 'x2' has 2 row(s) with NaN or infinite values; fill or drop them before fitting")


def test_non_numeric_feature():
    assert _error(TRAIN, GLMixSpec(features=("doc_id",))) == (
        "column 'doc_id' holds non-numeric values or vectors of different lengths; a feature must be "
        "numeric or a vector of one fixed length")


def test_logistic_labels_must_be_zero_or_one():
    assert _error(TRAIN.assign(label=TRAIN.label * 2), GLMixSpec(features=("x1",))) == (
        "the logistic family needs labels 0 or 1; found [2.0]")


def test_parameter_ranges():
    assert _error(TRAIN, GLMixSpec(passes=0)) == (
        "The 'passes' parameter of GLMixSpec must be an int in [1, inf). Got 0 instead.")
    assert _error(TRAIN, GLMixSpec(features="x1")) == (  # type: ignore[arg-type]
        "The 'features' parameter of GLMixSpec must be a tuple of column names. Got 'x1' instead.")
    spec = GLMixSpec(random_effects=(RandomEffect("per_member", "member_id", (), l2=0.0),))
    assert _error(TRAIN, spec) == (
        "The 'l2' parameter of RandomEffect must be a float in (0.0, inf). Got 0.0 instead.")


def test_fixed_margin_needs_validation_margin():
    msg = _error(TRAIN, GLMixSpec(random_effects=EFFECTS), fixed_margin=np.zeros(len(TRAIN)),
                 validation=VALID)
    assert msg.startswith("fit_glmix got fixed_margin but validation has none")
