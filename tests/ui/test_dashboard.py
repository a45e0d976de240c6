"""The Voila dashboard in a real browser: `notebooks/dashboards/model_comparison.ipynb` renders its widgets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ui.conftest import REPO, _free_port, _wait_ready, stop
from tests.ui.world import track_two_runs

DASHBOARD = REPO / "notebooks" / "dashboards" / "model_comparison.ipynb"
TIMEOUT = 120_000


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory):
    """Voila serving the dashboard over a workspace with two tracked runs."""
    from proml_lab.workspace import Workspace

    ws = Workspace.init(tmp_path_factory.mktemp("voila") / "ws")
    track_two_runs(ws)
    port = _free_port()
    log = ws.root / "voila.log"
    cmd = [sys.executable, "-m", "voila", str(DASHBOARD), f"--port={port}", "--no-browser",
           "--Voila.ip=127.0.0.1"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, "PROML_HOME": str(ws.root)}, stdout=out,
                                stderr=subprocess.STDOUT, cwd=ws.root)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield url
    finally:
        stop(proc)


def test_dashboard_renders_the_run_pickers_and_the_comparison(page, voila, artifacts):
    page.set_default_timeout(TIMEOUT)
    page.goto(voila)
    page.wait_for_selector(".widget-dropdown select", state="visible")
    assert page.locator(".widget-dropdown select").count() == 2
    table = page.locator("table").filter(has_text="Lift")
    table.wait_for(state="visible")
    text = table.inner_text()
    assert "Metric" in text and "baseline" in text and "glmix" in text and "auc" in text
    assert "+10.00%" in text  # auc 0.70 -> 0.77
    page.screenshot(path=str(artifacts / "voila-model-comparison.png"))
    # swapping the runs: the lift turns negative
    pickers = page.locator(".widget-dropdown select")
    first, second = pickers.nth(0).input_value(), pickers.nth(1).input_value()
    pickers.nth(0).select_option(value=second)
    pickers.nth(1).select_option(value=first)
    page.wait_for_function(
        "() => [...document.querySelectorAll('table')].some(t => t.innerText.includes('-9.09%'))")
    page.screenshot(path=str(artifacts / "voila-swapped.png"))
