"""Example notebooks run top to bottom in a real kernel and draw their figures."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PROML_HOME", str(tmp_path / "ws"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert figures, "the notebook drew no figure"
    assert (tmp_path / "ws" / "lake" / "world" / "world.json").exists()


def test_notebooks_exist():
    assert any(p.name == "01_world_tour.ipynb" for p in NOTEBOOKS)
