"""Anomalies as alerts: a SQLite store (``<workspace>/health.db``) with feedback labels, per-metric
sensitivity tuned from that feedback, and a webhook that never breaks the caller's pipeline.

The loop, as in ThirdEye: a detector flags points → :meth:`AnomalyStore.record` keeps them (once per
metric, detector and timestamp) → :class:`Webhook` tells people → they :meth:`~AnomalyStore.label` what
they saw → :meth:`~AnomalyStore.tune` moves the metric's sensitivity (the detectors' threshold
multiplier) → the next detection run uses :meth:`~AnomalyStore.sensitivity`.

**The feedback rule** (:meth:`AnomalyStore.tune`), over the labels given since the metric's last tune.
Each anomaly's *base severity* ``b`` is its distance from the expected value in band half-widths at
sensitivity 1 (``severity × sensitivity used``), so a multiplier ``m`` silences exactly the anomalies with
``b ≤ m``. Unwanted alerts are those labelled ``false_positive`` or ``expected``; wanted ones
``true_anomaly``:

- with unwanted alerts, ``m`` moves up to the candidate (the current ``m``, or just above, ×1.05, one of
  the labelled alerts' ``b``) that maximizes *unwanted alerts silenced − 3 × true anomalies silenced*
  (a missed incident costs as much as three false alarms; ties go to the smaller ``m``);
- with only ``true_anomaly`` labels (every alert was real), ``m`` drops by 10% to catch weaker ones nearby;
- ``new_trend``: the level moved for good; ``m`` is unchanged and :meth:`~AnomalyStore.tune` reports the
  latest such timestamp as ``rebaseline_from`` (detect on the series from there on);
- ``unknown``: ignored.

The result is clipped to ``[0.5, 3]``.

>>> store = AnomalyStore(workspace)                                          # doctest: +SKIP
>>> ids = store.record("ctr", "MeanVariance", MeanVariance().detect(ctr))     # doctest: +SKIP
>>> store.label(ids[0], "false_positive"); store.tune("ctr")                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from proml_lab.health import HealthError

__all__ = ["LABELS", "SENSITIVITY_RANGE", "AnomalyStore", "Delivery", "Webhook", "health_path"]

LABELS = ("true_anomaly", "expected", "new_trend", "false_positive", "unknown")
SENSITIVITY_RANGE = (0.5, 3.0)
_QUIET = ("false_positive", "expected")
_RAISE_MARGIN, _MISS_COST, _LOWER_STEP = 1.05, 3, 0.9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    metric TEXT NOT NULL,
    detector TEXT NOT NULL,
    ts TEXT NOT NULL,
    value REAL, expected REAL, lower REAL, upper REAL, score REAL,
    direction TEXT, severity REAL, sensitivity REAL NOT NULL,
    label TEXT NOT NULL DEFAULT 'unknown',
    labeled_at TEXT,
    tuned INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    notified_at TEXT, notify_status TEXT, notify_error TEXT, notify_attempts INTEGER,
    UNIQUE (metric, detector, ts)
);
CREATE INDEX IF NOT EXISTS anomalies_metric_ts ON anomalies (metric, ts);
CREATE TABLE IF NOT EXISTS sensitivity (
    metric TEXT PRIMARY KEY,
    value REAL NOT NULL,
    rebaseline_from TEXT,
    updated_at TEXT NOT NULL
);
"""

_COLUMNS = ("id", "metric", "detector", "ts", "value", "expected", "lower", "upper", "score", "direction",
            "severity", "sensitivity", "label", "labeled_at", "created_at", "notified_at", "notify_status",
            "notify_error", "notify_attempts")


_ALERTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    notified_at TEXT, notify_status TEXT, notify_error TEXT, notify_attempts INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_kind_subject ON alerts (kind, subject);
"""
_ALERT_COLUMNS = ("id", "kind", "subject", "message", "payload", "created_at", "notified_at", "notify_status",
                  "notify_error", "notify_attempts")


def health_path(workspace: Any) -> Path:
    """Where a workspace's anomalies and sensitivities live."""
    # a Path has a ``root`` attribute too ("/"): only a Workspace's is the workspace folder
    root = workspace if isinstance(workspace, (str, os.PathLike)) else workspace.root
    return Path(root) / "health.db"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _iso(ts: Any) -> str:
    """Timestamps as sortable UTC ISO strings (naive ones are taken as UTC)."""
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.isoformat()


