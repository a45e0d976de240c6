"""Training snapshots: the reference statistics drift monitoring compares a serving window with.

A snapshot summarizes, once, the data a model version was trained on: for every input feature and for
the model's score, a histogram in the form the drift measures read back
(:func:`~proml_lab.health.drift.psi_from_reference`, :func:`~proml_lab.health.drift.js_from_reference`),
so monitoring never re-reads the training data.

- numeric features (and the score): decile edges of the reference (ties merged) with the fraction of
  rows per bin plus a missing-value bin, mean, std, null rate, min, max;
- categorical (and text) features: the 100 most frequent categories with their shares, the rest as
  ``"__other__"``, missing values as ``"__null__"``;
- vector features: only the null rate (no drift measure).

Snapshots are JSON files at ``<workspace>/models/<name>/snapshots/<version>.json`` (beside the registry's
local bundle copies ``<workspace>/models/<name>/<version>/``), written atomically. A published model
without one gets it lazily: :func:`ensure_snapshot` rebuilds the model's training frame
(:func:`proml_lab.training.data.training_frame`, Spark) and scores it with the bundle.

>>> snap = training_snapshot(ws, bundle, frame)                  # doctest: +SKIP
>>> snap["score"]["mean"], sorted(snap["features"])              # doctest: +SKIP
>>> ensure_snapshot(ws, "jobs", "3")                              # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from proml_lab._fs import write_json_atomic
from proml_lab.health import HealthError

__all__ = ["FORMAT", "ensure_snapshot", "load_snapshot", "snapshot_path", "summarize", "training_snapshot"]

FORMAT = "proml-health-snapshot/1"
BINS = 10
TOP = 100
MAX_ROWS = 500_000  # larger frames are sampled (fixed seed): deciles need nothing like all of them


def snapshot_path(workspace: Any, name: str, version: str | int) -> Path:
    """Where the snapshot of model ``name`` version ``version`` lives."""
    root = Path(workspace if isinstance(workspace, (str, Path)) else workspace.root)
    return root / "models" / str(name) / "snapshots" / f"{version}.json"


def summarize(values: Any, kind: str | None = None) -> dict[str, Any]:
    """Reference statistics of one column (``kind``: numeric, categorical or vector; default: inferred).

    Examples
    --------
    >>> s = summarize(np.arange(10.0))
    >>> s["kind"], s["mean"], len(s["fractions"]) == len(s["edges"]) + 2
    ('numeric', 4.5, True)
    >>> summarize(["a", "b", "a", None])["frequencies"]
    {'a': 0.5, 'b': 0.25, '__null__': 0.25}
    """
    from proml_lab.health.drift import reference_frequencies, reference_histogram

    series = values if isinstance(values, pd.Series) else pd.Series(
        values if isinstance(values, np.ndarray) and values.ndim == 1 else list(values))
    if series.empty:
        raise HealthError("a snapshot column needs at least one value.")
    kind = kind or _kind(series)
    null = series.isna() if kind != "vector" else series.map(lambda v: v is None)
    out: dict[str, Any] = {"kind": kind, "count": int(len(series)), "null_rate": float(null.mean())}
    if kind == "numeric":
        x = pd.to_numeric(series.astype("float64") if series.dtype == bool else series,
                          errors="coerce").to_numpy(dtype=float)
        edges, fractions = reference_histogram(x, bins=BINS)
        finite = x[np.isfinite(x)]
        stats = (float(finite.mean()), float(finite.std()), float(finite.min()), float(finite.max())) \
            if finite.size else (None, None, None, None)
        out.update(edges=edges, fractions=fractions, mean=stats[0], std=stats[1], min=stats[2], max=stats[3])
    elif kind == "categorical":
        out["frequencies"] = reference_frequencies(series.to_numpy(dtype=object), top=TOP)
    elif kind != "vector":
        raise HealthError(f"Unknown kind {kind!r}; choose one of numeric, categorical, vector.")
    return out


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    first = series.dropna().head(1)
    if len(first) and isinstance(first.iloc[0], (list, tuple, np.ndarray)):
        return "vector"
    return "categorical"


def training_snapshot(workspace: Any, model: Any, frame: pd.DataFrame, *, version: str | int | None = None,
                      features: Sequence[str] | None = None, scores: Any = None,
                      kinds: Mapping[str, str] | None = None, label: str | None = None,
                      validation_auc: float | None = None, write: bool = True) -> dict[str, Any]:
    """Reference statistics of ``model``'s inputs and score on its training ``frame``; stored as JSON.

    Parameters
    ----------
    workspace
        The workspace (or its root folder) the snapshot is written to.
    model
        A loaded :class:`~proml_lab.deploy.bundle.Bundle` (its name, version, input features with their
        scopes, label and scorer are used), or a registered model name (then pass ``version``,
        ``features`` and ``scores``).
    frame : pandas.DataFrame
        The training rows, with the features as columns (``training_frame(ws, bundle.ir)``'s rows).
    version
        Default: the bundle's version.
    features
        Columns to summarize (default: the bundle's input features present in ``frame``).
    scores
        The model's score per row: an array, or the name of a column of ``frame`` (default: the bundle
        scores ``frame``).
    kinds
        Feature → ``numeric`` / ``categorical`` / ``vector`` where inference from the dtype is wrong.
    label
        Label column (default: the bundle's); its positive rate is kept for calibration.
    validation_auc
        The version's validation AUC, which online AUC is compared with (default: the bundle's ``auc``).
    write : bool, default True
        Write ``<workspace>/models/<name>/snapshots/<version>.json`` (atomically).

    Returns
    -------
    dict
        ``format, model, version, created_at, rows, data_fingerprint, label, positive_rate,
        validation_auc, features: {name: {kind, scope, count, null_rate, edges, fractions, mean, std ... | frequencies}},
        score: {..., probability}``.

    Examples
    --------
    >>> frame = pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50, "s": np.linspace(0, 1, 100)})
    >>> snap = training_snapshot("/tmp/ws", "m", frame, version=1, features=["x", "c"], scores="s",
    ...                          write=False)
    >>> snap["features"]["c"]["frequencies"], snap["score"]["probability"]
    ({'a': 0.5, 'b': 0.5}, True)
    """
    bundle = None if isinstance(model, str) else model
    name = model if bundle is None else bundle.name
    version = version if version is not None else getattr(bundle, "version", None)
    if not name or version is None:
        raise HealthError("training_snapshot needs the model's name and version: pass a loaded bundle "
                          "(ModelRegistry(ws).load(name)) or a name with version=...")
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise HealthError("training_snapshot needs a non-empty pandas DataFrame of training rows.")
    scopes = _scopes(bundle)
    names = list(features) if features is not None else [f for f in scopes if f in frame.columns]
    missing = [f for f in names if f not in frame.columns]
    if missing:
        raise HealthError(f"Feature(s) {', '.join(missing)} are not columns of the training frame.")
    score = _scores(bundle, frame, scores)
    frame, score = _sample(frame, score)
    label = label or (bundle.label if bundle is not None and bundle.label else None)
    snapshot: dict[str, Any] = {
        "format": FORMAT, "model": str(name), "version": str(version),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": int(len(frame)), "data_fingerprint": getattr(bundle, "data_fingerprint", None) or None,
        "label": label, "positive_rate": None,
        "validation_auc": validation_auc if validation_auc is not None else (
            bundle.metrics.get("auc") if bundle is not None else None),
        "features": {f: {**summarize(frame[f], (kinds or {}).get(f)), "scope": scopes.get(f)} for f in names},
        "score": None,
    }
    if label and label in frame.columns:
        y = pd.to_numeric(frame[label], errors="coerce")
        snapshot["positive_rate"] = float(y.mean()) if y.notna().any() else None
    if score is not None:
        s = summarize(pd.Series(score, dtype=float), "numeric")
        finite = score[np.isfinite(score)]
        s["probability"] = bool(finite.size and finite.min() >= 0.0 and finite.max() <= 1.0)
        snapshot["score"] = s
    if write:
        write_json_atomic(snapshot_path(workspace, name, version), snapshot)
    return snapshot


def _scopes(bundle: Any) -> dict[str, str]:
    """Input feature → scope (member / document / request) of a bundle's program (empty without one)."""
    if bundle is None:
        return {}
    from proml_lab.quasar import ir as irm

    out = {n.feature: n.scope for n in bundle.ir.nodes if isinstance(n, irm.Input)}
    return {f: out.get(f) for f in dict.fromkeys([*out, *bundle.features])}


