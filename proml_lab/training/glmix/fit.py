"""Coordinate descent for GLMix: fixed effect, then each random effect, K passes, best pass kept.

Each coordinate is fitted with the other coordinates' current scores as a fixed offset (residual
offsets). The loop (:func:`coordinate_descent`) only talks to a *backend* that owns the data and the
scores: :class:`LocalBackend` here (numpy), ``SparkBackend`` in :mod:`.spark`; both use the same
solvers, so they produce the same model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from proml_lab.errors import TrainingError
from proml_lab.training.glmix.families import Family, get_family
from proml_lab.training.glmix.fixed import fit_fixed
from proml_lab.training.glmix.model import (
    GLMixModel,
    GLMixSpec,
    RandomEffect,
    design_matrix,
    effect_design,
    entity_values,
    validate_spec,
)
from proml_lab.training.glmix.random_effects import (
    EntityBlocks,
    group_entities,
    lookup_rows,
    row_hashes,
    score_rows,
    solve_blocks,
)

__all__ = ["LocalBackend", "coordinate_descent", "fit_glmix", "validation_metric"]

Callback = Callable[[dict[str, Any]], None]


class Backend(Protocol):
    """What the coordinate-descent loop needs from where the data lives."""

    fixed_names: list[str]
    effect_names: dict[str, list[str]]

    def fit_fixed(self, init: tuple[np.ndarray, float] | None) -> tuple[np.ndarray, float]: ...

    def fit_effect(self, effect: RandomEffect, init: tuple[np.ndarray, np.ndarray] | None
                   ) -> tuple[np.ndarray, np.ndarray]: ...

    def train_loss(self) -> float: ...


# ---- validation metrics ----------------------------------------------------------------------------


def validation_metric(family: str, y: np.ndarray, margin: np.ndarray) -> float:
    """AUC (logistic), RMSE (linear) or mean Poisson deviance (poisson) of ``margin`` against ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> validation_metric("logistic", np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.3, 0.2]))
    0.75
    """
    y = np.asarray(y, np.float64)
    if family == "logistic":
        from scipy.stats import rankdata

        pos = y == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        ranks = rankdata(margin)
        return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    mean = np.asarray(get_family(family).mean(margin))
    if family == "linear":
        return float(np.sqrt(np.mean((mean - y) ** 2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mean), 0.0)
    return float(np.mean(2.0 * (term - (y - mean))))


def _better(family: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    if np.isnan(new) or np.isnan(old):
        return bool(np.isnan(old) and not np.isnan(new))
    return new > old if family == "logistic" else new < old


# ---- the loop --------------------------------------------------------------------------------------


def coordinate_descent(spec: GLMixSpec, backend: Backend, *, offset: str | None,
                       external_fixed: bool, validate: Callable[[GLMixModel], float] | None,
                       callback: Callback | None) -> GLMixModel:
    """Run ``spec.passes`` passes over the coordinates of ``backend``; return the best pass's model."""
    fixed: tuple[np.ndarray, float] | None = None
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    history: list[dict[str, Any]] = []
    best: tuple[float | None, GLMixModel | None] = (None, None)
    emit = callback or (lambda event: None)

    def snapshot(pass_no: int) -> GLMixModel:
        beta, b = fixed if fixed is not None else (np.zeros(0), 0.0)
        effects = {e.name: {"entity": e.entity, "features": list(backend.effect_names[e.name]),
                            "ids": tables[e.name][0].copy(), "coefficients": tables[e.name][1].copy(),
                            "intercept": e.intercept} for e in spec.random_effects if e.name in tables}
        return GLMixModel(spec, fixed={"features": [] if external_fixed else list(backend.fixed_names),
                                       "coefficients": np.array(beta), "intercept": float(b),
                                       "external": external_fixed},
                          effects=effects, history=list(history), best_pass=pass_no, offset=offset)

    for pass_no in range(1, spec.passes + 1):
        started = time.perf_counter()
        coordinates: list[RandomEffect | None] = [] if external_fixed else [None]
        coordinates += list(spec.random_effects)
        metric = float("nan")
        for effect in coordinates:
            t0 = time.perf_counter()
            if effect is None:
                fixed = backend.fit_fixed(fixed)
            else:
                tables[effect.name] = backend.fit_effect(effect, tables.get(effect.name))
            metric = validate(snapshot(pass_no)) if validate is not None else float("nan")
            emit({"event": "coordinate", "pass": pass_no,
                  "coordinate": "fixed" if effect is None else effect.name,
                  "train_loss": backend.train_loss(), "validation_metric": metric,
                  "seconds": time.perf_counter() - t0})
        entry = {"pass": pass_no, "train_loss": backend.train_loss(), "validation_metric": metric,
                 "seconds": time.perf_counter() - started}
        history.append(entry)
        emit({"event": "pass", **entry})
        score = metric if validate is not None else float(pass_no)  # no validation: the last pass wins
        if _better(spec.family if validate is not None else "logistic", score, best[0]):
            best = (score, snapshot(pass_no))
    model = best[1]
    assert model is not None
    model.history_ = history
    return model


