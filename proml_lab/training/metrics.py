"""Offline metrics for scorers: AUC, log loss, RMSE, ranking metrics per query, per-entity AUC.

Every metric is vectorized numpy: per-group metrics sort the rows once by ``(group, score)`` and then
reduce tie blocks and groups with ``np.bincount``, so a million rows in a hundred thousand groups cost
one sort. Ties in the score are *averaged* everywhere (the expected value over a random order of the
tied rows), which is what :func:`sklearn.metrics.roc_auc_score` and :func:`sklearn.metrics.ndcg_score`
do, so the numbers agree with scikit-learn.

Score convention: one ``score`` array per model. Rank metrics (AUC, precision@k, NDCG@k, per-entity AUC)
only use its order; ``logloss`` needs probabilities in [0, 1] (apply ``scipy.special.expit`` to margins
first); ``rmse`` reads it as the prediction.

Comparing two models: :mod:`proml_lab.training.compare`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from proml_lab.errors import TrainingError

__all__ = [
    "HIGHER_IS_BETTER",
    "auc",
    "evaluate",
    "logloss",
    "ndcg_at_k",
    "per_entity_auc",
    "precision_at_k",
    "rmse",
]

#: Direction of every built-in metric: True when a larger value is better. ``logloss`` and ``rmse``
#: are the lower-is-better ones. Names with ``@k`` (``ndcg@10``) are looked up without the suffix.
HIGHER_IS_BETTER: dict[str, bool] = {
    "auc": True,
    "per_entity_auc": True,
    "precision": True,
    "ndcg": True,
    "logloss": False,
    "rmse": False,
}

_EPS = 1e-15  # p and 1 - p are floored at eps, so a confident miss costs ~34.5, not inf


# -- input checks ---------------------------------------------------------------------------------


def _vector(values: Any, name: str, n: int | None = None) -> np.ndarray:
    """A 1-D float array of finite values (of length ``n`` when given)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise TrainingError(f"{name} must be 1-D (one value per row). Got shape {arr.shape} instead.")
    if n is not None and arr.shape[0] != n:
        raise TrainingError(f"{name} must have one value per row of y ({n}). Got {arr.shape[0]} instead.")
    if arr.shape[0] == 0:
        raise TrainingError(f"{name} is empty; metrics need at least one row.")
    if not np.all(np.isfinite(arr)):
        raise TrainingError(f"{name} contains NaN or infinite values; drop or impute those rows first.")
    return arr


def _labels01(y: Any, metric: str) -> np.ndarray:
    """Binary labels as floats 0/1; anything else is an error naming the values found."""
    arr = _vector(y, "y")
    bad = np.unique(arr[(arr != 0) & (arr != 1)])
    if bad.size:
        raise TrainingError(
            f"{metric} needs binary labels 0/1 in y. Got other values {bad[:5].tolist()} instead; "
            "binarize the label first (e.g. y > 0)."
        )
    return arr


def _weights(weight: Any, n: int) -> np.ndarray:
    if weight is None:
        return np.ones(n)
    w = _vector(weight, "weight", n)
    if np.any(w < 0) or w.sum() <= 0:
        raise TrainingError("weight must be non-negative with a positive sum.")
    return w


def _codes(keys: Any, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..G-1 (in sorted key order) and the unique keys of a grouping column."""
    arr = np.asarray(keys)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise TrainingError(f"{name} must be 1-D with one key per row of y ({n}). Got shape {arr.shape}.")
    codes, uniques = pd.factorize(arr, sort=True)
    if np.any(codes < 0):
        raise TrainingError(f"{name} contains missing keys (None/NaN); give those rows a key or drop them.")
    return codes.astype(np.int64), np.asarray(uniques)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise TrainingError(f"The 'k' parameter must be an int in [1, inf). Got {k!r} instead.")
    return int(k)


# -- point metrics --------------------------------------------------------------------------------


def _grouped_auc(
    y: np.ndarray, score: np.ndarray, w: np.ndarray, codes: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group AUC (NaN without both classes), weighted positives and negatives, by one sort.

    AUC = P(score of a positive > score of a negative) + 1/2 P(tie): within a group, each block of
    tied scores contributes ``pos_block * (negatives below the block + neg_block / 2)``.
    """
    order = np.lexsort((score, codes))
    c, s = codes[order], score[order]
    pos_w, neg_w = (w * y)[order], (w * (1.0 - y))[order]
    new_block = np.ones(c.shape[0], dtype=bool)
    new_block[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1])
    block = np.cumsum(new_block) - 1
    pos_b, neg_b = np.bincount(block, pos_w), np.bincount(block, neg_w)
    block_group = c[new_block]
    pos_g = np.bincount(block_group, pos_b, minlength=n_groups)
    neg_g = np.bincount(block_group, neg_b, minlength=n_groups)
    neg_before_group = np.concatenate(([0.0], np.cumsum(neg_g)[:-1]))
    neg_below = np.cumsum(neg_b) - neg_b - neg_before_group[block_group]
    num = np.bincount(block_group, pos_b * (neg_below + 0.5 * neg_b), minlength=n_groups)
    denom = pos_g * neg_g
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)
    return aucs, pos_g, neg_g


