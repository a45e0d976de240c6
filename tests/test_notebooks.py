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


def test_the_experiment_dashboard_runs_under_papermill(tmp_path):
    from proml_lab.experiments import ExperimentStore
    from proml_lab.workspace import Workspace
    from tests.ui.world import synthetic_experiment

    ws = Workspace.init(tmp_path / "ws")
    synthetic_experiment(ws, "ranker-ab", lift=0.30)  # +30% clicks in the treatment
    synthetic_experiment(ws, "biased-ab", lift=0.0, lost=0.15, seed=1)  # 15% of treatment logs lost
    ExperimentStore(ws).create("idea-ab", "ab_ranker", ["control=champion", "treatment=newcomer"],
                               layer="ideas")
    path = ROOT / "notebooks" / "dashboards" / "experiment.ipynb"
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), cwd=str(tmp_path), kernel_name="python3",
                               parameters={"home": str(ws.root), "experiment": "ranker-ab"}, progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    # the widgets' state is saved with the notebook: the dropdown, the report's parts and the lift chart
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    models = [s["state"] for s in state]
    dropdown = next(m for m in models if m.get("_model_name") == "DropdownModel")
    assert dropdown["_options_labels"] == ["idea-ab  (ab_ranker, draft)", "biased-ab  (ab_ranker, running)",
                                           "ranker-ab  (ab_ranker, running)"]  # newest first
    assert dropdown["index"] == 2  # the experiment parameter picked it
    html = " ".join(str(m.get("value", "")) for m in models if m.get("_model_name") == "HTMLModel")
    assert "Decision: ramp up" in html and "SRM ok: units control" in html
    assert "Experiment <b>ranker-ab</b> [running]" in html
    plots = [m for m in models if m.get("_model_name") == "OutputModel"]
    assert any(o.get("data", {}).get("image/png") for m in plots for o in m.get("outputs", []))


def test_the_experiment_dashboard_refreshes_on_selection(tmp_path):
    """The dashboard's view: choosing another experiment shows its definition, SRM check and decision."""
    from proml_lab.lab.widgets import experiment_view
    from proml_lab.workspace import Workspace
    from tests.ui.world import synthetic_experiment

    ws = Workspace.init(tmp_path / "ws")
    synthetic_experiment(ws, "ranker-ab", lift=0.30, members=2000)
    synthetic_experiment(ws, "biased-ab", lift=0.0, lost=0.15, seed=1)
    view = experiment_view(ws)
    assert view.picker.value == "biased-ab"  # the newest
    assert "SRM FLAGGED" in view.srm.value and "Decision: hold" in view.analysis.value
    assert len(view.plot.outputs) == 1
    view.picker.value = "ranker-ab"
    assert "Experiment <b>ranker-ab</b>" in view.definition.value
    assert "SRM ok" in view.srm.value and "Decision: ramp up" in view.analysis.value
    assert len(view.plot.outputs) == 1  # the chart was replaced, not added
    empty = experiment_view(Workspace.init(tmp_path / "empty"))
    assert empty.picker.value is None and "No experiments yet" in empty.definition.value


def test_the_model_health_dashboard_runs_under_papermill(tmp_path):
    """Synthetic serving logs (no world): the drifted window's table with statuses, charts, anomalies."""
    import pandas as pd

    import numpy as np

    from proml_lab.health import AnomalyStore, MeanVariance
    from proml_lab.templates import find_dashboard
    from proml_lab.workspace import Workspace
    from tests.health.test_monitor import DAY2, MODEL, synthetic_health

    ws = Workspace.init(tmp_path / "ws")
    synthetic_health(ws)
    hours = pd.date_range("2026-01-01", periods=24 * 7, freq="h", tz="UTC")  # hourly requests with a spike
    requests = pd.Series(100 + 20 * np.sin(hours.hour.to_numpy() * 2 * np.pi / 24), index=hours)
    requests.iloc[24 * 6 + 3] *= 3
    found = MeanVariance(k=3.0).detect(requests)
    AnomalyStore(ws).record(f"{MODEL}.requests", "MeanVariance", found)
    assert len(found) >= 1
    path = find_dashboard("model_health")
    assert path == ROOT / "notebooks" / "dashboards" / "model_health.ipynb"
    out = tmp_path / path.name
    end = (DAY2 + pd.Timedelta("1d")).isoformat()
    papermill.execute_notebook(str(path), str(out), cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
                               parameters={"home": str(ws.root), "model": MODEL, "end": end})
    nb = nbformat.read(out, as_version=4)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    models = [s["state"] for s in state]
    html = " ".join(str(m.get("value", "")) for m in models if m.get("_model_name") == "HTMLModel")
    assert "alert(s)" in html and "calibration" in html and "score" in html  # the drift table with statuses
    assert "Recent anomalies" in html and f"{MODEL}.requests" in html and "unknown" in html  # labels
    plots = [m for m in models if m.get("_model_name") == "OutputModel"]
    assert any(o.get("data", {}).get("image/png") for m in plots for o in m.get("outputs", []))
