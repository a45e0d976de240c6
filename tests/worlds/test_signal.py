"""The labels carry the signal the ground truth put in: per-member effects are learnable."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from proml_lab.worlds import generate_world
from proml_lab.worlds.taxonomy import all_skills

_BIT = {s: i for i, s in enumerate(all_skills())}


def _skill_masks(frame: pd.DataFrame, key: str, column: str) -> np.ndarray:
    exploded = frame[[key, column]].explode(column)
    bits = np.left_shift(np.uint64(1), exploded[column].map(_BIT).to_numpy(np.uint64))
    return pd.Series(bits, index=exploded[key]).groupby(level=0).sum().reindex(frame[key]).to_numpy(np.uint64)


def test_per_member_effects_beat_a_global_model(workspace):
    world = generate_world("small", seed=0, workspace=workspace)
    members = world.read("members", ["member_id", "title_family", "seniority", "region", "skills"])
    jobs = world.read("jobs", ["job_id", "title_family", "seniority", "region", "required_skills", "remote", "company_size"])
    members["mask"] = _skill_masks(members, "member_id", "skills")
    jobs["mask"] = _skill_masks(jobs, "job_id", "required_skills")
    d = (
        world.read("impressions", ["member_id", "job_id", "position", "clicked"])
        .merge(members.drop(columns="skills"), on="member_id")
        .merge(jobs.drop(columns="required_skills"), on="job_id", suffixes=("_m", "_j"))
    )
    mm, jm = d["mask_m"].to_numpy(np.uint64), d["mask_j"].to_numpy(np.uint64)
    doc = np.column_stack([d["remote"], np.log(d["company_size"]), d["seniority_j"]]).astype(float)
    x = np.column_stack([
        d["title_family_m"] == d["title_family_j"],
        (d["seniority_m"] - d["seniority_j"]).abs(),
        d["region_m"] == d["region_j"],
        np.bitwise_count(mm & jm) / np.maximum(np.bitwise_count(mm | jm), 1),
        d["position"],
    ]).astype(float)
    x = np.column_stack([x, doc])
    x = (x - x.mean(0)) / x.std(0)
    doc = (doc - doc.mean(0)) / doc.std(0)
    y = d["clicked"].to_numpy()
    test = np.random.default_rng(0).random(len(d)) < 0.2

    global_only = LogisticRegression(max_iter=500).fit(x[~test], y[~test])
    auc_global = roc_auc_score(y[test], global_only.predict_proba(x[test])[:, 1])

    # Per-member random effect: an intercept and a taste coefficient per document attribute.
    rows, member = np.arange(len(d)), d["member_id"].to_numpy() - 1
    shape = (len(d), world.rows["members"])
    per_member = [sp.csr_matrix((np.ones(len(d)), (rows, member)), shape=shape)]
    per_member += [sp.csr_matrix((doc[:, k], (rows, member)), shape=shape) for k in range(doc.shape[1])]
    design = sp.hstack([sp.csr_matrix(x), *per_member]).tocsr()
    mixed = LogisticRegression(max_iter=1000, C=0.3).fit(design[~test], y[~test])
    auc_mixed = roc_auc_score(y[test], mixed.predict_proba(design[test])[:, 1])

    assert 0.65 < auc_global < 0.8
    assert auc_mixed > auc_global + 0.04, (auc_global, auc_mixed)
