"""Drift measures between a reference sample (the training data) and a current one (a serving window).

Pure functions over arrays: PSI for numeric features (quantile bins of the reference), Jensen–Shannon
distance for categorical ones, score-distribution drift (PSI + Kolmogorov–Smirnov), AUC per time window
from logged outcomes, and :func:`drift_report`, which applies :class:`DriftThresholds` to a whole frame.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> round(psi(rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)), 3) < 0.01
True
>>> psi(rng.normal(0, 1, 5000), rng.normal(1, 1, 5000)) > 0.2
True
>>> js_distance(["a", "a", "b"], ["c", "d"])
1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from proml_lab.health import HealthError

__all__ = ["DriftThresholds", "Threshold", "auc_decay", "drift_report", "js_distance", "psi", "score_drift"]

EPSILON = 1e-4  # floor for empty bins: PSI is infinite otherwise


def _numeric(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce"), dtype=float)
    if arr.size == 0:
        raise HealthError(f"{name} is empty; drift measures need at least one value on each side.")
    return arr


def psi(reference: Any, current: Any, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = Σ (c_i - r_i) ln(c_i / r_i)`` over bins whose edges are the reference's quantiles (so each
    bin holds about 1/``bins`` of the reference). Tied quantiles collapse into one edge (a constant
    column has two bins: below and at-or-above its value); missing values (NaN) get a bin of their own;
    empty bins count as ``1e-4`` so the index stays finite.

    Parameters
    ----------
    reference, current : array-like of numbers
        The two samples (NaN allowed).
    bins : int, default 10
        Number of quantile bins.

    Returns
    -------
    float
        0 for identical distributions; by convention < 0.1 stable, 0.1–0.2 moderate, > 0.2 significant.

    Examples
    --------
    >>> psi([1, 2, 3, 4] * 25, [1, 2, 3, 4] * 25)
    0.0
    >>> round(psi([0.0] * 100, [0.0] * 50 + [np.nan] * 50), 2)
    4.6
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise HealthError(f"The 'bins' parameter of psi must be an int in [1, inf). Got {bins!r} instead.")
    ref, cur = _numeric(reference, "reference"), _numeric(current, "current")
    finite = ref[np.isfinite(ref)]
    if finite.size:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))[1:-1])
        if edges.size == 0:  # constant reference: split at its value
            edges = finite[:1]
    else:
        edges = np.array([])
    n_bins = edges.size + 2  # value bins + the NaN bin

    def shares(x: np.ndarray) -> np.ndarray:
        idx = np.where(np.isnan(x), n_bins - 1, np.searchsorted(edges, x, side="right"))
        return np.maximum(np.bincount(idx, minlength=n_bins) / x.size, EPSILON)

    r, c = shares(ref), shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference_categories: Any, current_categories: Any) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two samples of categories.

    Categories seen on only one side count with probability 0 on the other; missing values (None/NaN)
    form a category of their own.

    Examples
    --------
    >>> js_distance(["a", "b"], ["a", "b"])
    0.0
    >>> round(js_distance(["a", "a", "b"], ["a", "b", "b"]), 3)
    0.286
    """
    from scipy.spatial.distance import jensenshannon

    ref = pd.Series(np.asarray(reference_categories, dtype=object).ravel())
    cur = pd.Series(np.asarray(current_categories, dtype=object).ravel())
    if ref.empty or cur.empty:
        raise HealthError("js_distance needs at least one category on each side.")
    codes, _ = pd.factorize(pd.concat([ref, cur], ignore_index=True), use_na_sentinel=False)
    k = int(codes.max()) + 1
    p = np.bincount(codes[: len(ref)], minlength=k) / len(ref)
    q = np.bincount(codes[len(ref):], minlength=k) / len(cur)
    return float(np.clip(jensenshannon(p, q, base=2), 0.0, 1.0))


def score_drift(reference_scores: Any, current_scores: Any, *, bins: int = 10) -> dict[str, float]:
    """Drift of a model's score distribution: PSI and the two-sample Kolmogorov–Smirnov statistic.

    Returns
    -------
    dict
        ``psi``, ``ks`` (the largest gap between the two empirical CDFs) and ``ks_pvalue``.

    Examples
    --------
    >>> d = score_drift(np.linspace(0, 1, 1000), np.linspace(0, 1, 1000) ** 2)
    >>> d["psi"] > 0.2, round(d["ks"], 2)
    (True, 0.25)
    """
    from scipy.stats import ks_2samp

    ref, cur = _numeric(reference_scores, "reference_scores"), _numeric(current_scores, "current_scores")
    ks = ks_2samp(ref[np.isfinite(ref)], cur[np.isfinite(cur)])
    return {"psi": psi(ref, cur, bins=bins), "ks": float(ks.statistic), "ks_pvalue": float(ks.pvalue)}


