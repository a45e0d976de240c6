"""Model monitoring: a serving window against the training snapshot, and anomalies on the logs' metrics.

:func:`monitor` compares *current* = the exposures the ranking service logged in the last ``window``
(``<workspace>/logs/exposures/model=<name>/``, read as data) with *reference* = the model version's
training snapshot (:mod:`proml_lab.health.snapshot`):

- **score drift**: PSI of the logged scores against the snapshot's score histogram;
- **feature drift**: the serving log holds ids, not feature values, so the features of the exposed
  members and documents are read *now*, per exposure row: member features from the online store
  (``ws.features.online_reader("member", ...)``, what serving reads), document features from the
  deployed forward index (what serving ranks with), falling back to the online store of the feature's
  entity. PSI for numeric features, Jensen–Shannon distance for categorical ones;
- **online AUC** per day (:func:`~proml_lab.health.drift.auc_decay`) from exposures joined with outcomes
  (clicked = any ``click`` event for that request and document), against the version's validation AUC;
- **calibration**: observed CTR against the mean logged score when the score is a probability
  (:func:`~proml_lab.health.drift.calibration_error`).

Each measure gets ``ok`` / ``warn`` / ``alert`` from :class:`~proml_lab.health.drift.DriftThresholds`;
:attr:`HealthReport.measures` is the flat dict a retraining policy reads. :func:`record_health_alerts`
stores the alerts in the :class:`~proml_lab.health.alerts.AnomalyStore` (so they are labelled like
anomalies) and posts them to a webhook.

:func:`metric_series` and :func:`detect_anomalies` turn the logs (and the world's ``business_metrics``)
into hourly series and run the anomaly detectors over them with each metric's tuned sensitivity.

>>> report = monitor(ws, "jobs", window="1d")                  # doctest: +SKIP
>>> report.measures["score_psi"], report.ok                    # doctest: +SKIP
>>> record_health_alerts(ws, report, webhook=Webhook(url))     # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from proml_lab.health import HealthError

__all__ = ["HealthReport", "detect_anomalies", "feature_drift", "logged_models", "metric_series", "monitor",
           "record_health_alerts"]

_DRIFT_COLUMNS = ["feature", "kind", "measure", "value", "status"]
_EXPOSURE_COLUMNS = ["ts", "request_id", "alias", "version", "member_id", "document_id", "score"]
_STATUS_COLOR = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828"}


# ------------------------------------------------------------------------------------------------ report
@dataclass
class HealthReport:
    """What :func:`monitor` found for one model alias over one serving window."""

    model: str
    alias: str
    version: str | None
    start: pd.Timestamp
    end: pd.Timestamp
    drift: pd.DataFrame
    measures: dict[str, float | None]
    auc: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["window", "rows", "positives", "auc"]))
    notes: list[str] = field(default_factory=list)
    thresholds: Any = None

    @property
    def alerts(self) -> pd.DataFrame:
        """The drift rows at ``alert``."""
        return self.drift[self.drift["status"] == "alert"].reset_index(drop=True)

    @property
    def ok(self) -> bool:
        """True when no measure is at ``alert``."""
        return self.alerts.empty

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: model, alias, version, window, ok, measures, drift rows, daily AUC, notes."""
        auc = self.auc.assign(window=self.auc["window"].astype(str)) if len(self.auc) else self.auc
        return {
            "model": self.model, "alias": self.alias, "version": self.version,
            "start": self.start.isoformat(), "end": self.end.isoformat(), "ok": self.ok,
            "measures": {k: _plain(v) for k, v in self.measures.items()},
            "drift": [{k: _plain(v) for k, v in row.items()} for row in self.drift.to_dict("records")],
            "auc": [{k: _plain(v) for k, v in row.items()} for row in auc.to_dict("records")],
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        head = (f"<b>{html.escape(self.model)}</b> @{html.escape(self.alias)} v{html.escape(str(self.version))}"
                f" &middot; {self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M} UTC &middot; "
                + ("<span style='color:#2e7d32'>healthy</span>" if self.ok else
                   f"<span style='color:#c62828'>{len(self.alerts)} alert(s)</span>"))
        rows = "".join(
            f"<tr><td>{html.escape(str(r.feature))}</td><td>{html.escape(str(r.kind))}</td>"
            f"<td>{html.escape(str(r.measure))}</td><td>{r.value:.4f}</td>"
            f"<td style='color:{_STATUS_COLOR.get(r.status, '#000')}'><b>{r.status}</b></td></tr>"
            for r in self.drift.itertuples(index=False))
        measures = ", ".join(f"{k}={_fmt(v)}" for k, v in self.measures.items())
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div class='proml-health'><p>{head}</p><table><thead><tr><th>feature</th><th>kind</th>"
                f"<th>measure</th><th>value</th><th>status</th></tr></thead><tbody>{rows}</tbody></table>"
                f"<p><small>{html.escape(measures)}</small></p>" + (f"<ul>{notes}</ul>" if notes else "")
                + "</div>")

    def __repr__(self) -> str:
        return (f"HealthReport({self.model!r}, alias={self.alias!r}, version={self.version!r}, ok={self.ok}, "
                f"alerts={len(self.alerts)})")

    def plot(self, *, ax: Any = None) -> Any:
        """Per-measure drift bars with the warn/alert levels, and daily online AUC against validation AUC.

        Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        from proml_lab.health.drift import DriftThresholds

        t = self.thresholds or DriftThresholds()
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.35 * len(self.drift) + 1.5)))
        d = self.drift.iloc[::-1]
        labels = [f"{f} ({m})" for f, m in zip(d["feature"], d["measure"], strict=True)]
        left.barh(labels, d["value"], color=[_STATUS_COLOR.get(s, "grey") for s in d["status"]])
        left.axvline(t.psi.warn, color=_STATUS_COLOR["warn"], ls="--", lw=1, label=f"warn {t.psi.warn:g}")
        left.axvline(t.psi.alert, color=_STATUS_COLOR["alert"], ls="--", lw=1, label=f"alert {t.psi.alert:g}")
        left.set_title("drift (PSI / JS / relative error)")
        left.legend(loc="lower right", fontsize=8)
        if len(self.auc) and self.auc["auc"].notna().any():
            right.plot(pd.to_datetime(self.auc["window"]), self.auc["auc"], marker="o", label="online AUC")
        validation = self.measures.get("validation_auc")
        if validation is not None and np.isfinite(validation):
            right.axhline(validation, color="k", ls=":", label=f"validation AUC {validation:.3f}")
        right.set_title("online AUC per day")
        right.legend(loc="lower left", fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        return fig


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else (
        f"{v:.4g}" if isinstance(v, float) else str(v))


# ------------------------------------------------------------------------------------------------ monitor
def monitor(workspace: Any, model: str, *, alias: str = "champion", window: str = "1d", end: Any = None,
            reference: Mapping[str, Any] | None = None, thresholds: Any = None,
            snapshot: Mapping[str, Any] | None = None, validation_auc: float | None = None,
            features: bool = True) -> HealthReport:
    """Drift, online AUC and calibration of ``model``'s ``alias`` over the serving window ending at ``end``.

    Parameters
    ----------
    workspace
        The :class:`~proml_lab.workspace.Workspace`.
    model : str
        Registered (and deployed) model name; its exposure log is read.
    alias : str, default "champion"
        Only exposures served by this alias count.
    window : str, default "1d"
        Length of the serving window (a pandas Timedelta: ``"12h"``, ``"7d"``).
    end
        End of the window (UTC; default: now).
    reference, snapshot : dict, optional
        The training snapshot to compare with (either name; default: the snapshot of the version the
        alias served last in the window, as the exposure log records it, built by
        :func:`~proml_lab.health.snapshot.ensure_snapshot` if absent). Only that version's exposures count.
    thresholds : DriftThresholds or dict, optional
        Warn/alert levels (defaults: PSI/JS 0.1/0.2, calibration 0.1/0.2, AUC drop 0.03/0.05).
    validation_auc : float, optional
        Default: the snapshot's ``validation_auc``, else the version's ``auc`` metric in the registry.
    features : bool, default True
        Measure feature drift (reads the exposed keys' current feature values).

    Returns
    -------
    HealthReport
    """
    from proml_lab.health.drift import DriftThresholds

    t = thresholds if isinstance(thresholds, DriftThresholds) else DriftThresholds.model_validate(
        thresholds or {})
    try:
        span = pd.Timedelta(window)
    except ValueError as exc:
        raise HealthError(f"window must be a duration such as '1d' or '12h'; got {window!r}.") from exc
    if span <= pd.Timedelta(0):
        raise HealthError(f"window must be positive; got {window!r}.")
    try:
        stop = _utc(end) if end is not None else pd.Timestamp.now(tz="UTC")
    except (ValueError, TypeError) as exc:
        raise HealthError(f"end must be a time such as '2026-01-06' or '2026-01-06T12:00'; got {end!r}.") from exc
    start = stop - span
    snap = snapshot if snapshot is not None else reference
    exposures = _window(workspace, model, alias, None if snap is None else snap.get("version"), start, stop)
    if snap is None:  # the version this alias served last in the window (the log says which)
        served = exposures.sort_values("ts")["version"].astype(str).iloc[-1] if "version" in exposures else None
        snap = _reference(workspace, model, alias, served)
        exposures = exposures[exposures["version"].astype(str) == str(snap["version"])].reset_index(drop=True)
    version = snap.get("version")
    if validation_auc is None:
        validation_auc = snap.get("validation_auc")
    if validation_auc is None:
        validation_auc = _registry_auc(workspace, model, version)

    rows: list[tuple[Any, ...]] = []
    notes: list[str] = []
    measures: dict[str, float | None] = {"exposures": float(len(exposures)),
                                         "requests": float(exposures["request_id"].nunique())}
    if features and snap.get("features"):
        frame, skipped = _current_features(workspace, model, alias, snap["features"], exposures)
        notes += skipped
        rows += _feature_rows(snap["features"], frame, t)
    psis = [r[3] for r in rows if r[2] == "psi"]
    jss = [r[3] for r in rows if r[2] == "js"]
    measures.update(psi_max=max(psis) if psis else None, js_max=max(jss) if jss else None,
                    drift_max=max(psis + jss) if psis or jss else None)
    rows += _score_rows(snap.get("score"), exposures, t, measures, notes)
    # the largest PSI of any input or of the score: what a retraining policy's "psi_alert" trigger reads
    every_psi = psis + ([measures["score_psi"]] if measures.get("score_psi") is not None else [])
    measures["psi_alert"] = max(every_psi) if every_psi else None
    auc = _online_auc(workspace, model, exposures, snap.get("score"), validation_auc, t, rows, measures, notes)
    drift = pd.DataFrame(rows, columns=_DRIFT_COLUMNS)
    return HealthReport(model, alias, None if version is None else str(version), start, stop, drift, measures,
                        auc, notes, t)


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _reference(workspace: Any, model: str, alias: str, version: str | None) -> dict[str, Any]:
    """The snapshot of ``version`` (default: the one the registry alias names), built if absent."""
    from proml_lab.health.snapshot import ensure_snapshot, load_snapshot, snapshot_path

    if version is not None and snapshot_path(workspace, model, version).is_file():
        return load_snapshot(workspace, model, version)
    if version is not None:
        return ensure_snapshot(workspace, model, version)
    return ensure_snapshot(workspace, model, alias=alias)


def _registry_auc(workspace: Any, model: str, version: Any) -> float | None:
    """The version's validation ``auc`` from the registry (None when it is not published)."""
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.errors import DeployError

    try:
        return ModelRegistry(workspace).resolve(model, None if version is None else str(version)).metrics.get("auc")
    except DeployError:
        return None


def _window(workspace: Any, model: str, alias: str, version: Any, start: pd.Timestamp,
            stop: pd.Timestamp) -> pd.DataFrame:
    """The exposures of ``alias`` (and the snapshot's version, when logged) with ``start <= ts < stop``."""
    from proml_lab.experiments.outcomes import read_exposure_log

    log = read_exposure_log(workspace, model, columns=_EXPOSURE_COLUMNS)
    if "ts" not in log or log.empty:
        raise HealthError(f"No exposures logged for model {model!r}; serve it (proml serve) and send "
                          f"traffic, or check the model name.")
    ts = pd.to_datetime(log["ts"], utc=True)
    keep = (ts >= start) & (ts < stop)
    if "alias" in log:
        keep &= log["alias"].astype(str) == alias
    if version is not None and "version" in log:
        keep &= log["version"].astype(str) == str(version)
    out = log[keep].assign(ts=ts[keep]).reset_index(drop=True)
    if out.empty:
        raise HealthError(
            f"No exposures of {model!r} alias {alias!r}" + (f" version {version}" if version is not None else "")
            + f" between {start:%Y-%m-%d %H:%M} and {stop:%Y-%m-%d %H:%M} UTC (the log ends at "
            f"{ts.max():%Y-%m-%d %H:%M}); widen the window or pass end=.")
    return out


def _current_features(workspace: Any, model: str, alias: str, specs: Mapping[str, Any],
                      exposures: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Current values of the snapshot's features for every exposure row, and notes on features skipped."""
    frame = pd.DataFrame(index=exposures.index)
    notes: list[str] = []
    wanted = {f: s for f, s in specs.items() if s.get("kind") in ("numeric", "categorical")}
    by_scope: dict[str, list[str]] = {}
    for f, s in wanted.items():
        by_scope.setdefault(s.get("scope") or "member", []).append(f)
    if by_scope.get("request"):
        notes.append(f"request features {', '.join(by_scope.pop('request'))}: not in the serving log, no drift.")
    if by_scope.get("document"):
        cols, left = _index_columns(workspace, model, alias, by_scope["document"], exposures["document_id"])
        frame = frame.assign(**cols)
        by_scope["document"] = left
    for scope, names in by_scope.items():
        if not names:
            continue
        keys = exposures["document_id" if scope == "document" else "member_id"].to_numpy()
        cols, skipped = _online_columns(workspace, names, keys)
        frame = frame.assign(**cols)
        notes += skipped
    return frame, notes


def _index_columns(workspace: Any, model: str, alias: str, names: list[str],
                   ids: pd.Series) -> tuple[dict[str, Any], list[str]]:
    """Document features from the deployed forward index (what serving ranks with); the rest back."""
    from proml_lab.deploy.deployer import resolve
    from proml_lab.deploy.forward_index import ForwardIndex

    deployment = resolve(workspace, model, alias)
    if deployment is None:
        return {}, names
    index = ForwardIndex.open(deployment.index_path)
    present = set(index.column_names)
    rows, found = index.rows(ids.to_numpy())
    out: dict[str, Any] = {}
    for name in [n for n in names if n in present]:
        values = np.asarray(index.column(name))[np.maximum(rows, 0)]
        if values.ndim != 1:  # vectors: no drift measure
            continue
        out[name] = np.where(found, values, np.nan) if values.dtype.kind in "fiub" else \
            np.where(found, values.astype(object), None)
    return out, [n for n in names if n not in present]


def _online_columns(workspace: Any, names: list[str], keys: np.ndarray) -> tuple[dict[str, Any], list[str]]:
    """Features from the online store of their entity, read once per distinct key."""
    from proml_lab.errors import ProMLError

    notes: list[str] = []
    store = workspace.features
    try:
        records = store.catalog.resolve(names)
    except ProMLError as exc:
        return {}, [f"features {', '.join(names)} skipped: {exc}"]
    by_entity: dict[str, list[str]] = {}
    for r in records:
        if r.type == "vector" or r.type == "text":
            continue
        by_entity.setdefault(r.entity, []).append(r.name)
    unique, inverse = np.unique(keys, return_inverse=True)
    out: dict[str, Any] = {}
    for entity, feats in by_entity.items():
        try:
            read = store.online_reader(entity, feats)(unique)
        except ProMLError as exc:
            notes.append(f"features {', '.join(feats)} skipped: {exc}")
            continue
        for name, column in read.items():
            values = np.asarray(column.to_pylist(), dtype=object) if hasattr(column, "to_pylist") \
                else np.asarray(column)
            if values.ndim == 1:
                out[name] = values[inverse]
    return out, notes


def feature_drift(snapshot: Mapping[str, Any], current: pd.DataFrame, thresholds: Any = None) -> pd.DataFrame:
    """:func:`~proml_lab.health.drift.drift_report` of ``current`` against a training snapshot.

    One row per snapshot feature that is a column of ``current``: PSI (numeric) or Jensen–Shannon
    distance (categorical) against the stored histogram, with its status.

    Examples
    --------
    >>> from proml_lab.health.snapshot import training_snapshot
    >>> ref = pd.DataFrame({"x": np.arange(1000.0), "c": ["a", "b"] * 500})
    >>> snap = training_snapshot("/tmp/ws", "m", ref, version=1, features=["x", "c"], write=False)
    >>> cur = pd.DataFrame({"x": np.arange(1000.0) + 500, "c": ["a", "b"] * 500})
    >>> feature_drift(snap, cur)[["feature", "measure", "status"]].values.tolist()
    [['x', 'psi', 'alert'], ['c', 'js', 'ok']]
    """
    from proml_lab.health.drift import DriftThresholds

    t = thresholds if isinstance(thresholds, DriftThresholds) else DriftThresholds.model_validate(
        thresholds or {})
    specs = snapshot["features"] if "features" in snapshot else snapshot  # a snapshot or its features
    return pd.DataFrame(_feature_rows(specs, current, t), columns=_DRIFT_COLUMNS)


def _feature_rows(specs: Mapping[str, Any], frame: pd.DataFrame, t: Any) -> list[tuple[Any, ...]]:
    from proml_lab.health.drift import js_from_reference, psi_from_reference

    rows = []
    for name, spec in specs.items():
        if name not in frame.columns:
            continue
        if spec["kind"] == "numeric":
            value = psi_from_reference(spec["edges"], spec["fractions"],
                                       pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float))
            rows.append((name, "numeric", "psi", value, t.status(name, "psi", value)))
        elif spec["kind"] == "categorical":
            value = js_from_reference(spec["frequencies"], frame[name].to_numpy(dtype=object))
            rows.append((name, "categorical", "js", value, t.status(name, "js", value)))
    return rows


def _score_rows(spec: Mapping[str, Any] | None, exposures: pd.DataFrame, t: Any,
                measures: dict[str, Any], notes: list[str]) -> list[tuple[Any, ...]]:
    from proml_lab.health.drift import psi_from_reference

    scores = pd.to_numeric(exposures["score"], errors="coerce").to_numpy(dtype=float)
    measures["mean_score"] = float(np.nanmean(scores)) if np.isfinite(scores).any() else None
    if not spec:
        notes.append("the snapshot has no score distribution: no score drift.")
        measures["score_psi"] = None
        return []
    value = psi_from_reference(spec["edges"], spec["fractions"], scores)
    measures["score_psi"] = value
    return [("score", "score", "psi", value, t.status("score", "psi", value))]


def _online_auc(workspace: Any, model: str, exposures: pd.DataFrame, spec: Mapping[str, Any] | None,
                validation_auc: float | None, t: Any, rows: list[tuple[Any, ...]],
                measures: dict[str, Any], notes: list[str]) -> pd.DataFrame:
    """Daily and window AUC of logged scores against clicks; calibration; rows appended in place."""
    from proml_lab.health.drift import auc_decay, calibration_error
    from proml_lab.training.metrics import evaluate

    clicked = _clicked(workspace, model, exposures)
    scores = pd.to_numeric(exposures["score"], errors="coerce").to_numpy(dtype=float)
    measures.update(validation_auc=validation_auc, online_auc=None, auc_drop=None,
                    observed_ctr=float(clicked.mean()), calibration_error=None)
    table = pd.DataFrame(columns=["window", "rows", "positives", "auc"])
    if 0 < clicked.sum() < len(clicked):
        table = auc_decay(clicked, scores, exposures["ts"], "1d")
        finite = np.isfinite(scores)
        online = float(evaluate(clicked[finite], scores[finite], metrics=("auc",))["auc"])
        measures["online_auc"] = online
        if validation_auc is not None and np.isfinite(validation_auc):
            drop = float(validation_auc) - online
            measures["auc_drop"] = drop
            rows.append(("auc", "model", "auc_drop", drop, t.status("auc", "auc_drop", max(drop, 0.0))))
        else:
            notes.append("no validation AUC for this version: online AUC is not compared.")
    else:
        notes.append("no clicks (or only clicks) logged for the window's exposures: no online AUC.")
    probability = bool(spec and spec.get("probability")) and np.isfinite(scores).any() and \
        np.nanmin(scores) >= 0 and np.nanmax(scores) <= 1
    if probability:
        ok = np.isfinite(scores)
        value = calibration_error(clicked[ok], scores[ok])
        measures["calibration_error"] = value
        rows.append(("calibration", "model", "calibration_error", value,
                     t.status("calibration", "calibration", value)))
    else:
        notes.append("the score is not a probability: no calibration measure.")
    return table


def _clicked(workspace: Any, model: str, exposures: pd.DataFrame) -> np.ndarray:
    """1 where the exposure's (request, document) got any click event, else 0."""
    from proml_lab.experiments.outcomes import read_outcomes

    events = read_outcomes(workspace, model)
    events = events[events["event"].astype(str) == "click"]
    if events.empty:
        return np.zeros(len(exposures))
    key = events["request_id"].astype(str) + "\0" + events["document_id"].astype(str)
    mine = exposures["request_id"].astype(str) + "\0" + exposures["document_id"].astype(str)
    return mine.isin(set(key)).to_numpy(dtype=float)


def logged_models(workspace: Any) -> list[str]:
    """Names of the models with an exposure log in the workspace (the ones :func:`monitor` can watch)."""
    from pathlib import Path

    root = Path(workspace if isinstance(workspace, (str, Path)) else workspace.root) / "logs" / "exposures"
    if not root.is_dir():
        return []
    return sorted(p.name.split("=", 1)[1] for p in root.iterdir() if p.is_dir() and p.name.startswith("model="))


# ------------------------------------------------------------------------------------------------ alerts
def record_health_alerts(workspace: Any, report: HealthReport, webhook: Any = None) -> list[int]:
    """Store ``report``'s alerts as generic alerts of the :class:`~proml_lab.health.alerts.AnomalyStore`
    and post them to ``webhook``.

    One alert per measure at ``alert`` (:meth:`~proml_lab.health.alerts.AnomalyStore.record_alert`, kind
    ``"drift"``, subject ``<model>.<alias>.<feature>.<measure>``, the value, level, window and version in
    its payload). Idempotent per subject and window end: recording the same report twice returns the
    first ids and posts nothing new. Returns the ids.
    """
    from proml_lab.health.alerts import AnomalyStore

    store = AnomalyStore(workspace)
    end = report.end.isoformat()
    seen = store.list_alerts(kind="drift")
    previous = {(r.subject, r.payload.get("end")): int(r.id) for r in seen.itertuples(index=False)}
    ids, new = [], []
    for r in report.alerts.itertuples(index=False):
        subject = f"{report.model}.{report.alias}.{r.feature}.{r.measure}"
        if (subject, end) in previous:
            ids.append(previous[(subject, end)])
            continue
        level = _alert_level(report.thresholds, r.feature, r.measure)
        message = (f"{report.model}@{report.alias} v{report.version}: {r.feature} {r.measure} = {r.value:.4g} "
                   f"(alert at {level:g}) over {report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC")
        payload = {"model": report.model, "alias": report.alias, "version": report.version,
                   "feature": r.feature, "measure": r.measure, "value": _plain(r.value), "alert_level": level,
                   "start": report.start.isoformat(), "end": end}
        new.append(store.record_alert("drift", subject, message, payload))
        ids.append(new[-1])
    if webhook is not None and new:
        store.notify_alerts(new, webhook)
    return ids


def _alert_level(t: Any, feature: str, measure: str) -> float:
    from proml_lab.health.drift import DriftThresholds

    t = t or DriftThresholds()
    name = {"calibration_error": "calibration"}.get(measure, measure)
    return float((t.features.get(feature) or getattr(t, name)).alert)


# ------------------------------------------------------------------------------------------------ anomalies
_SERIES = ("requests", "exposures", "clicks", "ctr", "mean_score")


def metric_series(workspace: Any, model: str, *, freq: str = "1h", start: Any = None,
                  end: Any = None) -> pd.DataFrame:
    """Model and business metrics of ``model`` per ``freq`` from its serving logs.

    Returns
    -------
    pandas.DataFrame
        Indexed by period start (UTC, a regular grid): ``requests, exposures, clicks`` (0 where none),
        ``ctr`` (clicks / exposures) and ``mean_score`` (NaN where no exposures).
    """
    from proml_lab.experiments.outcomes import read_exposure_log, read_outcomes

    log = read_exposure_log(workspace, model, columns=["ts", "request_id", "score"])
    if "ts" not in log or log.empty:
        return pd.DataFrame(columns=list(_SERIES), index=pd.DatetimeIndex([], tz="UTC", name="ts"))
    ts = pd.to_datetime(log["ts"], utc=True)
    keep = pd.Series(True, index=log.index)
    if start is not None:
        keep &= ts >= _utc(start)
    if end is not None:
        keep &= ts < _utc(end)
    log, ts = log[keep], ts[keep]
    period = ts.dt.floor(freq)
    grouped = log.assign(period=period).groupby("period")
    out = pd.DataFrame({
        "requests": grouped["request_id"].nunique(),
        "exposures": grouped.size(),
        "mean_score": grouped["score"].mean(),
    })
    events = read_outcomes(workspace, model)
    clicks = events[events["event"].astype(str) == "click"]
    click_ts = pd.to_datetime(clicks["ts"], utc=True).dt.floor(freq)
    out["clicks"] = click_ts.value_counts().reindex(out.index).fillna(0)
    if len(out):
        grid = pd.date_range(out.index.min(), out.index.max(), freq=freq, tz="UTC")
        out = out.reindex(grid)
    for c in ("requests", "exposures", "clicks"):
        out[c] = out[c].fillna(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ctr"] = np.where(out["exposures"] > 0, out["clicks"] / out["exposures"].where(out["exposures"] > 0),
                              np.nan)
    out.index.name = "ts"
    return out[list(_SERIES)]


def detect_anomalies(workspace: Any, model: str | None = None, detectors: Sequence[Any] | None = None, *,
                     freq: str = "1h", metrics: Sequence[str] = _SERIES, business: bool = True,
                     series: Mapping[str, pd.Series] | None = None, record: bool = True,
                     webhook: Any = None, link: str | None = None) -> pd.DataFrame:
    """Run anomaly detectors over ``model``'s log metrics (and the world's ``business_metrics``).

    Each metric (``<model>.<name>``, ``business.<column>``, or a key of ``series``) is checked by every
    detector (default: :class:`~proml_lab.health.anomaly.MeanVariance` with ``k=3``) at the metric's
    tuned sensitivity (:meth:`~proml_lab.health.alerts.AnomalyStore.sensitivity`), from its
    ``rebaseline_from`` on when feedback said ``new_trend``; anomalies are recorded (idempotently) and,
    with ``webhook``, the new ones posted.

    Returns
    -------
    pandas.DataFrame
        ``id, metric, detector, ts, value, expected, lower, upper, score, direction, severity``.
    """
    from proml_lab.health.alerts import AnomalyStore
    from proml_lab.health.anomaly import MeanVariance

    detectors = list(detectors) if detectors is not None else [MeanVariance(k=3.0)]
    todo: dict[str, pd.Series] = dict(series or {})
    if model is not None:
        frame = metric_series(workspace, model, freq=freq)
        for m in metrics:
            if m not in frame.columns:
                raise HealthError(f"Unknown metric {m!r}; choose from {', '.join(_SERIES)}.")
            todo[f"{model}.{m}"] = frame[m].dropna()
    if business:
        todo.update({f"business.{c}": s for c, s in _business_series(workspace).items()})
    store = AnomalyStore(workspace)
    before = set(store.list()["id"]) if webhook is not None else set()
    found = []
    for metric, values in todo.items():
        values = _from_rebaseline(store, metric, values)
        if len(values) < 3:
            continue
        sensitivity = store.sensitivity(metric)
        for detector in detectors:
            anomalies = detector.detect(values, sensitivity=sensitivity)
            if anomalies.empty:
                continue
            name = type(detector).__name__
            ids = store.record(metric, name, anomalies) if record else [None] * len(anomalies)
            found.append(anomalies.assign(id=ids, metric=metric, detector=name))
    columns = ["id", "metric", "detector", "ts", "value", "expected", "lower", "upper", "score", "direction",
               "severity"]
    out = pd.concat(found, ignore_index=True)[columns] if found else pd.DataFrame(columns=columns)
    if webhook is not None and record:
        new = [int(i) for i in out["id"] if int(i) not in before]
        if new:
            store.notify(new, webhook, link=link)
    return out


def _from_rebaseline(store: Any, metric: str, values: pd.Series) -> pd.Series:
    """The series from the metric's latest ``new_trend`` label on (its new level is the baseline)."""
    import sqlite3

    try:
        with store._connect() as con:
            row = con.execute("SELECT rebaseline_from FROM sensitivity WHERE metric = ?", (metric,)).fetchone()
    except sqlite3.Error:
        return values
    if row is None or not row[0]:
        return values
    index = pd.DatetimeIndex(values.index)
    since = _utc(row[0])
    since = since if index.tz is not None else since.tz_localize(None)
    return values[index >= since]


def _business_series(workspace: Any) -> dict[str, pd.Series]:
    """The generated world's hourly ``business_metrics`` (none without a world)."""
    try:
        from proml_lab.worlds.world import World

        table = World.open(workspace).read("business_metrics")
    except Exception:  # no world in this workspace: there are simply no business series
        return {}
    if "hour" not in table:
        return {}
    index = pd.DatetimeIndex(pd.to_datetime(table["hour"], utc=True))
    return {c: pd.Series(table[c].to_numpy(dtype=float), index=index)
            for c in table.columns if c != "hour" and pd.api.types.is_numeric_dtype(table[c])}
