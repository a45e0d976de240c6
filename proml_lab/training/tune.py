"""Hyper-parameter tuning: Optuna studies driven by a Gaussian-process sampler (no torch needed).

:func:`tune` takes a plain objective ``params -> float`` and a declared search space (a dict, see
:func:`validate_space`), runs an Optuna study (in memory, or persisted in the workspace's
``studies.db`` so a study can be continued) and returns a :class:`TuneResult`.

The default sampler, :class:`~proml_lab.training.gp_sampler.GPSampler`, is Bayesian optimization on
scikit-learn's ``GaussianProcessRegressor`` (Matérn 5/2, expected improvement).

Optuna is imported by this module; import it only where tuning is used (``proml_lab.training`` does
not import it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from proml_lab.errors import TrainingError
from proml_lab.training.gp_sampler import GPSampler, _is_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["GPSampler", "TuneResult", "tune", "validate_space"]

#: Keys each parameter type takes (``type`` included); the first group is required.
_SPEC_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "float": (frozenset({"type", "low", "high"}), frozenset({"log", "step"})),
    "int": (frozenset({"type", "low", "high"}), frozenset({"log", "step"})),
    "categorical": (frozenset({"type", "choices"}), frozenset()),
}
_RESERVED = frozenset({"number", "value", "duration"})  # columns of TuneResult.trials
_DIRECTIONS = ("maximize", "minimize")
_SAMPLERS = ("gp", "random")


# -- the search space -------------------------------------------------------------------------------


def _is_number(x: Any) -> bool:
    numeric = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    return numeric and math.isfinite(x)


def _distribution(name: str, spec: Any) -> BaseDistribution:
    """One parameter's spec checked and turned into an Optuna distribution."""
    if not isinstance(spec, Mapping):
        raise TrainingError(
            f"Parameter {name!r} must be a dict such as {{'type': 'float', 'low': 0.001, 'high': 1000.0, "
            f"'log': True}}. Got {spec!r} instead."
        )
    kind = spec.get("type")
    if kind not in _SPEC_KEYS:
        raise TrainingError(
            f"Parameter {name!r} has unknown type {kind!r}. Use one of: {', '.join(sorted(_SPEC_KEYS))}."
        )
    required, optional = _SPEC_KEYS[kind]
    if missing := sorted(required - set(spec)):
        raise TrainingError(
            f"Parameter {name!r} is missing {', '.join(map(repr, missing))}. A {kind} parameter needs: "
            f"{', '.join(sorted(required))}."
        )
    if unknown := sorted(set(spec) - required - optional):
        raise TrainingError(
            f"Parameter {name!r} has unknown key(s) {', '.join(map(repr, unknown))}. A {kind} parameter "
            f"takes: {', '.join(sorted(required | optional))}."
        )
    if kind == "categorical":
        choices = spec["choices"]
        if not isinstance(choices, (list, tuple)) or len(choices) == 0:
            raise TrainingError(
                f"Parameter {name!r} needs a non-empty list of choices. Got {choices!r} instead."
            )
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise TrainingError(
                    f"Parameter {name!r} has choice {c!r} of type {type(c).__name__}; choices must be "
                    "None, bool, int, float or str (they are stored in the study)."
                )
        return CategoricalDistribution(list(choices))

    low, high = spec["low"], spec["high"]
    log, step = spec.get("log", False), spec.get("step")
    check = _is_int if kind == "int" else _is_number
    for key, value in (("low", low), ("high", high)):
        if not check(value):
            what = "an int" if kind == "int" else "a finite number"
            raise TrainingError(f"The {key!r} of parameter {name!r} must be {what}. Got {value!r} instead.")
    if not low < high:
        raise TrainingError(
            f"Parameter {name!r} must have low < high. Got low={low!r}, high={high!r} instead."
        )
    if not isinstance(log, bool):
        raise TrainingError(f"The 'log' of parameter {name!r} must be True or False. Got {log!r} instead.")
    if log and low <= 0:
        raise TrainingError(f"Parameter {name!r} has log=True, so low must be > 0. Got low={low!r} instead.")
    if step is not None:
        if not check(step) or step <= 0:
            what = "a positive int" if kind == "int" else "a positive number"
            raise TrainingError(f"The 'step' of parameter {name!r} must be {what}. Got {step!r} instead.")
        if log and not (kind == "int" and step == 1):
            raise TrainingError(f"Parameter {name!r} cannot have both log=True and a step; drop one of them.")
    if kind == "int":
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


