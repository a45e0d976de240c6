"""Automatic retraining: a policy decides when, papermill runs the model's retrain notebook, and the new
model becomes ``challenger`` only if it beats the champion on the same validation rows.

The flow of :func:`retrain`, one named step each::

    lock → plan → run notebook → compare → publish (if better) → record   (failed: alert, publish nothing)

- **lock**: a non-blocking :class:`filelock.FileLock` at ``<ws>/models/<name>/.retrain.lock``. A trigger
  that finds it held returns ``status="skipped"`` at once, so concurrent triggers retrain once. The OS
  drops the lock if the process dies.
- **plan**: the program is the champion bundle's ``program.quasar`` (or ``parameters["program"]``, or
  ``<ws>/models/<name>/<name>.quasar``); the notebook is the policy's, else the model's
  ``<name>_retrain.ipynb`` (made by ``proml new model``), else the packaged ``templates/retrain.ipynb``.
- **run notebook**: papermill executes it with ``home, model, program, training_data, output`` (plus the
  policy's and the call's parameters); the executed notebook is kept at
  ``<ws>/retrains/<name>/<timestamp>-<attempt>/output.ipynb``, beside the ``result.json`` it writes (the
  new MLflow run id and its validation metrics) and ``validation.parquet`` (its validation rows).
- **compare**: the champion bundle is evaluated on *the new job's validation rows* (the latest
  ``validation_fraction`` of the fresh training data, split by time) and compared with the new model's
  metrics on those same rows, on the policy's ``metric`` (default: the program's first TRAINING CONFIG
  metric). Lower is better for logloss, rmse, mse and mae; higher for the rest.
- **publish**: only when the improvement is strictly more than ``min_improvement``, the new run is
  published under the model's name with alias ``challenger`` (``champion`` never moves here).
- **record**: every attempt is a row of the ``retrains`` table in ``<ws>/health.db``:
  ``published``, ``not_better``, ``failed`` or ``skipped`` (``running`` while it runs).

A failed run (an exception in the notebook, a missing champion program, a comparison that cannot be made)
records ``failed``, stores an alert (``retrain_alerts`` table; also :meth:`AnomalyStore.record_alert` when
the store has it), POSTs it to the policy's webhook, publishes nothing and releases the lock.

>>> policy = RetrainPolicy(triggers={"psi_alert": 0.2}, cooldown="6h", max_per_day=2)   # doctest: +SKIP
>>> save_policy(ws, "world_job_recommendations", policy)                                # doctest: +SKIP
>>> retrain_if_needed(ws, "world_job_recommendations", {"psi_alert": 0.31}).status      # doctest: +SKIP
'published'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from proml_lab.health import HealthError
from proml_lab.health.alerts import health_path

if TYPE_CHECKING:
    from proml_lab.deploy.bundle import Bundle
    from proml_lab.workspace import Workspace

__all__ = ["STATUSES", "Decision", "RetrainPolicy", "RetrainResult", "load_policy", "retrain",
           "retrain_alerts", "retrain_history", "retrain_if_needed", "save_policy", "should_retrain"]

STATUSES = ("running", "published", "not_better", "failed", "skipped")
_RAN = ("running", "published", "not_better", "failed")  # what counts against cooldown and max_per_day
_LOWER_IS_BETTER = ("logloss", "rmse", "mse", "mae")
POLICY_FILE = "retrain_policy.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retrains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    seconds REAL,
    metric TEXT, new_value REAL, champion_value REAL, improvement REAL, min_improvement REAL,
    run_id TEXT, version TEXT, champion_version TEXT,
    notebook TEXT, output TEXT,
    reasons TEXT, metrics TEXT, champion_metrics TEXT, parameters TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS retrains_model_started ON retrains (model, started_at);
CREATE TABLE IF NOT EXISTS retrain_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    attempt INTEGER,
    created_at TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL,
    notify_status TEXT, notify_error TEXT
);
"""
_HISTORY = ("id", "model", "status", "reason", "started_at", "finished_at", "seconds", "metric", "new_value",
            "champion_value", "improvement", "min_improvement", "run_id", "version", "champion_version",
            "notebook", "output", "reasons", "metrics", "champion_metrics", "parameters", "error")
_JSON_COLUMNS = ("reasons", "metrics", "champion_metrics", "parameters")


# ---- policy ----------------------------------------------------------------------------------------------


