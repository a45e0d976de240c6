"""A Gaussian-process sampler for Optuna, built on scikit-learn (no torch needed).

Every parameter is mapped into the unit cube (log scale where ``log=True``; categoricals one-hot), a
Matérn-5/2 GP with ARD length scales is fitted on the completed trials, and the next point maximizes
expected improvement over random candidates plus perturbations of the best points so far.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits  # a scikit-learn dependency

from proml_lab.errors import TrainingError

__all__ = ["GPSampler"]


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


# -- the unit-cube encoding -------------------------------------------------------------------------


def _bounds(dist: FloatDistribution | IntDistribution) -> tuple[float, float, bool]:
    """The interval a numeric parameter is spread over, before scaling to [0, 1]."""
    if isinstance(dist, IntDistribution):
        # widen by half a step so that every integer owns an equal share of the cube
        low, high = dist.low - 0.5 * dist.step, dist.high + 0.5 * dist.step
        if dist.log:
            low = max(low, 0.5 * dist.low)
    else:
        low, high = dist.low, dist.high
    return (math.log(low), math.log(high), True) if dist.log else (low, high, False)


class _Encoder:
    """Maps parameter values to a point of the unit cube and back (one-hot for categoricals)."""

    def __init__(self, space: dict[str, BaseDistribution]) -> None:
        self.space = space
        self.slices: dict[str, slice] = {}
        start = 0
        for name, dist in space.items():
            width = len(dist.choices) if isinstance(dist, CategoricalDistribution) else 1
            self.slices[name] = slice(start, start + width)
            start += width
        self.dim = start

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        x = np.zeros(self.dim)
        for name, dist in self.space.items():
            sl = self.slices[name]
            if isinstance(dist, CategoricalDistribution):
                x[sl.start + int(dist.to_internal_repr(params[name]))] = 1.0
            else:
                low, high, log = _bounds(dist)
                v = math.log(params[name]) if log else float(params[name])
                x[sl.start] = (v - low) / (high - low)
        return x

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, dist in self.space.items():
            sl = self.slices[name]
            if isinstance(dist, CategoricalDistribution):
                params[name] = dist.choices[int(np.argmax(x[sl]))]
                continue
            low, high, log = _bounds(dist)
            v = low + float(np.clip(x[sl.start], 0.0, 1.0)) * (high - low)
            v = math.exp(v) if log else v
            step = dist.step
            if isinstance(dist, IntDistribution):
                v = dist.low + step * round((v - dist.low) / step)
                params[name] = int(min(max(v, dist.low), dist.high))
            else:
                if step is not None:
                    v = dist.low + step * round((v - dist.low) / step)
                params[name] = float(min(max(v, dist.low), dist.high))
        return params

    def random(self, rng: np.random.RandomState, n: int) -> np.ndarray:
        """``n`` uniform points of the cube (a random one-hot in each categorical block)."""
        x = rng.uniform(size=(n, self.dim))
        for name, dist in self.space.items():
            if isinstance(dist, CategoricalDistribution):
                sl = self.slices[name]
                x[:, sl] = np.eye(sl.stop - sl.start)[rng.randint(sl.stop - sl.start, size=n)]
        return x

    def perturb(self, rng: np.random.RandomState, centers: np.ndarray, n: int, scale: float) -> np.ndarray:
        """``n`` points near ``centers``: Gaussian steps, and a fresh category with probability 0.1."""
        base = centers[rng.randint(centers.shape[0], size=n)]
        x = base + rng.normal(scale=scale, size=(n, self.dim))
        fresh = self.random(rng, n)
        for name, dist in self.space.items():
            if isinstance(dist, CategoricalDistribution):
                sl = self.slices[name]
                keep = rng.uniform(size=n) >= 0.1
                x[:, sl] = np.where(keep[:, None], base[:, sl], fresh[:, sl])
        return np.clip(x, 0.0, 1.0)


# -- the sampler ------------------------------------------------------------------------------------


def _expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float, xi: float) -> np.ndarray:
    """EI of a *minimization*: E[max(best - xi - f, 0)] under f ~ N(mu, sigma^2)."""
    from scipy.stats import norm

    sigma = np.maximum(sigma, 1e-12)
    z = (best - xi - mu) / sigma
    return (best - xi - mu) * norm.cdf(z) + sigma * norm.pdf(z)


def _lbfgs(objective: Callable, theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-learn's default kernel optimizer, capped at 50 iterations to keep a trial cheap."""
    from scipy.optimize import minimize

    res = minimize(objective, theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 50})
    return res.x, float(res.fun)