def auc_decay(labels: Any, scores: Any, timestamps: Any, window: str = "1d") -> pd.DataFrame:
    """AUC of logged scores against logged outcomes, per time window (online AUC decay).

    One sort for all windows (:func:`proml_lab.training.metrics.per_entity_auc` with the window as the
    entity). A window with only one class has AUC NaN.

    Returns
    -------
    pandas.DataFrame
        ``window`` (start), ``rows``, ``positives``, ``auc``, sorted by window.

    Examples
    --------
    >>> ts = pd.to_datetime(["2026-01-05 01:00", "2026-01-05 02:00", "2026-01-06 01:00", "2026-01-06 03:00"])
    >>> auc_decay([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.2], ts, "1d")["auc"].tolist()
    [1.0, 0.0]
    """
    from proml_lab.errors import TrainingError
    from proml_lab.training.metrics import per_entity_auc

    stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamps).ravel()))
    start = stamps.floor(pd.Timedelta(window))
    try:
        _, table = per_entity_auc(labels, scores, start.asi8)
    except TrainingError as exc:
        if "undefined" not in str(exc):
            raise HealthError(str(exc)) from exc
        # no window has both classes: still report rows and positives per window
        y = np.asarray(labels, dtype=float)
        grouped = pd.Series(y).groupby(start.asi8)
        table = pd.DataFrame({"entity": grouped.size().index, "rows": grouped.size().to_numpy(),
                              "positives": grouped.sum().to_numpy().astype(np.int64), "auc": np.nan})
    window_start = pd.to_datetime(table["entity"].to_numpy(), utc=stamps.tz is not None)
    if stamps.tz is not None:
        window_start = window_start.tz_convert(stamps.tz)
    return pd.DataFrame({"window": window_start, "rows": table["rows"].to_numpy(),
                         "positives": table["positives"].to_numpy(), "auc": table["auc"].to_numpy()})


# -- thresholds and the report ------------------------------------------------------------------------
class Threshold(BaseModel):
    """Warn at ``warn``, alert at ``alert`` (values at or above)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn: float = Field(ge=0)
    alert: float = Field(ge=0)


class DriftThresholds(BaseModel):
    """Warn/alert levels per measure, overridable per feature.

    The defaults are the industry convention for PSI (< 0.1 no significant change, 0.1–0.2 moderate,
    > 0.2 significant; Siddiqi, *Credit Risk Scorecards*, 2006, also Evidently's and NannyML's default)
    and the same 0.1 / 0.2 levels for the Jensen–Shannon distance (Evidently's default for categorical
    drift is 0.1) and the KS statistic.

    Examples
    --------
    >>> t = DriftThresholds(features={"job_region": Threshold(warn=0.05, alert=0.1)})
    >>> t.status("job_region", "js", 0.07), t.status("member_age", "psi", 0.07)
    ('warn', 'ok')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi: Threshold = Threshold(warn=0.1, alert=0.2)
    js: Threshold = Threshold(warn=0.1, alert=0.2)
    ks: Threshold = Threshold(warn=0.1, alert=0.2)
    # relative calibration error |observed CTR - mean predicted| / mean predicted (:func:`calibration_error`)
    calibration: Threshold = Threshold(warn=0.1, alert=0.2)
    # online AUC below the validation AUC, in AUC points (logged exposures are position-biased: a small
    # gap is normal, a growing one is decay)
    auc_drop: Threshold = Threshold(warn=0.03, alert=0.05)
    features: dict[str, Threshold] = Field(default_factory=dict)

    def status(self, feature: str, measure: str, value: float) -> Literal["ok", "warn", "alert"]:
        """``ok``, ``warn`` or ``alert`` for ``value`` of ``measure`` on ``feature``."""
        t = self.features.get(feature) or getattr(self, measure)
        if not np.isfinite(value):
            return "alert"
        return "alert" if value >= t.alert else "warn" if value >= t.warn else "ok"


