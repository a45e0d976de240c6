"""The local columnar engine: real rankings of many queries at once against per-query numpy references."""

from __future__ import annotations

import numpy as np
import pytest

from proml_lab.quasar.engine import LocalEngine, QueryBatch, RankResult
from proml_lab.quasar.errors import QuasarError, QuasarStateError
from proml_lab.quasar.ir import compile
from proml_lab.quasar.ops import Arg, operator

# ---- operators registered by the tests -------------------------------------------------------------------

CALLS: dict[str, list[int]] = {"EngineTestCostly": [], "EngineTestExplode": []}


@operator("EngineTestCostly", args=[Arg("x")], output="double")
def _costly(x):
    """An 'expensive' operator that records how many rows it was asked to score."""
    CALLS["EngineTestCostly"].append(len(x))
    return np.sin(3.0 * np.asarray(x, np.float64)) + np.asarray(x, np.float64)


@operator("EngineTestExplode", args=[Arg("x")], output="double")
def _explode(x):
    CALLS["EngineTestExplode"].append(len(x))
    raise AssertionError("EngineTestExplode must never be called")


@pytest.fixture(autouse=True)
def _reset_calls():
    for calls in CALLS.values():
        calls.clear()


# ---- helpers ---------------------------------------------------------------------------------------------


def make_batch(counts, dim=4, seed=0, **extra_docs):
    """Q queries with *counts* candidates each: member vectors, document vectors and doubles."""
    rng = np.random.default_rng(seed)
    q, n = len(counts), int(sum(counts))
    documents = {"doc_vec": rng.normal(size=(n, dim)), "doc_x": rng.normal(size=n),
                 "cheap": rng.normal(size=n), **extra_docs}
    member = {"member_vec": rng.normal(size=(q, dim))}
    return QueryBatch(documents=documents, member=member,
                      query_index=np.repeat(np.arange(q), counts))


def starts(counts):
    return np.concatenate([[0], np.cumsum(counts)])


SCORER = """
INPUT MEMBER Vector member_vec;
INPUT DOCUMENT Vector doc_vec;
INPUT DOCUMENT double doc_x;
double sim = CosineSimilarity(member_vec, doc_vec);
TRAINABLE double lin = LinearScorer([sim, doc_x]);
ranked = ORDER DOCUMENTS BY lin WITH DESC;
shown = TOP 3 OF ranked;
RETURN shown;
"""
LIN_STATE = {"lin": {"coefficients": np.array([2.0, -0.5]), "intercept": 0.25}}


def reference_scores(batch):
    """Per-query numpy reference of SCORER: cosine then the linear scorer (a loop the engine avoids)."""
    member, docs = batch.member["member_vec"], batch.documents["doc_vec"]
    out = np.empty(len(docs))
    for row, q in enumerate(batch.query_index):
        m, d = member[q], docs[row]
        sim = m @ d / (np.linalg.norm(m) * np.linalg.norm(d))
        out[row] = 2.0 * sim - 0.5 * batch.documents["doc_x"][row] + 0.25
    return out


# ---- scoring and ordering --------------------------------------------------------------------------------