class RetrainPolicy(BaseModel):
    """When and how a model is retrained; stored as ``<ws>/models/<name>/retrain_policy.json``.

    Parameters
    ----------
    triggers : dict[str, float]
        Monitoring measure → threshold. Measures are "higher is worse" (a PSI, an AUC *drop*, a
        calibration error); a trigger fires when its measure is at or above the threshold.
    cooldown : str
        Minimum time between two retrains (a pandas Timedelta string: ``"6h"``, ``"30min"``, ``"1d"``).
    max_per_day : int
        At most this many retrains in any 24 hours.
    notebook : str or None
        The papermill notebook (relative paths: from ``<ws>/models/<name>/``). None: the model's
        ``<name>_retrain.ipynb`` if ``proml new model`` made one, else the packaged template.
    parameters : dict
        Extra papermill parameters (``training_data``, ``tune`` ...); a call's parameters win over these.
    min_improvement : float
        The new model must beat the champion on ``metric`` by strictly more than this.
    metric : str or None
        The validation metric compared; None: the program's first TRAINING CONFIG metric.
    webhook : str or None
        Where failure alerts are POSTed.
    kernel : str or None
        Jupyter kernel for the run; None: the notebook's own kernelspec.
    timeout : float or None
        Seconds a notebook cell may run; None: no limit.
    """

    model_config = ConfigDict(extra="forbid")

    triggers: dict[str, float] = Field(
        default_factory=lambda: {"psi_alert": 0.2, "auc_drop": 0.02, "calibration_error": 0.1})
    cooldown: str = "6h"
    max_per_day: int = Field(default=4, ge=1)
    notebook: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    min_improvement: float = Field(default=0.0, ge=0.0)
    metric: str | None = None
    webhook: str | None = None
    kernel: str | None = None
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("cooldown", mode="before")
    @classmethod
    def _check_cooldown(cls, value: Any) -> str:
        if isinstance(value, dt.timedelta):
            value = f"{value.total_seconds():g}s"
        try:
            delta = pd.Timedelta(str(value))
        except ValueError:
            delta = None
        if delta is None or pd.isna(delta) or delta < pd.Timedelta(0):
            raise ValueError(f"The 'cooldown' parameter of RetrainPolicy must be a duration such as '6h', "
                             f"'30min' or '1d'. Got {value!r} instead.")
        return str(value)

    @property
    def cooldown_delta(self) -> dt.timedelta:
        return pd.Timedelta(self.cooldown).to_pytimedelta()


def _model_folder(workspace: Workspace, model_name: str) -> Path:
    return Path(workspace.root) / "models" / model_name


def load_policy(workspace: Workspace, model_name: str) -> RetrainPolicy:
    """The model's stored policy, or the default one when none was saved."""
    path = _model_folder(workspace, model_name) / POLICY_FILE
    if not path.is_file():
        return RetrainPolicy()
    try:
        return RetrainPolicy.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise HealthError(f"The retrain policy {path} is not valid: {exc}") from exc