def _scores(bundle: Any, frame: pd.DataFrame, scores: Any) -> np.ndarray | None:
    if isinstance(scores, str):
        if scores not in frame.columns:
            raise HealthError(f"Score column {scores!r} is not a column of the training frame.")
        values = frame[scores].to_numpy()
    elif scores is not None:
        values = np.asarray(scores)
    elif bundle is not None:
        values = np.asarray(bundle.score(frame))
    else:
        return None
    values = np.asarray(values, dtype=float).ravel()
    if values.size != len(frame):
        raise HealthError(f"scores has {values.size} values for {len(frame)} training rows.")
    return values


def _sample(frame: pd.DataFrame, score: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray | None]:
    if len(frame) <= MAX_ROWS:
        return frame, score
    rows = np.sort(np.random.default_rng(0).choice(len(frame), MAX_ROWS, replace=False))
    return frame.iloc[rows].reset_index(drop=True), None if score is None else score[rows]


def load_snapshot(workspace: Any, name: str, version: str | int) -> dict[str, Any]:
    """The stored snapshot of ``name`` version ``version``; :class:`HealthError` saying how to make one."""
    path = snapshot_path(workspace, name, version)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HealthError(f"No training snapshot for {name!r} version {version} ({path}); build it with "
                          f"proml_lab.health.ensure_snapshot(ws, {name!r}, {str(version)!r}).") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise HealthError(f"Cannot read the training snapshot {path}: {exc}") from exc
    if data.get("format") != FORMAT:
        raise HealthError(f"{path} is not a training snapshot ({FORMAT}); got format {data.get('format')!r}.")
    return data


def ensure_snapshot(workspace: Any, name: str, version: str | int | None = None, *,
                    alias: str | None = None) -> dict[str, Any]:
    """The snapshot of a published version, built from its training frame when absent (needs Spark).

    ``version`` or ``alias`` picks the version (default: the newest). The training frame is the
    program's own (``TRAINING CONFIG``): :func:`proml_lab.training.data.training_frame`.
    """
    from proml_lab.deploy.registry import ModelRegistry

    registry = ModelRegistry(workspace)
    mv = registry.resolve(name, alias if alias is not None else version)
    if snapshot_path(workspace, name, mv.version).is_file():
        return load_snapshot(workspace, name, mv.version)
    from proml_lab.training.data import training_frame

    bundle = registry.load(name, mv.version)
    frames = training_frame(workspace, bundle.ir)
    frame = pd.concat([frames.train, frames.validation], ignore_index=True)
    return training_snapshot(workspace, bundle, frame, version=mv.version, label=frames.label)