def test_cosine_linear_order_top_match_a_per_query_reference():
    counts = [5, 2, 7]
    batch = make_batch(counts)
    result = LocalEngine(compile(SCORER), state=LIN_STATE).rank(batch)
    assert isinstance(result, RankResult)
    ref = reference_scores(batch)
    bounds = starts(counts)
    got = result.per_query()
    assert len(got) == 3
    for q in range(3):
        lo, hi = bounds[q], bounds[q + 1]
        expected = lo + np.argsort(-ref[lo:hi], kind="stable")[:3]
        np.testing.assert_array_equal(got[q], expected)
    np.testing.assert_allclose(result.scores, ref[result.document_rows])
    np.testing.assert_array_equal(result.query_index, [0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(result.positions, [0, 1, 2, 0, 1, 0, 1, 2])
    assert np.all(np.diff(result.scores[result.query_index == 2]) <= 0)


def test_explain_returns_node_values_for_the_returned_rows():
    batch = make_batch([4, 6])
    result = LocalEngine(compile(SCORER), state=LIN_STATE).rank(batch, explain=True)
    rows = result.document_rows
    np.testing.assert_allclose(result.explain["lin"], reference_scores(batch)[rows])
    np.testing.assert_allclose(result.explain["doc_x"], batch.documents["doc_x"][rows])
    np.testing.assert_allclose(result.explain["member_vec"], batch.member["member_vec"][result.query_index])
    assert result.explain["sim"].shape == (len(rows),)
    frame = result.to_pandas()
    assert list(frame.columns[:4]) == ["query", "position", "document_row", "score"]
    assert len(frame) == len(rows) and "sim" in frame.columns
    assert LocalEngine(compile(SCORER), state=LIN_STATE).rank(batch).explain == {}


def test_unsorted_query_index_ranks_like_the_grouped_batch():
    batch = make_batch([3, 5, 4], seed=3)
    engine = LocalEngine(compile(SCORER), state=LIN_STATE)
    base = engine.rank(batch)
    perm = np.random.default_rng(1).permutation(len(batch.query_index))
    shuffled = QueryBatch(documents={k: v[perm] for k, v in batch.documents.items()}, member=batch.member,
                          query_index=batch.query_index[perm])
    again = engine.rank(shuffled)
    np.testing.assert_array_equal(perm[again.document_rows], base.document_rows)
    np.testing.assert_allclose(again.scores, base.scores)


def test_ascending_order_and_a_query_without_candidates():
    ir = compile("INPUT DOCUMENT double doc_x;\nr = ORDER DOCUMENTS BY doc_x WITH ASC;\nRETURN r;")
    batch = QueryBatch(documents={"doc_x": np.array([3.0, 1.0, 2.0, 0.5, 9.0])},
                       query_index=np.array([0, 0, 0, 2, 2]), num_queries=4)
    got = LocalEngine(ir).rank(batch).per_query()
    assert [g.tolist() for g in got] == [[1, 2, 0], [], [3, 4], []]


# ---- phased ranking --------------------------------------------------------------------------------------

PHASED = """
INPUT DOCUMENT double cheap;
INPUT DOCUMENT double doc_x;
{before}
KEEP TOP 4 DOCUMENTS BY cheap;
{after}
ranked = ORDER DOCUMENTS BY costly WITH DESC;
RETURN ranked;
"""
COSTLY = "double costly = EngineTestCostly(doc_x);"


@pytest.mark.parametrize("declared", ["after", "before"])
def test_keep_runs_the_expensive_node_on_the_kept_rows_only(declared):
    counts = [9, 12, 5, 30]
    batch = make_batch(counts, seed=7)
    src = PHASED.format(before=COSTLY if declared == "before" else "",
                        after=COSTLY if declared == "after" else "")
    result = LocalEngine(compile(src)).rank(batch)
    assert CALLS["EngineTestCostly"] == [4 * len(counts)]

    exhaustive_src = src.replace("KEEP TOP 4 DOCUMENTS BY cheap;", "")
    full = LocalEngine(compile(exhaustive_src)).rank(batch)
    assert CALLS["EngineTestCostly"] == [16, sum(counts)]
    bounds = starts(counts)
    for q, (got, everything) in enumerate(zip(result.per_query(), full.per_query(), strict=True)):
        lo, hi = bounds[q], bounds[q + 1]
        kept = set((lo + np.argsort(-batch.documents["cheap"][lo:hi], kind="stable")[:4]).tolist())
        assert set(got.tolist()) == kept
        np.testing.assert_array_equal(got, [r for r in everything if r in kept])
    x = batch.documents["doc_x"][result.document_rows]
    np.testing.assert_allclose(result.scores, np.sin(3 * x) + x)


def test_two_keeps_narrow_the_candidates_in_turn():
    src = """
INPUT DOCUMENT double cheap;
INPUT DOCUMENT double doc_x;
KEEP TOP 6 DOCUMENTS BY cheap;
double costly = EngineTestCostly(doc_x);
KEEP TOP 2 DOCUMENTS BY costly;
double final = EngineTestCostly(cheap);
ranked = ORDER DOCUMENTS BY final WITH DESC;
RETURN ranked;
"""
    counts = [10, 8, 7]
    batch = make_batch(counts, seed=11)
    result = LocalEngine(compile(src)).rank(batch)
    assert CALLS["EngineTestCostly"] == [18, 6]
    cheap, x = batch.documents["cheap"], batch.documents["doc_x"]
    bounds = starts(counts)
    for q, got in enumerate(result.per_query()):
        lo, hi = bounds[q], bounds[q + 1]
        first = lo + np.argsort(-cheap[lo:hi], kind="stable")[:6]
        costly = np.sin(3 * x[first]) + x[first]
        second = np.sort(first[np.argsort(-costly, kind="stable")[:2]])
        final = np.sin(3 * cheap[second]) + cheap[second]
        np.testing.assert_array_equal(got, second[np.argsort(-final, kind="stable")])


# ---- FILTER and DIVERSIFY --------------------------------------------------------------------------------

LISTS = """
INPUT DOCUMENT double doc_x;
INPUT DOCUMENT double remote;
INPUT DOCUMENT Categorical company;
ranked = ORDER DOCUMENTS BY doc_x WITH DESC;
eligible = FILTER ranked WHERE remote == 1 OR doc_x > 1;
diverse = DIVERSIFY eligible BY company MAX 2;
shown = TOP 4 OF diverse;
RETURN shown;
"""


def test_filter_and_diversify_match_a_per_query_reference():
    counts = [15, 1, 0, 22, 9]
    rng = np.random.default_rng(5)
    n = sum(counts)
    company = rng.choice(np.array(["acme", "globex", "initech", "umbrella"], dtype=object), size=n)
    docs = {"doc_x": rng.normal(size=n), "remote": rng.integers(0, 2, size=n).astype(float),
            "company": company}
    batch = QueryBatch(documents=docs, query_index=np.repeat(np.arange(len(counts)), counts))
    result = LocalEngine(compile(LISTS)).rank(batch)
    bounds = starts(counts)
    for q, got in enumerate(result.per_query()):
        rows = bounds[q] + np.argsort(-docs["doc_x"][bounds[q]:bounds[q + 1]], kind="stable")
        rows = [r for r in rows if docs["remote"][r] == 1 or docs["doc_x"][r] > 1]
        seen: dict[str, int] = {}
        diverse = []
        for r in rows:
            seen[company[r]] = seen.get(company[r], 0) + 1
            if seen[company[r]] <= 2:
                diverse.append(r)
        assert got.tolist() == diverse[:4], q
    np.testing.assert_allclose(result.scores, docs["doc_x"][result.document_rows])


def test_an_unordered_list_has_nan_scores():
    ir = compile("INPUT DOCUMENT double doc_x;\nfirst = TOP 2 OF DOCUMENTS;\nRETURN first;")
    batch = QueryBatch(documents={"doc_x": np.arange(5.0)}, query_index=np.array([0, 0, 0, 1, 1]))
    result = LocalEngine(ir).rank(batch)
    assert result.document_rows.tolist() == [0, 1, 3, 4]
    assert np.isnan(result.scores).all()


# ---- laziness and errors ---------------------------------------------------------------------------------

LAZY = """
INPUT DOCUMENT double doc_x;
INPUT DOCUMENT double unused_input;
TRAINABLE double untrained = LinearScorer([doc_x]);
double boom = EngineTestExplode(doc_x);
double score = 2 * doc_x;
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
"""


def test_unreachable_nodes_are_never_computed():
    ir = compile(LAZY)
    batch = QueryBatch(documents={"doc_x": np.array([1.0, 3.0, 2.0])}, query_index=np.zeros(3, int))
    result = LocalEngine(ir).rank(batch)  # no state for 'untrained', no 'unused_input' column
    assert result.document_rows.tolist() == [1, 2, 0]
    assert CALLS["EngineTestExplode"] == []


def test_a_reachable_untrained_node_raises_the_state_error():
    ir = compile(LAZY.replace("BY score", "BY untrained"))
    batch = QueryBatch(documents={"doc_x": np.array([1.0, 3.0])}, query_index=np.zeros(2, int))
    with pytest.raises(QuasarStateError) as err:
        LocalEngine(ir).rank(batch)
    assert err.value.message.startswith("node 'untrained' (LinearScorer) has not been trained")
    ranked = LocalEngine(ir, state={"untrained": {"coefficients": [-1.0]}}).rank(batch)
    assert ranked.document_rows.tolist() == [0, 1]


def test_missing_input_columns_name_the_features_and_scopes():
    batch = QueryBatch(documents={"doc_vec": np.zeros((2, 4))}, query_index=np.array([0, 1]),
                       member={"other": np.zeros(2)})
    with pytest.raises(QuasarError) as err:
        LocalEngine(compile(SCORER), state=LIN_STATE).rank(batch)
    assert err.value.message == ("the batch has no column for input feature(s) at MEMBER scope: "
                                 "'member_vec'; DOCUMENT scope: 'doc_x'")


def test_length_mismatches_are_clear_errors():
    engine = LocalEngine(compile(SCORER), state=LIN_STATE)
    batch = make_batch([2, 3])
    bad_doc = QueryBatch(documents={**batch.documents, "doc_x": np.zeros(4)}, member=batch.member,
                         query_index=batch.query_index)
    with pytest.raises(QuasarError, match="document column 'doc_x' has 4 rows but query_index has 5"):
        engine.rank(bad_doc)
    bad_member = QueryBatch(documents=batch.documents, member={"member_vec": np.zeros((3, 4))},
                            query_index=batch.query_index)
    with pytest.raises(QuasarError, match=r"must lie in 0 \.\. 1 \(the batch has 2 queries\)"):
        engine.rank(QueryBatch(documents=batch.documents, member=batch.member,
                               query_index=batch.query_index + 1))
    result = engine.rank(bad_member)  # three queries, the last with no candidates
    assert [len(r) for r in result.per_query()] == [2, 3, 0]
    with pytest.raises(QuasarError, match="disagree on the number of queries"):
        engine.rank(QueryBatch(documents=batch.documents, member=batch.member,
                               query_index=batch.query_index, member_ids=np.array(["a"])))


# ---- GLMix -----------------------------------------------------------------------------------------------

GLMIX = """
INPUT MEMBER double m_seniority;
INPUT MEMBER Categorical m_industry;
INPUT DOCUMENT double d_remote;
INPUT DOCUMENT double d_age;
TRAINABLE double glmix = GLMix([d_remote, d_age], {
    "per_member": [d_remote, d_age],
    "per_document": [m_seniority, m_industry]
});
ranked = ORDER DOCUMENTS BY glmix WITH DESC;
RETURN ranked;
"""


def test_glmix_fixed_per_member_and_per_document_coefficients():
    rng = np.random.default_rng(2)
    counts = [4, 6, 3]
    q, n = len(counts), sum(counts)
    member_ids = np.array(["alice", "bob", "carol"], dtype=object)  # carol has no coefficients
    doc_ids = np.array([f"job{i % 5}" for i in range(n)], dtype=object)  # job4 has none
    batch = QueryBatch(
        member={"m_seniority": np.array([1.0, 3.0, 5.0]),
                "m_industry": np.array(["tech", "law", "tech"], dtype=object)},
        documents={"d_remote": rng.integers(0, 2, n).astype(float), "d_age": rng.uniform(0, 30, n)},
        query_index=np.repeat(np.arange(q), counts), member_ids=member_ids, document_ids=doc_ids)
    state = {"glmix": {
        "fixed": {"coefficients": [0.5, -0.02], "intercept": 0.1},
        "vocabularies": {"per_document.1": ["law", "tech"]},
        "per_member": {"ids": ["bob", "alice"], "coefficients": [[1.0, 0.01], [-1.0, 0.03]]},
        "per_document": {"ids": ["job0", "job1", "job2", "job3"],
                         "coefficients": [[0.1, 0.0, 1.0], [0.2, 1.0, 0.0], [-0.3, 0.5, 0.5],
                                          [0.0, 2.0, -2.0]]},
    }}
    result = LocalEngine(compile(GLMIX), state=state).rank(batch, explain=True)

    member_coef = {"bob": [1.0, 0.01], "alice": [-1.0, 0.03]}
    doc_coef = dict(zip(state["glmix"]["per_document"]["ids"],
                        state["glmix"]["per_document"]["coefficients"], strict=True))
    ref = np.empty(n)
    for row in range(n):
        qq = batch.query_index[row]
        remote, age = batch.documents["d_remote"][row], batch.documents["d_age"][row]
        score = 0.1 + 0.5 * remote - 0.02 * age
        score += np.dot(member_coef.get(member_ids[qq], [0.0, 0.0]), [remote, age])
        industry = batch.member["m_industry"][qq]
        design = [batch.member["m_seniority"][qq], float(industry == "law"), float(industry == "tech")]
        score += np.dot(doc_coef.get(doc_ids[row], [0.0, 0.0, 0.0]), design)
        ref[row] = score
    np.testing.assert_allclose(result.explain["glmix"], ref[result.document_rows])
    bounds = starts(counts)
    for qq, got in enumerate(result.per_query()):
        lo, hi = bounds[qq], bounds[qq + 1]
        np.testing.assert_array_equal(got, lo + np.argsort(-ref[lo:hi], kind="stable"))


def test_state_given_to_rank_replaces_a_nodes_state_for_that_call_only():
    """The serving path: one member's coefficient row, read online, replaces the per-member table."""
    batch = QueryBatch(member={"m_seniority": np.ones(1), "m_industry": np.array(["tech"], dtype=object)},
                       documents={"d_remote": np.array([0.0, 1.0]), "d_age": np.array([1.0, 1.0])},
                       query_index=np.zeros(2, int), member_ids=np.array(["a"]), document_ids=np.array(["x", "y"]))
    base = {"fixed": {"coefficients": [0.0, 0.0]}, "per_member": {"ids": ["a"], "coefficients": [[1.0, 0.0]]}}
    engine = LocalEngine(compile(GLMIX), state={"glmix": base})
    online = {"glmix": {**base, "per_member": {"ids": np.array(["a"]), "coefficients": np.array([[-1.0, 0.0]])}}}
    assert engine.rank(batch).document_rows.tolist() == [1, 0]
    assert engine.rank(batch, state=online).document_rows.tolist() == [0, 1]
    assert engine.rank(batch).document_rows.tolist() == [1, 0]  # the engine's own state is untouched


def test_glmix_without_ids_says_which_ids_it_needs():
    batch = QueryBatch(member={"m_seniority": np.ones(1), "m_industry": np.array(["tech"], dtype=object)},
                       documents={"d_remote": np.ones(2), "d_age": np.ones(2)}, query_index=np.zeros(2, int))
    state = {"glmix": {"fixed": {"coefficients": [0.0, 0.0]},
                       "per_member": {"ids": ["a"], "coefficients": [[1.0, 1.0]]}}}
    with pytest.raises(QuasarError, match="needs member_ids in the QueryBatch"):
        LocalEngine(compile(GLMIX), state=state).rank(batch)


# ---- a larger batch --------------------------------------------------------------------------------------


def test_smoke_twenty_queries_of_five_thousand_candidates():
    src = SCORER.replace("TRAINABLE double lin", "KEEP TOP 500 DOCUMENTS BY cheap;\nTRAINABLE double lin")
    src = src.replace("INPUT DOCUMENT double doc_x;",
                      "INPUT DOCUMENT double doc_x;\nINPUT DOCUMENT double cheap;")
    src = src.replace("TOP 3 OF", "TOP 25 OF")
    batch = make_batch([5_000] * 20, dim=32, seed=13)
    result = LocalEngine(compile(src), state=LIN_STATE).rank(batch, explain=True)
    assert len(result) == 20 * 25
    assert [len(r) for r in result.per_query()] == [25] * 20
    assert np.all(np.diff(result.query_index) >= 0)
    assert np.all(batch.query_index[result.document_rows] == result.query_index)


# ---- the full pipeline: the job-recommendation model without its tree ensemble -----------------------------

JOBS = """
INPUT MEMBER Vector member_title;
INPUT MEMBER double member_seniority;
INPUT MEMBER List member_skills;
INPUT DOCUMENT Vector job_title;
INPUT DOCUMENT double job_seniority;
INPUT DOCUMENT double job_remote;
INPUT DOCUMENT double job_ageDays;
INPUT DOCUMENT Categorical job_companyId;
INPUT DOCUMENT List job_skills;
Vector interaction = SimilarityFeatureProducer([member_title], [job_title], ["", "cosine", {}]);
double skill_overlap = Jaccard(member_skills, job_skills);
double seniority_gap = Abs(job_seniority - member_seniority);
double freshness = Exp(-job_ageDays / 30.0);
double cheap_score = 0.6 * interaction + 0.4 * skill_overlap - 0.1 * seniority_gap;
KEEP TOP 40 DOCUMENTS BY cheap_score;
TRAINABLE glmix = GLMix([interaction, skill_overlap, job_remote, freshness], {
    "per_member": [job_seniority, job_remote, skill_overlap],
    "offset": cheap_score
});
double score = Sigmoid(glmix);
ranked = ORDER DOCUMENTS BY score WITH DESC;
eligible = FILTER ranked WHERE job_remote == 1 OR seniority_gap <= 2;
diverse = DIVERSIFY eligible BY job_companyId MAX 2;
shown = TOP 10 OF diverse;
RETURN shown;
"""


def test_job_recommendation_pipeline_end_to_end():
    rng = np.random.default_rng(21)
    counts = [120, 60, 300, 45]
    q, n = len(counts), sum(counts)
    skills = np.array(["python", "sql", "spark", "ml", "go", "law"], dtype=object)
    batch = QueryBatch(
        member={"member_title": rng.normal(size=(q, 8)), "member_seniority": rng.uniform(1, 6, q),
                "member_skills": [list(rng.choice(skills, 3, replace=False)) for _ in range(q)]},
        documents={"job_title": rng.normal(size=(n, 8)), "job_seniority": rng.uniform(1, 6, n),
                   "job_remote": rng.integers(0, 2, n).astype(float), "job_ageDays": rng.uniform(0, 60, n),
                   "job_companyId": rng.choice(np.array(list("abcdefg"), dtype=object), n),
                   "job_skills": [list(rng.choice(skills, 2, replace=False)) for _ in range(n)]},
        query_index=np.repeat(np.arange(q), counts), member_ids=np.array(["m0", "m1", "m2", "m3"]))
    state = {"glmix": {"fixed": {"coefficients": [1.5, 2.0, 0.3, 0.5], "intercept": -1.0},
                       "per_member": {"ids": ["m0", "m2"],
                                      "coefficients": [[0.1, 0.2, 0.3], [-0.1, 0.0, 1.0]]}}}
    result = LocalEngine(compile(JOBS), state=state).rank(batch, explain=True)
    frame = result.to_pandas()
    assert [len(r) for r in result.per_query()] == [10, 10, 10, 10]
    assert frame.groupby(["query", "job_companyId"]).size().max() <= 2
    assert ((frame["job_remote"] == 1) | (frame["seniority_gap"] <= 2)).all()
    np.testing.assert_allclose(result.scores, 1 / (1 + np.exp(-result.explain["glmix"])))
    assert np.all(np.diff(result.scores.reshape(q, 10), axis=1) <= 0)
    np.testing.assert_allclose(result.explain["seniority_gap"],
                               np.abs(batch.documents["job_seniority"][result.document_rows]
                                      - batch.member["member_seniority"][result.query_index]))
    # every returned job is among its query's 40 best by the cheap score
    cheap = np.empty(n)
    phase_one = JOBS.split("KEEP")[0] + "r = ORDER DOCUMENTS BY cheap_score WITH DESC;\nRETURN r;"
    full = LocalEngine(compile(phase_one))
    ranked = full.rank(batch, explain=True)
    cheap[ranked.document_rows] = ranked.scores
    bounds = starts(counts)
    for qq, got in enumerate(result.per_query()):
        lo, hi = bounds[qq], bounds[qq + 1]
        kept = set((lo + np.argsort(-cheap[lo:hi], kind="stable")[:40]).tolist())
        assert set(got.tolist()) <= kept


def test_single_query_keep_selects_what_a_stable_sort_would():
    from proml_lab.quasar.engine.local import _top_n_mask

    rng = np.random.default_rng(7)
    for _ in range(200):
        key = rng.integers(0, 5, rng.integers(1, 40)).astype(float)  # many ties
        key[rng.random(len(key)) < 0.1] = np.nan
        n = int(rng.integers(1, len(key) + 2))
        order = np.lexsort((-key,))  # the multi-query path's stable descending sort (NaN last)
        expected = np.zeros(len(key), bool)
        expected[order[:n]] = True
        np.testing.assert_array_equal(_top_n_mask(key, n), expected)


@pytest.mark.parametrize("direction", ["DESC", "ASC"])
def test_one_query_top_of_order_ranks_like_the_batched_sort(direction):
    """A one-query ORDER + TOP selects by partition; a multi-query batch sorts everything. Both must give
    the same rows in the same order — ties, NaN and infinities included."""
    program = compile(f"""
INPUT DOCUMENT double doc_x;
ranked = ORDER DOCUMENTS BY doc_x WITH {direction};
shown = TOP 7 OF ranked;
RETURN shown;
""")
    engine = LocalEngine(program)
    rng = np.random.default_rng(11)
    for _ in range(100):
        counts = [int(rng.integers(1, 30)), int(rng.integers(1, 30))]
        x = rng.integers(-2, 3, sum(counts)).astype(float)  # many ties
        x[rng.random(len(x)) < 0.15] = np.nan
        x[rng.random(len(x)) < 0.1] = -np.inf
        x[rng.random(len(x)) < 0.1] = np.inf
        both = engine.rank(QueryBatch(documents={"doc_x": x}, query_index=np.repeat([0, 1], counts)))
        for q, (lo, hi) in enumerate(zip(starts(counts)[:-1], starts(counts)[1:], strict=True)):
            alone = engine.rank(QueryBatch(documents={"doc_x": x[lo:hi]},
                                           query_index=np.zeros(hi - lo, dtype=np.int64)))
            in_batch = both.query_index == q
            np.testing.assert_array_equal(alone.document_rows, both.document_rows[in_batch] - lo)
            np.testing.assert_array_equal(alone.scores, both.scores[in_batch])
