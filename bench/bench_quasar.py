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
    w = {
        "member_emb": rng.normal(size=(1, EMB)).astype(np.float32),
        "member_seniority": np.array([3.0]),
        "job_emb": rng.normal(size=(n, EMB)).astype(np.float32),  # as a forward index stores them
        "job_features": rng.normal(size=(n, FEATS)).astype(np.float32),
        "job_remote": rng.integers(0, 2, n).astype(np.float64),
        "job_seniority": rng.uniform(1, 6, n),
        "member_ids": np.array(["m0"], dtype=object),
        "document_ids": np.array([f"job{i}" for i in range(n)], dtype=str),
    }
    # the candidates' embeddings are read-only, as a memory-mapped forward index serves them: the engine
    # computes their norms once per array; the bare floor gets them precomputed too
    w["job_emb"].flags.writeable = False
    w["job_emb_sq"] = np.einsum("ij,ij->i", w["job_emb"], w["job_emb"]).astype(np.float64)
    return w


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

    @staticmethod
    def cosine(emb: np.ndarray, emb_sq: np.ndarray, m: np.ndarray) -> np.ndarray:
        # einsum, not ``emb @ m``: an OpenBLAS matrix-vector product leaves its threads spinning, and the
        # XGBoost predict right after it then runs up to 2x slower on a 2-core machine (measured).
        # float32 embeddings: float32 arithmetic, float64 result; document norms computed once.
        dots = np.einsum("ij,j->i", emb, m).astype(np.float64)
        m64 = m.astype(np.float64)
        return dots / np.sqrt(float(m64 @ m64) * emb_sq)

    def rank(self, w: dict, doc_ids: np.ndarray, keep: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        feats, remote, senior = w["job_features"], w["job_remote"], w["job_seniority"]
        cos = self.cosine(w["job_emb"], w["job_emb_sq"], w["member_emb"][0])
        rows = None
        if keep is not None:  # phased: KEEP TOP k BY cosine, then everything else on those rows only
            rows = np.sort(np.argpartition(-cos, keep)[:keep])
            feats, remote, senior, doc_ids, cos = (a[rows] for a in (feats, remote, senior, doc_ids, cos))
        trees = self.booster.inplace_predict(feats, predict_type="margin").astype(np.float64)
        glm = self.fixed[0] * cos + self.fixed[1] * remote + self.fixed[2] * senior + self.intercept
        pm = self._lookup("per_member", np.asarray(w["member_ids"], dtype=str))[0]
        glm += pm[0] * remote + pm[1] * senior
        pd_ = self._lookup("per_document", doc_ids)
        glm += pd_[:, 0] * w["member_seniority"][0] + pd_[:, 1] * cos
        score = trees + glm
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
        # the physical ceiling of phasing: the bare computation itself, phased the same way
        rows.append([f"phased rank (KEEP TOP {KEEP} BY cosine), {label}", f"{t_ph * 1000:.1f} ms",
                     f"bare exhaustive {t_bare * 1000:.1f} ms", f"{t_bare / t_ph:.1f}x faster",
                     f">= 10x faster (ceiling: bare phased is {t_bare / t_bare_ph:.1f}x)"])
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
        "One query (member) per rank call; the same matrices feed both sides: 64-d float32 embeddings "
        "(read-only, as a memory-mapped forward index serves them), a float32 (n, 32) document-feature "
        "matrix, a 200-tree depth-6 XGBoost booster (trained in the bench on 20k random rows with a "
        f"learnable signal, {train_s:.1f} s, nthread = all cores) and a hand-made GLMix state (fixed + "
        "per-member + per-document coefficients; 10% of jobs have none). The bare floor is numpy cosine "
        "(einsum in float32, the candidates' norms computed once up front) + "
        "`booster.inplace_predict(predict_type='margin')` + the GLMix arithmetic in numpy (coefficient "
        "tables indexed once by sorted id, looked up with `searchsorted`) + `np.argpartition` top-100. "
        "Each engine result is asserted equal to the bare top-100 (rows and scores). Timings: 3 warm-ups, "
        "then the median of 50 (10k) or 15 (100k) calls. The 100-line program has 32 inputs, 61 "
        "expression declarations, a KEEP, a linear scorer, a tree ensemble, ORDER, TOP and RETURN.\n\n"
        "The ceiling of phased ranking is the bare computation phased the same way (cosine over every "
        "candidate, trees on 2,000): at 10k candidates KEEP 2000 still sends 20% of the rows to the trees, "
        "so no implementation can be 10x faster there; at 100k it is 2%.\n\n"
        "Where the time goes (`python bench/bench_quasar.py --profile`). Exhaustive: `inplace_predict` "
        "dominates, as in bare. Phased at 100k: the cosine over all candidates (one float32 pass over 25 MB "
        "of embeddings, DRAM-bound; the norms of a read-only candidate matrix are cached per array), the "
        "trees on 2,000 rows, then small look-ups. A one-query KEEP selects with a partition, and a "
        "one-query ORDER followed by TOP sorts only the rows it keeps. The bare floor uses einsum, not "
        "`emb @ m`: an OpenBLAS matrix-vector product leaves its threads spinning and the XGBoost predict "
        "after it ran up to 2x slower on this 2-core machine."
    )
    save("quasar", title="Quasar: job-recommendation ranking vs the bare numpy + XGBoost floor",
         command="python bench/bench_quasar.py",
         columns=["measure", "ProML Lab", "bare / reference", "ratio", "target"], rows=rows, notes=notes,
         extra=extra)


if __name__ == "__main__":
    main()
