"""Every notebook in notebooks/ runs top to bottom under papermill (small sizes) and draws its figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAMETERS = {"01_world_tour": {"size": "tiny"}, "01_quickstart": {"size": "tiny"},
              "02_feature_marketplace": {"size": "tiny"}, "03_author_and_train": {"size": "tiny", "tune": 3},
              "04_movielens_glmix": {"seed": 0},
              "05_publish_and_serve": {"size": "tiny", "seed": 0, "members": [1, 2, 3]}}
LEAVES = {  # what a notebook must leave in the workspace
    "01_world_tour": "lake/world/world.json",
    "01_quickstart": "jobs",
    "02_feature_marketplace": "lake/features/member_activity",
    "03_author_and_train": "studies.db",
    "05_publish_and_serve": "deployments/world_job_recommendations/aliases.json",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_under_papermill(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PROML_HOME", str(tmp_path / "ws"))
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters=PARAMETERS.get(path.stem, {}), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if _has_picture(o.get("data", {}))]
    assert figures, "the notebook drew no figure"
    if path.stem in LEAVES:
        assert (tmp_path / "ws" / LEAVES[path.stem]).exists()


def _has_picture(data: dict) -> bool:
    """A figure as an image output, or embedded in HTML (the DAG and plots inside rich reprs)."""
    html = data.get("text/html", "")
    html = "".join(html) if isinstance(html, list) else html
    return "image/png" in data or "image/svg+xml" in data or "data:image/" in html or "<svg" in html


def test_every_notebook_has_a_parameters_cell():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name


def test_the_comparison_dashboard_runs_under_papermill(tmp_path):
    from proml_lab.training.tracking import Tracker
    from proml_lab.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    tracker = Tracker(ws)
    for name, auc in (("baseline", 0.70), ("glmix", 0.77)):
        with tracker.start_run(name) as run:
            run.log_metrics({"auc": auc, "logloss": 1 - auc})
    path = ROOT / "notebooks" / "dashboards" / "model_comparison.ipynb"
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters={"home": str(ws.root)}, cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False)
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