def drift_report(reference: pd.DataFrame, current: pd.DataFrame,
                 kinds: Mapping[str, Literal["numeric", "categorical"]],
                 thresholds: DriftThresholds | Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per feature: PSI for ``numeric`` features, Jensen–Shannon distance for ``categorical`` ones.

    Parameters
    ----------
    reference, current : pandas.DataFrame
        The training sample and the serving window, with the features as columns.
    kinds : dict
        Feature name → ``"numeric"`` or ``"categorical"``.
    thresholds : DriftThresholds or dict, optional
        Default: PSI and JS warn at 0.1, alert at 0.2.

    Returns
    -------
    pandas.DataFrame
        ``feature, kind, measure, value, status`` (status ``ok`` / ``warn`` / ``alert``).

    Examples
    --------
    >>> ref = pd.DataFrame({"x": np.arange(1000.0), "c": ["a", "b"] * 500})
    >>> cur = pd.DataFrame({"x": np.arange(1000.0) + 500, "c": ["a", "b"] * 500})
    >>> report = drift_report(ref, cur, {"x": "numeric", "c": "categorical"})
    >>> report[["feature", "measure", "status"]].values.tolist()
    [['x', 'psi', 'alert'], ['c', 'js', 'ok']]
    """
    t = thresholds if isinstance(thresholds, DriftThresholds) else DriftThresholds.model_validate(
        thresholds or {})
    rows = []
    for feature, kind in kinds.items():
        for frame, side in ((reference, "reference"), (current, "current")):
            if feature not in frame.columns:
                raise HealthError(f"Feature {feature!r} is not a column of the {side} frame.")
        if kind == "numeric":
            measure, value = "psi", psi(reference[feature], current[feature])
        elif kind == "categorical":
            measure, value = "js", js_distance(reference[feature], current[feature])
        else:
            raise HealthError(
                f"Unknown kind {kind!r} for feature {feature!r}; choose one of numeric, categorical."
            )
        rows.append((feature, kind, measure, value, t.status(feature, measure, value)))
    return pd.DataFrame(rows, columns=["feature", "kind", "measure", "value", "status"])


# -- measures against a stored reference (a training snapshot) ---------------------------------------
OTHER = "__other__"  # categories a snapshot folds together (beyond its top ones)
MISSING = "__null__"  # missing values, as a category of a snapshot


def _check_fractions(fractions: Any, size: int, name: str) -> np.ndarray:
    f = np.asarray(fractions, dtype=float).ravel()
    if f.size != size or not np.all(np.isfinite(f)) or np.any(f < 0) or f.sum() <= 0:
        raise HealthError(f"{name} must hold {size} non-negative fractions; got {f.size} values.")
    return f / f.sum()


def reference_histogram(reference: Any, bins: int = 10) -> tuple[list[float], list[float]]:
    """``(edges, fractions)`` of a numeric sample, the binning :func:`psi` uses (store it; compare later).

    ``edges`` are the reference's inner quantile edges (ties merged); ``fractions`` has
    ``len(edges) + 2`` entries: the value bins, then the missing-value (NaN) bin.

    Examples
    --------
    >>> edges, fractions = reference_histogram(np.arange(100.0), bins=4)
    >>> edges, fractions
    ([24.75, 49.5, 74.25], [0.25, 0.25, 0.25, 0.25, 0.0])
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise HealthError(f"The 'bins' parameter of reference_histogram must be an int in [1, inf). "
                          f"Got {bins!r} instead.")
    ref = _numeric(reference, "reference")
    finite = ref[np.isfinite(ref)]
    if finite.size:
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))[1:-1])
        if edges.size == 0:
            edges = finite[:1]
    else:
        edges = np.array([])
    n_bins = edges.size + 2
    idx = np.where(np.isnan(ref), n_bins - 1, np.searchsorted(edges, ref, side="right"))
    return [float(e) for e in edges], [float(x) for x in np.bincount(idx, minlength=n_bins) / ref.size]


