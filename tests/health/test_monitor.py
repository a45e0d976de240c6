"""Monitoring on synthetic serving logs: a window like the training data, a drifted one, alerts, anomalies.

No world and no Spark: the reference is a snapshot of a synthetic training frame, the serving window is
exposures written in the exposure log's own layout, the outcomes go through ``log_outcomes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from proml_lab.experiments.outcomes import log_outcomes
from proml_lab.health import (
    AnomalyStore,
    HealthError,
    MeanVariance,
    Webhook,
    detect_anomalies,
    feature_drift,
    load_snapshot,
    metric_series,
    record_health_alerts,
    training_snapshot,
)
from proml_lab.health.monitor import monitor
from proml_lab.health.drift import js_distance, js_from_reference, psi, psi_from_reference
from proml_lab.training.metrics import evaluate
from tests.health.test_alerts import receiver  # noqa: F401 - the webhook receiver fixture

MODEL = "jobs"
DAY1, DAY2 = pd.Timestamp("2026-01-05", tz="UTC"), pd.Timestamp("2026-01-06", tz="UTC")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_exposures(ws: Any, model: str, frame: pd.DataFrame) -> None:
    """Exposures in the ranking service's layout: ``logs/exposures/model=<m>/date=<d>/*.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = pd.to_datetime(frame["ts"], utc=True)
    for day, part in frame.groupby(ts.dt.strftime("%Y-%m-%d")):
        folder = Path(ws.root) / "logs" / "exposures" / f"model={model}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({
            "ts": pa.array(pd.to_datetime(part["ts"], utc=True).dt.tz_localize(None).to_numpy("datetime64[us]"),
                           pa.timestamp("us", tz="UTC")),
            "request_id": pa.array(part["request_id"].astype(str)),
            "alias": pa.array(part.get("alias", pd.Series("champion", index=part.index)).astype(str)),
            "version": pa.array(part.get("version", pd.Series("1", index=part.index)).astype(str)),
            "member_id": pa.array(part["member_id"].to_numpy(np.int64)),
            "document_id": pa.array(part["document_id"].to_numpy(np.int64)),
            "position": pa.array(part["position"].to_numpy(np.int32)),
            "score": pa.array(part["score"].to_numpy(np.float64)),
            "experiment": pa.array([None] * len(part), pa.string()),
            "arm": pa.array([None] * len(part), pa.string()),
        })
        pq.write_table(table, folder / f"part-{len(list(folder.iterdir())):05d}.parquet")


