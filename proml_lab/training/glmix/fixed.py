"""The fixed effect: one GLM over all rows, fitted by L-BFGS-B.

The objective is ``sum_i w_i * loss(y_i, x_i . beta + b + offset_i) + l2 / 2 ||beta||^2 + l1 ||beta||_1``
(the intercept ``b`` is never penalized). L1 (and elastic net) stays smooth and exact through the split
``beta = u - v`` with bounds ``u, v >= 0``.

The optimizer only sees an *oracle* ``(beta, b) -> (data loss, gradient wrt beta, gradient wrt b)``:
:func:`data_loss_grad` over numpy arrays here, one Spark job per call in :mod:`.spark`. Both paths
therefore run the very same L-BFGS-B iterations and land on the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from proml_lab.errors import TrainingError
from proml_lab.training.glmix.families import Family

__all__ = ["FixedResult", "data_loss_grad", "fit_fixed", "minimize_fixed"]

Oracle = Callable[[np.ndarray, float], tuple[float, np.ndarray, float]]


@dataclass(frozen=True)
class FixedResult:
    """A fitted fixed effect: ``coefficients`` (d,), ``intercept``, the final ``objective`` and ``n_iter``."""

    coefficients: np.ndarray
    intercept: float
    objective: float
    n_iter: int


def data_loss_grad(x: np.ndarray, y: np.ndarray, w: np.ndarray, offset: np.ndarray, family: Family,
                   beta: np.ndarray, intercept: float) -> tuple[float, np.ndarray, float]:
    """The unregularized weighted loss of rows ``x`` and its gradient wrt ``beta`` and the intercept.

    Examples
    --------
    >>> import numpy as np
    >>> from proml_lab.training.glmix.families import get_family
    >>> x = np.array([[1.0], [2.0]]); y = np.array([0.0, 1.0]); w = np.ones(2)
    >>> loss, g, gb = data_loss_grad(x, y, w, np.zeros(2), get_family("linear"), np.zeros(1), 0.0)
    >>> float(loss), g.tolist(), float(gb)
    (0.5, [-2.0], -1.0)
    """
    eta = x @ beta + intercept + offset
    d1, _ = family.derivatives(y, eta)
    wd1 = w * d1
    return float(w @ family.loss(y, eta)), x.T @ wd1, float(wd1.sum())


def minimize_fixed(oracle: Oracle, d: int, *, l2: float, l1: float, max_iter: int, tol: float,
                   init: tuple[np.ndarray, float] | None = None) -> FixedResult:
    """Minimize ``oracle``'s loss + ``l2/2 ||beta||^2 + l1 ||beta||_1`` over ``(beta, b)`` with L-BFGS-B.

    ``oracle(beta, b)`` returns the data loss and its gradients (see :func:`data_loss_grad`); it is the
    only place data is touched, so the same optimizer drives the local and the Spark fit.

    Examples
    --------
    >>> import numpy as np
    >>> from proml_lab.training.glmix.families import get_family
    >>> x = np.array([[0.0], [1.0], [2.0]]); y = np.array([1.0, 3.0, 5.0])
    >>> fam = get_family("linear")
    >>> r = minimize_fixed(lambda b, c: data_loss_grad(x, y, np.ones(3), np.zeros(3), fam, b, c), 1,
    ...                    l2=0.0, l1=0.0, max_iter=100, tol=1e-12)
    >>> round(float(r.coefficients[0]), 6), round(r.intercept, 6)
    (2.0, 1.0)
    """
    from scipy.optimize import minimize

    beta0, b0 = (np.zeros(d), 0.0) if init is None else (np.asarray(init[0], np.float64), float(init[1]))
    if l1 > 0:  # beta = u - v, u, v >= 0: the L1 term becomes linear, the problem smooth
        theta0 = np.concatenate([np.maximum(beta0, 0.0), np.maximum(-beta0, 0.0), [b0]])
        bounds = [(0.0, None)] * (2 * d) + [(None, None)]

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, float]:
            return theta[:d] - theta[d:2 * d], float(theta[-1])

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            beta, b = unpack(theta)
            loss, g, gb = oracle(beta, b)
            g = g + l2 * beta
            value = loss + 0.5 * l2 * float(beta @ beta) + l1 * float(theta[:2 * d].sum())
            return value, np.concatenate([g + l1, -g + l1, [gb]])
    else:
        theta0 = np.concatenate([beta0, [b0]])
        bounds = None

        def unpack(theta: np.ndarray) -> tuple[np.ndarray, float]:
            return theta[:d], float(theta[-1])

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            beta, b = unpack(theta)
            loss, g, gb = oracle(beta, b)
            return loss + 0.5 * l2 * float(beta @ beta), np.concatenate([g + l2 * beta, [gb]])

    res = minimize(objective, theta0, method="L-BFGS-B", jac=True, bounds=bounds,
                   options={"maxiter": max_iter, "ftol": tol, "gtol": tol, "maxcor": 20})
    if not np.all(np.isfinite(res.x)):
        raise TrainingError("the fixed-effect fit diverged (non-finite coefficients); scale the features "
                            "or raise l2", node="fixed")
    beta, b = unpack(res.x)
    return FixedResult(np.array(beta, dtype=np.float64), b, float(res.fun), int(res.nit))


def fit_fixed(x: np.ndarray, y: np.ndarray, family: Family, *, weights: np.ndarray | None = None,
              offset: np.ndarray | None = None, l2: float = 1.0, l1: float = 0.0, max_iter: int = 100,
              tol: float = 1e-8, init: tuple[np.ndarray, float] | None = None) -> FixedResult:
    """Fit the fixed effect on in-memory arrays ``x`` (n, d) and labels ``y`` (n,).

    Examples
    --------
    >>> import numpy as np
    >>> from proml_lab.training.glmix.families import get_family
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 2)); y = (x[:, 0] > 0).astype(float)
    >>> r = fit_fixed(x, y, get_family("logistic"), l2=1.0)
    >>> bool(r.coefficients[0] > 1)
    True
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=np.float64)

    def oracle(beta: np.ndarray, b: float) -> tuple[float, np.ndarray, float]:
        return data_loss_grad(x, y, w, off, family, beta, b)

    return minimize_fixed(oracle, x.shape[1], l2=l2, l1=l1, max_iter=max_iter, tol=tol, init=init)
