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


TINY_PROGRAM = """
MODEL tiny_ranker;
INPUT MEMBER double m1;
INPUT DOCUMENT double x1;
TRAINABLE score = GLMix([x1, m1], {"l2": 1.0});
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
TRAINING CONFIG {label: y, metrics: ["auc", "logloss"]}
"""


def tiny_frame(n: int = 400, seed: int = 0):
    """A small synthetic (member, job) frame whose clicks follow ``x1`` and ``m1`` (trains in a second)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    members = rng.integers(0, 20, n)
    m1, x1 = rng.normal(size=20)[members], rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.2 * x1 + 0.5 * m1)))).astype(float)
    return pd.DataFrame({"member_id": members, "job_id": rng.integers(0, 30, n), "m1": m1, "x1": x1, "y": y})


def train_tiny(run=None):
    """A tiny trained model (GLMix, fixed effect only); with *run* (a RunLogger) it is tracked there."""
    from proml_lab.training.connect import train

    data = tiny_frame()
    return train(TINY_PROGRAM, data.iloc[:300], validation=data.iloc[300:].reset_index(drop=True), run=run)


def publish_glmix_champion(ws: Workspace) -> None:
    """Log a bundle to the ``glmix`` run and publish it as model ``glmix``, alias ``champion`` (idempotent).

    The bundle holds a tiny synthetic model (the run's own metrics stay as they are); the run can then be
    published again from the Models panel.
    """
    from proml_lab.deploy.bundle import ARTIFACT_PATH, log_bundle
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.training.tracking import Tracker

    tracker = Tracker(ws)
    glmix = next(r["id"] for r in tracker.run_records() if r["name"] == "glmix")
    if not tracker.client.list_artifacts(glmix, ARTIFACT_PATH):
        model = train_tiny()
        model.run_id = glmix
        log_bundle(ws, model)
    registry = ModelRegistry(ws)
    if not any(m["name"] == "glmix" for m in registry.models()):
        registry.publish(glmix, name="glmix", alias="champion")


def world_workspace(factory: pytest.TempPathFactory) -> Workspace:
    """The tiny-world workspace of this test process (built once, then shared): two tracked runs, and
    ``glmix`` holding a bundle published as model ``glmix`` version 1, alias ``champion``."""
    if "ws" not in _BUILT:
        ws = build_world_workspace(factory.mktemp("lab-world") / "ws")
        track_two_runs(ws)
        publish_glmix_champion(ws)
        _BUILT["ws"] = ws
    return _BUILT["ws"]
