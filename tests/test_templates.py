"""Templates: a new model's program and notebook, made from the project's templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proml_lab.errors import ConfigurationError
from proml_lab.quasar import compile
from proml_lab.templates import (
    find_dashboard,
    list_dashboards,
    list_templates,
    new_model,
    notebooks_dir,
    render_template,
)

ROOT = Path(__file__).resolve().parent.parent


def test_every_template_is_listed_with_a_description():
    templates = {t.name: t for t in list_templates()}
    assert {"model", "new_model", "retrain", "dashboard"} <= set(templates)
    assert all(t.description for t in templates.values())
    assert templates["model"].kind == "quasar" and templates["retrain"].kind == "notebook"


def test_the_program_template_compiles_under_the_new_name():
    ir = compile(render_template("model", "my_ranker"))
    assert ir.name == "my_ranker"
    assert [n.id for n in ir.trainables()] == ["glmix"]
    assert ir.training_config["label"] == "clicked"


def test_new_model_writes_the_program_and_a_notebook_that_authors_it(workspace):
    made = new_model(workspace, "my_ranker")
    assert made.folder == workspace.root / "models" / "my_ranker"
    assert compile(made.program.read_text()).name == "my_ranker"
    cells = json.loads(made.notebook.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    quasar = next(s for s in sources if s.startswith("%%quasar"))
    assert quasar.splitlines()[0] == "%%quasar my_ranker"
    assert compile(quasar.split("\n", 1)[1]).name == "my_ranker"  # the same program, in the cell
    assert any(c["cell_type"] == "code" and "parameters" in c["metadata"].get("tags", []) for c in cells)


def test_new_model_refuses_to_overwrite_and_checks_the_name(workspace):
    new_model(workspace, "my_ranker")
    with pytest.raises(ConfigurationError, match="model 'my_ranker' already exists .* pass --force"):
        new_model(workspace, "my_ranker")
    new_model(workspace, "my_ranker", overwrite=True)
    with pytest.raises(ConfigurationError, match=r"model name '2fast' must be an identifier"):
        new_model(workspace, "2fast")
    with pytest.raises(ConfigurationError, match="unknown template 'nope'; available: "):
        render_template("nope", "x")


def test_new_model_makes_a_dashboard_that_proml_dashboard_finds(workspace):
    made = new_model(workspace, "my_ranker")
    assert made.dashboard == made.folder / "my_ranker_dashboard.ipynb"
    cells = json.loads(made.dashboard.read_text())["cells"]
    parameters = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    assert 'model = "my_ranker"' in "".join(parameters["source"])
    assert find_dashboard("my_ranker", workspace) == made.dashboard
    assert find_dashboard("model_comparison", workspace) == ROOT / "notebooks" / "dashboards" / "model_comparison.ipynb"
    shipped = {"experiment", "model_comparison", "model_health"}
    assert set(list_dashboards()) == shipped  # a model's dashboard needs its workspace
    with pytest.raises(ConfigurationError,
                       match="no dashboard 'nope'; available: experiment, model_comparison, model_health, my_ranker"):
        find_dashboard("nope", workspace)


def test_the_notebooks_come_from_the_source_checkout_first():
    assert notebooks_dir() == ROOT / "notebooks"


def test_the_model_dashboard_runs_under_papermill_and_compares_the_models_runs(workspace, tmp_path):
    import nbformat
    import papermill

    from proml_lab.training.tracking import Tracker

    made = new_model(workspace, "my_ranker")
    tracker = Tracker(workspace)
    for name, auc in (("baseline", 0.70), ("my_ranker", 0.74), ("my_ranker", 0.77)):
        with tracker.start_run(name) as run:
            run.log_metrics({"auc": auc, "logloss": 1 - auc})
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(made.dashboard), str(out), parameters={"home": str(workspace.root)},
                               cwd=str(made.folder), kernel_name="python3", progress_bar=False)
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    text = json.dumps(outputs)
    assert "**my_ranker**: 2 tracked run(s)" in text and "0.77" in text
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