def validate_space(space: Any) -> dict[str, BaseDistribution]:
    """Check a declared search space and return the Optuna distributions it stands for.

    Parameters
    ----------
    space : dict
        Parameter name -> spec. A spec is ``{"type": "float", "low": ..., "high": ..., "log": bool,
        "step": ...}``, ``{"type": "int", "low": ..., "high": ..., "log": bool, "step": int}`` or
        ``{"type": "categorical", "choices": [...]}``; ``log`` and ``step`` are optional.

    Returns
    -------
    dict of str to optuna.distributions.BaseDistribution

    Raises
    ------
    TrainingError
        Naming the parameter and what to change (unknown type or key, ``low >= high``, ``log`` with
        ``low <= 0`` ...).

    Examples
    --------
    >>> validate_space({"l2": {"type": "float", "low": 1e-3, "high": 1e3, "log": True}})
    {'l2': FloatDistribution(high=1000.0, log=True, low=0.001, step=None)}
    """
    if not isinstance(space, Mapping) or not space:
        raise TrainingError(
            "The search space must be a non-empty dict of parameter name -> spec, e.g. "
            "{'l2': {'type': 'float', 'low': 0.001, 'high': 1000.0, 'log': True}}. "
            f"Got {space!r} instead."
        )
    out: dict[str, BaseDistribution] = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name:
            raise TrainingError(f"Parameter names must be non-empty strings. Got {name!r} instead.")
        if name in _RESERVED:
            raise TrainingError(
                f"Parameter name {name!r} is reserved (a column of TuneResult.trials); rename the parameter."
            )
        out[name] = _distribution(name, spec)
    return out


