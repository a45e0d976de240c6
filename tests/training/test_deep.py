"""Two-tower title embeddings trained on the tiny world; export to the Feature Marketplace; the title map."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.parquet as pq
import pytest

from proml_lab.errors import TrainingError
from proml_lab.training.deep import (
    JOB_FEATURE,
    MEMBER_FEATURE,
    TitleEmbeddings,
    TwoTowerConfig,
    export_embedding_features,
    plot_title_map,
    title_words,
    train_title_embeddings,
)

pytestmark = pytest.mark.slow
CULINARY = ["cook", "chef de partie", "sous chef", "chef", "pastry chef", "kitchen manager"]
RECRUITING = ["recruitment coordinator", "recruiter", "recruitment specialist", "hr consultant",
              "head of talent"]
LEGAL = ["paralegal", "associate attorney", "legal counsel", "general counsel"]


@pytest.fixture(scope="module")
def embeddings(tiny_world) -> TitleEmbeddings:
    """Trained once per module (importing Keras/TensorFlow alone takes ~4 s)."""
    epochs: list[int] = []
    emb = train_title_embeddings(tiny_world, config=TwoTowerConfig(epochs=10, seed=1),
                                 callback=lambda e, m: epochs.append(e))
    assert epochs == list(range(10))
    return emb


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b.T


def test_title_words():
    assert title_words("Sous Chef (m/f)") == ["sous", "chef", "m", "f"]


def test_training_reduces_the_loss(embeddings):
    assert len(embeddings.history) == 10
    assert embeddings.history[-1] < 0.7 * embeddings.history[0]
    assert embeddings.rows_per_second > 0


def test_titles_of_one_family_are_closer_than_across_families(embeddings):
    titles = list(embeddings.title_families)
    family = np.array([embeddings.title_families[t] for t in titles])
    sim = cos(*(2 * [embeddings.title_vectors(titles)]))
    same = family[:, None] == family[None, :]
    off_diagonal = ~np.eye(len(titles), dtype=bool)
    assert sim[same & off_diagonal].mean() > sim[~same].mean() + 0.3
    v = dict(zip(titles, embeddings.title_vectors(titles), strict=True))
    assert v["chef"] @ v["sous chef"] > v["chef"] @ v["recruiter"] + 0.3
    assert v["chef"] @ v["cook"] > v["chef"] @ v["legal counsel"] + 0.3
    culinary, recruiting, legal = (embeddings.title_vectors(t) for t in (CULINARY, RECRUITING, LEGAL))
    assert cos(culinary, culinary).mean() > cos(culinary, recruiting).mean() + 0.3
    assert cos(culinary, culinary).mean() > cos(culinary, legal).mean() + 0.3


def test_vectors_are_unit_length_and_looked_up_by_id(embeddings, tiny_world):
    jobs = tiny_world.read("jobs", columns=["job_id", "title"])
    ids = jobs["job_id"].to_numpy()[[5, 0, 17]]
    vectors = embeddings.job_vectors(ids)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # a job's vector is the job tower applied to its title: the same as title_vectors of that text
    titles = jobs.set_index("job_id").loc[ids, "title"].tolist()
    np.testing.assert_allclose(vectors, embeddings.title_vectors(titles), atol=1e-5)
    assert embeddings.member_vectors([3, 1]).shape == (2, 32)
    np.testing.assert_array_equal(embeddings.member_vectors([3, 1])[1], embeddings.member_vectors([1])[0])
    with pytest.raises(TrainingError, match=r"Unknown member id\(s\) \[999999\]"):
        embeddings.member_vectors([1, 999999])


def test_save_and_load_round_trip(embeddings, tmp_path):
    loaded = TitleEmbeddings.load(embeddings.save(tmp_path / "emb"))
    assert loaded.history == embeddings.history and loaded.vocabulary == embeddings.vocabulary
    np.testing.assert_array_equal(loaded.member_vectors([1, 2]), embeddings.member_vectors([1, 2]))
    np.testing.assert_allclose(loaded.title_vectors(CULINARY), embeddings.title_vectors(CULINARY), atol=1e-6)
    with pytest.raises(TrainingError, match="No saved title embeddings"):
        TitleEmbeddings.load(tmp_path / "nothing")


def test_same_seed_same_model(tiny_world):
    config = TwoTowerConfig(epochs=2, seed=4)
    a, b = (train_title_embeddings(tiny_world, config=config) for _ in range(2))
    assert a.history == b.history
    np.testing.assert_array_equal(a.job_vectors([1, 2, 3]), b.job_vectors([1, 2, 3]))


def test_config_is_checked_when_training_starts(tiny_world):
    with pytest.raises(TrainingError, match=r"The 'negatives' parameter of TwoTowerConfig must be an int in "
                                            r"\[1, inf\)\. Got 0 instead\."):
        train_title_embeddings(tiny_world, config=TwoTowerConfig(negatives=0))


def test_export_creates_discoverable_features_of_the_run(embeddings, tiny_world, workspace):
    store = workspace.features
    names = export_embedding_features(embeddings, tiny_world, store, run_id="tt-run-1")
    assert names == [MEMBER_FEATURE, JOB_FEATURE]
    found = [h.name for h in store.search("title embedding")]
    assert MEMBER_FEATURE in found and JOB_FEATURE in found
    for name, entity in ((MEMBER_FEATURE, "member"), (JOB_FEATURE, "job")):
        info = store.describe(name)
        assert info["feature"]["entity"] == entity
        assert info["feature"]["type"] == "vector" and info["feature"]["dimension"] == 32
        assert "run:tt-run-1" in info["feature"]["tags"]
        assert "tt-run-1" in info["feature"]["description"]
        assert "tt-run-1" in info["source"]["path"]
    # the offline source holds exactly the trained vectors, keyed by id
    table = pq.read_table(workspace.lake / "embeddings/title_two_tower/tt-run-1/member")
    ids = table["member_id"].to_numpy()
    np.testing.assert_array_equal(np.stack(table["embedding"].to_numpy(zero_copy_only=False)),
                                  embeddings.member_vectors(ids))
    # another run is a new version of the same features
    export_embedding_features(embeddings, tiny_world, store, run_id="tt-run-2")
    assert store.describe(MEMBER_FEATURE)["feature"]["version"] == 2
    assert "run:tt-run-2" in store.describe(MEMBER_FEATURE)["feature"]["tags"]
    with pytest.raises(TrainingError, match="run_id must be"):
        export_embedding_features(embeddings, tiny_world, store, run_id="../x")


@pytest.mark.spark
def test_exported_features_materialize_and_read_back_online(embeddings, tiny_world, workspace, spark):
    store = workspace.features
    export_embedding_features(embeddings, tiny_world, store, run_id="tt-run-1")
    store.materialize(anchors=["member_title_embedding", "job_title_embedding"], online=True,
                      as_of=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc))
    members = np.array([7, 2, 500])
    got = store.get_online_features("member", members, [MEMBER_FEATURE])
    np.testing.assert_allclose(np.stack(got[MEMBER_FEATURE].to_numpy(zero_copy_only=False)),
                               embeddings.member_vectors(members), atol=1e-6)
    jobs = np.array([1, 200])
    got = store.get_online_features("job", jobs, [JOB_FEATURE])
    np.testing.assert_allclose(np.stack(got[JOB_FEATURE].to_numpy(zero_copy_only=False)),
                               embeddings.job_vectors(jobs), atol=1e-6)


def test_title_map_has_one_labelled_point_per_title(embeddings):
    from matplotlib.figure import Figure

    titles = CULINARY + RECRUITING + LEGAL
    fig = plot_title_map(embeddings, titles)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == titles
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(titles)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["culinary", "recruiting", "legal"]
    # the culinary titles sit apart from the others on the map
    xy = np.array([t.xy for t in ax.texts])
    k = len(CULINARY)
    spread = np.linalg.norm(xy[:k] - xy[:k].mean(0), axis=1).mean()
    assert np.linalg.norm(xy[:k].mean(0) - xy[k:].mean(0)) > 2 * spread
    assert len(plot_title_map(embeddings).axes[0].texts) == len(embeddings.title_families)
