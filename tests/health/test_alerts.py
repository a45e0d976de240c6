"""The alert store as a user meets it: record (idempotent), list, label (validated), feedback that tunes a
metric's sensitivity as documented, and a webhook tested against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from proml_lab.health import LABELS, AnomalyStore, HealthError, MeanVariance, Webhook


@pytest.fixture
def series() -> pd.Series:
    """Two weeks of a daily-cycle metric, one big true spike and noise that trips a low threshold."""
    idx = pd.date_range("2026-01-05", periods=24 * 14, freq="h", tz="UTC")
    noise = np.random.default_rng(3).normal(0, 3, len(idx))
    y = 100 + 30 * np.sin(idx.hour.to_numpy() * 2 * np.pi / 24) + noise
    y[24 * 11 + 8] += 60
    return pd.Series(y, index=idx)


SPIKE = pd.Timestamp("2026-01-16 08:00", tz="UTC")


def test_record_is_idempotent_and_list_filters(workspace, series):
    store = AnomalyStore(workspace)
    found = MeanVariance(min_periods=5, k=2.0).detect(series)
    ids = store.record("ctr", "MeanVariance", found)
    assert len(ids) == len(found) > 1 and len(set(ids)) == len(ids)
    assert store.record("ctr", "MeanVariance", found) == ids  # same points, same ids, no duplicates
    store.record("clicks", "MeanVariance", found.iloc[:1])
    listed = store.list(metric="ctr")
    assert len(listed) == len(ids) and set(listed["id"]) == set(ids)
    assert (listed["label"] == "unknown").all() and (listed["sensitivity"] == 1.0).all()
    assert listed["ts"].is_monotonic_decreasing
    assert len(store.list()) == len(ids) + 1
    assert set(store.list(since="2026-01-16")["ts"]) == set(found.loc[found["ts"] >= "2026-01-16", "ts"])
    assert (workspace.root / "health.db").exists()


def test_labels_are_validated(workspace, series):
    store = AnomalyStore(workspace)
    (i,) = store.record("ctr", "MeanVariance", MeanVariance(min_periods=5, k=4.0).detect(series))
    store.label(i, "true_anomaly")
    assert store.list(label="true_anomaly")["id"].tolist() == [i]
    with pytest.raises(HealthError) as err:
        store.label(i, "noise")
    assert str(err.value) == (
        "Unknown label 'noise'; choose one of true_anomaly, expected, new_trend, false_positive, unknown."
    )
    assert set(LABELS) == {"true_anomaly", "expected", "new_trend", "false_positive", "unknown"}
    with pytest.raises(HealthError, match="No anomaly with id 999"):
        store.label(999, "expected")


def test_false_positive_feedback_silences_them_and_keeps_the_true_anomaly(workspace, series):
    store, det = AnomalyStore(workspace), MeanVariance(min_periods=5, k=2.0)
    assert store.sensitivity("ctr") == 1.0
    found = det.detect(series, sensitivity=store.sensitivity("ctr"))
    ids = store.record("ctr", "MeanVariance", found)
    for i, ts in zip(ids, found["ts"], strict=True):
        store.label(i, "true_anomaly" if ts == SPIKE else "false_positive")
    result = store.tune("ctr")
    loudest_fp = found.loc[found["ts"] != SPIKE, "severity"].max()
    assert result["before"] == 1.0
    assert result["after"] == pytest.approx(min(1.05 * loudest_fp, 3.0))
    assert result["used"] == {"true_anomaly": 1, "false_positive": len(ids) - 1}
    again = det.detect(series, sensitivity=store.sensitivity("ctr"))
    assert list(again["ts"]) == [SPIKE]
    # feedback is consumed: tuning again without new labels changes nothing
    assert store.tune("ctr")["after"] == result["after"]


def test_only_true_anomalies_lower_the_multiplier_and_bounds_hold(workspace, series):
    store = AnomalyStore(workspace)
    (i,) = store.record("clicks", "MeanVariance", MeanVariance(min_periods=5, k=4.0).detect(series))
    store.label(i, "true_anomaly")
    assert store.tune("clicks")["after"] == pytest.approx(0.9)
    for _ in range(10):  # repeated confirmations stop at the floor
        store.label(i, "true_anomaly")
        store.tune("clicks")
    assert store.sensitivity("clicks") == 0.5
    loud = MeanVariance(min_periods=5, k=0.2).detect(series)  # many severities far above 3
    for j in store.record("apply_rate", "MeanVariance", loud):
        store.label(j, "expected")
    assert 1.0 < store.tune("apply_rate")["after"] <= 3.0


def test_a_confirmed_anomaly_outweighs_a_few_false_alarms_louder_than_it():
    from proml_lab.health.alerts import _rule

    # silencing 1.2 and 1.5 is worth it; going past the true anomaly at 1.8 is not (3 false alarms < 1 miss)
    assert _rule(1.0, quiet=[1.2, 1.5, 2.0, 2.6], real=[1.8]) == pytest.approx(1.05 * 1.5)
    assert _rule(1.0, quiet=[1.2, 1.5], real=[4.0]) == pytest.approx(1.05 * 1.5)
    assert _rule(2.0, quiet=[1.2], real=[]) == 2.0  # already silent: never lowered by false positives
    assert _rule(1.0, quiet=[], real=[]) == 1.0


def test_new_trend_rebaselines_without_moving_the_threshold(workspace, series):
    store = AnomalyStore(workspace)
    (i,) = store.record("impressions", "MeanVariance", MeanVariance(min_periods=5, k=4.0).detect(series))
    store.label(i, "new_trend")
    result = store.tune("impressions")
    assert result["after"] == 1.0
    assert pd.Timestamp(result["rebaseline_from"]) == SPIKE


# -- webhook against a real HTTP server ----------------------------------------------------------------
class _Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.bodies = list(statuses), []


@pytest.fixture
def receiver() -> Iterator[tuple[str, _Receiver]]:
    state = _Receiver([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(json.loads(body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", state
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhook_posts_the_alert_and_records_delivery(workspace, series, receiver):
    url, state = receiver
    store = AnomalyStore(workspace)
    (i,) = store.record("ctr", "MeanVariance", MeanVariance(min_periods=5, k=4.0).detect(series))
    (delivery,) = store.notify([i], Webhook(url), link="http://lab/health/anomalies/{id}")
    assert delivery.ok and delivery.status == 200 and delivery.attempts == 1
    (body,) = state.bodies
    assert body["metric"] == "ctr" and body["detector"] == "MeanVariance" and body["id"] == i
    assert pd.Timestamp(body["ts"]) == SPIKE and body["value"] > body["expected"]
    assert body["link"] == f"http://lab/health/anomalies/{i}"
    assert store.list()[["notify_status", "notify_attempts"]].values.tolist() == [["sent", 1]]


def test_webhook_retries_a_server_error(receiver):
    url, state = receiver
    state.statuses = [500, 503, 200]
    delivery = Webhook(url, retries=3, backoff=0.01).send({"metric": "ctr"})
    assert delivery.ok and delivery.attempts == 3 and len(state.bodies) == 3


def test_webhook_does_not_retry_a_client_error(receiver):
    url, state = receiver
    state.statuses = [404]
    delivery = Webhook(url, retries=3, backoff=0.01).send({"metric": "ctr"})
    assert not delivery.ok and delivery.status == 404 and delivery.attempts == 1


def test_an_unreachable_webhook_is_recorded_not_raised(workspace, series):
    store = AnomalyStore(workspace)
    (i,) = store.record("ctr", "MeanVariance", MeanVariance(min_periods=5, k=4.0).detect(series))
    start = time.perf_counter()
    (delivery,) = store.notify([i], Webhook(f"http://127.0.0.1:{_free_port()}/x", timeout=1, retries=2,
                                            backoff=0.01))
    assert time.perf_counter() - start < 5
    assert not delivery.ok and delivery.attempts == 3 and "Connection refused" in delivery.error
    row = store.list().iloc[0]
    assert row["notify_status"] == "failed" and "Connection refused" in row["notify_error"]


def test_a_plain_folder_works_as_the_workspace(tmp_path, series):
    store = AnomalyStore(tmp_path / "ws")  # a Path's own ``root`` ("/") must not be taken for the workspace
    store.record("ctr", "MeanVariance", MeanVariance(min_periods=5, k=4.0).detect(series))
    assert (tmp_path / "ws" / "health.db").exists() and len(AnomalyStore(str(tmp_path / "ws")).list()) == 1
