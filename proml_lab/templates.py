"""Templates for new work: a Quasar program, a new-model notebook, a papermill retrain job, a dashboard.

The files live in the project's ``templates/`` folder (shipped inside the wheel as
``proml_lab/_templates``); ``{{name}}`` in a template is replaced by the new model's name. The example
notebooks and Voila dashboards (``notebooks/``, shipped as ``proml_lab/_notebooks``) are found the same
way: the source checkout first, else the packaged copy.

>>> [t.name for t in list_templates()][:2]                     # doctest: +SKIP
['dashboard', 'model']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proml_lab.errors import ConfigurationError

if TYPE_CHECKING:
    from proml_lab.workspace import Workspace

__all__ = ["NewModel", "Template", "find_dashboard", "list_dashboards", "list_templates", "new_model",
           "notebooks_dir", "render_template", "templates_dir"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DESCRIPTIONS = {
    "model.quasar": "Quasar program: world features -> GLMix -> ranked list, with a TRAINING CONFIG",
    "new_model.ipynb": "notebook: author the program in a %%quasar cell, train it, compare with a baseline",
    "retrain.ipynb": "papermill job: retrain a program on fresh data and report its metrics",
    "dashboard.ipynb": "Voila dashboard: trained runs and a comparison of two of them",
}


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    description: str

    @property
    def kind(self) -> str:
        return "quasar" if self.path.suffix == ".quasar" else "notebook"


@dataclass(frozen=True)
class NewModel:
    name: str
    folder: Path
    program: Path
    notebook: Path
    dashboard: Path
    retrain: Path | None = None  # the papermill retrain job ``proml retrain NAME`` runs


def templates_dir() -> Path:
    """Where the templates are: the source checkout's ``templates/``, else the packaged copy."""
    return _shipped("templates", "_templates", "model.quasar")


def notebooks_dir() -> Path:
    """Where the example notebooks are (``dashboards/`` holds the Voila dashboards): the source
    checkout's ``notebooks/``, else the packaged copy."""
    return _shipped("notebooks", "_notebooks", "dashboards")


def _shipped(source: str, packaged: str, marker: str) -> Path:
    """A folder shipped with the package: in the source checkout, else inside the installed wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / source, package / packaged):
        if (candidate / marker).exists():
            return candidate
    raise ConfigurationError(f"no {source} found next to {package}; reinstall proml-lab")


def list_dashboards(workspace: Workspace | None = None) -> dict[str, Path]:
    """Every dashboard by name: the shipped ones (``model_comparison`` ...) and, with a *workspace*, the
    dashboard of each model made by :func:`new_model` (named after the model)."""
    found = {p.stem: p for p in sorted((notebooks_dir() / "dashboards").glob("*.ipynb"))}
    if workspace is not None:
        for path in sorted((workspace.root / "models").glob("*/*_dashboard.ipynb")):
            if path.name == f"{path.parent.name}_dashboard.ipynb":  # a shipped name wins over a model's
                found.setdefault(path.parent.name, path)
    return found


def find_dashboard(name: str, workspace: Workspace | None = None) -> Path:
    """The dashboard notebook called *name* (see :func:`list_dashboards`)."""
    found = list_dashboards(workspace)
    if name not in found:
        raise ConfigurationError(f"no dashboard {name!r}; available: {', '.join(sorted(found)) or 'none'}")
    return found[name]


def list_templates() -> list[Template]:
    """Every template, by name."""
    folder = templates_dir()
    return sorted((Template(p.stem, p, _DESCRIPTIONS.get(p.name, "")) for p in folder.iterdir()
                   if p.suffix in (".quasar", ".ipynb")), key=lambda t: t.name)


def render_template(name: str, model_name: str) -> str:
    """The text of template *name* (``model``, ``new_model``, ...) for a model called *model_name*.

    In notebooks, a cell source may also hold ``{{program}}``: the rendered Quasar template.
    """
    _check_name(model_name)
    found = {t.name: t for t in list_templates()}
    if name not in found:
        raise ConfigurationError(f"unknown template {name!r}; available: {', '.join(sorted(found))}")
    text = found[name].path.read_text(encoding="utf-8")
    if found[name].kind == "quasar":
        return text.replace("{{name}}", model_name)
    notebook = json.loads(text)
    program = render_template("model", model_name) if "model" in found else ""
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        cell["source"] = source.replace("{{program}}", program.rstrip("\n")).replace("{{name}}", model_name)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def new_model(workspace: Workspace, name: str, *, overwrite: bool = False) -> NewModel:
    """Create ``<workspace>/models/<name>/`` with the program, the notebook to develop it, its Voila
    dashboard (``<name>_dashboard.ipynb``, served by ``proml dashboard <name>``) and its papermill retrain
    job (``<name>_retrain.ipynb``, run by ``proml retrain <name>``).

    Existing files are never overwritten unless *overwrite*; the files appear whole or not at all.
    """
    _check_name(name)
    folder = workspace.root / "models" / name
    made = NewModel(name, folder, folder / f"{name}.quasar", folder / f"{name}.ipynb",
                    folder / f"{name}_dashboard.ipynb", folder / f"{name}_retrain.ipynb")
    files = ((made.program, "model"), (made.notebook, "new_model"), (made.dashboard, "dashboard"),
             (made.retrain, "retrain"))
    if not overwrite and any(path.exists() for path, _ in files):
        raise ConfigurationError(f"model {name!r} already exists in {folder}; pick another name or pass "
                                 f"--force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    for path, template in files:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(render_template(template, name), encoding="utf-8")
        tmp.replace(path)
    return made


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigurationError(f"model name {name!r} must be an identifier (letters, digits and _, not "
                                 f"starting with a digit), e.g. my_ranker")
