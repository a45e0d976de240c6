"""The GDMix MovieLens-100K benchmark: a global model, + per-user, + per-user and per-movie effects.

Protocol (``../shared/data/README.md``): label ``rating > 3``; user features age, gender, occupation and
zip prefix; movie features genres and release year; a random 80/20 split of the ratings with a reported
seed; AUC on the 20%. LinkedIn's GDMix published 0.6237 / 0.7058 / 0.7599 with a logistic-regression
global model and 0.7090 / 0.7665 / 0.7680 with a deep one.

The designs, built once with vectorized pandas/numpy:

* global (fixed effect): user features, movie features and their gender x genre and age x genre crosses;
* per-user random effect: the movie's genres, its standardized release year and an intercept;
* per-movie random effect: the user's gender, age bucket, occupation and an intercept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GDMIX_PUBLISHED", "MovieLensReport", "evaluate_movielens", "movielens_designs"]

GDMIX_PUBLISHED = {
    "linear": {"global": 0.6237, "per_user": 0.7058, "per_user_per_movie": 0.7599},
    "deep": {"global": 0.7090, "per_user": 0.7665, "per_user_per_movie": 0.7680},
}
_AGE_EDGES = (18, 25, 35, 45, 50, 56)


@dataclass
class MovieLensReport:
    """AUCs of the three models on the test split, with timings; ``to_dict()`` is what ``--json`` prints."""

    seed: int
    auc: dict[str, float]
    seconds: dict[str, float]
    rows: dict[str, int]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": "GDMix MovieLens-100K: label rating > 3, random 80/20 split",
                "seed": self.seed, "auc": self.auc, "seconds": self.seconds, "rows": self.rows,
                "gdmix_published": GDMIX_PUBLISHED, "settings": self.settings}

    def table(self) -> list[tuple[str, float, float, float]]:
        """``(model, ours, GDMix linear, GDMix deep)`` rows."""
        return [(k, self.auc[k], GDMIX_PUBLISHED["linear"][k], GDMIX_PUBLISHED["deep"][k])
                for k in ("global", "per_user", "per_user_per_movie")]


def _one_hot(values: Any, prefix: str) -> dict[str, np.ndarray]:
    import pandas as pd

    codes, levels = pd.factorize(pd.Series(values).astype(str), sort=True)
    eye = np.eye(len(levels), dtype=np.float64)
    return {f"{prefix}={level}": eye[codes, j] for j, level in enumerate(levels)}


def movielens_designs(data: Any) -> tuple[Any, dict[str, list[str]]]:
    """Numeric design columns for the ratings in *data* (the joined MovieLens frame).

    Returns the frame (``user_id``, ``item_id``, ``label`` and every design column) and the column
    lists ``{"global": [...], "per_user": [...], "per_movie": [...]}``.
    """
    import pandas as pd

    genres = [c for c in data.columns if c.startswith("genre_")]
    g = data[genres].to_numpy(np.float64)
    year = data["release_year"].astype("float64").fillna(1990.0).to_numpy()
    year_std = (year - 1990.0) / 10.0
    age = data["age"].to_numpy(np.float64)
    age_bucket = np.searchsorted(np.asarray(_AGE_EDGES), age, side="right")
    cols: dict[str, np.ndarray] = {"age_std": (age - 33.0) / 12.0,
                                   "male": (data["gender"].astype(str) == "M").to_numpy(np.float64),
                                   "year_std": year_std, "intercept": np.ones(len(data))}
    ages = _one_hot(age_bucket, "age")
    occupations = _one_hot(data["occupation"], "occupation")
    zips = _one_hot(data["zip_prefix"], "zip")
    decades = _one_hot((year // 10 * 10).astype(int), "decade")
    cols.update(ages)
    cols.update(occupations)
    cols.update(zips)
    cols.update(decades)
    for j, name in enumerate(genres):
        cols[name] = g[:, j]
        cols[f"male*{name}"] = cols["male"] * g[:, j]
        for a, column in ages.items():
            cols[f"{a}*{name}"] = column * g[:, j]
    frame = pd.DataFrame(cols)
    frame["user_id"] = data["user_id"].to_numpy()
    frame["item_id"] = data["item_id"].to_numpy()
    frame["label"] = data["label"].to_numpy(np.float64)
    user = ["age_std", "male", *ages, *occupations, *zips]
    movie = [*genres, "year_std", *decades]
    crosses = [c for c in cols if "*" in c]
    designs = {"global": [*user, *movie, *crosses],
               "per_user": [*genres, "year_std", "intercept"],
               "per_movie": ["male", *ages, *occupations, "intercept"]}
    return frame, designs


def evaluate_movielens(
    path: str | Path | None = None,
    *,
    seed: int = 0,
    global_l2: float = 10.0,
    user_l2: float = 10.0,
    movie_l2: float = 10.0,
    passes: int = 2,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> MovieLensReport:
    """Run the GDMix protocol: AUC on the test split for global / + per-user / + per-user + per-movie.

    Examples
    --------
    >>> report = evaluate_movielens(seed=0)                    # doctest: +SKIP
    >>> report.auc["per_user_per_movie"] > 0.768               # doctest: +SKIP
    True
    """
    from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix
    from proml_lab.training.metrics import auc
    from proml_lab.worlds.movielens import load_movielens

    emit = callback or (lambda event: None)
    started = time.perf_counter()
    train_raw, test_raw = load_movielens(path).split(seed=seed)
    both, designs = movielens_designs(_concat(train_raw, test_raw))
    train, test = both.iloc[: len(train_raw)], both.iloc[len(train_raw):].reset_index(drop=True)
    seconds = {"load": time.perf_counter() - started}
    user = RandomEffect("per_user", "user_id", tuple(designs["per_user"]), l2=user_l2, intercept=False)
    movie = RandomEffect("per_movie", "item_id", tuple(designs["per_movie"]), l2=movie_l2, intercept=False)
    models = {"global": (), "per_user": (user,), "per_user_per_movie": (user, movie)}
    aucs: dict[str, float] = {}
    for name, effects in models.items():
        emit({"event": "model", "model": name})
        t0 = time.perf_counter()
        spec = GLMixSpec(family="logistic", features=tuple(designs["global"]), l2=global_l2,
                         random_effects=effects, passes=passes if effects else 1, seed=seed)
        model = fit_glmix(train, spec, label="label", callback=emit)
        aucs[name] = float(auc(test["label"].to_numpy(), model.predict_margin(test)))
        seconds[name] = time.perf_counter() - t0
        emit({"event": "model_done", "model": name, "auc": aucs[name], "seconds": seconds[name]})
    seconds["total"] = time.perf_counter() - started
    return MovieLensReport(seed, aucs, seconds, {"train": len(train), "test": len(test)},
                           {"global_l2": global_l2, "user_l2": user_l2, "movie_l2": movie_l2,
                            "passes": passes, "global_features": len(designs["global"])})


def _concat(train: Any, test: Any) -> Any:
    import pandas as pd

    return pd.concat([train, test], ignore_index=True)