def psi_from_reference(edges: Any, ref_fractions: Any, current: Any) -> float:
    """:func:`psi` of ``current`` against a stored reference histogram (:func:`reference_histogram`).

    Gives the same value as ``psi(reference, current)`` on the reference sample the histogram came from.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ref, cur = rng.normal(0, 1, 2000), rng.normal(0.5, 1, 2000)
    >>> edges, fractions = reference_histogram(ref)
    >>> bool(np.isclose(psi_from_reference(edges, fractions, cur), psi(ref, cur)))
    True
    """
    e = np.asarray(edges, dtype=float).ravel()
    if e.size and not np.all(np.diff(e) > 0):
        raise HealthError("edges must be strictly increasing.")
    n_bins = e.size + 2
    r = np.maximum(_check_fractions(ref_fractions, n_bins, "ref_fractions"), EPSILON)
    cur = _numeric(current, "current")
    idx = np.where(np.isnan(cur), n_bins - 1, np.searchsorted(e, cur, side="right"))
    c = np.maximum(np.bincount(idx, minlength=n_bins) / cur.size, EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def reference_frequencies(reference: Any, top: int = 100) -> dict[str, float]:
    """Category → share of a categorical sample: the ``top`` most frequent, the rest as ``"__other__"``,
    missing values as ``"__null__"`` (keys are strings, so the result stores as JSON).

    Examples
    --------
    >>> reference_frequencies(["a", "a", "b", None], top=1)
    {'a': 0.5, '__null__': 0.25, '__other__': 0.25}
    """
    s = pd.Series(np.asarray(reference, dtype=object).ravel())
    if s.empty:
        raise HealthError("reference is empty; a frequency table needs at least one value.")
    null = s.isna()
    counts = s[~null].astype(str).value_counts(sort=True)
    out = {str(k): float(v) / len(s) for k, v in counts.iloc[:top].items()}
    if null.any():
        out[MISSING] = float(null.sum()) / len(s)
    if len(counts) > top:
        out[OTHER] = float(counts.iloc[top:].sum()) / len(s)
    return out


def js_from_reference(ref_freqs: Mapping[str, float], current: Any) -> float:
    """:func:`js_distance` of ``current`` categories against a stored frequency table.

    ``ref_freqs`` is :func:`reference_frequencies`' form. Current categories missing from the table
    count as ``"__other__"`` when the table has that bucket (they may be among the reference's rare ones),
    else as new categories (probability 0 in the reference).

    Examples
    --------
    >>> js_from_reference({"a": 0.5, "b": 0.5}, ["a", "b"])
    0.0
    >>> js_from_reference({"a": 1.0}, ["c"])
    1.0
    """
    from scipy.spatial.distance import jensenshannon

    if not ref_freqs:
        raise HealthError("ref_freqs is empty; a frequency table needs at least one category.")
    cur = pd.Series(np.asarray(current, dtype=object).ravel())
    if cur.empty:
        raise HealthError("current is empty; js_from_reference needs at least one value.")
    keys = cur.where(cur.isna(), cur.astype(str)).fillna(MISSING).astype(str)
    if OTHER in ref_freqs:
        keys = keys.where(keys.isin(list(ref_freqs)), OTHER)
    counts = keys.value_counts()
    cats = list(dict.fromkeys([*ref_freqs, *counts.index]))
    p = _check_fractions([ref_freqs.get(c, 0.0) for c in cats], len(cats), "ref_freqs")
    q = np.asarray([counts.get(c, 0) for c in cats], dtype=float) / len(cur)
    return float(np.clip(jensenshannon(p, q, base=2), 0.0, 1.0))


def calibration_error(labels: Any, probabilities: Any) -> float:
    """Relative calibration error: ``|observed rate - mean predicted probability| / mean predicted``.

    0 when the model predicts the observed click rate on average; 0.25 when it over- or under-predicts
    by a quarter. Conventional levels (:class:`DriftThresholds` ``calibration``): 0.1 warn, 0.2 alert.

    Examples
    --------
    >>> calibration_error([0, 1, 0, 0], [0.25, 0.25, 0.25, 0.25])
    0.0
    >>> calibration_error([0, 0, 0, 1], [0.5, 0.5, 0.5, 0.5])
    0.5
    """
    y = _numeric(labels, "labels")
    p = _numeric(probabilities, "probabilities")
    if y.size != p.size:
        raise HealthError(f"labels and probabilities differ in length ({y.size} vs {p.size}).")
    ok = np.isfinite(y) & np.isfinite(p)
    if not ok.any():
        raise HealthError("calibration_error needs at least one finite (label, probability) pair.")
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise HealthError("probabilities must lie in [0, 1]; a raw margin is no probability.")
    predicted = float(p[ok].mean())
    if predicted <= 0:
        return 0.0 if float(y[ok].mean()) == 0 else float("inf")
    return float(abs(float(y[ok].mean()) - predicted) / predicted)


__all__ += ["calibration_error", "js_from_reference", "psi_from_reference", "reference_frequencies",
            "reference_histogram"]
