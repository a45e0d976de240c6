"""The Spark engine: pairwise scoring and per-query ranking on Spark agree with the local engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proml_lab.quasar.engine import LocalEngine, QueryBatch
from proml_lab.quasar.engine.spark import SparkEngine, scoring_ir
from proml_lab.quasar.errors import QuasarError
from proml_lab.quasar.ir import compile

pytestmark = pytest.mark.spark

HEAD = """
INPUT MEMBER Vector member_vec;
INPUT MEMBER double m_seniority;
INPUT MEMBER Categorical m_industry;
INPUT DOCUMENT Vector doc_vec;
INPUT DOCUMENT double doc_x;
INPUT DOCUMENT double d_remote;
double sim = CosineSimilarity(member_vec, doc_vec);
double gap = 0.5 * Abs(doc_x - m_seniority) + sim;
TRAINABLE double lin = LinearScorer([sim, doc_x]);
TRAINABLE double glmix = GLMix([sim, d_remote], {
    "per_member": [d_remote, doc_x],
    "per_document": [m_seniority, m_industry],
    "offset": lin
});
double score = gap + glmix;
"""
PROGRAM = HEAD + """
KEEP TOP 12 DOCUMENTS BY sim;
ranked = ORDER DOCUMENTS BY score WITH DESC;
shown = TOP 5 OF ranked;
RETURN shown;
"""
# the same value nodes, every candidate returned (a grouped reference for pairwise scoring)
EXHAUSTIVE = HEAD + "ranked = ORDER DOCUMENTS BY score WITH DESC;\nRETURN ranked;\n"

Q, PER_QUERY, DIM, N_JOBS = 200, 25, 6, 300


def _state():
    rng = np.random.default_rng(4)
    member_ids = [f"m{i}" for i in range(0, Q, 2)]  # odd members have no coefficients
    job_ids = [f"job{j}" for j in range(0, N_JOBS, 3)]
    return {
        "lin": {"coefficients": np.array([2.0, -0.5]), "intercept": 0.25},
        "glmix": {
            "fixed": {"coefficients": [0.7, -0.2], "intercept": 0.1},
            "vocabularies": {"per_document.1": ["law", "tech"]},
            "per_member": {"ids": member_ids, "coefficients": rng.normal(size=(len(member_ids), 2))},
            "per_document": {"ids": job_ids, "coefficients": rng.normal(size=(len(job_ids), 3))},
        },
    }


@pytest.fixture(scope="module")
def data():
    """5,000 (member, job) rows grouped by member (200 queries x 25 candidates), plus the grouped batch."""
    rng = np.random.default_rng(0)
    n = Q * PER_QUERY
    qi = np.repeat(np.arange(Q), PER_QUERY)
    member_vec = rng.normal(size=(Q, DIM))
    m_seniority = rng.uniform(1, 6, Q)
    m_industry = rng.choice(np.array(["tech", "law", "retail"], dtype=object), Q)
    member_ids = np.array([f"m{i}" for i in range(Q)], dtype=object)
    doc_vec = rng.normal(size=(n, DIM))
    doc_x = rng.uniform(0, 6, n)
    d_remote = rng.integers(0, 2, n).astype(float)
    doc_ids = np.array([f"job{j}" for j in rng.integers(0, N_JOBS, n)], dtype=object)
    pdf = pd.DataFrame({
        "row": np.arange(n), "query": qi, "member_id": member_ids[qi], "job_id": doc_ids,
        "member_vec": list(member_vec[qi]), "m_seniority": m_seniority[qi], "m_industry": m_industry[qi],
        "doc_vec": list(doc_vec), "doc_x": doc_x, "d_remote": d_remote, "label": rng.integers(0, 2, n)})
    batch = QueryBatch(
        member={"member_vec": member_vec, "m_seniority": m_seniority, "m_industry": m_industry},
        documents={"doc_vec": doc_vec, "doc_x": doc_x, "d_remote": d_remote},
        query_index=qi, member_ids=member_ids, document_ids=doc_ids)
    return pdf, batch


@pytest.fixture(scope="module")
def frame(spark, data):
    pdf, _ = data
    return spark.createDataFrame(pdf).repartition(3)  # several partitions, rows shuffled


def test_score_every_value_node_matches_the_local_engine(frame, data):
    pdf, batch = data
    state = _state()
    engine = SparkEngine(compile(PROGRAM), state=state)
    scored = engine.score(frame, nodes="all", member_id_column="member_id",
                          document_id_column="job_id").toPandas().sort_values("row")
    nodes = ["sim", "gap", "lin", "glmix", "score"]
    assert set(nodes) <= set(scored.columns)
    assert set(pdf.columns) <= set(scored.columns) and len(scored) == len(pdf)  # other columns kept
    np.testing.assert_array_equal(scored["label"].to_numpy(), pdf["label"].to_numpy())

    # grouped reference: 200 queries of 25 candidates, every candidate returned
    ref = LocalEngine(compile(EXHAUSTIVE), state=state).rank(batch, explain=True)
    assert len(ref) == len(pdf)
    for node in nodes:
        expected = np.empty(len(pdf))
        expected[ref.document_rows] = ref.explain[node]
        np.testing.assert_allclose(scored[node].to_numpy(), expected, rtol=0, atol=1e-6, err_msg=node)
    # GLMix's per-member / per-document terms really contribute (ids reached the operator)
    no_ids = LocalEngine(compile(EXHAUSTIVE), state={"lin": state["lin"],
                                                     "glmix": {"fixed": state["glmix"]["fixed"]}})
    plain = no_ids.rank(batch, explain=True)
    assert not np.allclose(np.sort(plain.explain["glmix"]), np.sort(scored["glmix"].to_numpy()))


def test_score_defaults_to_the_ordered_node_and_ignores_keep_and_top(frame, data):
    pdf, batch = data
    engine = SparkEngine(compile(PROGRAM), state=_state())
    assert engine.score_node() == "score"
    scored = engine.score(frame, member_id_column="member_id", document_id_column="job_id")
    assert scored.columns == frame.columns + ["score"]
    assert dict(scored.dtypes)["score"] == "double"
    got = scored.toPandas().sort_values("row")
    assert len(got) == len(pdf)  # KEEP TOP 12 / TOP 5 do not drop rows in pairwise scoring
    # one query per row through the local engine (the full program keeps the single candidate)
    n = len(pdf)
    per_row = QueryBatch(
        member={"member_vec": np.stack(pdf["member_vec"]), "m_seniority": pdf["m_seniority"].to_numpy(),
                "m_industry": pdf["m_industry"].to_numpy()},
        documents={"doc_vec": np.stack(pdf["doc_vec"]), "doc_x": pdf["doc_x"].to_numpy(),
                   "d_remote": pdf["d_remote"].to_numpy()},
        query_index=np.arange(n), member_ids=pdf["member_id"].to_numpy(),
        document_ids=pdf["job_id"].to_numpy())
    ref = LocalEngine(compile(PROGRAM), state=_state()).rank(per_row)
    expected = np.empty(n)
    expected[ref.document_rows] = ref.scores
    np.testing.assert_allclose(got["score"].to_numpy(), expected, rtol=0, atol=1e-6)


def test_output_types_for_vector_and_string_nodes(frame, data):
    pdf, _ = data
    engine = SparkEngine(compile(PROGRAM), state=_state())
    out = engine.score(frame.limit(50), nodes=["sim", "doc_vec", "m_industry"])
    types = dict(out.dtypes)
    assert types["sim"] == "double" and types["doc_vec"] == "array<float>" and types["m_industry"] == "string"
    got = out.toPandas().sort_values("row")
    want = pdf.set_index("row").loc[got["row"]]
    np.testing.assert_allclose(np.stack(got["doc_vec"]), np.stack(want["doc_vec"]), rtol=1e-6, atol=1e-6)
    assert list(got["m_industry"]) == list(want["m_industry"])


def test_scoring_ir_drops_list_nodes_and_reaches_only_the_requested_nodes():
    sir = scoring_ir(compile(PROGRAM), ["gap"])
    kinds = {n.kind for n in sir.nodes}
    assert not kinds & {"keep", "order", "top"}
    reach = [i for i in sir.reachable() if not i.startswith("_")]  # less the anonymous sub-expressions
    assert set(reach) == {"gap", "sim", "member_vec", "doc_vec", "doc_x", "m_seniority"}
    assert sir.reachable()[-1] == sir.output


def test_rank_per_query_top_k_matches_the_local_engine(frame, data):
    pdf, batch = data
    state = _state()
    k = 3
    engine = SparkEngine(compile(PROGRAM), state=state)
    ranked = engine.rank(frame, query_column="query", k=k, member_id_column="member_id",
                         document_id_column="job_id")
    assert ranked.columns[:2] == ["query", "position"] and ranked.columns[-1] == "score"
    assert set(frame.columns) <= set(ranked.columns)
    got = ranked.toPandas().sort_values(["query", "position"]).reset_index(drop=True)

    ref = LocalEngine(compile(PROGRAM), state=state).rank(batch)
    keep = ref.positions < k
    assert len(got) == int(keep.sum()) == Q * k
    np.testing.assert_array_equal(got["query"].to_numpy(), ref.query_index[keep])
    np.testing.assert_array_equal(got["position"].to_numpy(), ref.positions[keep])
    np.testing.assert_array_equal(got["row"].to_numpy(), ref.document_rows[keep])
    np.testing.assert_allclose(got["score"].to_numpy(), ref.scores[keep], rtol=0, atol=1e-6)
    # k=None: everything the program returns (TOP 5 after KEEP TOP 12)
    assert engine.rank(frame, query_column="query", member_id_column="member_id",
                       document_id_column="job_id").count() == Q * 5


def test_missing_columns_raise_a_clear_error_naming_the_features(frame):
    engine = SparkEngine(compile(PROGRAM), state=_state())
    with pytest.raises(QuasarError, match=r"no column for input feature\(s\) 'm_seniority' \(MEMBER\), "
                                          r"'doc_x' \(DOCUMENT\)"):
        engine.score(frame.drop("doc_x", "m_seniority"))
    with pytest.raises(QuasarError, match=r"'doc_x' \(DOCUMENT\)"):
        engine.rank(frame.drop("doc_x"), query_column="query")
    with pytest.raises(QuasarError, match="no column 'nope'"):
        engine.score(frame, member_id_column="nope")
    with pytest.raises(QuasarError, match="no node 'nope'"):
        engine.score(frame, nodes=["nope"])
