"""ProML Lab: explore, author, train, deploy and run ranking models from a notebook.

The top level stays small and imports nothing heavy: subpackages (Spark, TensorFlow, IPython, FastAPI)
load on first use.

>>> import proml_lab
>>> proml_lab.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "ProMLError",
    "Settings",
    "Workspace",
    "__version__",
    "generate_world",
    "get_settings",
    "get_spark",
    "load_movielens",
]

_LAZY = {
    "ProMLError": "proml_lab.errors",
    "Settings": "proml_lab.settings",
    "get_settings": "proml_lab.settings",
    "Workspace": "proml_lab.workspace",
    "get_spark": "proml_lab.spark",
    "generate_world": "proml_lab.worlds",
    "load_movielens": "proml_lab.worlds",
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext proml_lab``: register the ProML Lab magics (``%%quasar``, ``%features``, ``%train`` ...)."""
    from proml_lab.lab import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext proml_lab``."""
    from proml_lab.lab import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'proml_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
