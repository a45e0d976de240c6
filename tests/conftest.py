"""Shared fixtures: isolated workspaces, a tiny world generated once, one Spark session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proml_lab.settings import Settings, get_settings
from proml_lab.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
MOVIELENS = (REPO / ".." / "shared" / "data" / "ml-100k").resolve()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own PROML_HOME and fresh settings; no test sees another's state."""
    for key in list(os.environ):
        if key.startswith("PROML_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PROML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROML_MOVIELENS_DIR", str(MOVIELENS))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.init(tmp_path / "ws")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory):
    """The tiny world with drift and anomalies, generated once per test session."""
    from proml_lab.worlds.config import WorldConfig
    from proml_lab.worlds.economic_graph import write_world
    from proml_lab.worlds.world import World

    import datetime as dt

    cfg = WorldConfig.preset("tiny", seed=3, drift_from=dt.date(2026, 1, 12), anomalies=3)
    return World(write_world(cfg, tmp_path_factory.mktemp("tiny") / "world"))


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from proml_lab.spark import get_spark, stop_spark

    settings = Settings(spark_master="local[2]", home=tmp_path_factory.mktemp("spark-home"))
    session = get_spark(settings, warehouse_dir=tmp_path_factory.mktemp("warehouse"))
    yield session
    stop_spark()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser tests run last: Playwright's sync API keeps an event loop running until the session
    ends, and pytest-jupyter's autouse loop fixture (loaded for the handler tests) cannot close it."""
    ui = [item for item in items if "/tests/ui/" in str(item.fspath)]
    if ui:
        items[:] = [item for item in items if item not in ui] + ui
