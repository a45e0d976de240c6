"""Registry of derived-feature functions: vectorized, run identically offline and online.

A function takes its input features as keyword arguments (numpy arrays, one element per row; numeric
inputs are float64 with NaN for missing) plus the definition's ``params``, and returns one array of the
same length. Offline it runs on the Arrow batches Spark hands to ``mapInPandas``; online on the arrays
read from the store — the same code either way, so the values agree.

Third-party packages add functions through the ``proml_lab.derived_features`` entry-point group.

Examples
--------
>>> import numpy as np
>>> @derived_function("double_it")
... def double_it(x, **params):
...     return 2 * x
>>> get_derived_function("double_it")(x=np.array([1.0, 2.0])).tolist()
[2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from proml_lab._registry import Registry
from proml_lab.errors import UnknownFeatureError

DerivedFunction = Callable[..., np.ndarray]
ENTRY_POINT_GROUP = "proml_lab.derived_features"

_REGISTRY: Registry[DerivedFunction] = Registry(ENTRY_POINT_GROUP, "Derived-feature")


def derived_function(name: str) -> Callable[[DerivedFunction], DerivedFunction]:
    """Register ``fn`` under ``name`` (decorator)."""

    def register(fn: DerivedFunction) -> DerivedFunction:
        _REGISTRY.register(name, fn)
        return fn

    return register


def get_derived_function(name: str) -> DerivedFunction:
    """The function registered as ``name``; an unknown name lists the closest known ones."""
    fn = _REGISTRY.get(name)
    if fn is None:
        import difflib

        known = _REGISTRY.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5) or known
        raise UnknownFeatureError(name, close, what="derived-feature function")
    return fn


def compute_derived(
    function: str, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Run a registered function over columns; checks the output has one value per row."""
    columns = {k: np.asarray(v) for k, v in inputs.items()}
    n = len(next(iter(columns.values()))) if columns else 0
    out = np.asarray(get_derived_function(function)(**columns, **dict(params or {})))
    if out.shape[:1] != (n,):
        raise ValueError(f"derived function {function!r} returned {out.shape[:1]} values for {n} rows")
    return out


def _float(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@derived_function("log1p_sum")
def log1p_sum(**columns: np.ndarray) -> np.ndarray:
    """``log(1 + sum of the inputs)``; missing inputs count as 0."""
    return np.log1p(sum(np.nan_to_num(_float(v)) for v in columns.values()))


@derived_function("at_least")
def at_least(*, threshold: float, **columns: np.ndarray) -> np.ndarray:
    """1.0 where the (single) input is >= ``threshold``, 0.0 where below, NaN where missing."""
    (x,) = (_float(v) for v in columns.values())
    return np.where(np.isnan(x), np.nan, (x >= threshold).astype(np.float64))


@derived_function("ratio")
def ratio(*, numerator: str, denominator: str, smoothing: float = 1.0, **columns: np.ndarray) -> np.ndarray:
    """``numerator / (denominator + smoothing)`` by input name."""
    return _float(columns[numerator]) / (_float(columns[denominator]) + smoothing)
