"""The model bundle: a directory that scores exactly like the trained model, checked on load, written atomically."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from proml_lab.deploy import bundle as bundle_mod
from proml_lab.deploy import load_bundle, log_bundle, save_bundle
from proml_lab.errors import BundleError, ProMLError
from proml_lab.quasar.engine import QueryBatch
from proml_lab.training.connect import train

MULTI = """
MODEL multi;
INPUT MEMBER double m1;
INPUT DOCUMENT double x1;
INPUT DOCUMENT double x2;
TRAINABLE trees = TreeEnsemble([x1, x2, m1], {"num_trees": 8, "max_depth": 3});
double margin = DecisionTreesScorer(trees);
TRAINABLE lin = LogisticScorer([x1, x2], {"l2": 2.0});
TRAINABLE g1 = GLMix([x1], {"per_member": [x1, 1], "per_document": [1], "offset": margin});
TRAINABLE g2 = GLMix([x2], {"per_member": [1], "l2": 3.0});
double score = g1 + g2 + lin;
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
TRAINING CONFIG {label: y}
"""


@pytest.fixture(scope="module")
def frames(world):
    from proml_lab.training.data import training_frame

    ws, trained = world
    return training_frame(ws, trained.ir)


def _batch(frame: pd.DataFrame, model) -> QueryBatch:
    """One query per member of *frame*, its rows as the candidates."""
    frame = frame.sort_values(["member_id", "job_id"]).reset_index(drop=True)
    members = frame["member_id"].to_numpy()
    uniq, query_index = np.unique(members, return_inverse=True)
    first = np.searchsorted(members, uniq)
    inputs = {n.feature: n.scope for n in model.ir.nodes if type(n).__name__ == "Input"}
    docs = {f: frame[f].to_numpy() for f, s in inputs.items() if s == "document"}
    member = {f: frame[f].to_numpy()[first] for f, s in inputs.items() if s == "member"}
    return QueryBatch(documents=docs, member=member, query_index=query_index, member_ids=uniq,
                      document_ids=frame["job_id"].to_numpy())


def test_world_bundle_copied_elsewhere_scores_and_ranks_exactly_like_the_trained_model(world, frames, tmp_path):
    _, trained = world
    saved = save_bundle(trained, tmp_path / "a" / "jobs", created_by="tester")
    assert saved.manifest["created_by"] == "tester" and saved.name == "world_job_recommendations"
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tmp_path / "a" / "jobs", copy)
    shutil.rmtree(tmp_path / "a")
    bundle = load_bundle(copy)

    layout = {p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()}
    assert layout == {"manifest.json", "program.quasar", "ir.json", "global/glmix.json",
                      "coefficients/member.parquet", "coefficients/document.parquet"}
    assert bundle.source == trained.source and bundle.ir == trained.ir
    assert bundle.features == trained.features and "job_seniority" in bundle.features
    assert bundle.metrics == pytest.approx(trained.metrics) and bundle.label == "clicked"
    assert bundle.data_fingerprint == trained.data_fingerprint and bundle.manifest["run_id"] == trained.run_id
    assert set(bundle.manifest["files"]) == layout - {"manifest.json"}

    rows = frames.validation.iloc[:3000]
    np.testing.assert_array_equal(bundle.score(rows), trained.score(rows))
    np.testing.assert_array_equal(bundle.score(rows, "glmix"), trained.score(rows, "glmix"))
    assert bundle.evaluate(rows) == trained.evaluate(rows)

    batch = _batch(rows, trained)
    want, got = trained.engine().rank(batch), bundle.engine().rank(batch)
    np.testing.assert_array_equal(got.document_rows, want.document_rows)
    np.testing.assert_array_equal(got.scores, want.scores)

    # the state is what training produced, table by table
    for part in ("per_member", "per_document"):
        assert bundle.state["glmix"][part]["ids"] == list(trained.state["glmix"][part]["ids"])
        np.testing.assert_array_equal(bundle.state["glmix"][part]["coefficients"],
                                      trained.state["glmix"][part]["coefficients"])
    tables = {(t.node, t.part): t for t in bundle.coefficient_tables()}
    assert set(tables) == {("glmix", "per_member"), ("glmix", "per_document")}
    member = tables["glmix", "per_member"]
    assert member.entity == "member" and member.coefficients.dtype == np.float64
    assert member.coefficients.shape == (len(member.ids), 4)  # job_remote, companySizeLog, seniority, 1


def test_trees_scorers_and_glmix_nodes_with_different_ids_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    n = 1500
    frame = pd.DataFrame({"member_id": rng.integers(0, 40, n), "job_id": rng.integers(0, 30, n),
                          "m1": rng.normal(size=n), "x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-frame["x1"] + frame["x2"]))).astype(float)
    model = train(MULTI, frame)
    g2 = model.state["g2"]["per_member"]  # g2 knows fewer members than g1: both share member.parquet
    keep = np.arange(len(g2["ids"])) % 3 != 0
    model.state["g2"]["per_member"] = {"ids": list(np.asarray(g2["ids"])[keep]),
                                       "coefficients": g2["coefficients"][keep]}

    bundle = load_bundle(save_bundle(model, tmp_path / "multi").path)

    assert {p.name for p in (tmp_path / "multi" / "global").iterdir()} == {
        "trees.xgboost.json", "lin.json", "g1.json", "g2.json"}
    np.testing.assert_array_equal(bundle.score(frame), model.score(frame))
    np.testing.assert_array_equal(bundle.score(frame, "margin"), model.score(frame, "margin"))
    tables = {(t.node, t.part): t for t in bundle.coefficient_tables()}
    assert set(tables) == {("g1", "per_member"), ("g1", "per_document"), ("g2", "per_member")}
    assert sorted(tables["g2", "per_member"].ids.tolist()) == sorted(model.state["g2"]["per_member"]["ids"])
    assert len(tables["g1", "per_member"].ids) > len(tables["g2", "per_member"].ids)

    from_ir = load_bundle(save_bundle(dataclasses.replace(model, source=None), tmp_path / "from_ir").path)
    assert from_ir.source is None and "ir.json" in (tmp_path / "from_ir" / "program.quasar").read_text()
    np.testing.assert_array_equal(from_ir.score(frame), model.score(frame))


def test_a_damaged_or_missing_file_is_named(world, tmp_path):
    _, trained = world
    path = save_bundle(trained, tmp_path / "b").path
    parquet = path / "coefficients" / "member.parquet"
    good = parquet.read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"coefficients/member\.parquet is damaged") as info:
        load_bundle(path)
    assert info.value.file == "coefficients/member.parquet" and isinstance(info.value, ProMLError)

    parquet.write_bytes(good)
    assert load_bundle(path).name == "world_job_recommendations"
    (path / "global" / "glmix.json").unlink()
    with pytest.raises(BundleError, match=r"global/glmix\.json is missing"):
        load_bundle(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json is damaged"):
        load_bundle(path)
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_an_interrupted_save_leaves_nothing_and_keeps_the_old_bundle(world, tmp_path, monkeypatch):
    _, trained = world

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_mod, "_write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(trained, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its temporary directory

    monkeypatch.undo()
    old = save_bundle(trained, tmp_path / "kept", version="1")
    monkeypatch.setattr(bundle_mod, "_write_table", broken)
    with pytest.raises(OSError):
        save_bundle(trained, tmp_path / "kept", version="2")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert load_bundle(old.path).version == "1"


def test_log_bundle_puts_it_in_the_run(world, tmp_path):
    ws, trained = world
    uri = log_bundle(ws, trained)
    assert uri == f"runs:/{trained.run_id}/bundle"
    from proml_lab.training.tracking import Tracker

    local = Tracker(ws).client.download_artifacts(trained.run_id, "bundle", str(tmp_path))
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["run_id"] == trained.run_id and manifest["version"] is None
    assert load_bundle(local).name == "world_job_recommendations"