class GPSampler(BaseSampler):
    """Bayesian optimization with a scikit-learn Gaussian process and expected improvement.

    The first ``n_startup_trials`` trials, and any parameter outside the space shared by all
    completed trials, are sampled at random (Optuna's ``RandomSampler``). After that each trial
    fits ``ConstantKernel * Matern(nu=2.5, ARD) + WhiteKernel`` (``normalize_y``) to the completed
    trials in a unit-cube encoding (log scale for ``log=True``, integers as rounded continuous
    values, categoricals one-hot) and picks the candidate with the largest expected improvement
    among ``n_candidates`` uniform points and as many again near the best trials, refined once
    around the best candidates. Same seed, same objective: same trials.

    Parameters
    ----------
    seed : int, optional
        Seeds the random sampler and the candidates.
    n_startup_trials : int, default 8
        Random trials before the GP takes over.
    n_candidates : int, default 2000
        Uniform candidates per trial (cost grows linearly; 200-500 suffice for a few parameters).
    xi : float, default 0.01
        Exploration margin of EI, in units of the objective's standard deviation.

    Examples
    --------
    >>> import optuna
    >>> study = optuna.create_study(sampler=GPSampler(seed=0, n_candidates=200))
    >>> study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 0.5) ** 2, n_trials=12)
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 8,
        n_candidates: int = 2000,
        xi: float = 0.01,
    ) -> None:
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self.n_candidates = n_candidates
        self.xi = xi
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._theta: np.ndarray | None = None  # last fitted kernel hyper-parameters (log scale)

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = intersection_search_space(study.get_trials(deepcopy=False))
        return {name: dist for name, dist in space.items() if not dist.single()}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if not _is_int(self.n_candidates) or self.n_candidates < 1:
            raise TrainingError(
                "The 'n_candidates' parameter of GPSampler must be an int in [1, inf). "
                f"Got {self.n_candidates!r} instead."
            )
        if len(study.directions) > 1:
            raise TrainingError("GPSampler optimizes one objective; use a single-objective study.")
        done = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if all(name in t.params for name in search_space)
        ]
        if len(done) < max(self.n_startup_trials, 2):
            return {}
        encoder = _Encoder(search_space)
        x = np.array([encoder.encode(t.params) for t in done])
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        y = sign * np.array([t.value for t in done], dtype=float)

        # BLAS threads on 20x20 matrices cost far more in hand-offs than they save (7x slower seen)
        with threadpool_limits(limits=1, user_api="blas"):
            gp = self._fit(x, y)
            best = self._argmax_ei(gp, encoder, x, y)
        return encoder.decode(best)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> Any:
        """The GP posterior of the (minimized) objective given the completed trials."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.full(x.shape[1], 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5
        ) + WhiteKernel(1e-4, (1e-8, 1e-1))
        if self._theta is not None and self._theta.shape == kernel.theta.shape:
            kernel = kernel.clone_with_theta(self._theta)  # one new point barely moves the optimum
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, optimizer=_lbfgs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a length scale at its bound is fine here
            gp.fit(x, y)
        self._theta = gp.kernel_.theta
        return gp

    def _argmax_ei(self, gp: Any, encoder: _Encoder, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The candidate with the largest expected improvement (global, local, then one refinement)."""
        best_rows = x[np.argsort(y)[:3]]
        candidates = np.vstack(
            [
                encoder.random(self._rng, self.n_candidates),
                encoder.perturb(self._rng, best_rows, self.n_candidates, scale=0.1),
            ]
        )
        xi = self.xi * float(np.std(y) or 1.0)
        ei = _expected_improvement(*gp.predict(candidates, return_std=True), best=float(y.min()), xi=xi)
        top = candidates[np.argsort(-ei)[:5]]
        refined = encoder.perturb(self._rng, top, max(self.n_candidates // 4, 1), scale=0.02)
        ei_refined = _expected_improvement(*gp.predict(refined, return_std=True), best=float(y.min()), xi=xi)
        if ei_refined.max() > ei.max():
            return refined[int(np.argmax(ei_refined))]
        return candidates[int(np.argmax(ei))]