# ---- the local backend -----------------------------------------------------------------------------


def _labels(df: pd.DataFrame, label: str, family: Family) -> np.ndarray:
    if label not in df.columns:
        raise TrainingError(f"label column {label!r} is missing from the data; pass label= the column that "
                            "holds the labels", node=label)
    y = design_matrix(df, [label], what="the label")[0][:, 0] if df[label].dtype != object else None
    if y is None:
        raise TrainingError(f"label column {label!r} is not numeric", node=label)
    family.validate_labels(y)
    return y


def _weights(df: pd.DataFrame, weight: str | None) -> np.ndarray:
    if weight is None:
        return np.ones(len(df))
    w = design_matrix(df, [weight], what="the weight")[0][:, 0]
    if np.any(w < 0):
        raise TrainingError(f"weight column {weight!r} has negative weights; weights must be >= 0",
                            node=weight)
    return w


class LocalBackend:
    """All data in memory as numpy arrays; entities grouped once, scores kept per coordinate."""

    def __init__(self, df: pd.DataFrame, spec: GLMixSpec, *, label: str, weight: str | None,
                 offset: str | None, fixed_margin: np.ndarray | None) -> None:
        if len(df) == 0:
            raise TrainingError("the training data has no rows")
        self.spec = spec
        self.family = get_family(spec.family)
        self.y = _labels(df, label, self.family)
        self.w = _weights(df, weight)
        self.offset = (np.zeros(len(df)) if offset is None
                       else design_matrix(df, [offset], what="the offset")[0][:, 0])
        self.fixed_names: list[str] = []
        self.x = np.zeros((len(df), 0))
        if fixed_margin is None:
            self.x, self.fixed_names = design_matrix(df, spec.features, what="fixed-effect features")
            self.scores = {"fixed": np.zeros(len(df))}
        else:
            margin = np.asarray(fixed_margin, np.float64).reshape(-1)
            if len(margin) != len(df) or not np.all(np.isfinite(margin)):
                raise TrainingError(f"fixed_margin must hold one finite value per training row ({len(df)}); "
                                    f"got {len(margin)} values")
            self.scores = {"fixed": margin}
        self.z: dict[str, np.ndarray] = {}
        self.effect_names: dict[str, list[str]] = {}
        entities = {e.name: entity_values(df, e) for e in spec.random_effects}
        for e in spec.random_effects:
            self.z[e.name], self.effect_names[e.name] = effect_design(df, e)
            self.scores[e.name] = np.zeros(len(df))
        keys = row_content_keys(self.y, self.w, self.offset, self.x,
                                [self.z[e.name] for e in spec.random_effects],
                                [entities[e.name] for e in spec.random_effects])
        self.blocks: dict[str, EntityBlocks] = {
            e.name: group_entities(entities[e.name], self.z[e.name], self.y, self.w,
                                   lower_bound=e.lower_bound, upper_bound=e.upper_bound, seed=spec.seed,
                                   row_keys=keys)
            for e in spec.random_effects}
        self.newton_steps: dict[str, list[int]] = {e.name: [] for e in spec.random_effects}

    def _offset_without(self, coordinate: str) -> np.ndarray:
        total = self.offset.copy()
        for name, s in self.scores.items():
            if name != coordinate:
                total += s
        return total

    def fit_fixed(self, init: tuple[np.ndarray, float] | None) -> tuple[np.ndarray, float]:
        spec = self.spec
        res = fit_fixed(self.x, self.y, self.family, weights=self.w, offset=self._offset_without("fixed"),
                        l2=spec.l2, l1=spec.l1, max_iter=spec.max_iter, tol=spec.tol, init=init)
        self.scores["fixed"] = self.x @ res.coefficients + res.intercept
        return res.coefficients, res.intercept

    def fit_effect(self, effect: RandomEffect, init: tuple[np.ndarray, np.ndarray] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        blocks = self.blocks[effect.name]
        start = None
        if init is not None:
            start = init[1][blocks_index(init[0], blocks.ids)] if len(init[0]) else None
        coefs, steps = solve_blocks(blocks, self._offset_without(effect.name), self.family, l2=effect.l2,
                                    init=start, steps=self.spec.newton_steps, tol=self.spec.tol)
        self.newton_steps[effect.name].append(steps)
        self.scores[effect.name] = score_rows(blocks.row_entity, self.z[effect.name], coefs)
        return blocks.ids, coefs

    def train_loss(self) -> float:
        eta = self.offset + sum(self.scores.values())
        return float(self.w @ self.family.loss(self.y, eta) / max(self.w.sum(), 1e-300))


def blocks_index(prev_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of a previous coefficient table for ``ids`` (ids are the same set, pass after pass)."""
    pos = lookup_rows(prev_ids, ids)
    if np.any(pos < 0):
        raise TrainingError("internal error: a warm start misses entities")  # pragma: no cover
    return pos


def row_content_keys(y: np.ndarray, w: np.ndarray, offset: np.ndarray, x: np.ndarray, zs: list[np.ndarray],
                     entities: list[np.ndarray]) -> np.ndarray:
    """The per-row hash that picks upper-bound samples: the row's content, never its position, so
    every backend samples the same rows."""
    from proml_lab.training.glmix.random_effects import entity_hashes

    ent = [entity_hashes(e) for e in entities]
    return row_hashes([y, w, offset, x, *zs, *ent], len(y))


# ---- the entry verb --------------------------------------------------------------------------------


def _validator(validation: pd.DataFrame | None, spec: GLMixSpec, label: str,
               margin: np.ndarray | None) -> Callable[[GLMixModel], float] | None:
    if validation is None:
        return None
    y = _labels(validation, label, get_family(spec.family))
    def metric(model: GLMixModel) -> float:
        return validation_metric(spec.family, y, model.predict_margin(validation, fixed_margin=margin))

    return metric


def fit_glmix(train: pd.DataFrame, spec: GLMixSpec, *, label: str = "label", weight: str | None = None,
              offset: str | None = None, validation: pd.DataFrame | None = None,
              callback: Callback | None = None, fixed_margin: np.ndarray | None = None,
              validation_fixed_margin: np.ndarray | None = None) -> GLMixModel:
    """Fit a GLMix model on an in-memory DataFrame by coordinate descent.

    ``fixed_margin`` replaces the fixed effect by an outside model's margin per training row (then
    ``validation_fixed_margin`` gives it for the validation rows). ``callback`` receives one dict per
    coordinate (``event="coordinate"``) and per pass (``event="pass"``). With ``validation`` the pass
    with the best metric (AUC / RMSE / Poisson deviance) is kept, otherwise the last one.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=400), "member_id": rng.integers(0, 20, 400)})
    >>> df["label"] = (df.x + (df.member_id % 2) + rng.normal(size=400) > 0.5).astype(int)
    >>> spec = GLMixSpec(features=("x",), random_effects=(RandomEffect("per_member", "member_id", ()),))
    >>> model = fit_glmix(df, spec)
    >>> model.coefficient_table("per_member").shape
    (20, 2)
    """
    validate_spec(spec)
    if fixed_margin is not None and validation is not None and validation_fixed_margin is None:
        raise TrainingError("fit_glmix got fixed_margin but validation has none; pass "
                            "validation_fixed_margin= (the outside model's margin for the validation rows)")
    backend = LocalBackend(train, spec, label=label, weight=weight, offset=offset, fixed_margin=fixed_margin)
    validate = _validator(validation, spec, label, validation_fixed_margin)
    model = coordinate_descent(spec, backend, offset=offset, external_fixed=fixed_margin is not None,
                               validate=validate, callback=callback)
    model.newton_steps_ = backend.newton_steps  # type: ignore[attr-defined]
    return model
