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


EXPERIMENT = "ranker-ab"


def synthetic_experiment(ws: Workspace, name: str = EXPERIMENT, *, model: str = "ab_ranker",
                         members: int = 4000, ctr: float = 0.10, lift: float = 0.30, per_request: int = 5,
                         seed: int = 0, start: bool = True, lost: float = 0.0) -> None:
    """An experiment of ``model`` (control = champion, treatment = challenger, 100% of its layer) with logged
    exposures and outcomes of ``members`` members (idempotent: nothing is added when it exists). The model is
    one no other test deploys: its deployment is only a pointer file naming the two aliases.

    Each member is assigned by the real hash, sees ``per_request`` documents in each of two requests, and
    clicks each with probability ``ctr`` (``ctr * (1 + lift)`` in the treatment); a click is followed by an
    apply half the time. ``lost`` is the fraction of treatment members whose exposures were never logged (a
    biased log the SRM check must catch).
    """
    import json

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from proml_lab.experiments import ExperimentStore, assign
    from proml_lab.experiments.outcomes import log_outcomes

    store = ExperimentStore(ws)
    if any(e.name == name for e in store.list()):
        return
    pointer = Path(ws.root) / "deployments" / model / "aliases.json"
    if start and not pointer.exists():
        pointer.parent.mkdir(parents=True, exist_ok=True)
        entry = {"version": "1", "generation": "1-abc", "bundle_path": "bundles/1",
                 "deployed_at": "2026-01-01"}
        pointer.write_text(json.dumps({"aliases": {"champion": entry, "challenger": entry}, "history": {}}))
    experiment = store.create(name, model, ["control=champion", "treatment=challenger"],
                              layer=f"{name}-layer", share=100, traffic=100, salt=f"{name}-salt",
                              description="synthetic A/B test")
    if start:
        experiment = store.start(name)
    rng = np.random.default_rng(seed)
    ids = np.arange(1, members + 1, dtype=np.int64)
    arms = assign(experiment, ids)
    keep = ~((arms == "treatment") & (rng.random(members) < lost))
    ids, arms = ids[keep], arms[keep]
    members = len(ids)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    requests = np.repeat(np.arange(2 * members), per_request)  # two requests a member
    member = np.repeat(np.tile(ids, 2), per_request)
    arm = np.repeat(np.tile(arms, 2), per_request)
    rows = len(requests)
    exposures = pa.table({
        "ts": pa.array(np.full(rows, now.tz_localize(None).to_datetime64()).astype("datetime64[us]"),
                       pa.timestamp("us", tz="UTC")),
        "request_id": pa.array([f"{name}-r{r}" for r in requests], pa.string()),
        "alias": pa.array(np.where(arm == "control", "champion", "challenger").astype(str), pa.string()),
        "version": pa.array(np.full(rows, "1"), pa.string()),
        "member_id": pa.array(member),
        "document_id": pa.array(np.tile(np.arange(per_request, dtype=np.int64), 2 * members)),
        "position": pa.array(np.tile(np.arange(per_request, dtype=np.int32), 2 * members)),
        "score": pa.array(rng.random(rows)),
        "experiment": pa.array(np.full(rows, name), pa.string()),
        "arm": pa.array(arm.astype(str), pa.string()),
    })
    folder = Path(ws.root) / "logs" / "exposures" / f"model={model}" / f"date={now:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(exposures, folder / f"part-{name}.parquet")
    request_ids = exposures["request_id"].to_numpy(zero_copy_only=False)
    documents = exposures["document_id"].to_numpy()
    p = np.where(arm == "treatment", ctr * (1 + lift), ctr)
    clicked = rng.random(rows) < p
    applied = clicked & (rng.random(rows) < 0.5)
    events = pd.concat([
        pd.DataFrame({"request_id": request_ids[mask], "member_id": member[mask],
                      "document_id": documents[mask], "event": kind})
        for kind, mask in (("click", clicked), ("apply", applied))], ignore_index=True)
    log_outcomes(ws, model, events.assign(ts=now + pd.Timedelta(seconds=5)))


def world_workspace(factory: pytest.TempPathFactory) -> Workspace:
    """The tiny-world workspace of this test process (built once, then shared): two tracked runs,
    ``glmix`` holding a bundle published as model ``glmix`` version 1, alias ``champion``, and a running
    A/B experiment, :data:`EXPERIMENT`, with synthetic exposures and outcomes (a +30% click lift)."""
    if "ws" not in _BUILT:
        ws = build_world_workspace(factory.mktemp("lab-world") / "ws")
        track_two_runs(ws)
        publish_glmix_champion(ws)
        synthetic_experiment(ws)
        _BUILT["ws"] = ws
    return _BUILT["ws"]
