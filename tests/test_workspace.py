import json
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from proml_lab.errors import WorkspaceError
from proml_lab.settings import Settings
from proml_lab.workspace import FORMAT_VERSION, Workspace


def test_init_creates_the_layout(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    assert (ws.root / "workspace.json").is_file()
    assert ws.lake.is_dir() and ws.runs.is_dir() and ws.mlflow_artifact_root.is_dir()
    assert ws.catalog_path.is_file()
    with sqlite3.connect(ws.catalog_path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ws.online_store_url == f"sqlite:///{ws.root / 'online.db'}"
    assert ws.mlflow_tracking_uri == f"sqlite:///{ws.root / 'mlflow.db'}"
    assert ws.mlflow_registry_uri == ws.mlflow_tracking_uri


def test_default_root_comes_from_proml_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROML_HOME", str(tmp_path / "from-env"))
    from proml_lab.settings import get_settings

    get_settings.cache_clear()
    assert Workspace.init().root == (tmp_path / "from-env").resolve()


def test_urls_follow_settings(tmp_path):
    settings = Settings(online_store="redis://127.0.0.1:6390/0", mlflow_tracking_uri="http://mlflow:5000")
    ws = Workspace.init(tmp_path / "ws", settings=settings)
    assert ws.online_store_url == "redis://127.0.0.1:6390/0"
    assert ws.mlflow_registry_uri == "http://mlflow:5000"


def test_init_again_keeps_identity_and_data(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    (ws.lake / "keep.parquet").write_bytes(b"data")
    again = Workspace.init(tmp_path / "ws")
    assert again.id == ws.id
    assert (again.lake / "keep.parquet").read_bytes() == b"data"


def test_open_missing_workspace_says_how_to_create_it(tmp_path):
    with pytest.raises(WorkspaceError, match=r"No ProML Lab workspace at .*proml init"):
        Workspace.open(tmp_path / "nothing")


def test_newer_format_is_refused(tmp_path):
    ws = Workspace.init(tmp_path / "ws")
    marker = ws.root / "workspace.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "format": FORMAT_VERSION + 1}))
    with pytest.raises(WorkspaceError, match="newer than this ProML Lab understands"):
        Workspace.open(ws.root)


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(WorkspaceError, match="Cannot create the workspace"):
        Workspace.init(blocker / "ws")


def _init_and_report(root: str, queue) -> None:
    queue.put(Workspace.init(root).id)


def test_concurrent_init_is_safe(tmp_path):
    root = str(tmp_path / "shared-ws")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_init_and_report, args=(root, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    ids = {queue.get(timeout=5) for _ in procs}
    assert len(ids) == 1  # one workspace, created once
    assert Workspace.open(root).id in ids
    assert not list(Path(root).glob(".workspace.json.*"))  # no temp files left behind