def save_policy(workspace: Workspace, model_name: str, policy: RetrainPolicy) -> Path:
    """Store *policy* for the model (atomically); returns the file."""
    path = _model_folder(workspace, model_name) / POLICY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(policy.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ---- the decision ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether to retrain now: ``retrain``, the ``reasons`` (both ways), the ``triggers`` that fired, and
    when the cooldown or the daily limit next allow a retrain (``next_allowed``; None when they allow one)."""

    retrain: bool
    reasons: list[str]
    triggers: list[str] = field(default_factory=list)
    next_allowed: dt.datetime | None = None

    def __bool__(self) -> bool:
        return self.retrain


def should_retrain(policy: RetrainPolicy, measures: Mapping[str, float | None], history: Any = None,
                   now: Any = None) -> Decision:
    """Retrain when a trigger's measure crossed its threshold AND the cooldown and ``max_per_day`` allow it.

    Parameters
    ----------
    policy : RetrainPolicy
    measures : dict[str, float]
        Monitoring results, e.g. :attr:`~proml_lab.health.monitor.HealthReport.measures`
        (``{"psi_alert": 0.27, "auc_drop": 0.01, ...}``); measures the policy has no trigger for, and
        triggers whose measure is missing, None or NaN, are ignored.
    history : DataFrame, sequence of datetimes, or None
        Past attempts: :func:`retrain_history` (rows that ran count: running, published, not_better,
        failed) or their start times.
    now : datetime, optional
        Default: the current UTC time.

    Examples
    --------
    >>> should_retrain(RetrainPolicy(), {"psi_alert": 0.3}, []).retrain
    True
    """
    now = _utc(now)
    fired: list[str] = []
    quiet: list[str] = []
    for name, threshold in policy.triggers.items():
        value = measures.get(name)
        if value is None or not math.isfinite(float(value)):
            continue
        (fired if float(value) >= threshold else quiet).append(f"{name} {float(value):.4g}"
                                                             f" {'≥' if float(value) >= threshold else '<'}"
                                                             f" {threshold:g}")
    if not fired:
        why = "; ".join(quiet) if quiet else f"no measure for the triggers ({', '.join(policy.triggers)})"
        return Decision(False, [f"no trigger crossed its threshold: {why}"])
    starts = sorted(_ran_starts(history))
    blocked, next_allowed = [], []
    if starts and now - starts[-1] < policy.cooldown_delta:
        next_allowed.append(starts[-1] + policy.cooldown_delta)
        blocked.append(f"cooldown {policy.cooldown}: last retrain at {starts[-1].isoformat()}, next allowed "
                       f"at {next_allowed[-1].isoformat()}")
    day = [t for t in starts if now - t < dt.timedelta(days=1)]
    if len(day) >= policy.max_per_day:
        next_allowed.append(day[-policy.max_per_day] + dt.timedelta(days=1))
        blocked.append(f"max_per_day {policy.max_per_day}: {len(day)} retrain(s) in the last 24 h, next "
                       f"allowed at {next_allowed[-1].isoformat()}")
    names = [f.split(" ", 1)[0] for f in fired]
    if blocked:
        return Decision(False, [f"triggered ({'; '.join(fired)}) but " + " and ".join(blocked)], names,
                        max(next_allowed))
    return Decision(True, [f"triggered: {'; '.join(fired)}"], names)


def _ran_starts(history: Any) -> list[dt.datetime]:
    if history is None:
        return []
    if isinstance(history, pd.DataFrame):
        if history.empty:
            return []
        rows = history[history["status"].isin(_RAN)] if "status" in history else history
        return [_utc(t) for t in rows["started_at"]]
    return [_utc(t) for t in history]


def _utc(ts: Any) -> dt.datetime:
    if ts is None:
        return dt.datetime.now(dt.timezone.utc)
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


# ---- the result ------------------------------------------------------------------------------------------


@dataclass
class RetrainResult:
    """One retrain attempt: its ``status`` (published / not_better / failed / skipped) and what it found.

    ``new_value`` and ``champion_value`` are ``metric`` on the same validation rows (the new job's);
    ``version`` is the challenger version published (None unless published); ``id`` is the history row.
    """

    status: str
    model: str
    reason: str = "manual"
    reasons: list[str] = field(default_factory=list)
    id: int | None = None
    run_id: str | None = None
    version: str | None = None
    champion_version: str | None = None
    metric: str | None = None
    new_value: float | None = None
    champion_value: float | None = None
    improvement: float | None = None
    min_improvement: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    notebook: str | None = None
    output: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    alert: int | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        head = f"retrain of {self.model}: {self.status}"
        if self.metric and self.new_value is not None:
            champ = "n/a" if self.champion_value is None else f"{self.champion_value:.4f}"
            head += f" ({self.metric} {self.new_value:.4f} vs champion {champ})"
        if self.version:
            head += f"; challenger = version {self.version}"
        return "; ".join([head, *self.reasons])


# ---- retrain ---------------------------------------------------------------------------------------------


def retrain(workspace: Workspace, model_name: str, *, reason: str = "manual",
            parameters: Mapping[str, Any] | None = None, policy: RetrainPolicy | None = None,
            now: Any = None) -> RetrainResult:
    """Retrain *model_name* by running its retrain notebook; publish the result as ``challenger`` only if it
    beats the champion on the same validation rows (module docstring: the flow, the data compared).

    Parameters
    ----------
    workspace : Workspace
    model_name : str
        The registered model (its ``champion`` alias gives the program and the bar to beat).
    reason : str
        Why (``"manual"``, ``"psi_alert 0.31 ≥ 0.2"`` ...); recorded.
    parameters : dict, optional
        Papermill parameters over the policy's (``training_data``, ``tune``, ``program`` ...).
    policy : RetrainPolicy, optional
        Default: :func:`load_policy`.
    now : datetime, optional
        The attempt's start time (default: now).

    Returns
    -------
    RetrainResult
        Never raises for a failed notebook: the result says ``failed`` (and an alert was sent).

    Examples
    --------
    >>> retrain(ws, "world_job_recommendations", reason="drift").status          # doctest: +SKIP
    'published'
    """
    from filelock import FileLock, Timeout

    policy = policy if policy is not None else load_policy(workspace, model_name)
    history = _History(workspace)
    started = _utc(now)
    lock_path = _model_folder(workspace, model_name) / ".retrain.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        result = RetrainResult("skipped", model_name, reason,
                               [f"another retrain of {model_name} is running"])
        result.id = history.insert(result, started, finished=True)
        return result
    try:
        return _locked_retrain(workspace, model_name, reason, parameters or {}, policy, history, started)
    finally:
        lock.release()


def _locked_retrain(workspace: Workspace, model_name: str, reason: str, parameters: Mapping[str, Any],
                    policy: RetrainPolicy, history: _History, started: dt.datetime) -> RetrainResult:
    clock = time.perf_counter()
    result = RetrainResult("running", model_name, reason)
    result.id = history.insert(result, started)
    try:
        champion, plan = _plan(workspace, model_name, parameters, policy, result, started)
        job = _run_notebook(plan, policy, result)
        _compare(job, champion, policy, result)
        if result.status == "published":
            _publish(workspace, model_name, result)
    except BaseException as exc:  # noqa: BLE001 - any failure is recorded; an interrupt is re-raised after
        result.status, result.error = "failed", _describe(exc)
        result.reasons.append(f"failed: {result.error}")
        result.seconds = time.perf_counter() - clock
        history.update(result)
        result.alert = _alert(workspace, policy, result)
        if not isinstance(exc, Exception):
            raise
        return result
    result.seconds = time.perf_counter() - clock
    history.update(result)
    return result


@dataclass
class _Plan:
    notebook: Path
    output: Path
    parameters: dict[str, Any]


def _plan(workspace: Workspace, model_name: str, parameters: Mapping[str, Any], policy: RetrainPolicy,
          result: RetrainResult, started: dt.datetime) -> tuple[Bundle | None, _Plan]:
    """The champion (None when there is none), the notebook, and its parameters."""
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.errors import DeployError

    merged = {**policy.parameters, **parameters}
    champion: Bundle | None = None
    try:
        champion = ModelRegistry(workspace).load(model_name, alias="champion")
        result.champion_version = champion.version
    except DeployError as exc:
        result.reasons.append(f"no champion to compare with ({exc})")
    folder = _model_folder(workspace, model_name)
    program = merged.get("program")
    if program is None and champion is not None:
        if champion.source is None:
            raise HealthError(f"the champion of {model_name} (version {champion.version}) holds no Quasar "
                              f"source to retrain; pass --param program=PATH")
        program = champion.path / "program.quasar"
    if program is None and (folder / f"{model_name}.quasar").is_file():
        program = folder / f"{model_name}.quasar"
    if program is None:
        raise HealthError(f"nothing to retrain for {model_name}: it has no champion and no program; publish "
                          f"a champion or pass --param program=PATH")
    output = (Path(workspace.root) / "retrains" / model_name / f"{started:%Y%m%dT%H%M%SZ}-{result.id}")
    output.mkdir(parents=True, exist_ok=True)
    merged.update(home=str(workspace.root), model=model_name, program=str(Path(program).resolve()),
                  output=str(output / "result.json"))
    merged.setdefault("training_data", None)
    plan = _Plan(_notebook(workspace, model_name, policy), output, merged)
    result.notebook, result.output = str(plan.notebook), str(output / "output.ipynb")
    return champion, plan


def _notebook(workspace: Workspace, model_name: str, policy: RetrainPolicy) -> Path:
    folder = _model_folder(workspace, model_name)
    if policy.notebook:
        path = Path(policy.notebook).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise HealthError(f"the retrain notebook {path} of {model_name}'s policy does not exist")
        return path
    own = folder / f"{model_name}_retrain.ipynb"
    if own.is_file():
        return own
    from proml_lab.templates import templates_dir

    return templates_dir() / "retrain.ipynb"


def _run_notebook(plan: _Plan, policy: RetrainPolicy, result: RetrainResult) -> dict[str, Any]:
    """papermill → the result JSON the notebook wrote (with its validation rows under ``"frame"``)."""
    import papermill

    result.parameters = plan.parameters
    papermill.execute_notebook(
        str(plan.notebook), str(plan.output / "output.ipynb"), parameters=plan.parameters,
        cwd=str(plan.notebook.parent), kernel_name=policy.kernel, progress_bar=False, log_output=False,
        request_save_on_cell_execute=True, execution_timeout=policy.timeout,
    )
    path = plan.output / "result.json"
    if not path.is_file():
        raise HealthError(f"the retrain notebook {plan.notebook} ran but wrote no result to {path}: it must "
                          f"write the result JSON to its `output` parameter (see templates/retrain.ipynb)")
    job = json.loads(path.read_text(encoding="utf-8"))
    result.run_id, result.metrics = job.get("run_id"), dict(job.get("metrics") or {})
    if not result.run_id:
        raise HealthError(f"the retrain notebook's result {path} has no run_id")
    validation = (job.get("validation") or {}).get("path")
    job["frame"] = pd.read_parquet(plan.output / validation) if validation else None
    return job


def _compare(job: dict[str, Any], champion: Bundle | None, policy: RetrainPolicy,
             result: RetrainResult) -> None:
    """The champion on the new job's validation rows against the new model's metrics on those rows."""
    metric = policy.metric or next(iter(result.metrics), None)
    if metric is None or metric not in result.metrics:
        raise HealthError(f"the new model has no validation metric {metric!r}; it has "
                          f"{', '.join(result.metrics) or 'none'}")
    result.metric, result.new_value = metric, float(result.metrics[metric])
    result.min_improvement = policy.min_improvement
    if champion is None:
        result.status = "published"
        result.reasons.append("no champion: the new model is published as challenger")
        return
    if job["frame"] is None:
        raise HealthError("the retrain notebook's result names no validation rows to compare on")
    frame = job["frame"]
    names = list(dict.fromkeys([metric, *result.metrics]))
    result.champion_metrics = {k: float(v) for k, v in champion.evaluate(frame, metrics=names).items()}
    result.champion_value = result.champion_metrics[metric]
    lower = metric.partition("@")[0] in _LOWER_IS_BETTER
    gain = (result.champion_value - result.new_value) if lower else (result.new_value - result.champion_value)
    result.improvement = gain
    where = f"on the new job's {len(frame):,} validation rows"
    if math.isfinite(gain) and gain > policy.min_improvement:
        result.status = "published"
        result.reasons.append(f"{metric} {result.new_value:.4f} beats the champion's "
                              f"{result.champion_value:.4f} by {gain:.4g} > min_improvement "
                              f"{policy.min_improvement:g} {where}")
    else:
        result.status = "not_better"
        result.reasons.append(f"{metric} {result.new_value:.4f} vs the champion's "
                              f"{result.champion_value:.4f}: improvement {gain:.4g} is not more than "
                              f"min_improvement {policy.min_improvement:g} {where}; nothing published")


def _publish(workspace: Workspace, model_name: str, result: RetrainResult) -> None:
    from proml_lab.deploy.registry import ModelRegistry

    assert result.run_id is not None  # _run_notebook checked it
    version = ModelRegistry(workspace).publish(
        result.run_id, name=model_name, alias="challenger",
        description=f"retrain attempt {result.id} ({result.reason})")
    result.version = version.version


def _describe(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:  # papermill's PapermillExecutionError: the notebook's own exception
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def _alert(workspace: Workspace, policy: RetrainPolicy, result: RetrainResult) -> int:
    """Store the failure as an alert, then POST it to the webhook (a failed POST is recorded, not raised)."""
    message = f"retrain of {result.model} failed: {result.error}"
    payload = {"kind": "retrain_failed", "model": result.model, "attempt": result.id, "reason": result.reason,
               "error": result.error, "notebook": result.output, "champion_version": result.champion_version,
               "message": message}
    from proml_lab.health.alerts import AnomalyStore

    record = getattr(AnomalyStore(workspace), "record_alert", None)
    if record is not None:  # the generic alert feed, where the store has one
        with contextlib.suppress(Exception):
            record(kind="retrain_failed", subject=result.model, message=message, payload=payload)
    history = _History(workspace)
    alert = history.alert(result, message, payload)
    if policy.webhook:
        from proml_lab.health.alerts import Webhook

        delivery = Webhook(policy.webhook).send({**payload, "alert": alert})
        history.delivered(alert, "sent" if delivery.ok else "failed", delivery.error)
    return alert


# ---- history ---------------------------------------------------------------------------------------------


class _History:
    """The ``retrains`` and ``retrain_alerts`` tables of ``<ws>/health.db``."""

    def __init__(self, workspace: Any) -> None:
        self.path = health_path(workspace)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()

    def insert(self, result: RetrainResult, started: dt.datetime, *, finished: bool = False) -> int:
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO retrains (model, status, reason, started_at, finished_at, reasons)"
                " VALUES (?,?,?,?,?,?)",
                (result.model, result.status, result.reason, started.isoformat(),
                 started.isoformat() if finished else None, json.dumps(result.reasons)))
            return int(cur.lastrowid or 0)

    def update(self, r: RetrainResult) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE retrains SET status=?, finished_at=?, seconds=?, metric=?, new_value=?,"
                " champion_value=?, improvement=?, min_improvement=?, run_id=?, version=?,"
                " champion_version=?, notebook=?, output=?, reasons=?, metrics=?, champion_metrics=?,"
                " parameters=?, error=? WHERE id=?",
                (r.status, dt.datetime.now(dt.timezone.utc).isoformat(), r.seconds, r.metric, r.new_value,
                 r.champion_value, r.improvement, r.min_improvement, r.run_id, r.version, r.champion_version,
                 r.notebook, r.output, json.dumps(r.reasons), json.dumps(r.metrics),
                 json.dumps(r.champion_metrics), json.dumps(r.parameters, default=str), r.error, r.id))

    def alert(self, r: RetrainResult, message: str, payload: dict[str, Any]) -> int:
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO retrain_alerts (model, attempt, created_at, message, payload)"
                " VALUES (?,?,?,?,?)",
                (r.model, r.id, dt.datetime.now(dt.timezone.utc).isoformat(), message,
                 json.dumps(payload, default=str)))
            return int(cur.lastrowid or 0)

    def delivered(self, alert: int, status: str, error: str | None) -> None:
        with self._connect() as con:
            con.execute("UPDATE retrain_alerts SET notify_status=?, notify_error=? WHERE id=?",
                        (status, error, alert))

    def frame(self, table: str, columns: Sequence[str], model: str | None) -> pd.DataFrame:
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        args: tuple[Any, ...] = ()
        if model is not None:
            sql, args = sql + " WHERE model = ?", (model,)
        with self._connect() as con:
            rows = con.execute(sql + " ORDER BY id DESC", args).fetchall()
        return pd.DataFrame(rows, columns=list(columns))


def retrain_history(workspace: Workspace, model_name: str | None = None) -> pd.DataFrame:
    """Every retrain attempt of *model_name* (all models when None), newest first.

    Columns: ``id, model, status, reason, started_at, finished_at, seconds, metric, new_value,
    champion_value, improvement, min_improvement, run_id, version, champion_version, notebook, output,
    reasons, metrics, champion_metrics, parameters, error`` (times as UTC timestamps; ``reasons`` a list,
    the metrics and parameters dicts).
    """
    frame = _History(workspace).frame("retrains", _HISTORY, model_name)
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in _JSON_COLUMNS:
        frame[column] = [json.loads(v) if v else None for v in frame[column]]
    return frame


def retrain_alerts(workspace: Workspace, model_name: str | None = None) -> pd.DataFrame:
    """Failed-retrain alerts, newest first: ``id, model, attempt, created_at, message, payload,
    notify_status, notify_error`` (``notify_status``: sent / failed / None without a webhook)."""
    columns = ("id", "model", "attempt", "created_at", "message", "payload", "notify_status", "notify_error")
    frame = _History(workspace).frame("retrain_alerts", columns, model_name)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    frame["payload"] = [json.loads(v) for v in frame["payload"]]
    return frame


def retrain_if_needed(workspace: Workspace, model_name: str, measures: Mapping[str, float | None], *,
                      policy: RetrainPolicy | None = None, parameters: Mapping[str, Any] | None = None,
                      now: Any = None) -> RetrainResult:
    """What a monitoring job calls: :func:`should_retrain` on the stored policy and history, then
    :func:`retrain` when it says so. A "no" is returned as ``status="skipped"`` with its reasons (and not
    recorded: it is a check, not an attempt)."""
    policy = policy if policy is not None else load_policy(workspace, model_name)
    decision = should_retrain(policy, measures, retrain_history(workspace, model_name), now)
    if not decision.retrain:
        return RetrainResult("skipped", model_name, "monitoring", decision.reasons)
    return retrain(workspace, model_name, reason=decision.reasons[0], parameters=parameters, policy=policy,
                   now=now)
