"""Browser tests: Debian's Chromium driven by Playwright against a real ``jupyter lab`` subprocess.

The lab runs as root when the tests do (``allow_root``), with a token, on a free loopback port, with
isolated Jupyter config/data/runtime dirs, the built lab extension (``proml_lab/labextension``, linked
into an extra labextensions path) and the server extension enabled by the repository's
``jupyter-config`` JSON, over a workspace holding the tiny world's features.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.ui.world import world_workspace

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "proml_lab" / "labextension"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def pytest_collection_modifyitems(items):
    """A missing browser or build is a failure to fix, not a reason to skip (make test installs both)."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = "Chromium is not installed (scripts/setup-system.sh: apt-get install -y chromium)"
    elif not (LABEXTENSION / "package.json").exists():
        problem = "the lab extension is not built (make labext)"
    if problem:
        raise pytest.UsageError(f"UI tests cannot run: {problem}")


@pytest.fixture
def jp_asyncio_loop():
    """Off here: pytest-jupyter's autouse loop (loaded for the handler tests) fights Playwright's sync API."""
    yield None


@pytest.fixture
def jp_server_cleanup():
    yield


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS, "headless": True}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$PROML_UI_ARTIFACTS`` when set, else a pytest temporary folder."""
    folder = Path(os.environ.get("PROML_UI_ARTIFACTS") or tmp_path_factory.mktemp("ui-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stop a server subprocess: politely, then for good."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "id": "md", "metadata": {}, "source": "%%quasar is a *magic*: this Markdown stays Markdown"},
        {"cell_type": "code", "id": "quasar", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "%%quasar\nMODEL demo;\nINPUT MEMBER double member_seniority;\ndouble s = member_seniority;"},
        {"cell_type": "code", "id": "python", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "x = 1"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                 "language_info": {"name": "python", "codemirror_mode": {"name": "ipython", "version": 3}}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory):
    """A running JupyterLab: ``{"url", "token", "root"}``; stopped at the end of the session."""
    ws = world_workspace(tmp_path_factory)
    base = tmp_path_factory.mktemp("lab")
    root, config, data, runtime, extensions = (base / n for n in ("root", "config", "data", "runtime", "labext"))
    for folder in (root, config / "labconfig", data, runtime, extensions):
        folder.mkdir(parents=True)
    (extensions / "jupyterlab-proml").symlink_to(LABEXTENSION, target_is_directory=True)
    # no news / update prompts over the closed network
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    (root / "quasar.ipynb").write_text(json.dumps(NOTEBOOK))
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "PROML_HOME": str(ws.root), "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_DATA_DIR": str(data), "JUPYTER_RUNTIME_DIR": str(runtime),
           "JUPYTER_CONFIG_PATH": str(REPO / "jupyter-config"), "JUPYTER_PLATFORM_DIRS": "1",
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces")}
    log = base / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           "--ServerApp.port_retries=0", "--ServerApp.allow_root=True", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--LabServerApp.extra_labextensions_path={extensions}",
           "--LabApp.expose_app_in_browser=True"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(f"{url}/api/status?token={token}", proc, log)
        yield {"url": url, "token": token, "root": root, "log": log}
    finally:
        stop(proc)
