"""The top level is small and fast: no heavy framework is imported by `import proml_lab`."""

import json
import subprocess
import sys

import proml_lab

HEAVY = ("pyspark", "tensorflow", "IPython", "fastapi", "pandas", "pyarrow", "mlflow", "xgboost", "sklearn")


def test_import_loads_no_heavy_framework():
    code = (
        "import sys, json, proml_lab; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_public_surface_is_sorted_and_lazy():
    assert proml_lab.__all__ == sorted(proml_lab.__all__)
    for name in proml_lab.__all__:
        assert getattr(proml_lab, name) is not None
    assert proml_lab.Workspace.__module__ == "proml_lab.workspace"


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        proml_lab.Nope  # noqa: B018
