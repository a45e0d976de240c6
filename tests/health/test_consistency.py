"""Offline/online consistency on a copy of the tiny lab world: a clean store passes; deliberately corrupted
and deleted online values are caught key by key, alerted, and sent to a real webhook."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from typer.testing import CliRunner

from proml_lab.cli import app
from proml_lab.health import HealthError
from proml_lab.health.alerts import AnomalyStore
from proml_lab.health.consistency import alert, check_consistency, online_entities, run_consistency_job
from proml_lab.settings import Settings
from proml_lab.workspace import Workspace
from tests.lab.test_jobs import lab_workspace

CORRUPTED = [3, 17, 42, 101, 222, 333, 404, 505, 606, 707, 808, 909]  # member_seniority + 1.5 online
DELETED = [5, 55, 555]  # member_profile rows removed from the online store


def copy_of(ws: Workspace, target) -> Workspace:
    """A private copy of the shared lab workspace (its online store included), so other tests never see
    what these tests do to it."""
    shutil.copytree(ws.root, target, ignore=shutil.ignore_patterns("jobs", "mlartifacts", "runs"))
    return Workspace.open(target, settings=Settings(home=target, spark_master="local[2]"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return lab_workspace(tmp_path_factory)


@pytest.fixture(scope="module")
def clean(shared, tmp_path_factory):
    return copy_of(shared, tmp_path_factory.mktemp("consistency") / "clean")


@pytest.fixture(scope="module")
def corrupted(shared, tmp_path_factory):
    ws = copy_of(shared, tmp_path_factory.mktemp("consistency") / "corrupted")
    group = ws.features.catalog.online_group("member_profile")
    store = ws.features.online_store
    keys = np.array(CORRUPTED)
    now = store.read("member", group, keys)
    columns = {**now.columns, "member_seniority": now.columns["member_seniority"] + 1.5}
    assert store.write_batch("member", group, store.schema("member", group), keys, columns,
                             now.event_ts_us + 60_000_000) == len(keys)  # newer, so the store takes it
    with sqlite3.connect(ws.root / "online.db") as con:  # lost rows: the store API has no per-key delete
        (gid,) = con.execute("SELECT gid FROM online_groups WHERE entity = 'member' AND grp = ?", (group,)).fetchone()
        con.executemany("DELETE FROM online_rows WHERE gid = ? AND key = ?", [(gid, k) for k in DELETED])
    return ws


@pytest.fixture
def webhook():
    """A real HTTP endpoint on localhost that keeps every JSON body POSTed to it."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_a_clean_online_store_matches_offline_for_every_feature(clean):
    assert online_entities(clean) == ["job", "member"]
    report = check_consistency(clean, "member", sample=300)
    table = report.table.set_index("feature")
    assert report.ok and set(table["status"]) == {"ok"}
    assert (table["match"] == 300).all() and (table[["mismatch", "only_offline", "only_online"]] == 0).all().all()
    assert (table["distance"] == 0).all() and table.loc["member_seniority", "measure"] == "psi"
    assert table.loc["member_region", "measure"] == "js" and report.mismatches.empty
    # compared as of the newest event time the materialization pushed (not each value's own time)
    assert report.as_of["member_profile"].isoformat() == clean.features.catalog.describe(
        "member_seniority")["online"]["max_event_ts"].replace("Z", "+00:00")


def test_corrupted_and_deleted_online_values_are_caught_key_by_key(corrupted):
    report = check_consistency(corrupted, "member", sample=1000)  # every key of the tiny world
    table = report.table.set_index("feature")
    assert table.loc["member_seniority", ["sampled", "mismatch", "only_offline", "only_online"]].tolist() == [
        1000, len(CORRUPTED), len(DELETED), 0]
    assert table.loc["member_seniority", "mismatch_rate"] == pytest.approx(15 / 1000)
    assert table.loc["member_region", ["mismatch", "only_offline"]].tolist() == [0, len(DELETED)]
    assert report.failing == ["member_seniority"] and not report.ok  # 1.5% > 1%; 0.3% only warns
    assert table.loc["member_region", "status"] == "warn"
    wrong = report.mismatches[report.mismatches["feature"] == "member_seniority"]
    assert sorted(wrong.loc[wrong["kind"] == "mismatch", "key"]) == CORRUPTED
    assert sorted(wrong.loc[wrong["kind"] == "only_offline", "key"]) == DELETED
    row = wrong[wrong["key"] == 3].iloc[0]
    assert row["online"] == pytest.approx(row["offline"] + 1.5)
    data = report.to_dict()
    assert data["failing"] == ["member_seniority"] and json.dumps(data)
    assert "ALERT on member_seniority" in report._repr_html_()


def test_a_key_only_the_online_store_holds_counts_as_only_online(corrupted):
    report = check_consistency(corrupted, "member", ["member_seniority"], keys=[1, 3, 10**9])
    assert report.table.iloc[0][["mismatch", "only_online", "only_offline"]].tolist() == [1, 0, 0]
    group = corrupted.features.catalog.online_group("member_profile")
    store = corrupted.features.online_store
    row = store.read("member", group, np.array([1]))
    store.write_batch("member", group, store.schema("member", group), np.array([10**9]), row.columns,
                      row.event_ts_us)
    again = check_consistency(corrupted, "member", ["member_seniority"], keys=[1, 3, 10**9])
    assert again.table.iloc[0]["only_online"] == 1
    with pytest.raises(HealthError, match="derived feature"):
        check_consistency(corrupted, "member", ["member_activityLevel_30d"])


def test_the_scheduled_job_records_an_alert_and_the_webhook_receives_it(corrupted, webhook):
    url, received = webhook
    reports = run_consistency_job(corrupted, webhook=url)
    assert [r.entity for r in reports] == ["job", "member"] and reports[0].ok and not reports[1].ok
    alerts = AnomalyStore(corrupted).list_alerts(kind="consistency")
    assert alerts["subject"].tolist() == ["member.member_seniority"]
    assert alerts.iloc[0]["notify_status"] == "sent" and alerts.iloc[0]["payload"]["mismatch"] == len(CORRUPTED)
    assert len(received) == 1
    body = received[0]
    assert body["feature"] == "member_seniority" and body["kind"] == "consistency"
    assert body["only_offline"] == len(DELETED) and set(body["keys"]) == set(CORRUPTED) | set(DELETED)
    assert "1.50% of 1000 sampled member keys disagree" in body["message"]
    assert alert(reports[0], workspace=corrupted) == []  # a passing report alerts nothing


def test_proml_health_consistency_exits_1_when_an_alert_fires(clean, corrupted):
    runner = CliRunner()
    ok = runner.invoke(app, ["health", "consistency", "--entity", "member", "--sample", "200", "--json",
                             "--home", str(clean.root)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)[0]["ok"] is True
    failed = runner.invoke(app, ["health", "consistency", "--entity", "member", "--home", str(corrupted.root)])
    assert failed.exit_code == 1 and "member: ALERT on member_seniority" in failed.stdout
