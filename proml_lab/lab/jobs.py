"""Tracked training jobs: a detached process per job, its state in files under ``<workspace>/jobs/<id>/``.

A job outlives the notebook cell (and the kernel) that started it: :func:`submit` launches
``python -m proml_lab.lab.jobs run <job_dir>`` in a new session, so an interrupted cell or a culled
kernel does not stop it. The job directory is the only channel between the two sides::

    <workspace>/jobs/<id>/
      spec.json      what to train (program source, filename, data, label, tuning trials)
      status.json    state (queued, running, succeeded, failed), pid, start and end times
      events.jsonl   training progress, one JSON event per line (appended, flushed per event)
      result.json    TrainResult.to_dict() once the job succeeded (written atomically)
      error.json     type, message and traceback once it failed (written atomically)
      model.pkl      the trained model (best effort), for :meth:`JobResult.model`
      job.log        the process's stdout and stderr

Examples
--------
>>> job = submit(ws, source, filename="ranker.quasar", name="ranker")   # doctest: +SKIP
>>> job.wait(callback=print).metrics                                      # doctest: +SKIP
{'auc': 0.79, 'ndcg@10': 0.78}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from proml_lab._fs import write_json_atomic
from proml_lab.errors import ProMLError

__all__ = ["Job", "JobError", "JobFailedError", "JobResult", "jobs_dir", "list_jobs", "open_job", "submit"]

Event = dict[str, Any]
FINISHED = ("succeeded", "failed", "lost")
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # jobs this process started: polled so none stays a zombie


class JobError(ProMLError):
    """A job cannot be found or read."""


class JobFailedError(JobError):
    """The training job failed; the message is the job's own error."""

    def __init__(self, job_id: str, message: str, *, error_type: str = "Error") -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        self.job_id = job_id
        self.error_type = error_type
        self.reason = message


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def jobs_dir(workspace: Any) -> Path:
    """The folder holding every job of *workspace* (``<root>/jobs``)."""
    return Path(workspace.root) / "jobs"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:  # our own child: poll() reaps it, so an exited job is not a live zombie
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobResult:
    """What a finished job produced: its metrics, MLflow run and (on demand) the trained model."""

    def __init__(self, job_id: str, data: Mapping[str, Any], *, path: Path | None = None) -> None:
        self.job_id = job_id
        self.data = dict(data)
        self.path = path

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.data.get("metrics") or {})

    @property
    def run_id(self) -> str | None:
        return self.data.get("run_id")

    @property
    def program(self) -> str | None:
        return self.data.get("program")

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job_id, **self.data}

    def model(self) -> Any:
        """The trained model (a ``TrainedModel``), unpickled from the job folder.

        Only load jobs of your own workspace: unpickling runs code.
        """
        file = self.path / "model.pkl" if self.path is not None else None
        if file is None or not file.exists():
            raise JobError(f"job {self.job_id} saved no model; its metrics and MLflow run "
                           f"{self.run_id} are all there is")
        with file.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301  (the workspace's own file)

    def _repr_html_(self) -> str:
        from proml_lab.lab.display import job_result_html

        return job_result_html(self)

    def __repr__(self) -> str:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        return f"JobResult({self.job_id!r}, program={self.program!r}, {metrics})"


class Job:
    """A handle on one job folder; every property reads the files afresh.

    Parameters
    ----------
    path : Path
        ``<workspace>/jobs/<id>``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.id = self.path.name

    # -- reading -----------------------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        return _read_json(self.path / "spec.json") or {}

    def status(self) -> dict[str, Any]:
        """``status.json``, with ``state`` corrected to ``lost`` when the process died without a word."""
        status = _read_json(self.path / "status.json") or {"state": "queued"}
        if not status.get("pid"):
            status["pid"] = (_read_json(self.path / "launcher.json") or {}).get("pid")
        if (self.path / "result.json").exists():
            status["state"] = "succeeded"
        elif (self.path / "error.json").exists():
            status["state"] = "failed"
        elif status.get("state") in ("queued", "running") and not _pid_alive(status.get("pid")):
            status["state"] = "lost"
        return status

    @property
    def state(self) -> str:
        return str(self.status()["state"])

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    def events(self, start: int = 0) -> list[Event]:
        """Progress events from number *start* on (complete lines only; a line being written is skipped)."""
        try:
            text = (self.path / "events.jsonl").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # the last piece has no newline yet: not a whole event
        return [json.loads(line) for line in lines[start:] if line.strip()]

    def result(self) -> JobResult:
        """The result of a finished job; raises :class:`JobFailedError` if it failed."""
        data = _read_json(self.path / "result.json")
        if data is not None:
            return JobResult(self.id, data, path=self.path)
        error = _read_json(self.path / "error.json")
        if error is not None:
            raise JobFailedError(self.id, error.get("message", ""), error_type=error.get("type", "Error"))
        state = self.state
        if state == "lost":
            raise JobFailedError(self.id, f"the job process ended without a result; see {self.path / 'job.log'}",
                                 error_type="JobLost")
        raise JobError(f"job {self.id} is still {state}; wait for it with %job {self.id} (or Job.wait())")

    # -- waiting -----------------------------------------------------------------------------------
    def wait(self, *, callback: Callable[[Event], None] | None = None, timeout: float | None = None,
             poll: float = 0.25) -> JobResult:
        """Block until the job finishes, feeding *callback* every progress event in order.

        Parameters
        ----------
        callback : callable, optional
            Called with each event dict (``{"event": "node", ...}``); an exception it raises (such as
            ``KeyboardInterrupt``) stops the waiting, never the job.
        timeout : float, optional
            Seconds to wait before raising ``TimeoutError`` (the job keeps running).

        Returns
        -------
        JobResult

        Examples
        --------
        >>> open_job(ws, "20261122-152301-ab12").wait(timeout=600).metrics   # doctest: +SKIP
        """
        seen, deadline = 0, None if timeout is None else time.monotonic() + timeout
        while True:
            finished = self.done  # read before the events, so the last events are not missed
            events = self.events(seen)
            seen += len(events)
            for event in events:
                if callback is not None:
                    callback(event)
            if finished:
                return self.result()
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} is still running after {timeout} s")
            time.sleep(poll)

    def kill(self) -> None:
        """Stop the job (SIGTERM to its process group); it records itself as failed."""
        pid = self.status().get("pid")
        if pid and _pid_alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGTERM)

    def summary(self) -> dict[str, Any]:
        """One row for :func:`list_jobs`: id, model name, state, times, metrics."""
        status, spec = self.status(), self.spec
        result = _read_json(self.path / "result.json") or {}
        error = _read_json(self.path / "error.json") or {}
        return {"id": self.id, "name": spec.get("name"), "state": status.get("state"),
                "submitted_at": spec.get("submitted_at"), "finished_at": status.get("finished_at"),
                "metrics": result.get("metrics"), "run_id": result.get("run_id"),
                "error": error.get("message"), "pid": status.get("pid")}

    def __repr__(self) -> str:
        return f"Job({self.id!r}, state={self.state!r})"


def _new_id() -> str:
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def submit(workspace: Any, source: str, *, filename: str = "<quasar>", name: str | None = None,
           source_table: str | None = None, label: str | None = None, tune_trials: int = 0,
           spark_master: str | None = None, cwd: str | Path | None = None) -> Job:
    """Start training *source* in a detached process; return its :class:`Job` at once.

    The process runs :func:`~proml_lab.training.pipeline.train_program` in *workspace* (its
    ``PROML_HOME``) and keeps running when the caller is interrupted or exits.

    Examples
    --------
    >>> job = submit(ws, open("ranker.quasar").read(), filename="ranker.quasar", tune_trials=4)  # doctest: +SKIP
    >>> job.state                                                                                # doctest: +SKIP
    'running'
    """
    job_id = _new_id()
    path = jobs_dir(workspace) / job_id
    path.mkdir(parents=True)
    spec = {"id": job_id, "name": name, "source": source, "filename": filename, "source_table": source_table,
            "label": label, "tune_trials": int(tune_trials), "workspace": str(workspace.root),
            "cwd": str(cwd or os.getcwd()), "submitted_at": _now()}
    write_json_atomic(path / "spec.json", spec)
    write_json_atomic(path / "status.json", {"state": "queued", "pid": None})
    env = {**os.environ, "PROML_HOME": str(workspace.root), "PYTHONUNBUFFERED": "1"}
    if spark_master:
        env["PROML_SPARK_MASTER"] = spark_master
    with (path / "job.log").open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "proml_lab.lab.jobs", "run", str(path)], cwd=spec["cwd"], env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    # status.json belongs to the child from now on; the launcher's view of the pid goes to its own file
    write_json_atomic(path / "launcher.json", {"pid": proc.pid})
    return Job(path)


def open_job(workspace: Any, job_id: str) -> Job:
    """The job *job_id* (or the only one whose id starts with it); :class:`JobError` listing ids if none."""
    root = jobs_dir(workspace)
    exact = root / job_id
    if job_id and exact.is_dir():
        return Job(exact)
    matches = sorted(p for p in root.glob(f"{job_id}*") if p.is_dir()) if job_id else []
    if len(matches) == 1:
        return Job(matches[0])
    known = [j.id for j in list_jobs(workspace)][:5]
    hint = f" Recent jobs: {', '.join(known)}." if known else " There are no jobs yet; start one with %train."
    what = "matches several jobs" if matches else "is not a job"
    raise JobError(f"{job_id!r} {what} in {root}.{hint}")


def list_jobs(workspace: Any) -> list[Job]:
    """Every job of *workspace*, newest first."""
    root = jobs_dir(workspace)
    if not root.is_dir():
        return []
    return [Job(p) for p in sorted(root.iterdir(), key=lambda p: p.name, reverse=True)
            if p.is_dir() and (p / "spec.json").exists()]


# -- the job process --------------------------------------------------------------------------------


def _write_status(path: Path, **fields: Any) -> None:
    status = _read_json(path / "status.json") or {}
    status.update(fields)
    write_json_atomic(path / "status.json", status)


def _save_model(path: Path, model: Any) -> None:
    tmp = path / ".model.pkl.tmp"
    try:
        with tmp.open("wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path / "model.pkl")
    except Exception as exc:  # a model that cannot be pickled still has its metrics and MLflow run
        tmp.unlink(missing_ok=True)
        print(f"model not saved: {exc}", file=sys.stderr)


def _init_tracking(ws: Any) -> None:
    """Create the MLflow store and experiment before training (the Tracker locks against other jobs)."""
    from proml_lab.training.tracking import Tracker

    Tracker(ws).experiment_id()


def _check_features(ws: Any, spec: Mapping[str, Any], emit: Callable[[Mapping[str, Any]], None]) -> None:
    """Authoring checks before joining: problems go to the events (``{"event": "checks", ...}``); errors (a
    missing feature, no offline values over the training window) fail the job with what to do."""
    from proml_lab.health.checks import TRAINING_CHECKS, authoring_checks

    report = authoring_checks(ws, spec["source"], training_data=spec.get("source_table"), checks=TRAINING_CHECKS,
                              filename=spec.get("filename") or "<quasar>")
    if report.problems:
        emit({"event": "checks", **report.to_dict()})
    report.raise_for_errors()


def run(path: str | Path) -> int:
    """Body of the job process: train the spec's program, record events, then the result or the error."""
    from proml_lab.training.pipeline import train_program
    from proml_lab.workspace import Workspace

    path = Path(path)
    spec = _read_json(path / "spec.json")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # recorded below as a failure, like any other
    _write_status(path, state="running", pid=os.getpid(), started_at=_now())
    with (path / "events.jsonl").open("a", encoding="utf-8") as events:

        def emit(event: Mapping[str, Any]) -> None:
            events.write(json.dumps(dict(event), default=str) + "\n")
            events.flush()

        try:
            ws = Workspace.open(spec["workspace"])
            _init_tracking(ws)
            _check_features(ws, spec, emit)
            result = train_program(ws, spec["source"], filename=spec["filename"],
                                   source_table=spec.get("source_table"), label=spec.get("label"),
                                   tune_trials=int(spec.get("tune_trials") or 0),
                                   run_name=spec.get("name"), callback=emit)
            from proml_lab.deploy.bundle import log_bundle

            try:  # the run holds the model bundle: %publish / proml publish RUN_ID
                log_bundle(ws, result.model)
            except ProMLError as exc:  # a model that cannot be bundled still has its metrics and run
                print(f"model bundle not logged: {exc}", file=sys.stderr)
            _save_model(path, result.model)
            write_json_atomic(path / "result.json", result.to_dict())
            _write_status(path, state="succeeded", finished_at=_now())
            return 0
        except BaseException as exc:  # noqa: BLE001  (every way of ending is recorded, SystemExit too)
            message = "terminated" if isinstance(exc, SystemExit) else str(exc)
            write_json_atomic(path / "error.json", {"type": type(exc).__name__, "message": message,
                                                    "traceback": traceback.format_exc()})
            _write_status(path, state="failed", finished_at=_now())
            return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m proml_lab.lab.jobs run <job_dir>``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "run":
        print("usage: python -m proml_lab.lab.jobs run <job_dir>", file=sys.stderr)
        return 2
    return run(args[1])


if __name__ == "__main__":
    sys.exit(main())
