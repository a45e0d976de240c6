"""Run tracking on MLflow: every training run's parameters, metrics per pass, program and artifacts.

The workspace holds the tracking store (SQLite) and the artifact root, so tracking needs no server;
``PROML_MLFLOW_TRACKING_URI`` points it at a shared MLflow server instead.

Examples
--------
>>> from proml_lab.workspace import Workspace                      # doctest: +SKIP
>>> with Tracker(Workspace.open()).start_run("glmix") as run:      # doctest: +SKIP
...     run.log_params({"l2": 10.0})
...     run.log_metrics({"auc": 0.78}, step=1)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.workspace import Workspace

__all__ = ["DEFAULT_EXPERIMENT", "RunLogger", "Tracker", "metric_key"]

DEFAULT_EXPERIMENT = "proml"


def _quiet_mlflow() -> Any:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


class RunLogger:
    """One open MLflow run: log parameters, metrics (with a step), text, dicts and files."""

    def __init__(self, client: Any, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    def log_params(self, params: Mapping[str, Any], *, prefix: str = "") -> None:
        """Parameters as strings (MLflow caps a value at 6,000 characters; longer ones are cut)."""
        from mlflow.entities import Param

        items = [Param(f"{prefix}{k}", _text(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0, prefix: str = "") -> None:
        """Finite numeric metrics at *step* (NaN or non-numbers are skipped, not logged as garbage)."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(f"{prefix}{k}"), float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, _text(v)[:5000])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / Path(artifact_file).name
            figure.savefig(out, bbox_inches="tight")
            parent = str(Path(artifact_file).parent)
            self.log_artifact(out, None if parent == "." else parent)


def metric_key(name: str) -> str:
    """An MLflow-safe metric name: ``ndcg@10`` -> ``ndcg_at_10`` (MLflow refuses ``@``)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name.replace("@", "_at_"))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except TypeError:
        return str(value)


class Tracker:
    """MLflow tracking for one workspace (its tracking store and artifact root)."""

    def __init__(self, workspace: Workspace, *, experiment: str = DEFAULT_EXPERIMENT) -> None:
        self.workspace = workspace
        self.experiment = experiment
        self._client: Any = None
        from filelock import FileLock

        # one lock object per tracker (re-entrant); across processes it serializes store creation
        self._lock = FileLock(str(workspace.root / ".tracking.lock"), timeout=600)

    @property
    def client(self) -> Any:
        if self._client is None:
            mlflow = _quiet_mlflow()
            from mlflow.tracking import MlflowClient

            mlflow.set_tracking_uri(self.workspace.mlflow_tracking_uri)
            with self._lock:
                client = MlflowClient(tracking_uri=self.workspace.mlflow_tracking_uri,
                                      registry_uri=self.workspace.mlflow_registry_uri)
                client.search_experiments(max_results=1)  # creates (migrates) a new store, once
            self._client = client
        return self._client

    def experiment_id(self) -> str:
        """The experiment's id, created on first use with the workspace's artifact root.

        Creating the tracking store (MLflow migrates a new SQLite database) and the experiment happens
        under a workspace file lock: two processes migrating one new store at once break it.
        """
        client = self.client
        with self._lock:
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                return str(found.experiment_id)
            root = self.workspace.mlflow_artifact_root / self.experiment
            return str(client.create_experiment(self.experiment, artifact_location=root.as_uri()))

    @contextlib.contextmanager
    def start_run(self, name: str | None = None, *, tags: Mapping[str, Any] | None = None) -> Iterator[RunLogger]:
        """An MLflow run that ends FINISHED, or FAILED when the block raises (the error is re-raised)."""
        experiment_id = self.experiment_id()
        run = self.client.create_run(experiment_id, run_name=name,
                                     tags={k: _text(v) for k, v in (tags or {}).items()})
        logger = RunLogger(self.client, run.info.run_id, experiment_id)
        try:
            yield logger
        except BaseException:
            self.client.set_terminated(run.info.run_id, status="FAILED")
            raise
        self.client.set_terminated(run.info.run_id, status="FINISHED")

    def runs(self, *, max_results: int = 100) -> pd.DataFrame:
        """The experiment's runs, newest first: run id, name, status, start time, metrics, parameters."""
        import pandas as pd

        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            return pd.DataFrame(columns=["run_id", "name", "status", "start_time"])
        rows = []
        for r in self.client.search_runs([found.experiment_id], max_results=max_results,
                                         order_by=["attributes.start_time DESC"]):
            row = {"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                   "start_time": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC")}
            row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
            row.update({f"params.{k}": v for k, v in r.data.params.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def run_records(self) -> list[dict[str, Any]]:
        """The runs as plain records: id, name, status, start time, metrics and parameters."""
        out = []
        for row in self.runs().to_dict(orient="records"):
            metrics = {k.removeprefix("metrics."): v for k, v in row.items()
                       if k.startswith("metrics.") and v == v}  # v == v drops NaN (metric absent)
            params = {k.removeprefix("params."): v for k, v in row.items()
                      if k.startswith("params.") and isinstance(v, str)}
            out.append({"id": row["run_id"], "name": row["name"], "status": row["status"],
                        "start_time": row["start_time"], "metrics": metrics, "params": params})
        return out

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` pairs of one metric of one run, by step."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))
