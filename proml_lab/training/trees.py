"""Gradient-boosted trees with XGBoost: local training and distributed training on Spark.

Both entry points return a plain :class:`xgboost.Booster`, which is exactly the state the Quasar
``TreeEnsemble`` operator scores with (``inplace_predict(x, predict_type="margin")``), so a trained
ensemble drops into a program's state dict unchanged. ``base_margin`` (``base_margin_col`` on Spark) is
how GLMix uses trees as its fixed effect: the per-entity random-effect scores enter as offsets and the
trees learn the residual signal.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3))
>>> y = (X[:, 0] > 0).astype(float)
>>> booster = fit_trees(X, y, num_rounds=10, params={"max_depth": 2})
>>> booster.num_boosted_rounds()
10
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab.errors import MissingDependencyError, TrainingError

if TYPE_CHECKING:
    import xgboost
    from pyspark.sql import DataFrame

RoundCallback = Callable[[int, dict[str, float]], None]

# Objectives that give one margin per row: what TreeEnsemble (a scalar score) can serve. Ranking
# objectives need query groups and multi-class ones give a margin per class; neither fits here.
OBJECTIVES: tuple[str, ...] = (
    "binary:logistic", "binary:logitraw", "binary:hinge",
    "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:quantileerror", "reg:gamma", "reg:tweedie",
    "count:poisson", "survival:cox",
)
_BINARY = ("binary:logistic", "binary:logitraw", "binary:hinge", "reg:logistic")
# The base_score whose margin is 0 under each objective's link (logit: 0.5, log: 1, identity: 0).
_ZERO_MARGIN = {"binary:logistic": 0.5, "reg:logistic": 0.5, "count:poisson": 1.0, "reg:gamma": 1.0,
                "reg:tweedie": 1.0, "survival:cox": 1.0}
_DEFAULTS: dict[str, Any] = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
                             "eta": 0.3, "seed": 0}


@functools.cache
def default_device() -> str:
    """``"cuda"`` when an NVIDIA GPU is usable by XGBoost, else ``"cpu"`` (checked once, cached).

    The check loads the CUDA driver library with :mod:`ctypes` and counts devices (no subprocess, no
    framework), then asks XGBoost whether it was built with CUDA. It never fails: any problem means
    ``"cpu"``.

    Examples
    --------
    >>> default_device() in ("cpu", "cuda")
    True
    """
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
            return "cpu"
        import xgboost

        return "cuda" if xgboost.build_info().get("USE_CUDA") else "cpu"
    except Exception:  # no driver, no GPU, an odd build: the CPU always works
        return "cpu"


def _xgboost() -> Any:
    try:
        import xgboost
    except ImportError:
        raise MissingDependencyError("xgboost") from None
    return xgboost


def _params(params: Mapping[str, Any] | None, device: str | None) -> dict[str, Any]:
    """Defaults + user params, with the objective checked once here."""
    merged = {**_DEFAULTS, **(params or {})}
    merged["device"] = device or merged.get("device") or default_device()
    if merged["objective"] not in OBJECTIVES:
        raise TrainingError(
            f"The 'objective' parameter of fit_trees must be one of {', '.join(OBJECTIVES)}. "
            f"Got {merged['objective']!r} instead (ranking and multi-class objectives give no single "
            "margin per row, which is what the TreeEnsemble operator scores)."
        )
    return merged


def _with_offsets(params: dict[str, Any]) -> dict[str, Any]:
    """Pin the intercept to a zero margin when training on offsets.

    XGBoost ignores ``base_score`` for rows that carry a ``base_margin``, but ``inplace_predict``
    (what TreeEnsemble calls, with no offset) adds it; pinning it to margin 0 makes the served margin
    exactly the trees' part, so *served margin + offset* equals the trained model's margin.
    """
    return {"base_score": _ZERO_MARGIN.get(params["objective"], 0.0), **params}


def _labels(y: Any, n: int, what: str, objective: str) -> np.ndarray:
    labels = np.asarray(y, dtype=np.float64).reshape(-1)
    if labels.shape[0] != n:
        raise TrainingError(f"{what}: X has {n} rows but y has {labels.shape[0]}; they must match.")
    if np.isnan(labels).any():
        raise TrainingError(
            f"{what}: y has {int(np.isnan(labels).sum())} NaN label(s); drop or impute those rows first."
        )
    if objective in _BINARY and ((labels < 0) | (labels > 1)).any():
        raise TrainingError(f"{what}: objective {objective!r} needs labels in [0, 1]; got values outside.")
    return labels


def _per_row(values: Any, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise TrainingError(f"{name} has {arr.shape[0]} values but X has {n} rows; they must match.")
    if not np.isfinite(arr).all():
        raise TrainingError(f"{name} has NaN or infinite values; every row needs a finite {name}.")
    return arr


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        raise TrainingError("X must be a 2-D numpy array or a pandas DataFrame (rows x features).")
    return int(shape[0])


def _matrix(xgb: Any, X: Any, label: np.ndarray, *, base_margin: np.ndarray | None,
            weight: np.ndarray | None = None, ref: Any = None) -> Any:
    """A QuantileDMatrix (histogram bins computed once, no float64 copy); bad data → TrainingError."""
    try:
        return xgb.QuantileDMatrix(X, label=label, weight=weight, base_margin=base_margin, ref=ref)
    except (ValueError, TypeError, xgb.core.XGBoostError) as exc:
        raise TrainingError(f"XGBoost cannot read X: {str(exc).splitlines()[0]} "
                            "(features must be numeric columns or a numeric array).") from exc


def _round_reporter(fn: RoundCallback) -> Any:
    """Adapt XGBoost's callback protocol to ``fn(round, {"<data>-<metric>": value})``."""
    from xgboost.callback import TrainingCallback

    class RoundReporter(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            fn(epoch, {f"{data}-{name}": float(values[-1])
                       for data, per_metric in evals_log.items() for name, values in per_metric.items()})
            return False  # never stops training; early stopping is XGBoost's own

    return RoundReporter()


def fit_trees(
    X: Any,
    y: Any,
    *,
    params: Mapping[str, Any] | None = None,
    num_rounds: int = 200,
    weight: Any = None,
    base_margin: Any = None,
    eval_set: Sequence[Any] | None = None,
    early_stopping_rounds: int | None = None,
    device: str | None = None,
    callback: RoundCallback | None = None,
) -> xgboost.Booster:
    """Train a boosted tree ensemble locally (``xgboost.train``, ``tree_method="hist"``).

    Parameters
    ----------
    X
        Features: a 2-D numpy array or a pandas DataFrame (its column names become feature names).
    y
        Labels, one per row, no NaN (in [0, 1] for binary objectives).
    params
        XGBoost parameters; defaults: ``objective="binary:logistic"``, ``max_depth=6``, ``eta=0.3``,
        ``seed=0``. The objective must be one of :data:`OBJECTIVES`.
    num_rounds
        Boosting rounds (trees).
    weight
        Optional per-row weights.
    base_margin
        Optional per-row offsets (margin scale): the trees learn what the offsets do not explain. Scores
        of the result are margins *without* the offset; add it back at prediction time. Unless
        ``params`` set it, ``base_score`` is pinned to a zero margin so that holds exactly.
    eval_set
        ``(X_val, y_val)`` or ``(X_val, y_val, base_margin_val)``, evaluated every round as ``"valid"``.
    early_stopping_rounds
        Stop when the validation metric has not improved for this many rounds (needs ``eval_set``);
        the returned booster keeps the trees up to the best round.
    device
        ``"cpu"`` or ``"cuda"``; default :func:`default_device`.
    callback
        Called as ``callback(round, metrics)`` after every round, with metrics such as
        ``{"train-logloss": 0.41, "valid-logloss": 0.44}`` (for progress bars).

    Returns
    -------
    xgboost.Booster
        Ready to be the state of a Quasar ``TreeEnsemble`` node.

    Raises
    ------
    TrainingError
        Mismatched lengths, NaN labels, an unsupported objective, early stopping without an eval set.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(1).normal(size=(200, 2)); y = (X[:, 1] > 0).astype(float)
    >>> seen = []
    >>> b = fit_trees(X, y, num_rounds=3, callback=lambda r, m: seen.append(r))
    >>> seen
    [0, 1, 2]
    """
    xgb = _xgboost()
    merged = _params(params, device)
    if num_rounds < 1:
        raise TrainingError(
            f"The 'num_rounds' parameter of fit_trees must be an int in [1, inf). Got {num_rounds} instead.")
    if early_stopping_rounds is not None and eval_set is None:
        raise TrainingError("early_stopping_rounds needs an eval_set=(X_val, y_val) to watch; pass one.")
    if base_margin is not None:
        merged = _with_offsets(merged)
    n = _n_rows(X)
    dtrain = _matrix(xgb, X, _labels(y, n, "training data", merged["objective"]),
                     base_margin=_per_row(base_margin, n, "base_margin"),
                     weight=_per_row(weight, n, "weight"))
    evals = [(dtrain, "train")]
    if eval_set is not None:
        if len(eval_set) not in (2, 3):
            raise TrainingError("eval_set must be (X_val, y_val) or (X_val, y_val, base_margin_val).")
        X_val, y_val, *rest = eval_set
        m = _n_rows(X_val)
        evals.append((_matrix(xgb, X_val, _labels(y_val, m, "eval_set", merged["objective"]),
                              base_margin=_per_row(rest[0], m, "base_margin_val") if rest else None,
                              ref=dtrain), "valid"))
    try:
        booster = xgb.train(
            merged, dtrain, num_boost_round=int(num_rounds), evals=evals, verbose_eval=False,
            early_stopping_rounds=early_stopping_rounds,
            callbacks=[_round_reporter(callback)] if callback else None,
        )
    except xgb.core.XGBoostError as exc:
        raise TrainingError(f"XGBoost could not train: {str(exc).splitlines()[0]}") from exc
    if early_stopping_rounds is not None and booster.best_iteration + 1 < booster.num_boosted_rounds():
        best = {"best_iteration": booster.attr("best_iteration"), "best_score": booster.attr("best_score")}
        booster = booster[: booster.best_iteration + 1]  # serve the best model, not the last one
        booster.set_attr(**best)  # slicing drops attributes; keep what the caller may read
    return booster


def _task_slots(sc: Any) -> int:
    """Tasks the cluster can run at once (barrier mode needs one per worker, all at the same time).

    ``defaultParallelism`` is no guide (ProML Lab sets it to the shuffle partition count), so ask the
    scheduler the way xgboost.spark itself does.
    """
    try:
        from xgboost.spark.utils import _get_max_num_concurrent_tasks

        return int(_get_max_num_concurrent_tasks(sc))
    except Exception:  # an xgboost or Spark without that call: let xgboost.spark judge
        return 1 << 30


def fit_trees_spark(
    df: DataFrame,
    features: list[str],
    label: str,
    *,
    params: Mapping[str, Any] | None = None,
    num_rounds: int = 200,
    base_margin_col: str | None = None,
    weight_col: str | None = None,
    num_workers: int | None = None,
    device: str | None = None,
) -> xgboost.Booster:
    """Train a boosted tree ensemble on Spark with ``xgboost.spark`` and return its booster.

    Binary objectives train a ``SparkXGBClassifier``, the others a ``SparkXGBRegressor``; features are
    numeric columns (``features_col=[...]``). Each XGBoost worker is one Spark barrier task, so
    ``num_workers`` (default 1) must not exceed the cluster's free task slots (``local[2]`` has two).

    Parameters
    ----------
    df
        Training rows: the feature columns, the label and the optional margin and weight columns.
    features
        Numeric feature column names, in the order the booster (and the Quasar program) uses them.
    label
        Label column.
    params
        XGBoost parameters as for :func:`fit_trees` (``eta`` may be written ``learning_rate``).
    num_rounds
        Boosting rounds.
    base_margin_col, weight_col
        Optional offset and weight columns.
    num_workers
        Number of XGBoost workers (Spark tasks); default 1.
    device
        ``"cpu"`` or ``"cuda"``; default :func:`default_device`.

    Examples
    --------
    >>> df = spark.createDataFrame(pdf)                                         # doctest: +SKIP
    >>> booster = fit_trees_spark(df, ["f0", "f1"], "y", num_rounds=20)         # doctest: +SKIP
    """
    try:
        from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor
    except ImportError:
        raise MissingDependencyError("xgboost") from None
    merged = _params(params, device)
    missing = [c for c in (*features, label, base_margin_col, weight_col) if c and c not in df.columns]
    if missing:
        raise TrainingError(
            f"Columns {', '.join(missing)} are not in the DataFrame; it has {', '.join(df.columns)}.")
    workers = 1 if num_workers is None else int(num_workers)
    slots = _task_slots(df.sparkSession.sparkContext)
    if workers < 1 or workers > slots:
        raise TrainingError(
            f"num_workers={workers} needs that many free Spark task slots (barrier mode starts all workers "
            f"at once); this session has {slots}. Use 1..{slots} or a larger cluster."
        )
    if base_margin_col:
        merged = _with_offsets(merged)
    objective = merged.pop("objective")
    for local_only in ("tree_method", "nthread", "n_jobs"):  # threads per worker come from spark.task.cpus
        merged.pop(local_only, None)
    dev = merged.pop("device")
    if "eta" in merged:
        merged["learning_rate"] = merged.pop("eta")
    if "seed" in merged:
        merged["random_state"] = merged.pop("seed")
    kwargs: dict[str, Any] = dict(
        features_col=list(features), label_col=label, num_workers=workers, device=dev,
        n_estimators=int(num_rounds), tree_method="hist", **merged,
    )
    if base_margin_col:
        kwargs["base_margin_col"] = base_margin_col
    if weight_col:
        kwargs["weight_col"] = weight_col
    try:
        estimator = (SparkXGBClassifier(**kwargs) if objective == "binary:logistic"
                     else SparkXGBRegressor(objective=objective, **kwargs))
    except ValueError as exc:
        raise TrainingError(f"xgboost.spark rejected the parameters: {exc}") from exc
    try:
        model = estimator.fit(df)
    except Exception as exc:  # Spark wraps worker failures in Py4J / Python exceptions
        raise TrainingError(f"xgboost.spark training failed: {str(exc).splitlines()[0]}") from exc
    return model.get_booster()


__all__ = ["OBJECTIVES", "default_device", "fit_trees", "fit_trees_spark"]
