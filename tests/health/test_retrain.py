"""Automatic retraining: the policy's decision, the lock (concurrent triggers retrain once), a better model
published as challenger, a model that is not better left unpublished, and the failed-run path (alert,
webhook, nothing published, lock released). The notebook runs are real papermill runs of
``templates/retrain.ipynb`` on the tiny world (three full runs, one that fails early)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from filelock import FileLock
from pydantic import ValidationError

from proml_lab.deploy.registry import ModelRegistry
from proml_lab.health.alerts import AnomalyStore
from proml_lab.health.retrain import (
    RetrainPolicy,
    load_policy,
    retrain,
    retrain_alerts,
    retrain_history,
    retrain_if_needed,
    save_policy,
    should_retrain,
)
from tests.deploy.world import trained_world

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    return trained_world(tmp_path_factory)


def _weakened(trained):
    """The trained model with its per-member and per-job coefficient tables zeroed: a stale champion."""
    glmix = dict(trained.state["glmix"])
    for part in ("per_member", "per_document"):
        table = dict(glmix[part])
        table["coefficients"] = np.zeros_like(np.asarray(table["coefficients"], np.float64))
        glmix[part] = table
    return dataclasses.replace(trained, state={**trained.state, "glmix": glmix}, run_id=None, models={})


@pytest.fixture
def webhook():
    """A real local webhook: ``(url, received payloads)``."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


# ---- the decision (no notebook runs) ---------------------------------------------------------------------


def test_should_retrain_needs_a_crossed_trigger_and_respects_cooldown_and_max_per_day():
    policy = RetrainPolicy(triggers={"psi_alert": 0.2, "auc_drop": 0.02}, cooldown="6h", max_per_day=2)
    quiet = should_retrain(policy, {"psi_alert": 0.05, "auc_drop": 0.01, "other": 9.0}, [], NOW)
    assert not quiet and quiet.reasons == ["no trigger crossed its threshold: psi_alert 0.05 < 0.2; "
                                           "auc_drop 0.01 < 0.02"]
    assert not should_retrain(policy, {"psi_alert": float("nan")}, [], NOW)

    go = should_retrain(policy, {"psi_alert": 0.31, "auc_drop": 0.01}, [], NOW)
    assert go and go.triggers == ["psi_alert"] and go.reasons == ["triggered: psi_alert 0.31 ≥ 0.2"]

    cooling = should_retrain(policy, {"auc_drop": 0.03}, [NOW - dt.timedelta(hours=2)], NOW)
    assert not cooling and "cooldown 6h: last retrain at 2026-03-02T10:00:00+00:00" in cooling.reasons[0]
    assert cooling.next_allowed == NOW + dt.timedelta(hours=4)
    assert should_retrain(policy, {"auc_drop": 0.03}, [NOW - dt.timedelta(hours=7)], NOW)

    history = pd.DataFrame({"status": ["published", "skipped", "failed"],
                            "started_at": [NOW - dt.timedelta(hours=20), NOW - dt.timedelta(hours=9),
                                           NOW - dt.timedelta(hours=10)]})
    capped = should_retrain(policy, {"psi_alert": 0.5}, history, NOW)
    assert not capped and "max_per_day 2: 2 retrain(s) in the last 24 h" in capped.reasons[0]
    assert capped.next_allowed == NOW + dt.timedelta(hours=4)  # when the one 20 h ago leaves the window
    assert should_retrain(policy, {"psi_alert": 0.5}, history.iloc[1:], NOW)  # a skipped one does not count


def test_the_policy_is_validated_stored_per_model_and_a_quiet_check_records_nothing(workspace):
    with pytest.raises(ValidationError, match="The 'cooldown' parameter of RetrainPolicy must be a duration"):
        RetrainPolicy(cooldown="soon")
    with pytest.raises(ValidationError, match="extra"):
        RetrainPolicy(cooldwn="1h")
    assert load_policy(workspace, "m") == RetrainPolicy()
    policy = RetrainPolicy(triggers={"psi_alert": 0.1}, cooldown="30min", webhook="http://x/hook")
    path = save_policy(workspace, "m", policy)
    assert path == workspace.root / "models" / "m" / "retrain_policy.json"
    assert load_policy(workspace, "m") == policy
    result = retrain_if_needed(workspace, "m", {"psi_alert": 0.01}, now=NOW)
    assert result.status == "skipped" and "no trigger crossed" in result.reasons[0]
    assert retrain_history(workspace, "m").empty


def test_a_trigger_while_the_lock_is_held_is_skipped_and_recorded(workspace):
    lock = workspace.root / "models" / "m" / ".retrain.lock"
    lock.parent.mkdir(parents=True)
    with FileLock(str(lock)):
        result = retrain(workspace, "m", reason="drift", now=NOW)
    assert (result.status, result.reasons) == ("skipped", ["another retrain of m is running"])
    row = retrain_history(workspace, "m").iloc[0]
    assert (row.status, row.reason, row.started_at) == ("skipped", "drift", pd.Timestamp(NOW))


# ---- real notebook runs ----------------------------------------------------------------------------------


