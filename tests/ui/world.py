"""A workspace holding the tiny world's features, built once per test process for the lab and UI tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from proml_lab.workspace import Workspace

FEATURES = Path(__file__).resolve().parents[2] / "proml_lab" / "worlds" / "feature_definitions"
_BUILT: dict[str, Workspace] = {}


def build_world_workspace(root: Path) -> Workspace:
    """Generate the tiny world into ``root``, apply its feature definitions and materialize them online."""
    from proml_lab.worlds import generate_world

    ws = Workspace.init(root)
    world = generate_world("tiny", seed=0, workspace=ws)
    ws.features.apply(str(FEATURES))
    end = dt.datetime.fromisoformat(world.info["end"]).replace(tzinfo=dt.timezone.utc)
    ws.features.materialize(online=True, as_of=end)
    return ws


def track_two_runs(ws: Workspace) -> None:
    """Two tracked MLflow runs, ``baseline`` and ``glmix``, for the Models views (idempotent)."""
    from proml_lab.training.tracking import Tracker

    tracker = Tracker(ws)
    if not tracker.runs().empty:
        return
    with tracker.start_run("baseline") as run:
        run.log_metrics({"auc": 0.70, "logloss": 0.50, "ndcg_at_10": 0.40, "train_seconds": 3.0})
    with tracker.start_run("glmix") as run:
        run.log_metrics({"auc": 0.77, "logloss": 0.45, "ndcg_at_10": 0.44, "train_seconds": 9.0})


def world_workspace(factory: pytest.TempPathFactory) -> Workspace:
    """The tiny-world workspace of this test process, with two tracked runs (built once, then shared)."""
    if "ws" not in _BUILT:
        ws = build_world_workspace(factory.mktemp("lab-world") / "ws")
        track_two_runs(ws)
        _BUILT["ws"] = ws
    return _BUILT["ws"]
