"""Quasar operators: the registry (built-ins and ``proml_lab.quasar_ops`` plugins) and the built-ins."""

from __future__ import annotations

from proml_lab.quasar.ops import builtins as _builtins  # noqa: F401  (registers the built-ins)
from proml_lab.quasar.ops.registry import (
    OPERATORS,
    Arg,
    Operator,
    OpParams,
    QType,
    get_operator,
    operator,
    reload_plugins,
    run_operator,
)

__all__ = [
    "Arg",
    "OPERATORS",
    "OpParams",
    "Operator",
    "QType",
    "get_operator",
    "operator",
    "reload_plugins",
    "run_operator",
]