def test_a_new_models_own_retrain_notebook_runs_and_a_failure_without_a_webhook_is_still_recorded(workspace):
    from proml_lab.templates import new_model

    made = new_model(workspace, "fresh")
    assert made.retrain == made.folder / "fresh_retrain.ipynb"
    # no champion: the model's program is retrained; this workspace has no features, so the notebook raises
    result = retrain(workspace, "fresh", now=NOW)
    assert result.status == "failed" and result.notebook == str(made.retrain)
    assert result.error.startswith("QuasarNameError: ")
    assert "unknown feature 'member_titleFamily'" in result.error
    assert result.parameters["program"] == str(made.program)
    assert any(r.startswith("no champion to compare with") for r in result.reasons)
    alert = retrain_alerts(workspace, "fresh").iloc[0]
    assert alert.notify_status is None and alert.payload["error"] == result.error
    feed = AnomalyStore(workspace).list_alerts(kind="retrain_failed")  # the generic alert feed has it too
    assert list(feed.subject) == ["fresh"] and feed.iloc[0].payload["attempt"] == result.id
    attempt = workspace.root / "retrains" / "fresh" / f"20260302T120000Z-{result.id}"
    assert Path(result.output) == attempt / "output.ipynb"


def test_concurrent_triggers_retrain_once_and_the_better_model_becomes_challenger(world):
    ws, trained = world
    name = "retrain_jobs"
    registry = ModelRegistry(ws)
    stale = registry.publish(_weakened(trained), name=name, alias="champion")
    barrier, results = threading.Barrier(2), []

    def trigger() -> None:
        barrier.wait()
        results.append(retrain(ws, name, reason="psi_alert 0.31 ≥ 0.2"))

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    skipped, ran = sorted(results, key=lambda r: r.status != "skipped")
    assert skipped.status == "skipped" and skipped.reasons == [f"another retrain of {name} is running"]
    assert ran.status == "published", ran.reasons
    assert ran.metric == "auc" and ran.new_value > ran.champion_value
    assert ran.improvement == pytest.approx(ran.new_value - ran.champion_value)
    # both measured on the new job's validation rows: the champion re-evaluated there, not its stored metrics
    output = Path(ran.output).parent
    frame = pd.read_parquet(output / "validation.parquet")
    assert registry.load(name, alias="champion").evaluate(frame)["auc"] == pytest.approx(ran.champion_value)
    assert json.loads((output / "result.json").read_text())["metrics"]["auc"] == ran.new_value
    assert Path(ran.output).name == "output.ipynb" and output.parent == ws.root / "retrains" / name

    versions = {v.version: v for v in registry.versions(name)}
    assert set(versions) == {stale.version, ran.version}
    assert registry.resolve(name, "challenger").version == ran.version
    assert registry.resolve(name, "champion").version == stale.version  # the champion is untouched
    assert versions[ran.version].run_id == ran.run_id

    history = retrain_history(ws, name)
    assert sorted(history.status) == ["published", "skipped"]
    row = history[history.status == "published"].iloc[0]
    assert (row.run_id, row.version, row.champion_version) == (ran.run_id, ran.version, stale.version)
    assert row.parameters["program"] == str(registry.load(name, alias="champion").path / "program.quasar")
    assert row.metrics["auc"] == ran.new_value and row.champion_metrics["auc"] == ran.champion_value


def test_a_failed_retrain_alerts_publishes_nothing_and_releases_the_lock(world, webhook):
    ws, trained = world
    name = "retrain_jobs_same"
    url, received = webhook
    registry = ModelRegistry(ws)
    champion = registry.publish(trained, name=name, alias="champion")
    save_policy(ws, name, RetrainPolicy(webhook=url, min_improvement=0.001))

    # the command as a user runs it: the notebook raises (no such table), exit 1, an alert, nothing published
    env = {**os.environ, "PROML_HOME": str(ws.root), "COLUMNS": "400"}
    out = subprocess.run([sys.executable, "-m", "proml_lab.cli", "retrain", name, "--reason", "nightly",
                          "--param", "training_data=no/such_table", "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stderr
    failed = json.loads(out.stdout)
    assert failed["status"] == "failed" and failed["version"] is None
    assert failed["error"].startswith("DataNotFoundError: training data 'no/such_table' not found")
    alerts = retrain_alerts(ws, name)
    assert len(alerts) == 1 and (alerts.iloc[0].id, alerts.iloc[0].attempt) == (failed["alert"], failed["id"])
    assert alerts.iloc[0].notify_status == "sent"
    assert len(received) == 1
    assert {k: received[0][k] for k in ("kind", "model", "attempt", "reason")} == {
        "kind": "retrain_failed", "model": name, "attempt": failed["id"], "reason": "nightly"}
    assert "no/such_table" in received[0]["error"] and Path(received[0]["notebook"]).is_file()
    assert [v.version for v in registry.versions(name)] == [champion.version]

    # the lock was released: the next retrain runs; the same program on the same data is not better
    same = retrain(ws, name, reason="manual")
    assert same.status == "not_better", same.reasons
    assert abs(same.improvement) <= 0.001 and "nothing published" in same.reasons[-1]
    assert [v.version for v in registry.versions(name)] == [champion.version]
    assert "challenger" not in registry.resolve(name, "champion").aliases
    assert len(received) == 1  # only failures alert

    history = retrain_history(ws, name)
    assert list(history.status) == ["not_better", "failed"] and history.version.isna().all()
    assert history.iloc[1].error == failed["error"]
    listing = subprocess.run([sys.executable, "-m", "proml_lab.cli", "retrain", name, "--history"],
                             capture_output=True, text=True, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "not_better" in listing.stdout and "failed" in listing.stdout and "nightly" in listing.stdout
