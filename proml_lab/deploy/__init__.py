"""DEPLOY layer: the model bundle, publishing to the MLflow Model Registry, and (later) deployment.

>>> from proml_lab.deploy import ModelRegistry, load_bundle       # doctest: +SKIP
>>> ModelRegistry(ws).publish(trained, alias="champion")           # doctest: +SKIP

Everything here loads on first use (MLflow, pyarrow and xgboost are heavy).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Bundle",
    "CoefficientTable",
    "ModelRegistry",
    "ModelVersion",
    "load_bundle",
    "log_bundle",
    "save_bundle",
]

_LAZY = {
    "Bundle": "proml_lab.deploy.bundle",
    "CoefficientTable": "proml_lab.deploy.bundle",
    "load_bundle": "proml_lab.deploy.bundle",
    "log_bundle": "proml_lab.deploy.bundle",
    "save_bundle": "proml_lab.deploy.bundle",
    "ModelRegistry": "proml_lab.deploy.registry",
    "ModelVersion": "proml_lab.deploy.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'proml_lab.deploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
