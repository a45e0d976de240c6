"""Templates: a new model's program and notebook, made from the project's templates."""

from __future__ import annotations

import json

import pytest

from proml_lab.errors import ConfigurationError
from proml_lab.quasar import compile
from proml_lab.templates import list_templates, new_model, render_template


def test_every_template_is_listed_with_a_description():
    templates = {t.name: t for t in list_templates()}
    assert {"model", "new_model", "retrain"} <= set(templates)
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