def serving_day(day: pd.Timestamp, *, shift: float, ctr_factor: float, seed: int, requests: int = 400,
                k: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One day of exposures (score = sigmoid(-2 + x + shift)) and the clicks they got (p = score × factor)."""
    rng = np.random.default_rng(seed)
    n = requests * k
    x = rng.normal(0, 1, n)
    score = _sigmoid(-2.0 + x + shift)
    req = np.repeat(np.arange(requests), k)
    exposures = pd.DataFrame({
        "ts": day + pd.to_timedelta(np.sort(rng.uniform(0, 86_000, requests))[req], unit="s"),
        "request_id": [f"{day:%m%d}-{r}" for r in req],
        "member_id": 1000 + req, "document_id": rng.integers(1, 500, n), "position": np.tile(np.arange(k), requests),
        "score": score,
    })
    clicked = rng.random(n) < score * ctr_factor
    events = exposures.loc[clicked, ["ts", "request_id", "member_id", "document_id"]].assign(event="click")
    return exposures, events


@pytest.fixture
def logs(workspace) -> dict[str, Any]:
    return synthetic_health(workspace)


def synthetic_health(workspace: Any) -> dict[str, Any]:
    """A snapshot of a synthetic training frame; day 1 serves like it, day 2 has drifted and is miscalibrated."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 5000)
    frame = pd.DataFrame({"member_x": x, "job_region": rng.choice(["eu", "us", "apac"], 5000, p=[.5, .3, .2])})
    frame["score"] = _sigmoid(-2.0 + x)
    frame["label"] = (rng.random(5000) < frame["score"]).astype(float)
    validation_auc = evaluate(frame["label"], frame["score"], metrics=("auc",))["auc"]
    snap = training_snapshot(workspace, MODEL, frame, version="1", features=["member_x", "job_region"],
                             scores="score", label="label", validation_auc=validation_auc)
    for day, shift, factor, seed in ((DAY1, 0.0, 1.0, 1), (DAY2, 1.0, 0.6, 2)):
        exposures, events = serving_day(day, shift=shift, ctr_factor=factor, seed=seed)
        write_exposures(workspace, MODEL, exposures)
        log_outcomes(workspace, MODEL, events)
    return {"snapshot": snap, "validation_auc": validation_auc, "frame": frame}


# -- the snapshot ------------------------------------------------------------------------------------
def test_snapshot_is_stored_and_reproduces_psi_and_js(workspace, logs):
    snap = load_snapshot(workspace, MODEL, "1")
    assert snap == logs["snapshot"]
    assert (Path(workspace.root) / "models" / MODEL / "snapshots" / "1.json").is_file()
    x, region = snap["features"]["member_x"], snap["features"]["job_region"]
    assert x["kind"] == "numeric" and len(x["edges"]) == 9 and len(x["fractions"]) == 11
    assert abs(x["mean"]) < 0.05 and x["null_rate"] == 0.0
    assert set(region["frequencies"]) == {"eu", "us", "apac"}
    assert snap["score"]["probability"] and snap["positive_rate"] == pytest.approx(logs["frame"]["label"].mean())

    ref = logs["frame"]
    cur = np.random.default_rng(9).normal(0.3, 1, 3000)
    assert psi_from_reference(x["edges"], x["fractions"], cur) == pytest.approx(psi(ref["member_x"], cur))
    cats = np.random.default_rng(9).choice(["eu", "us", "latam"], 3000)
    assert js_from_reference(region["frequencies"], cats) == pytest.approx(
        js_distance(ref["job_region"], cats), abs=0.02)  # the stored shares are the frame's, not a sample's

    with pytest.raises(HealthError, match="ensure_snapshot"):
        load_snapshot(workspace, MODEL, "7")


def test_feature_drift_against_the_snapshot(logs):
    rng = np.random.default_rng(5)
    same = pd.DataFrame({"member_x": rng.normal(0, 1, 3000),
                         "job_region": rng.choice(["eu", "us", "apac"], 3000, p=[.5, .3, .2])})
    moved = pd.DataFrame({"member_x": rng.normal(0.8, 1, 3000), "job_region": rng.choice(["eu", "latam"], 3000)})
    assert feature_drift(logs["snapshot"], same)["status"].tolist() == ["ok", "ok"]
    report = feature_drift(logs["snapshot"], moved).set_index("feature")
    assert report.loc["member_x", "measure"] == "psi" and report.loc["member_x", "status"] == "alert"
    assert report.loc["job_region", "measure"] == "js" and report.loc["job_region", "status"] == "alert"


# -- monitor -----------------------------------------------------------------------------------------
def test_a_window_like_the_training_data_is_healthy(workspace, logs):
    report = monitor(workspace, MODEL, window="1d", end=DAY2, snapshot=logs["snapshot"],
                     validation_auc=logs["validation_auc"])
    assert report.ok, report.drift
    assert set(report.drift["feature"]) == {"score", "auc", "calibration"}
    assert {"psi_max", "score_psi", "auc_drop", "calibration_error", "online_auc", "validation_auc",
            "observed_ctr", "exposures"} <= set(report.measures)
    assert report.measures["exposures"] == 4000 and report.measures["score_psi"] < 0.1
    assert abs(report.measures["auc_drop"]) < 0.03 and report.measures["calibration_error"] < 0.1
    # the synthetic model's features are in no catalog: no feature drift, and the report says why
    assert report.measures["psi_max"] is None and any("skipped" in n for n in report.notes)
    assert len(report.auc) == 1 and report.auc["auc"].iloc[0] == pytest.approx(report.measures["online_auc"])
    assert "healthy" in report._repr_html_()


def test_a_drifted_window_alerts_on_score_psi_and_calibration(workspace, logs, receiver):  # noqa: F811
    report = monitor(workspace, MODEL, window="1d", end=DAY2 + pd.Timedelta("1d"), snapshot=logs["snapshot"],
                     validation_auc=logs["validation_auc"])
    assert not report.ok
    alerts = report.alerts.set_index("feature")
    assert {"score", "calibration"} <= set(alerts.index)
    assert report.measures["score_psi"] > 0.2 and report.measures["calibration_error"] > 0.2
    data = report.to_dict()
    assert data["ok"] is False and data["measures"]["score_psi"] == report.measures["score_psi"]
    import json

    json.dumps(data)  # JSON-ready

    url, state = receiver
    ids = record_health_alerts(workspace, report, webhook=Webhook(url, retries=0))
    assert len(ids) == len(report.alerts) and len(state.bodies) == len(ids)
    assert {b["subject"] for b in state.bodies} >= {f"{MODEL}.champion.score.psi",
                                                    f"{MODEL}.champion.calibration.calibration_error"}
    assert all(b["kind"] == "drift" and b["value"] > b["alert_level"] for b in state.bodies)
    stored = AnomalyStore(workspace).list_alerts(kind="drift")
    assert set(stored["id"]) == set(ids) and set(stored["notify_status"]) == {"sent"}
    assert record_health_alerts(workspace, report, webhook=Webhook(url, retries=0)) == ids  # once per window
    assert len(state.bodies) == len(ids)

    fig = report.plot()
    assert len(fig.axes) == 2
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_monitor_says_what_is_missing(workspace, logs):
    with pytest.raises(HealthError, match="No exposures of 'jobs' alias 'champion'"):
        monitor(workspace, MODEL, window="1d", end="2025-01-01", snapshot=logs["snapshot"], validation_auc=0.7)
    with pytest.raises(HealthError, match="No exposures logged for model 'nope'"):
        monitor(workspace, "nope", snapshot=logs["snapshot"], validation_auc=0.7)
    with pytest.raises(HealthError, match="window"):
        monitor(workspace, MODEL, window="soon", snapshot=logs["snapshot"], validation_auc=0.7)


# -- anomalies on the logs' metrics -----------------------------------------------------------------
SPIKE = pd.Timestamp("2026-01-12 14:00", tz="UTC")


def hourly_logs(ws: Any, model: str = "feed") -> None:
    """Eight days of steady hourly traffic (a daily cycle) with one hour of bot traffic (5× requests)."""
    rng = np.random.default_rng(4)
    hours = pd.date_range("2026-01-05", periods=24 * 8, freq="h", tz="UTC")
    rows = []
    for h in hours:
        n = int(8 + 4 * np.sin(h.hour * 2 * np.pi / 24)) + (32 if h == SPIKE else 0)
        for r in range(n):
            rows.append((h + pd.Timedelta(minutes=int(rng.integers(0, 60))), f"{h:%m%d%H}-{r}", r, r % 7,
                         0, float(rng.uniform(0.05, 0.3))))
    frame = pd.DataFrame(rows, columns=["ts", "request_id", "member_id", "document_id", "position", "score"])
    write_exposures(ws, model, frame)
    clicked = frame.sample(frac=0.1, random_state=1)
    log_outcomes(ws, model, clicked[["ts", "request_id", "member_id", "document_id"]].assign(event="click"))


def test_metric_series_and_anomalies_with_a_spike(workspace, receiver):  # noqa: F811
    hourly_logs(workspace)
    series = metric_series(workspace, "feed")
    assert list(series.columns) == ["requests", "exposures", "clicks", "ctr", "mean_score"]
    assert len(series) == 24 * 8 and series.loc[SPIKE, "requests"] > 35

    url, state = receiver
    found = detect_anomalies(workspace, "feed", [MeanVariance(k=3.0)], metrics=["requests", "exposures"],
                             webhook=Webhook(url, retries=0))
    spikes = found[found["ts"] == SPIKE]
    assert set(spikes["metric"]) == {"feed.requests", "feed.exposures"}
    assert (spikes["direction"] == "up").all()
    assert len(state.bodies) == len(found)
    store = AnomalyStore(workspace)
    assert set(store.list()["id"]) == set(found["id"])
    again = detect_anomalies(workspace, "feed", [MeanVariance(k=3.0)], metrics=["requests", "exposures"],
                             webhook=Webhook(url, retries=0))
    assert list(again["id"]) == list(found["id"]) and len(state.bodies) == len(found)  # no re-notification

    # feedback: a tuned sensitivity is the one the next run uses
    for i in found.loc[found["ts"] != SPIKE, "id"]:
        store.label(int(i), "false_positive")
    store.tune("feed.requests")
    assert store.sensitivity("feed.requests") >= 1.0
    with pytest.raises(HealthError, match="Unknown metric"):
        detect_anomalies(workspace, "feed", metrics=["latency"])


# -- the command line --------------------------------------------------------------------------------
def test_cli_monitor_and_anomalies(workspace, logs):
    import json

    from typer.testing import CliRunner

    from proml_lab.cli import app

    runner = CliRunner()
    home = ["--home", str(workspace.root)]
    # no snapshot= here: the log names the served version, whose snapshot is on disk (no registry needed)
    healthy = runner.invoke(app, ["health", "monitor", MODEL, "--end", str(DAY2), "--json", *home])
    assert healthy.exit_code == 0, healthy.output
    assert json.loads(healthy.output)["version"] == "1"
    drifted = runner.invoke(app, ["health", "monitor", MODEL, "--end", str(DAY2 + pd.Timedelta("1d")), *home])
    assert drifted.exit_code == 1 and "alert" in drifted.output and "calibration" in drifted.output
    quiet = runner.invoke(app, ["health", "monitor", MODEL, "--end", str(DAY2), "--retrain", "--json", *home])
    assert json.loads(quiet.output)["retrain"]["status"] == "skipped"  # no threshold crossed: no retrain
    # crossed: the policy retrains; this workspace has no published champion, so the attempt fails and says why
    crossed = runner.invoke(app, ["health", "monitor", MODEL, "--end", str(DAY2 + pd.Timedelta("1d")), "--retrain",
                                  "--json", *home])
    attempt = json.loads(crossed.output)["retrain"]
    assert crossed.exit_code == 1 and attempt["status"] == "failed" and attempt["version"] is None
    assert MODEL in attempt["error"]
    from proml_lab.health.retrain import retrain_history

    assert retrain_history(workspace, MODEL)["status"].tolist() == ["failed"]

    hourly_logs(workspace)
    found = runner.invoke(app, ["health", "anomalies", "feed", "--detect", "--json", *home])
    assert found.exit_code == 0, found.output
    rows = json.loads(found.output)["anomalies"]
    spike = next(r for r in rows if r["metric"] == "feed.requests" and r["ts"].startswith("2026-01-12 14:00"))
    labelled = runner.invoke(app, ["health", "anomalies", "--label", str(spike["id"]), "true_anomaly", *home])
    assert labelled.exit_code == 0, labelled.output
    assert "feed.requests: sensitivity" in labelled.output
    assert AnomalyStore(workspace).list().set_index("id").loc[spike["id"], "label"] == "true_anomaly"
    bad = runner.invoke(app, ["health", "anomalies", "--label", str(spike["id"]), "meh", *home])
    assert bad.exit_code == 1 and "Unknown label 'meh'" in str(bad.exception)  # `proml` prints it in one line
