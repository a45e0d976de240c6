"""A/B EXPERIMENTS: definitions with ramps and exclusive layers, deterministic assignment, request routing.

>>> from proml_lab.experiments import Arm, ExperimentStore                      # doctest: +SKIP
>>> ExperimentStore(ws).create("jobs-ab", "jobs", [Arm("control", "champion"),
...                            Arm("treatment", "challenger")], share=50)       # doctest: +SKIP

Everything loads on first use; ``analyze`` and ``simulate`` are there when their modules are installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

_LAZY = {
    "Arm": "proml_lab.experiments.model",
    "BUCKETS": "proml_lab.experiments.model",
    "Experiment": "proml_lab.experiments.model",
    "ExperimentStore": "proml_lab.experiments.store",
    "ExperimentRouter": "proml_lab.experiments.router",
    "Route": "proml_lab.experiments.router",
    "arm_index": "proml_lab.experiments.assignment",
    "assign": "proml_lab.experiments.assignment",
    "bucket": "proml_lab.experiments.assignment",
}
_OPTIONAL = {
    "analyze": "proml_lab.experiments.analysis",
    "simulate": "proml_lab.experiments.simulate",
}
_LAZY.update({name: module for name, module in _OPTIONAL.items() if importlib.util.find_spec(module) is not None})

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'proml_lab.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
