"""``%health`` in a real IPython shell over synthetic serving logs: a healthy window, a drifted one (its
report, alerts and charts), and errors that fail the cell."""

from __future__ import annotations

import pandas as pd
import pytest

from proml_lab.lab.magics import HealthView, ProMLMagicError
from proml_lab.workspace import Workspace
from tests.health.test_monitor import DAY2, MODEL, synthetic_health
from tests.shell import magic_shell, run_cell


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace.init(tmp_path_factory.mktemp("health-magic") / "ws")
    synthetic_health(ws)
    return ws


@pytest.fixture(scope="module")
def ip(ws):
    with magic_shell(ws) as shell:
        yield shell


run = run_cell


def test_health_shows_a_healthy_window(ip):
    result, out = run(ip, f"view = %health {MODEL} --window 1d --end {DAY2:%Y-%m-%d}")
    assert result.success, result.error_in_exec
    view = ip.user_ns["view"]
    assert isinstance(view, HealthView) and view.ok and view.version == "1"
    assert {"score_psi", "auc_drop", "calibration_error"} <= set(view.measures)
    html = view._repr_html_()
    assert "healthy" in html and "data:image/png;base64," in html


def test_health_shows_the_drifted_window_with_its_alerts(ip):
    result, out = run(ip, f"%health {MODEL} --end {DAY2 + pd.Timedelta('1d'):%Y-%m-%dT%H:%M}")
    assert result.success, result.error_in_exec
    view = result.result
    assert not view.ok and {"score", "calibration"} <= set(view.alerts["feature"])
    shown, _ = ip.display_formatter.format(view)  # what the cell displays: the report table and the charts
    assert "alert(s)" in shown["text/html"] and "<img" in shown["text/html"]
    assert "HealthReport('jobs'" in shown["text/plain"]


def test_health_errors_fail_the_cell(ip):
    result, out = run(ip, f"%health {MODEL} --end 2025-01-01")
    assert isinstance(result.error_in_exec, ProMLMagicError)
    assert "No exposures of 'jobs' alias 'champion'" in str(result.error_in_exec)
    result, _ = run(ip, f"%health {MODEL} --window soon")
    assert isinstance(result.error_in_exec, ProMLMagicError) and "window" in str(result.error_in_exec)
    result, _ = run(ip, f"%health {MODEL} --end someday")
    assert isinstance(result.error_in_exec, ProMLMagicError) and "end must be a time" in str(result.error_in_exec)
