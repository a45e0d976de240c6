"""GLM families: the per-row loss of a linear predictor ``eta`` and its first two derivatives.

Every solver in GLMix (the fixed effect locally or on Spark, the batched random-effect Newton steps)
works through these three functions, so the families differ in one place only. Losses are *sums* of
weighted negative log-likelihoods (up to constants in ``y``), as in Photon ML: regularization
``l2 / 2 * ||beta||^2`` is then comparable to scikit-learn's ``C = 1 / l2``.

The functions take any array namespace's arrays (numpy by default; CuPy / torch through
``array_api_compat``), so the same code runs on a GPU when one is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from proml_lab.errors import TrainingError

__all__ = ["FAMILIES", "Family", "get_family"]


def _xp(*arrays: Any) -> Any:
    from array_api_compat import array_namespace

    return array_namespace(*arrays)


def _logistic_mean(eta: Any) -> Any:
    xp = _xp(eta)
    return 1.0 / (1.0 + xp.exp(-eta))


def _logistic_loss(y: Any, eta: Any) -> Any:
    xp = _xp(eta)
    # log(1 + exp(eta)) - y * eta = max(eta, 0) + log(1 + exp(-|eta|)) - y * eta: no overflow, one exp
    return 0.5 * (eta + xp.abs(eta)) + xp.log1p(xp.exp(-xp.abs(eta))) - y * eta


def _logistic_derivatives(y: Any, eta: Any) -> tuple[Any, Any]:
    mu = _logistic_mean(eta)
    return mu - y, mu * (1.0 - mu)


def _linear_mean(eta: Any) -> Any:
    return eta


def _linear_loss(y: Any, eta: Any) -> Any:
    return 0.5 * (eta - y) ** 2


def _linear_derivatives(y: Any, eta: Any) -> tuple[Any, Any]:
    xp = _xp(eta)
    return eta - y, xp.ones_like(eta)


_ETA_MAX = 30.0  # exp(30) ~ 1e13: a Poisson rate beyond that is a diverged fit, not data


def _poisson_mean(eta: Any) -> Any:
    xp = _xp(eta)
    return xp.exp(xp.clip(eta, -_ETA_MAX, _ETA_MAX))


def _poisson_loss(y: Any, eta: Any) -> Any:
    return _poisson_mean(eta) - y * eta


def _poisson_derivatives(y: Any, eta: Any) -> tuple[Any, Any]:
    mu = _poisson_mean(eta)
    return mu - y, mu


@dataclass(frozen=True)
class Family:
    """A GLM family: ``mean(eta)``, per-row ``loss(y, eta)`` and ``derivatives(y, eta) -> (d1, d2)``."""

    name: str
    mean: Any
    loss: Any
    derivatives: Any
    label_check: str  # what labels the family accepts, for errors

    def validate_labels(self, y: np.ndarray) -> None:
        """Raise a ``TrainingError`` naming the family and the bad values when *y* does not fit it."""
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise TrainingError(f"the {self.name} family needs finite labels; found NaN or infinity")
        if self.name == "logistic" and not np.all((y == 0) | (y == 1)):
            bad = np.unique(y[(y != 0) & (y != 1)])[:5]
            raise TrainingError(f"the logistic family needs labels 0 or 1; found {bad.tolist()}")
        if self.name == "poisson" and np.any(y < 0):
            raise TrainingError("the poisson family needs counts >= 0; found negative labels")


FAMILIES: dict[str, Family] = {
    "logistic": Family("logistic", _logistic_mean, _logistic_loss, _logistic_derivatives, "0 or 1"),
    "linear": Family("linear", _linear_mean, _linear_loss, _linear_derivatives, "any real number"),
    "poisson": Family("poisson", _poisson_mean, _poisson_loss, _poisson_derivatives, "counts >= 0"),
}


def get_family(name: str) -> Family:
    """The family called *name* (``logistic``, ``linear`` or ``poisson``)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise TrainingError(f"unknown GLM family {name!r}; choose one of {', '.join(FAMILIES)}") from None