def _float(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


class AnomalyStore:
    """Anomalies with feedback labels and each metric's sensitivity, in ``<workspace>/health.db``.

    Parameters
    ----------
    workspace
        A :class:`~proml_lab.workspace.Workspace` (or its root folder).
    """

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace
        self.path = health_path(workspace)
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        try:
            if not self._ready:  # WAL: readers (a dashboard) never block the detection job's writes
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(_SCHEMA)
                self._ready = True
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()

    # -- verbs -----------------------------------------------------------------------------------------
    def record(self, metric: str, detector: str, anomalies: pd.DataFrame) -> list[int]:
        """Store anomalies (a detector's :meth:`detect` frame); return their ids, in the frame's order.

        Idempotent: an anomaly already stored for the same metric, detector and timestamp keeps its id,
        values and label. The sensitivity the detection used comes from ``anomalies.attrs`` (else the
        metric's current one).
        """
        missing = {"ts", "value", "expected", "lower", "upper", "score", "direction"} - set(anomalies.columns)
        if missing:
            raise HealthError(
                f"record needs a detector's anomaly frame; columns {sorted(missing)} are missing."
            )
        used = float(anomalies.attrs.get("sensitivity", self.sensitivity(metric)))
        frame = anomalies.copy()
        if "severity" not in frame:
            half = np.where(frame["value"] >= frame["expected"], frame["upper"] - frame["expected"],
                            frame["expected"] - frame["lower"])
            with np.errstate(invalid="ignore", divide="ignore"):
                frame["severity"] = np.abs(frame["value"] - frame["expected"]) / half
        stamps = [_iso(t) for t in frame["ts"]]
        rows = [
            (metric, detector, ts, _float(r.value), _float(r.expected), _float(r.lower), _float(r.upper),
             _float(r.score), str(r.direction), _float(r.severity), used, _now())
            for ts, r in zip(stamps, frame.itertuples(index=False), strict=True)
        ]
        with self._connect() as con:
            con.executemany(
                "INSERT INTO anomalies (metric, detector, ts, value, expected, lower, upper, score,"
                " direction, severity, sensitivity, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (metric, detector, ts) DO NOTHING",
                rows,
            )
            ids = dict(con.execute(
                "SELECT ts, id FROM anomalies WHERE metric = ? AND detector = ?", (metric, detector)
            ).fetchall())
        return [int(ids[ts]) for ts in stamps]

    def list(self, metric: str | None = None, label: str | None = None, since: Any = None) -> pd.DataFrame:
        """Stored anomalies, newest first; optionally of one metric, with one label, at or after ``since``."""
        if label is not None:
            self._check_label(label)
        where, args = [], []
        for column, value in (("metric = ?", metric), ("label = ?", label)):
            if value is not None:
                where.append(column)
                args.append(value)
        if since is not None:
            where.append("ts >= ?")
            args.append(_iso(since))
        sql = f"SELECT {', '.join(_COLUMNS)} FROM anomalies"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY ts DESC, id DESC", args).fetchall()
        frame = pd.DataFrame(rows, columns=list(_COLUMNS))
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame

    def label(self, id: int, label: str) -> None:
        """Give anomaly ``id`` a feedback label (one of :data:`LABELS`)."""
        self._check_label(label)
        with self._connect() as con:
            cur = con.execute("UPDATE anomalies SET label = ?, labeled_at = ?, tuned = 0 WHERE id = ?",
                              (label, _now(), int(id)))
            if cur.rowcount == 0:
                raise HealthError(f"No anomaly with id {id}.")

    def sensitivity(self, metric: str) -> float:
        """The metric's threshold multiplier (1.0 until feedback tunes it)."""
        with self._connect() as con:
            row = con.execute("SELECT value FROM sensitivity WHERE metric = ?", (metric,)).fetchone()
        return 1.0 if row is None else float(row[0])

    def tune(self, metric: str) -> dict[str, Any]:
        """Apply the feedback rule (module docstring) to the labels given since the last tune.

        Returns
        -------
        dict
            ``metric, before, after, used`` (labels consumed, by label) and ``rebaseline_from`` (the
            latest ``new_trend`` timestamp, or None).
        """
        with self._connect() as con:
            row = con.execute("SELECT value, rebaseline_from FROM sensitivity WHERE metric = ?",
                              (metric,)).fetchone()
            before, rebaseline = (1.0, None) if row is None else (float(row[0]), row[1])
            rows = con.execute(
                "SELECT id, label, severity * sensitivity, ts FROM anomalies "
                "WHERE metric = ? AND tuned = 0 AND label != 'unknown'", (metric,)
            ).fetchall()
            base = {lab: [float(r[2]) for r in rows if r[1] == lab and r[2] is not None] for lab in LABELS}
            after = _rule(before, quiet=base["false_positive"] + base["expected"], real=base["true_anomaly"])
            trends = [r[3] for r in rows if r[1] == "new_trend"]
            rebaseline = max(trends + ([rebaseline] if rebaseline else [])) if trends else rebaseline
            con.execute(
                "INSERT INTO sensitivity (metric, value, rebaseline_from, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (metric) DO UPDATE SET value = excluded.value, "
                "rebaseline_from = excluded.rebaseline_from, updated_at = excluded.updated_at",
                (metric, after, rebaseline, _now()),
            )
            con.executemany("UPDATE anomalies SET tuned = 1 WHERE id = ?", [(r[0],) for r in rows])
        used = {lab: sum(r[1] == lab for r in rows) for lab in LABELS if any(r[1] == lab for r in rows)}
        return {"metric": metric, "before": before, "after": after, "used": used,
                "rebaseline_from": rebaseline}

    def notify(self, ids: Sequence[int], webhook: Webhook, *, link: str | None = None) -> list[Delivery]:
        """Send each anomaly to ``webhook`` and record the outcome on it; never raises on delivery failure.

        ``link`` (e.g. ``"http://lab/health/anomalies/{id}"``) is formatted with the anomaly's id.
        """
        frame = self.list().set_index("id")
        out = []
        for i in ids:
            r = frame.loc[int(i)]
            payload = {
                "id": int(i), "metric": r["metric"], "detector": r["detector"], "ts": r["ts"].isoformat(),
                "value": _float(r["value"]), "expected": _float(r["expected"]),
                "direction": r["direction"], "severity": _float(r["severity"]),
                "link": link.format(id=int(i)) if link else None,
            }
            delivery = webhook.send(payload)
            with self._connect() as con:
                con.execute(
                    "UPDATE anomalies SET notified_at = ?, notify_status = ?, notify_error = ?, "
                    "notify_attempts = ? WHERE id = ?",
                    (_now(), "sent" if delivery.ok else "failed", delivery.error, delivery.attempts, int(i)),
                )
            out.append(delivery)
        return out

    # -- generic alerts (consistency checks, retrain failures ...): not points of a metric series ----------
    def record_alert(self, kind: str, subject: str, message: str, payload: dict[str, Any] | None = None) -> int:
        """Store one alert that is not a series anomaly (``kind`` e.g. ``"consistency"``, ``subject`` e.g.
        ``"member.member_seniority"``); returns its id. Every call is a new alert."""
        with self._connect() as con:
            for statement in _ALERTS_SCHEMA.split(";")[:-1]:  # inside this transaction
                con.execute(statement)
            cur = con.execute(
                "INSERT INTO alerts (kind, subject, message, payload, created_at) VALUES (?,?,?,?,?)",
                (kind, subject, message, json.dumps(payload or {}, default=str), _now()))
            return int(cur.lastrowid)

    def list_alerts(self, kind: str | None = None, subject: str | None = None) -> pd.DataFrame:
        """Stored generic alerts, newest first (``payload`` decoded), optionally of one kind / subject."""
        where, args = [], []
        for column, value in (("kind = ?", kind), ("subject = ?", subject)):
            if value is not None:
                where.append(column)
                args.append(value)
        sql = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts"
        with self._connect() as con:
            for statement in _ALERTS_SCHEMA.split(";")[:-1]:  # inside this transaction
                con.execute(statement)
            rows = con.execute(sql + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC",
                               args).fetchall()
        frame = pd.DataFrame(rows, columns=list(_ALERT_COLUMNS))
        frame["payload"] = [json.loads(p) for p in frame["payload"]]
        return frame

    def notify_alerts(self, ids: Sequence[int], webhook: Webhook) -> list[Delivery]:
        """POST each generic alert (``id, kind, subject, message, created_at`` and its payload's fields) to
        *webhook*; the outcome is recorded on the alert; never raises on delivery failure."""
        frame = self.list_alerts().set_index("id")
        out = []
        for i in ids:
            r = frame.loc[int(i)]
            delivery = webhook.send({**r["payload"], "id": int(i), "kind": r["kind"], "subject": r["subject"],
                                     "message": r["message"], "created_at": r["created_at"]})
            with self._connect() as con:
                con.execute("UPDATE alerts SET notified_at = ?, notify_status = ?, notify_error = ?, "
                            "notify_attempts = ? WHERE id = ?",
                            (_now(), "sent" if delivery.ok else "failed", delivery.error, delivery.attempts, int(i)))
            out.append(delivery)
        return out

    @staticmethod
    def _check_label(label: str) -> None:
        if label not in LABELS:
            raise HealthError(f"Unknown label {label!r}; choose one of {', '.join(LABELS)}.")


def _rule(before: float, *, quiet: list[float], real: list[float]) -> float:
    """The feedback rule of the module docstring (base severities in, new multiplier out)."""
    lo, hi = SENSITIVITY_RANGE
    if quiet:
        q, r = np.asarray(quiet), np.asarray(real, dtype=float)
        candidates = np.unique(np.clip(np.r_[before, _RAISE_MARGIN * np.r_[q, r]], lo, hi))
        candidates = candidates[candidates >= before]
        silenced_q = (q[None, :] < candidates[:, None]).sum(1)
        silenced_r = (r[None, :] < candidates[:, None]).sum(1)
        gain = silenced_q - _MISS_COST * silenced_r
        after = float(candidates[np.argmax(gain)])  # argmax takes the first (smallest) best candidate
    elif real:
        after = before * _LOWER_STEP
    else:
        after = before
    return float(min(max(after, lo), hi))


# -- webhook ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """What happened to one webhook POST: ``ok``, the last HTTP ``status``, ``attempts`` and ``error``."""

    ok: bool
    status: int | None
    attempts: int
    error: str | None = None


class Webhook:
    """POST JSON alerts to ``url`` with retries and exponential backoff; failures are returned, not raised.

    Retries connection errors, timeouts, HTTP 429 and 5xx (``retries`` more times, waiting ``backoff``,
    ``2 × backoff`` ...); a 4xx other than 429 is final.

    Parameters
    ----------
    url : str
        Where to POST (Slack-style incoming webhooks, an internal alert router ...).
    timeout : float, default 5.0
        Seconds per attempt.
    retries : int, default 3
        Attempts after the first.
    backoff : float, default 0.5
        Seconds before the first retry; doubles each time.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def send(self, payload: dict[str, Any]) -> Delivery:
        """POST ``payload`` as JSON; the :class:`Delivery` says whether (and how) it arrived."""
        body = json.dumps(payload, default=str).encode()
        status, error = None, None
        for attempt in range(1, int(self.retries) + 2):
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return Delivery(True, response.status, attempt)
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code != 429:
                    return Delivery(False, status, attempt, error)
            except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, DNS, timeout, bad URL
                status, error = None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt <= self.retries:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        return Delivery(False, status, int(self.retries) + 1, error)

    def __repr__(self) -> str:
        return (f"Webhook({self.url!r}, timeout={self.timeout!r}, retries={self.retries!r}, "
                f"backoff={self.backoff!r})")