def auc(y: Any, score: Any, weight: Any = None) -> float:
    """Area under the ROC curve, rank-based with tied scores counted as half.

    Equals :func:`sklearn.metrics.roc_auc_score` (also with ``sample_weight``).

    Parameters
    ----------
    y : array-like of 0/1
        Binary labels.
    score : array-like of float
        Any score whose order ranks positives first (probabilities, margins).
    weight : array-like of float, optional
        Non-negative row weights.

    Returns
    -------
    float
        The AUC in [0, 1].

    Raises
    ------
    TrainingError
        If ``y`` is not binary or holds only one class.

    Examples
    --------
    >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    yy = _labels01(y, "auc")
    s = _vector(score, "score", yy.shape[0])
    w = _weights(weight, yy.shape[0])
    aucs, pos, neg = _grouped_auc(yy, s, w, np.zeros(yy.shape[0], dtype=np.int64), 1)
    if not (pos[0] > 0 and neg[0] > 0):
        raise TrainingError("auc needs both classes in y (some 0s and some 1s); got only one.")
    return float(aucs[0])


def logloss(y: Any, p: Any, weight: Any = None) -> float:
    """Mean negative log-likelihood of binary labels under probabilities ``p``.

    ``p`` and ``1 - p`` are clipped below at ``1e-15``. Pass probabilities, not margins: apply
    ``scipy.special.expit`` to a margin first.

    Parameters
    ----------
    y : array-like of 0/1
        Binary labels.
    p : array-like of float in [0, 1]
        Predicted probability of the label 1.
    weight : array-like of float, optional
        Non-negative row weights (a weighted mean).

    Returns
    -------
    float

    Examples
    --------
    >>> round(logloss([1, 0], [0.8, 0.2]), 6)
    0.223144
    """
    yy = _labels01(y, "logloss")
    pp = _vector(p, "p", yy.shape[0])
    if np.any((pp < 0) | (pp > 1)):
        raise TrainingError(
            "logloss needs probabilities in [0, 1]; got values outside. If these are margins, "
            "apply scipy.special.expit (the sigmoid) first."
        )
    w = _weights(weight, yy.shape[0])
    # clip p and 1 - p separately: 1 - (1 - 1e-15) is not 1e-15 in floating point
    losses = -(yy * np.log(np.clip(pp, _EPS, 1.0)) + (1.0 - yy) * np.log(np.clip(1.0 - pp, _EPS, 1.0)))
    return float(np.sum(w * losses) / np.sum(w))


def rmse(y: Any, pred: Any, weight: Any = None) -> float:
    """Root mean squared error, ``sqrt(sum w (y - pred)^2 / sum w)``.

    Examples
    --------
    >>> rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    1.1547005383792515
    """
    yy = _vector(y, "y")
    pr = _vector(pred, "pred", yy.shape[0])
    w = _weights(weight, yy.shape[0])
    return float(np.sqrt(np.sum(w * (yy - pr) ** 2) / np.sum(w)))


# -- ranking metrics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ranked:
    """Rows sorted by (group, score desc): within-group positions and tie-averaged per-row values."""

    codes: np.ndarray  # group code of each sorted row
    position: np.ndarray  # 0-based rank within its group
    block: np.ndarray  # tie block id (same group and same score)
    sizes: np.ndarray  # rows per group
    n_groups: int

    def tie_mean(self, values: np.ndarray) -> np.ndarray:
        """Each sorted row's value replaced by the mean over its tie block (averages tied orders)."""
        return (np.bincount(self.block, values) / np.bincount(self.block))[self.block]


