"""The tiny world with its job-recommendation model trained, built once per test process and shared by the
deploy and serving tests (its registry and deployments are theirs; the lab and UI tests use their own)."""

from __future__ import annotations

import pytest

from proml_lab.cli import WORLD_PROGRAM
from proml_lab.workspace import Workspace
from tests.ui.world import build_world_workspace

_BUILT: dict[str, object] = {}


def trained_world(factory: pytest.TempPathFactory):
    """``(workspace, trained)``: the tiny world materialized offline and online, and the world program
    (``world_job_recommendations``) trained on it (a tracked MLflow run)."""
    if "world" not in _BUILT:
        from proml_lab.training.pipeline import train_program

        ws: Workspace = build_world_workspace(factory.mktemp("deploy-world") / "ws")
        result = train_program(ws, WORLD_PROGRAM.read_text(encoding="utf-8"), filename=str(WORLD_PROGRAM))
        _BUILT["world"] = (ws, result.model)
    return _BUILT["world"]
