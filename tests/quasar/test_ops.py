"""Built-in Quasar operators: their vectorized implementations and the registry."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from proml_lab.errors import MissingDependencyError
from proml_lab.quasar.errors import QuasarNameError, QuasarParamError, QuasarStateError
from proml_lab.quasar.ops import OPERATORS, QType, get_operator, reload_plugins, run_operator

PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"


def call(name, state=None, ids=None, **bound):
    return run_operator(get_operator(name), bound, state=state, ids=ids, node_id="n")


def test_unknown_operator_lists_closest_names():
    with pytest.raises(QuasarNameError) as err:
        get_operator("CosinSimilarity")
    assert err.value.message == ("unknown operator 'CosinSimilarity'; "
                                 "did you mean CosineSimilarity, SimilarityFeatureProducer?")


def test_param_validation_uses_one_template():
    op = get_operator("TreeEnsemble")
    with pytest.raises(QuasarParamError) as err:
        op.validate_params({"num_tree": 10})
    assert err.value.message == ("The 'num_tree' parameter is not a parameter of TreeEnsemble; allowed: "
                                 "learning_rate, max_depth, num_trees, objective. Got 10 instead.")
    with pytest.raises(QuasarParamError) as err:
        op.validate_params({"max_depth": 0})
    assert err.value.message == ("The 'max_depth' parameter of TreeEnsemble is invalid: input should be "
                                 "greater than or equal to 1. Got 0 instead.")


def test_similarities():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(call("CosineSimilarity", a=a, b=b), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(call("DotProduct", a=a, b=b), [2.0, 0.0, 0.0])
    cos = call("SimilarityFeatureProducer", left=[a], right=[b], options=["", "cosine", {}])
    dot = call("SimilarityFeatureProducer", left=[a], right=[b], options=["", "dot"])
    assert cos.shape == (3, 1)
    np.testing.assert_allclose(dot[:, 0], [2.0, 0.0, 0.0])


def test_cosine_of_float32_and_read_only_candidates():
    """float32 embeddings are computed in float32 (no float64 copy) to ~1e-7; the norms of a read-only
    candidate matrix are reused across calls, a writeable one is always read afresh."""
    rng = np.random.default_rng(3)
    docs = rng.normal(size=(5000, 16))
    member = np.broadcast_to(rng.normal(size=16), docs.shape)  # the engine's one-query view
    want = docs @ member[0] / (np.linalg.norm(docs, axis=1) * np.linalg.norm(member[0]))

    frozen = docs.astype(np.float32)
    frozen.flags.writeable = False
    for _ in range(2):  # the second call reads the cached norms
        got = call("CosineSimilarity", a=member, b=frozen)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    live = docs.copy()
    np.testing.assert_allclose(call("CosineSimilarity", a=member, b=live), want, rtol=1e-9, atol=1e-12)
    live *= np.linspace(0.5, 3.0, len(live))[:, None]  # same direction, new norms: cosine unchanged
    live[0] = -live[0]  # and one direction flipped
    want[0] = -want[0]
    np.testing.assert_allclose(call("CosineSimilarity", a=member, b=live), want, rtol=1e-9, atol=1e-12)


def test_elementwise():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(call("Log1p", x=np.array([0.0, np.e - 1])), [0.0, 1.0])
    np.testing.assert_allclose(call("Clip", x=x, params={"min": -1, "max": 1}), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(call("Sigmoid", x=np.array([0.0, 1000.0, -1000.0])), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(call("Abs", x=x), [2.0, 0.0, 3.0])
    np.testing.assert_allclose(call("Mul", left=0.5, right=x), [-1.0, 0.0, 1.5])
    np.testing.assert_allclose(call("Or", left=x, right=np.zeros(3)), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(call("Eq", left=np.array(["a", "b"], dtype=object), right="a"), [1.0, 0.0])


def test_encodings():
    cats = np.array(["eng", "law", "art"], dtype=object)
    np.testing.assert_array_equal(call("OneHot", x=cats, params={"categories": ["law", "eng"]}),
                                  [[0, 1], [1, 0], [0, 0]])
    hashed = call("Hash", x=cats, params={"buckets": 7})
    assert hashed.dtype == object and all(0 <= int(h) < 7 for h in hashed)
    np.testing.assert_array_equal(hashed, call("Hash", x=cats, params={"buckets": 7}))  # stable
    buckets = call("Bucketize", x=np.array([0.5, 1.0, 7.0]), params={"boundaries": [1.0, 5.0]})
    assert list(buckets) == ["0", "1", "2"]
    assert list(call("Cross", a=cats[:2], b=np.array(["x", "y"], dtype=object))) == ["eng_x_x", "law_x_y"]
    concat = call("Concat", parts=[np.ones(2), np.zeros((2, 2))])
    np.testing.assert_array_equal(concat, [[1, 0, 0], [1, 0, 0]])
    parts = {"parts": [QType("double"), QType("Vector", 4)]}
    assert get_operator("Concat").output_type(parts, {}) == QType("Vector", 5)
    categories = {"params": {"categories": ["a", "b", "c"]}}
    assert get_operator("OneHot").output_type({}, categories) == QType("Vector", 3)


def test_state_based_operators():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    proj = call("Projection", x=x, params={"dim": 1}, state={"weights": [[1.0], [1.0]], "bias": [0.5]})
    np.testing.assert_allclose(proj, [[3.5], [7.5]])
    table = {"keys": ["a", "b"], "table": [[1.0, 1.0], [2.0, 2.0]]}
    keys = np.array(["b", "zz", "a"], dtype=object)
    emb = call("EmbeddingLookup", key=keys, params={"dim": 2}, state=table)
    np.testing.assert_allclose(emb, [[2, 2], [0, 0], [1, 1]])
    linear = {"coefficients": [1.0, -1.0, 2.0], "intercept": 0.5}
    feats = [np.array([1.0, 2.0]), np.array([[0.0, 1.0], [1.0, 0.0]])]
    np.testing.assert_allclose(call("LinearScorer", features=feats, state=linear), [3.5, 1.5])
    logistic = call("LogisticScorer", features=feats, state=linear)
    np.testing.assert_allclose(logistic, 1 / (1 + np.exp([-3.5, -1.5])))


def test_glmix_is_fixed_margin_plus_looked_up_random_effects():
    state = {
        "fixed": {"coefficients": [2.0], "intercept": 1.0},
        "per_member": {"ids": ["m1", "m2"], "coefficients": [[1.0, 0.0, 0.0], [0.0, 10.0, 0.0]]},
        "per_document": {"ids": ["j1"], "coefficients": [[3.0]]},
        "vocabularies": {"per_member.1": ["x", "y"]},
    }
    params = {"per_member": [np.array([1.0, 1.0, 1.0]), np.array(["x", "y", "x"], dtype=object)],
              "per_document": [np.array([1.0, 1.0, 1.0])], "offset": np.array([0.0, 0.0, 100.0])}
    ids = {"member": np.array(["m1", "m2", "m3"]), "document": np.array(["j1", "j2", "j1"])}
    score = call("GLMix", features=[np.array([1.0, 2.0, 3.0])], params=params, state=state, ids=ids)
    # fixed 2x+1; m1 -> +1 (first column), m2 -> +10 * onehot(y)[x] = 0; m3 unknown -> 0; j1 -> +3
    np.testing.assert_allclose(score, [3 + 1 + 3, 5 + 0, 7 + 0 + 3 + 100])


def test_untrained_node_says_what_to_do():
    message = r"node 'n' \(TreeEnsemble\) has not been trained; train the program"
    with pytest.raises(QuasarStateError, match=message):
        call("TreeEnsemble", features=[np.ones(2)], params={})


def test_a_missing_xgboost_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)  # what a broken installation looks like
    with pytest.raises(MissingDependencyError, match=r"xgboost is not installed. Install it with: pip install proml-lab"):
        call("TreeEnsemble", features=[np.ones(2)], params={}, state=object())


def test_plugin_operator_is_found_through_its_entry_point(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(PLUGIN_DIR), *sys.path])
    reload_plugins()
    assert "Squash" in OPERATORS.names()
    np.testing.assert_allclose(call("Squash", x=np.array([1.0, -3.0])), [0.5, -0.75])