# -- tune -------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames, which has no single truth value
class TuneResult:
    """The outcome of :func:`tune`: the best parameters and every trial of the study.

    ``trials`` has one row per trial of the study (earlier runs of a continued study included):
    ``number, value, <one column per parameter>, duration`` (seconds); ``value`` is NaN for a trial
    that did not complete.
    """

    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame
    study_name: str
    storage: str | None
    direction: str

    def plot(self, ax: Axes | None = None) -> Figure:
        """Each trial's value (dots) and the best value so far (a step line) against the trial number."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        else:
            fig = ax.get_figure()
        done = self.trials.dropna(subset=["value"])
        best = done["value"].cummax() if self.direction == "maximize" else done["value"].cummin()
        ax.plot(done["number"], done["value"], "o", color="#8c959f", markersize=4, label="trial")
        ax.step(done["number"], best, where="post", color="#0969da", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("objective")
        ax.legend(loc="best")
        return fig


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """Ask the trial for one parameter through Optuna's public ``suggest_*`` API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _value(value: Any) -> float:
    """The objective's return value as a float (NaN marks the trial failed)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TrainingError(
            f"The objective must return a number (the metric to optimize). Got {value!r} instead."
        ) from None


def _make_sampler(sampler: str | BaseSampler, seed: int | None) -> BaseSampler:
    if isinstance(sampler, BaseSampler):
        return sampler
    if sampler == "gp":
        return GPSampler(seed=seed)
    if sampler == "random":
        return RandomSampler(seed=seed)
    raise TrainingError(
        f"The 'sampler' parameter of tune must be one of {', '.join(map(repr, _SAMPLERS))} or an Optuna "
        f"sampler. Got {sampler!r} instead."
    )


def _trials_frame(study: optuna.Study, names: list[str]) -> pd.DataFrame:
    rows = [
        {
            "number": t.number,
            "value": t.value if t.state == TrialState.COMPLETE else np.nan,
            **{n: t.params.get(n) for n in names},
            "duration": t.duration.total_seconds() if t.duration is not None else np.nan,
        }
        for t in study.get_trials(deepcopy=False)
    ]
    return pd.DataFrame(rows, columns=["number", "value", *names, "duration"])


def tune(
    objective: Callable[[dict[str, Any]], float],
    space: Mapping[str, Mapping[str, Any]],
    *,
    n_trials: int,
    direction: str = "maximize",
    sampler: str | BaseSampler = "gp",
    seed: int | None = 0,
    study_name: str | None = None,
    storage: str | None = None,
    callback: Callable[[int, dict[str, Any], float | None, float | None], None] | None = None,
) -> TuneResult:
    """Search ``space`` for the parameters that optimize ``objective``.

    Parameters
    ----------
    objective : callable
        ``objective(params) -> float`` with ``params`` a dict of parameter values. An exception it
        raises stops the search (and is re-raised); a NaN marks the trial failed.
    space : dict
        Declared search space, checked by :func:`validate_space`.
    n_trials : int
        Trials to run now (a continued study keeps its earlier trials on top).
    direction : {"maximize", "minimize"}, default "maximize"
    sampler : {"gp", "random"} or optuna sampler, default "gp"
        ``"gp"`` is :class:`GPSampler` (8 random trials, then Bayesian optimization).
    seed : int, optional
        Seed of the sampler named by a string (a sampler object keeps its own); the same seed and
        objective give the same trials.
    study_name : str, optional
        Name of the study; with ``storage``, an existing study of that name is continued.
    storage : str, optional
        Optuna storage URL, e.g. ``Workspace.studies_uri`` (``"sqlite:///<ws>/studies.db"``);
        None keeps the study in memory.
    callback : callable, optional
        Called after each trial as ``callback(trial_number, params, value, best_value)`` (``value``
        None for a failed trial, ``best_value`` None while no trial has completed).

    Returns
    -------
    TuneResult

    Examples
    --------
    >>> space = {"x": {"type": "float", "low": -5.0, "high": 5.0}, "n": {"type": "int", "low": 1, "high": 4}}
    >>> result = tune(lambda p: -(p["x"] - 1) ** 2 - p["n"], space, n_trials=12, sampler="random")
    >>> len(result.trials)
    12
    """
    distributions = validate_space(space)
    if not _is_int(n_trials) or n_trials < 1:
        raise TrainingError(
            f"The 'n_trials' parameter of tune must be an int in [1, inf). Got {n_trials!r} instead."
        )
    if direction not in _DIRECTIONS:
        raise TrainingError(
            f"The 'direction' parameter of tune must be 'maximize' or 'minimize'. Got {direction!r} instead."
        )
    chosen = _make_sampler(sampler, seed)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _open_study(study_name, storage, chosen, direction)
        study.optimize(
            lambda trial: _value(objective({n: _suggest(trial, n, d) for n, d in distributions.items()})),
            n_trials=n_trials,
            callbacks=[_report(callback)] if callback is not None else None,
        )
    finally:
        optuna.logging.set_verbosity(verbosity)

    trials = _trials_frame(study, list(distributions))
    if not (trials["value"].notna()).any():
        raise TrainingError(
            f"No trial of study {study.study_name!r} completed (every value was NaN); check the objective."
        )
    return TuneResult(
        best_params=dict(study.best_params),
        best_value=float(study.best_value),
        trials=trials,
        study_name=study.study_name,
        storage=storage,
        direction=direction,
    )


def _open_study(name: str | None, storage: str | None, sampler: BaseSampler, direction: str) -> optuna.Study:
    """A new study, or the stored one called ``name`` (which must optimize in the same direction)."""
    from sqlalchemy.exc import SQLAlchemyError  # optuna's RDB storage is built on it
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, direction=direction, load_if_exists=True
        )
    except (SQLAlchemyError, ValueError, ImportError, RuntimeError) as exc:  # a bad URL, a missing driver
        raise TrainingError(
            f"Cannot open the study storage {storage!r}: {str(exc).splitlines()[0]}. "
            "Pass an Optuna storage URL whose folder exists, e.g. Workspace.studies_uri "
            "('sqlite:///<workspace>/studies.db')."
        ) from exc
    stored = study.direction.name.lower()
    if stored != direction:
        raise TrainingError(
            f"Study {study.study_name!r} in {storage} was created to {stored}; pass direction={stored!r} "
            "or choose another study_name."
        )
    return study


def _report(callback: Callable[[int, dict[str, Any], float | None, float | None], None]) -> Callable:
    """An Optuna study callback that calls ``callback(number, params, value, best_value)``."""

    def on_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        complete = trial.state == TrialState.COMPLETE
        try:
            best = study.best_value
        except ValueError:  # no completed trial yet
            best = None
        callback(trial.number, dict(trial.params), trial.value if complete else None, best)

    return on_trial
