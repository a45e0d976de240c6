"""Quasar: the job-recommendation DAG through ``LocalEngine.rank`` against the bare numpy + XGBoost floor.

One query (one member) over 10k and 100k candidates: cosine on 64-d member/job embeddings + a 200-tree
depth-6 XGBoost over 32 document features + GLMix (fixed + per-member + per-document coefficients) +
ORDER + TOP 100. The floor is the same computation written directly: numpy cosine,
``booster.inplace_predict`` on the same float32 matrix, the same GLMix arithmetic in numpy and
``np.argpartition`` top-100. Phased ranking (``KEEP TOP 2000 DOCUMENTS BY cosine`` before the trees) is
compared with the bare *exhaustive* computation. Also: parse and check + compile time of a 100-line
program. Every engine result is asserted equal to its bare reference.

    python bench/bench_quasar.py [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

import xgboost as xgb  # noqa: E402

from proml_lab.quasar import compile, parse  # noqa: E402
from proml_lab.quasar.engine import LocalEngine, QueryBatch  # noqa: E402

EMB, FEATS, TOP = 64, 32, 100

PROGRAM = """
INPUT MEMBER Vector member_emb;
INPUT MEMBER double member_seniority;
INPUT DOCUMENT Vector job_emb;
INPUT DOCUMENT Vector job_features;
INPUT DOCUMENT double job_remote;
INPUT DOCUMENT double job_seniority;
double cosine = CosineSimilarity(member_emb, job_emb);
{keep}
TRAINABLE trees = TreeEnsemble([job_features], {{"num_trees": 200, "max_depth": 6}});
TRAINABLE glmix = GLMix([cosine, job_remote, job_seniority], {{
    "per_member": [job_remote, job_seniority],
    "per_document": [member_seniority, cosine]
}});
double score = DecisionTreesScorer(trees) + glmix;
ranked = ORDER DOCUMENTS BY score WITH DESC;
shown = TOP 100 OF ranked;
RETURN shown;
"""
KEEP = 2000


def train_booster(rng: np.random.Generator) -> xgb.Booster:
    x = rng.normal(size=(20_000, FEATS)).astype(np.float32)
    signal = x[:, 0] - 0.7 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + np.sin(2 * x[:, 4])
    y = (signal + 0.5 * rng.normal(size=len(x)) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "tree_method": "hist",
              "nthread": os.cpu_count() or 1, "seed": 0}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=200)


def glmix_state(rng: np.random.Generator, n_docs: int) -> dict:
    doc_ids = [f"job{i}" for i in range(0, n_docs, 1) if i % 10 != 0]  # every 10th job: no coefficients
    return {
        "fixed": {"coefficients": [1.2, 0.3, -0.05], "intercept": -0.4},
        "per_member": {"ids": ["m7", "m0", "m3"], "coefficients": rng.normal(scale=0.2, size=(3, 2))},
        "per_document": {"ids": doc_ids, "coefficients": rng.normal(scale=0.2, size=(len(doc_ids), 2))},
    }


def make_world(rng: np.random.Generator, n: int) -> dict:
    return {
        "member_emb": rng.normal(size=(1, EMB)),
        "member_seniority": np.array([3.0]),
        "job_emb": rng.normal(size=(n, EMB)),
        "job_features": rng.normal(size=(n, FEATS)).astype(np.float32),
        "job_remote": rng.integers(0, 2, n).astype(np.float64),
        "job_seniority": rng.uniform(1, 6, n),
        "member_ids": np.array(["m0"], dtype=object),
        "document_ids": np.array([f"job{i}" for i in range(n)], dtype=object),
    }


def batch_of(w: dict) -> QueryBatch:
    n = len(w["job_emb"])
    return QueryBatch(
        member={"member_emb": w["member_emb"], "member_seniority": w["member_seniority"]},
        documents={k: w[k] for k in ("job_emb", "job_features", "job_remote", "job_seniority")},
        query_index=np.zeros(n, dtype=np.int64), member_ids=w["member_ids"], document_ids=w["document_ids"])


class Bare:
    """The floor: the same arithmetic in plain numpy + XGBoost; the GLMix tables indexed once, up front
    (a sorted id array, looked up with ``searchsorted`` per call)."""

    def __init__(self, booster: xgb.Booster, state: dict) -> None:
        self.booster = booster
        self.fixed = np.asarray(state["fixed"]["coefficients"], np.float64)
        self.intercept = float(state["fixed"]["intercept"])
        self.tables = {}
        for part in ("per_member", "per_document"):
            ids = np.asarray(state[part]["ids"], dtype=str)
            order = np.argsort(ids)
            self.tables[part] = (ids[order], np.asarray(state[part]["coefficients"], np.float64)[order])

    def _lookup(self, part: str, wanted: np.ndarray) -> np.ndarray:
        ids, coefs = self.tables[part]
        pos = np.clip(np.searchsorted(ids, wanted), 0, len(ids) - 1)
        out = np.zeros((len(wanted), coefs.shape[1]))
        hit = ids[pos] == wanted
        out[hit] = coefs[pos[hit]]
        return out

    def scores(self, w: dict, doc_ids: np.ndarray, rows: np.ndarray | None = None) -> tuple:
        emb, feats = w["job_emb"], w["job_features"]
        remote, senior = w["job_remote"], w["job_seniority"]
        m = w["member_emb"][0]
        cos = emb @ m / (np.linalg.norm(emb, axis=1) * np.linalg.norm(m))
        if rows is not None:  # phased: KEEP TOP k BY cosine first
            emb, feats, remote, senior, doc_ids, cos = (a[rows] for a in (emb, feats, remote, senior,
                                                                           doc_ids, cos))
        trees = self.booster.inplace_predict(feats, predict_type="margin").astype(np.float64)
        glm = self.fixed[0] * cos + self.fixed[1] * remote + self.fixed[2] * senior + self.intercept
        pm = self._lookup("per_member", np.asarray(w["member_ids"], dtype=str))[0]
        glm += pm[0] * remote + pm[1] * senior
        pd_ = self._lookup("per_document", doc_ids)
        glm += pd_[:, 0] * w["member_seniority"][0] + pd_[:, 1] * cos
        return trees + glm, cos

    def rank(self, w: dict, doc_ids: np.ndarray, keep: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = None
        if keep is not None:
            m = w["member_emb"][0]
            emb = w["job_emb"]
            cos = emb @ m / (np.linalg.norm(emb, axis=1) * np.linalg.norm(m))
            rows = np.sort(np.argpartition(-cos, keep)[:keep])
            doc_ids = doc_ids[rows]
            w = {**w, "job_emb": emb[rows], "job_features": w["job_features"][rows],
                 "job_remote": w["job_remote"][rows], "job_seniority": w["job_seniority"][rows]}
        score, _ = self.scores(w, doc_ids)
        top = np.argpartition(-score, TOP)[:TOP]
        top = top[np.argsort(-score[top], kind="stable")]
        out = top if rows is None else rows[top]
        return out, score[top]


def median_time(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hundred_line_program() -> str:
    lines = [f"INPUT DOCUMENT double f{i};" for i in range(30)]
    lines += ["INPUT MEMBER Vector m_emb;", "INPUT DOCUMENT Vector d_emb;"]
    lines.append("double sim = CosineSimilarity(m_emb, d_emb);")
    for i in range(60):
        a, b = f"f{i % 30}", f"f{(7 * i + 3) % 30}"
        prev = "sim" if i == 0 else f"x{i - 1}"
        lines.append(f"double x{i} = 0.5 * {prev} + Log1p(Abs({a})) - 0.25 * {b};")
    lines.append('KEEP TOP 500 DOCUMENTS BY x59;')
    lines.append('TRAINABLE lin = LinearScorer([' + ", ".join(f"x{i}" for i in range(50, 60)) + ']);')
    lines.append('TRAINABLE trees = TreeEnsemble([' + ", ".join(f"f{i}" for i in range(30)) +
                 '], {"num_trees": 200, "max_depth": 6});')
    lines.append("double score = DecisionTreesScorer(trees) + lin;")
    lines.append("ranked = ORDER DOCUMENTS BY score WITH DESC;")
    lines.append("shown = TOP 25 OF ranked;")
    lines.append("RETURN shown;")
    assert len(lines) == 100, len(lines)
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", action="store_true", help="cProfile one exhaustive 100k rank")
    args = ap.parse_args()

    rng = np.random.default_rng(42)
    start = time.perf_counter()
    booster = train_booster(rng)
    train_s = time.perf_counter() - start
    print(f"trained 200 trees (depth 6, 32 features, 20k rows) in {train_s:.1f} s", flush=True)

    sizes = [(10_000, 50), (100_000, 15)]
    worlds = {n: make_world(rng, n) for n, _ in sizes}
    state = {"trees": booster, "glmix": glmix_state(rng, max(worlds))}
    bare = Bare(booster, state["glmix"])
    exhaustive = LocalEngine(compile(PROGRAM.format(keep="")), state=state)
    phased = LocalEngine(compile(PROGRAM.format(keep=f"KEEP TOP {KEEP} DOCUMENTS BY cosine;")), state=state)

    rows: list[list[str]] = []
    extra: dict = {"train_s": train_s, "sizes": {}}
    for n, repeats in sizes:
        w = worlds[n]
        batch = batch_of(w)
        doc_ids = np.asarray(w["document_ids"], dtype=str)

        # correctness first: the engine returns exactly the bare top-100, with the same scores
        for engine, keep in ((exhaustive, None), (phased, KEEP)):
            got = engine.rank(batch)
            want_rows, want_scores = bare.rank(w, doc_ids, keep)
            np.testing.assert_array_equal(got.document_rows, want_rows)
            np.testing.assert_allclose(got.scores, want_scores, rtol=1e-9, atol=1e-9)

        t_bare = median_time(lambda w=w, d=doc_ids: bare.rank(w, d), repeats)
        t_ex = median_time(lambda b=batch: exhaustive.rank(b), repeats)
        t_ph = median_time(lambda b=batch: phased.rank(b), repeats)
        t_bare_ph = median_time(lambda w=w, d=doc_ids: bare.rank(w, d, KEEP), repeats)
        extra["sizes"][n] = {"bare_exhaustive_s": t_bare, "engine_exhaustive_s": t_ex,
                             "engine_phased_s": t_ph, "bare_phased_s": t_bare_ph, "repeats": repeats}
        label = f"{n // 1000}k candidates, 1 query"
        rows.append([f"exhaustive rank, {label} (median of {repeats})", f"{t_ex * 1000:.1f} ms",
                     f"bare {t_bare * 1000:.1f} ms", f"{t_ex / t_bare:.2f}x", "<= 1.15x"])
        rows.append([f"phased rank (KEEP TOP {KEEP} BY cosine), {label}", f"{t_ph * 1000:.1f} ms",
                     f"bare exhaustive {t_bare * 1000:.1f} ms", f"{t_bare / t_ph:.1f}x faster",
                     ">= 10x faster"])
        rows.append([f"phased rank vs bare phased, {label}", f"{t_ph * 1000:.1f} ms",
                     f"bare phased {t_bare_ph * 1000:.1f} ms", f"{t_ph / t_bare_ph:.2f}x", "(info)"])
        for r in rows[-3:]:
            print(r, flush=True)

    src = hundred_line_program()
    t_compile = median_time(lambda: compile(src), 50)
    t_parse = median_time(lambda: parse(src), 50)
    extra["compile_100_lines_s"], extra["parse_100_lines_s"] = t_compile, t_parse
    rows.append(["check + compile, 100-line program (p50 of 50)", f"{t_compile * 1000:.1f} ms", "—",
                 "—", "< 50 ms"])
    rows.append(["parse only, 100-line program (p50 of 50)", f"{t_parse * 1000:.1f} ms", "—", "—", "(info)"])
    print(rows[-2], rows[-1], flush=True)

    if args.profile:
        batch = batch_of(worlds[100_000])
        for name, engine in (("exhaustive", exhaustive), ("phased", phased)):
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(5):
                engine.rank(batch)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
            print(f"== cProfile, 5 x {name} rank, 100k candidates", out.getvalue(), sep="\n")

    notes = (
        "One query (member) per rank call; the same matrices feed both sides: 64-d float64 embeddings, a "
        "float32 (n, 32) document-feature matrix, a 200-tree depth-6 XGBoost booster (trained in the "
        f"bench on 20k random rows with a learnable signal, {train_s:.1f} s, nthread = all cores) and a "
        "hand-made GLMix state (fixed + per-member + per-document coefficients; 10% of jobs have none). "
        "The bare floor is numpy cosine + `booster.inplace_predict(predict_type='margin')` on the float32 "
        "matrix + the GLMix arithmetic in numpy (coefficient tables indexed once by sorted id, looked up "
        "with `searchsorted`) + `np.argpartition` top-100. Each engine result is asserted equal to the "
        "bare top-100 (rows and scores). Timings: 3 warm-ups, then the median of 50 (10k) or 15 (100k) "
        "calls. The 100-line program has 32 inputs, 61 expression declarations, a KEEP, a linear scorer, "
        "a tree ensemble, ORDER, TOP and RETURN.\n\n"
        "Where the time goes (`python bench/bench_quasar.py --profile`, cProfile, 100k candidates, per "
        "rank call). Exhaustive: `inplace_predict` dominates (~115 ms, as in bare); the cosine is one "
        "row-wise `einsum` against the member vector, which a single-query batch passes as a stride-0 view "
        "instead of copying it to every candidate; GLMix looks coefficients up with `searchsorted` in "
        "tables indexed once per state; ORDER is a full `lexsort` where bare uses `argpartition`. Phased: "
        "the cosine over all candidates must run before the KEEP, which selects the top 2,000 with a "
        "partition (single query) instead of a sort; the trees then see 2,000 rows (~3 ms). Phased "
        "ranking lands at ~10x the bare exhaustive computation at 100k candidates and less at 10k, where "
        "the fixed per-call costs (cosine over all candidates, GLMix look-ups) weigh more."
    )
    save("quasar", title="Quasar: job-recommendation ranking vs the bare numpy + XGBoost floor",
         command="python bench/bench_quasar.py",
         columns=["measure", "ProML Lab", "bare / reference", "ratio", "target"], rows=rows, notes=notes,
         extra=extra)


if __name__ == "__main__":
    main()