def _rank(score: np.ndarray, group: Any, n: int) -> tuple[_Ranked, np.ndarray]:
    codes, _ = _codes(group, "group", n)
    order = np.lexsort((-score, codes))
    c, s = codes[order], score[order]
    n_groups = int(c.max()) + 1
    sizes = np.bincount(c, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    position = np.arange(n) - starts[c]
    new_block = np.ones(n, dtype=bool)
    new_block[1:] = (c[1:] != c[:-1]) | (s[1:] != s[:-1])
    return _Ranked(c, position, np.cumsum(new_block) - 1, sizes, n_groups), order


def _mean_over_relevant(per_group: np.ndarray, has_relevant: np.ndarray, metric: str) -> float:
    if not has_relevant.any():
        raise TrainingError(f"{metric} is undefined: no query group has a relevant row (y > 0).")
    return float(per_group[has_relevant].mean())


def precision_at_k(y: Any, score: Any, group: Any, k: int) -> float:
    """Precision@k per query group, averaged over the groups that have a relevant row.

    A row is relevant when ``y > 0``. A group's precision is the number of relevant rows among its
    top ``k`` by score divided by ``min(k, group size)``, so a group smaller than ``k`` can still
    reach 1. Groups with no relevant row are left out of the mean (no ranking can do anything for
    them); tied scores count as the average over their orders.

    Parameters
    ----------
    y : array-like of float
        Relevance (binary or graded; only ``y > 0`` matters here).
    score : array-like of float
        Model scores, higher ranks first.
    group : array-like
        Query id of each row (any hashable values).
    k : int
        Cut-off, at least 1.

    Returns
    -------
    float

    Examples
    --------
    >>> precision_at_k([1, 0, 0, 0, 1, 1], [0.9, 0.8, 0.1, 0.2, 0.5, 0.4], ["a"] * 3 + ["b"] * 3, k=2)
    0.75
    """
    yy = _vector(y, "y")
    s = _vector(score, "score", yy.shape[0])
    k = _check_k(k)
    ranked, order = _rank(s, group, yy.shape[0])
    relevant = ranked.tie_mean((yy[order] > 0).astype(float))
    hits = np.bincount(ranked.codes, relevant * (ranked.position < k), minlength=ranked.n_groups)
    per_group = hits / np.minimum(k, ranked.sizes)
    has_relevant = np.bincount(ranked.codes, yy[order] > 0, minlength=ranked.n_groups) > 0
    return _mean_over_relevant(per_group, has_relevant, "precision_at_k")


def ndcg_at_k(y: Any, score: Any, group: Any, k: int) -> float:
    """NDCG@k per query group (gains ``2**rel - 1``, discounts ``1 / log2(rank + 1)``), averaged.

    Groups whose rows all have relevance 0 have no ideal ranking (IDCG = 0) and are left out of the
    mean, as in :func:`precision_at_k`. (:func:`sklearn.metrics.ndcg_score` counts them as 0 and uses
    linear gains; it agrees with this function given ``2**rel - 1`` as ``y_true`` and groups with a
    relevant row.) Tied scores are averaged over their orders.

    Parameters
    ----------
    y : array-like of float
        Graded relevance, non-negative (0 = irrelevant).
    score : array-like of float
        Model scores, higher ranks first.
    group : array-like
        Query id of each row.
    k : int
        Cut-off, at least 1.

    Returns
    -------
    float

    Examples
    --------
    >>> round(ndcg_at_k([0, 1], [0.9, 0.1], ["q", "q"], k=2), 6)
    0.63093
    """
    yy = _vector(y, "y")
    if np.any(yy < 0):
        raise TrainingError("ndcg_at_k needs non-negative relevance grades in y.")
    s = _vector(score, "score", yy.shape[0])
    k = _check_k(k)
    ranked, order = _rank(s, group, yy.shape[0])
    gain = np.exp2(yy) - 1.0
    discount = np.where(ranked.position < k, 1.0 / np.log2(ranked.position + 2.0), 0.0)
    dcg = np.bincount(ranked.codes, ranked.tie_mean(gain[order]) * discount, minlength=ranked.n_groups)
    # The ideal order sorts by (group, gain desc); group sizes are unchanged, so positions are too.
    ideal = np.lexsort((-gain, ranked.codes[np.argsort(order)]))
    idcg = np.bincount(ranked.codes, gain[ideal] * discount, minlength=ranked.n_groups)
    has_relevant = idcg > 0
    per_group = np.where(has_relevant, dcg / np.where(has_relevant, idcg, 1.0), np.nan)
    return _mean_over_relevant(per_group, has_relevant, "ndcg_at_k")


def per_entity_auc(y: Any, score: Any, entity: Any, *, min_rows: int = 1) -> tuple[float, pd.DataFrame]:
    """AUC within each entity (a member, a job ...) and their mean, weighted by the entity's rows.

    Only entities with both classes and at least ``min_rows`` rows get an AUC; the mean is
    ``sum(rows_e * auc_e) / sum(rows_e)`` over those, so a member with 200 impressions counts 100
    times as much as one with 2. Raise ``min_rows`` (e.g. 20) to drop entities too small to rank.

    Parameters
    ----------
    y : array-like of 0/1
        Binary labels.
    score : array-like of float
        Model scores.
    entity : array-like
        Entity id of each row.
    min_rows : int, default 1
        Entities with fewer rows get no AUC.

    Returns
    -------
    mean : float
        Row-weighted mean AUC over the entities that have one.
    table : pandas.DataFrame
        One row per entity (sorted by id): ``entity, rows, positives, auc`` (NaN where undefined).

    Examples
    --------
    >>> mean, table = per_entity_auc([0, 1, 0, 1, 1], [0.2, 0.9, 0.8, 0.1, 0.5], ["a", "a", "b", "b", "c"])
    >>> mean, table["auc"].tolist()[:2]
    (0.5, [1.0, 0.0])
    """
    yy = _labels01(y, "per_entity_auc")
    s = _vector(score, "score", yy.shape[0])
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise TrainingError(f"The 'min_rows' parameter must be an int in [1, inf). Got {min_rows!r} instead.")
    codes, keys = _codes(entity, "entity", yy.shape[0])
    aucs, pos, _ = _grouped_auc(yy, s, np.ones_like(yy), codes, keys.shape[0])
    rows = np.bincount(codes, minlength=keys.shape[0])
    aucs = np.where(rows >= min_rows, aucs, np.nan)
    table = pd.DataFrame({"entity": keys, "rows": rows, "positives": pos.astype(np.int64), "auc": aucs})
    used = ~np.isnan(aucs)
    if not used.any():
        raise TrainingError(
            f"per_entity_auc is undefined: no entity has both classes and at least {min_rows} rows."
        )
    return float(np.sum(rows[used] * aucs[used]) / np.sum(rows[used])), table


# -- evaluate ---------------------------------------------------------------------------------------

_METRICS = ("auc", "logloss", "rmse", "precision", "ndcg", "per_entity_auc")
_ALIASES = {"precision_at_k": "precision", "ndcg_at_k": "ndcg"}


def _parse_metric(name: str, k: int) -> tuple[str, int]:
    base, _, suffix = name.partition("@")
    base = _ALIASES.get(base, base)
    if base not in _METRICS or (suffix and base not in ("precision", "ndcg")):
        raise TrainingError(
            f"Unknown metric {name!r}. Use one of: {', '.join(_METRICS)} (precision and ndcg take "
            "an optional cut-off, e.g. 'ndcg@5')."
        )
    if suffix:
        if not suffix.isdigit():
            raise TrainingError(f"Metric {name!r} needs an integer cut-off after '@', e.g. '{base}@10'.")
        k = int(suffix)
    return base, _check_k(k)


def evaluate(
    y: Any,
    score: Any,
    *,
    metrics: Sequence[str] = ("auc", "logloss"),
    group: Any = None,
    entity: Any = None,
    k: int = 10,
    weight: Any = None,
) -> dict[str, float]:
    """Several metrics of one model's scores at once.

    ``score`` is a probability of the label 1 (so ``logloss`` is meaningful; apply
    ``scipy.special.expit`` to margins first); rank metrics only use its order and ``rmse`` reads it
    as the prediction.

    Parameters
    ----------
    y : array-like
        Labels (0/1 for auc, logloss, per_entity_auc; graded relevance for ndcg).
    score : array-like of float
        The model's predicted probabilities.
    metrics : sequence of str, default ("auc", "logloss")
        Any of ``auc, logloss, rmse, precision, ndcg, per_entity_auc``; ``precision`` and ``ndcg``
        use ``k`` unless written with a cut-off (``"ndcg@5"``).
    group : array-like, optional
        Query ids; needed by precision and ndcg.
    entity : array-like, optional
        Entity ids; needed by per_entity_auc.
    k : int, default 10
        Default cut-off of the ranking metrics.
    weight : array-like, optional
        Row weights for auc, logloss and rmse.

    Returns
    -------
    dict of str to float
        Keyed by metric, with the cut-off spelled out for ranking metrics (``"ndcg@10"``).

    Examples
    --------
    >>> evaluate([0, 1, 1, 0], [0.2, 0.7, 0.6, 0.4], metrics=("auc", "rmse"))
    {'auc': 1.0, 'rmse': 0.33541019662496846}
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    result: dict[str, float] = {}
    for name in metrics:
        base, kk = _parse_metric(name, k)
        if base in ("precision", "ndcg"):
            if group is None:
                raise TrainingError(f"Metric {name!r} ranks rows per query: pass group=<query ids>.")
            fn = precision_at_k if base == "precision" else ndcg_at_k
            result[f"{base}@{kk}"] = fn(y, score, group, kk)
        elif base == "per_entity_auc":
            if entity is None:
                raise TrainingError("Metric 'per_entity_auc' needs entity=<entity ids>.")
            result[base] = per_entity_auc(y, score, entity)[0]
        else:
            result[base] = {"auc": auc, "logloss": logloss, "rmse": rmse}[base](y, score, weight)
    return result
