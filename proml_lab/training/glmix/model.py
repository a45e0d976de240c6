"""The GLMix specification, design-matrix assembly and the fitted :class:`GLMixModel`.

A fitted model scores ``x . beta + b`` (or an external fixed margin) plus, for every random effect,
the coefficients of the row's entity dotted with that effect's design (its features, then a constant
1 when the effect has an intercept), plus the offset. An entity without coefficients contributes 0.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from proml_lab.errors import TrainingError
from proml_lab.training.glmix.families import get_family
from proml_lab.training.glmix.random_effects import lookup_rows, score_rows

__all__ = ["GLMixModel", "GLMixSpec", "RandomEffect", "design_matrix", "validate_spec"]

_FORMAT = 1


@dataclass(frozen=True)
class RandomEffect:
    """One random-effect coordinate: per-entity coefficients over ``features`` (+ an intercept).

    Examples
    --------
    >>> RandomEffect("per_member", "member_id", ("job_remote",), l2=2.0).intercept
    True
    """

    name: str
    entity: str
    features: tuple[str, ...]
    l2: float = 1.0
    lower_bound: int = 1
    upper_bound: int | None = None
    intercept: bool = True


@dataclass(frozen=True)
class GLMixSpec:
    """What to fit: the family, the fixed-effect features and penalties, the random effects, the solver.

    Examples
    --------
    >>> spec = GLMixSpec(features=("x",), random_effects=(RandomEffect("per_member", "member_id", ("x",)),))
    >>> spec.family, spec.passes
    ('logistic', 2)
    """

    family: str = "logistic"
    features: tuple[str, ...] = ()
    l2: float = 1.0
    l1: float = 0.0
    random_effects: tuple[RandomEffect, ...] = ()
    passes: int = 2
    max_iter: int = 100
    newton_steps: int = 10
    tol: float = 1e-8
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GLMixSpec:
        """The spec written by :meth:`to_dict`."""
        data = dict(data)
        effects = tuple(RandomEffect(**{**e, "features": tuple(e["features"])})
                        for e in data.pop("random_effects", ()))
        return cls(**{**data, "features": tuple(data.get("features", ())), "random_effects": effects})


# Declared constraints, checked once by the entry verbs: (owner, name, kind, low, low inclusive).
_RULES: tuple[tuple[str, str, type, float, bool], ...] = (
    ("GLMixSpec", "l2", float, 0.0, True), ("GLMixSpec", "l1", float, 0.0, True),
    ("GLMixSpec", "passes", int, 1, True), ("GLMixSpec", "max_iter", int, 1, True),
    ("GLMixSpec", "newton_steps", int, 1, True), ("GLMixSpec", "tol", float, 0.0, True),
    ("GLMixSpec", "seed", int, 0, True),
    ("RandomEffect", "l2", float, 0.0, False), ("RandomEffect", "lower_bound", int, 1, True),
    ("RandomEffect", "upper_bound", int, 1, True),
)


def _check(owner: str, obj: Any, name: str, kind: type, low: float, inclusive: bool) -> None:
    value = getattr(obj, name)
    if owner == "RandomEffect" and name == "upper_bound" and value is None:
        return
    ok_type = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    ok = ok_type and np.isfinite(value) and (value >= low if inclusive else value > low)
    if not ok:
        bracket = "[" if inclusive else "("
        what = "a float" if kind is float else "an int"
        raise TrainingError(f"The {name!r} parameter of {owner} must be {what} in {bracket}{low}, inf). "
                            f"Got {value!r} instead.")


def validate_spec(spec: GLMixSpec) -> None:
    """Raise a :class:`TrainingError` for any parameter of ``spec`` outside its declared range."""
    get_family(spec.family)
    for owner, name, kind, low, inclusive in _RULES:
        targets = [spec] if owner == "GLMixSpec" else list(spec.random_effects)
        for obj in targets:
            _check(owner, obj, name, kind, low, inclusive)
    owners: list[tuple[str, tuple[str, ...]]] = [("GLMixSpec", spec.features)]
    owners += [("RandomEffect", e.features) for e in spec.random_effects]
    for owner, feats in owners:
        if isinstance(feats, str) or not all(isinstance(f, str) for f in feats):
            raise TrainingError(f"The 'features' parameter of {owner} must be a tuple of column names. "
                                f"Got {feats!r} instead.")
    names = [e.name for e in spec.random_effects]
    if len(set(names)) != len(names):
        raise TrainingError(f"random-effect names must be unique; got {names}")


def design_matrix(df: pd.DataFrame, columns: tuple[str, ...] | list[str], *,
                  what: str = "features") -> tuple[np.ndarray, list[str]]:
    """The float (n, d) design of ``columns``: numeric columns as they are, vector columns expanded.

    A vector column (object column of equal-length arrays) named ``v`` of width k becomes
    ``v_0 .. v_{k-1}``. Missing columns, NaN and non-numeric values raise a :class:`TrainingError`
    naming the column.

    Examples
    --------
    >>> import pandas as pd
    >>> x, names = design_matrix(pd.DataFrame({"a": [1, 2], "v": [[0.5, 1.0], [2.0, 3.0]]}), ["a", "v"])
    >>> x.tolist(), names
    ([[1.0, 0.5, 1.0], [2.0, 2.0, 3.0]], ['a', 'v_0', 'v_1'])
    """
    n = len(df)
    parts: list[np.ndarray] = []
    names: list[str] = []
    for col in columns:
        if col not in df.columns:
            raise TrainingError(f"column {col!r} (listed in {what}) is missing from the data; add it or "
                                "remove it from the spec", node=col)
        series = df[col]
        if series.dtype == object:
            arr = _vector_column(series, col)
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            arr = series.to_numpy(dtype=np.float64, na_value=np.nan).reshape(n, 1)
        else:
            raise TrainingError(f"column {col!r} is not numeric (dtype {series.dtype}); encode it as numbers "
                                "or a vector column", node=col)
        bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
        if bad:
            raise TrainingError(f"column {col!r} has {bad} row(s) with NaN or infinite values; fill or drop "
                                "them before fitting", node=col)
        parts.append(arr)
        names.extend([col] if series.dtype != object else [f"{col}_{i}" for i in range(arr.shape[1])])
    x = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
    return np.ascontiguousarray(x, dtype=np.float64), names


def _vector_column(series: pd.Series, col: str) -> np.ndarray:
    values = series.to_list()
    if any(v is None for v in values):
        raise TrainingError(f"column {col!r} has missing (None) vectors; fill or drop them before fitting",
                            node=col)
    try:
        arr = np.asarray([np.asarray(v, dtype=np.float64).reshape(-1) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise TrainingError(f"column {col!r} holds non-numeric values or vectors of different lengths; "
                            "a feature must be numeric or a vector of one fixed length", node=col) from None
    return arr.reshape(len(values), -1)


def effect_design(df: pd.DataFrame, effect: RandomEffect) -> tuple[np.ndarray, list[str]]:
    """A random effect's design: its features, then a column of ones when it has an intercept."""
    z, names = design_matrix(df, effect.features, what=f"random effect {effect.name!r}")
    if effect.intercept:
        z = np.concatenate([z, np.ones((len(df), 1))], axis=1)
        names = [*names, "intercept"]
    return z, names


def entity_values(df: pd.DataFrame, effect: RandomEffect) -> np.ndarray:
    """The entity ids of ``effect`` as an array; a missing column or missing id raises."""
    if effect.entity not in df.columns:
        raise TrainingError(f"entity column {effect.entity!r} of random effect {effect.name!r} is missing "
                            "from the data", node=effect.entity)
    values = df[effect.entity]
    if values.isna().any():
        raise TrainingError(f"entity column {effect.entity!r} has {int(values.isna().sum())} missing id(s); "
                            "drop those rows or give them an id", node=effect.entity)
    arr = values.to_numpy()
    return arr.astype(str) if arr.dtype == object else arr


class GLMixModel:
    """A fitted GLMix model (made by :func:`~proml_lab.training.glmix.fit_glmix`).

    Attributes: ``spec``; ``fixed_`` ``{"features", "coefficients", "intercept", "external"}``;
    ``effects_`` name -> ``{"entity", "features", "ids", "coefficients", "intercept"}``; ``history_``
    (one dict per pass); ``best_pass_``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> m = GLMixModel(GLMixSpec(family="linear", features=("x",)),
    ...                fixed={"features": ["x"], "coefficients": np.array([2.0]), "intercept": 1.0})
    >>> m.predict_margin(pd.DataFrame({"x": [0.0, 1.0]})).tolist()
    [1.0, 3.0]
    """

    def __init__(self, spec: GLMixSpec, *, fixed: dict[str, Any],
                 effects: dict[str, dict[str, Any]] | None = None,
                 history: list[dict[str, Any]] | None = None, best_pass: int = 0,
                 offset: str | None = None) -> None:
        self.spec = spec
        self.fixed_ = {"external": False, **fixed}
        self.effects_ = effects or {}
        self.history_ = history or []
        self.best_pass_ = best_pass
        self.offset_ = offset

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}: {len(v['ids'])} entities" for k, v in self.effects_.items())
        fixed = len(self.fixed_["coefficients"])
        return f"GLMixModel(family={self.spec.family!r}, fixed={fixed} coef, {sizes})"

    # ---- scoring ---------------------------------------------------------------------------------------

    def fixed_margin(self, df: pd.DataFrame) -> np.ndarray:
        """The fixed-effect margin ``x . beta + b`` of each row of ``df``."""
        if self.fixed_["external"]:
            raise TrainingError("this model was fitted on an external fixed margin; pass fixed_margin= "
                                "(the outside model's margin for these rows) to score it")
        x, names = design_matrix(df, self.spec.features, what="fixed-effect features")
        if names != list(self.fixed_["features"]):
            raise TrainingError(f"the fixed-effect design of these rows is {names} but the model was fitted "
                                f"on {list(self.fixed_['features'])}; vector features must keep their width")
        return x @ np.asarray(self.fixed_["coefficients"], np.float64) + float(self.fixed_["intercept"])

    def effect_margin(self, df: pd.DataFrame, name: str) -> np.ndarray:
        """Random effect ``name``'s contribution per row (0 for an entity without coefficients)."""
        table = self._table(name)
        effect = next(e for e in self.spec.random_effects if e.name == name)
        z, _ = effect_design(df, effect)
        return score_rows(lookup_rows(table["ids"], entity_values(df, effect)), z, table["coefficients"])

    def predict_margin(self, df: pd.DataFrame, *, fixed_margin: np.ndarray | None = None) -> np.ndarray:
        """The linear predictor per row: fixed margin (or ``fixed_margin``) + random effects + offset.

        The offset is the column the model was fitted with (``fit_glmix(offset=...)``), added when
        ``df`` has it. An entity without coefficients (unseen, or below ``lower_bound``) adds 0.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> m = GLMixModel(GLMixSpec(family="linear"), fixed={"features": [], "coefficients": np.zeros(0),
        ...                "intercept": 0.5})
        >>> m.predict_margin(pd.DataFrame({"a": [1, 2]}), fixed_margin=np.array([1.0, 2.0])).tolist()
        [1.0, 2.0]
        """
        if fixed_margin is not None:
            score = np.asarray(fixed_margin, np.float64).reshape(-1).copy()
            if len(score) != len(df):
                raise TrainingError(f"fixed_margin has {len(score)} values for {len(df)} rows; "
                                    "give one per row")
        else:
            score = self.fixed_margin(df)
        for name in self.effects_:
            score += self.effect_margin(df, name)
        if self.offset_ is not None and self.offset_ in df.columns:
            score += design_matrix(df, [self.offset_], what="offset")[0][:, 0]
        return score

    def predict(self, df: pd.DataFrame, *, fixed_margin: np.ndarray | None = None) -> np.ndarray:
        """The family mean (probability, value or rate) per row."""
        family = get_family(self.spec.family)
        return np.asarray(family.mean(self.predict_margin(df, fixed_margin=fixed_margin)))

    # ---- tables and state ------------------------------------------------------------------------------

    def _table(self, name: str) -> dict[str, Any]:
        try:
            return self.effects_[name]
        except KeyError:
            raise TrainingError(f"unknown random effect {name!r}; this model has "
                                f"{', '.join(self.effects_) or 'none'}") from None

    def coefficient_table(self, name: str) -> pd.DataFrame:
        """One row per entity: the entity id, then one column per coefficient (``intercept`` last).

        Examples
        --------
        >>> import numpy as np
        >>> spec = GLMixSpec(random_effects=(RandomEffect("per_member", "member_id", ("x",)),))
        >>> m = GLMixModel(spec, fixed={"features": [], "coefficients": np.zeros(0), "intercept": 0.0},
        ...                effects={"per_member": {"entity": "member_id", "features": ["x", "intercept"],
        ...                         "ids": np.array([7]), "coefficients": np.array([[0.5, -1.0]]),
        ...                         "intercept": True}})
        >>> m.coefficient_table("per_member").columns.tolist()
        ['member_id', 'x', 'intercept']
        """
        table = self._table(name)
        frame = pd.DataFrame(np.asarray(table["coefficients"], np.float64).reshape(len(table["ids"]), -1),
                             columns=list(table["features"]))
        frame.insert(0, table["entity"], np.asarray(table["ids"]))
        return frame

    def to_quasar_state(self) -> dict[str, Any]:
        """The state the Quasar ``GLMix`` operator reads.

        Effects named ``per_member`` / ``per_document`` become those tables. The operator has no
        implicit intercept: an effect with ``intercept=True`` stores it as its *last* coefficient, so
        the program lists a constant ``1`` last in that design, e.g. ``"per_member": [job_remote, 1]``.

        Examples
        --------
        >>> import numpy as np
        >>> m = GLMixModel(GLMixSpec(), fixed={"features": ["x"], "coefficients": np.array([1.0]),
        ...                                    "intercept": 0.0})
        >>> m.to_quasar_state()["fixed"]
        {'coefficients': [1.0], 'intercept': 0.0}
        """
        state: dict[str, Any] = {"fixed": {"coefficients": np.asarray(self.fixed_["coefficients"]).tolist(),
                                           "intercept": float(self.fixed_["intercept"])}}
        for name, table in self.effects_.items():
            ids = np.asarray(table["ids"])
            state[name] = {"ids": ids.tolist(), "coefficients": np.asarray(table["coefficients"], np.float64)}
        return state

    # ---- persistence -----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to directory ``path`` atomically (``spec.json``, ``fixed.json``,
        ``coefficients/<name>.parquet``); an existing model there is replaced."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            history = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in h.items()}
                       for h in self.history_]  # strict JSON: NaN (no validation) as null
            meta = {"format": _FORMAT, "spec": self.spec.to_dict(), "history": history,
                    "best_pass": self.best_pass_, "offset": self.offset_,
                    "effects": {k: {"entity": v["entity"], "features": list(v["features"]),
                                    "intercept": bool(v["intercept"])} for k, v in self.effects_.items()}}
            (tmp / "spec.json").write_text(json.dumps(meta, indent=2, allow_nan=False))
            fixed = {"features": list(self.fixed_["features"]), "intercept": float(self.fixed_["intercept"]),
                     "coefficients": np.asarray(self.fixed_["coefficients"], np.float64).tolist(),
                     "external": bool(self.fixed_["external"])}
            (tmp / "fixed.json").write_text(json.dumps(fixed, indent=2))
            (tmp / "coefficients").mkdir()
            for name in self.effects_:
                table = self.coefficient_table(name)
                table.columns = ["id", *[f"c{i}" for i in range(table.shape[1] - 1)]]
                table.to_parquet(tmp / "coefficients" / f"{name}.parquet", index=False)
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GLMixModel:
        """The model :meth:`save` wrote to ``path``."""
        root = Path(path)
        if not (root / "spec.json").is_file():
            raise TrainingError(f"no GLMix model at {root} (spec.json is missing)")
        meta = json.loads((root / "spec.json").read_text())
        fixed = json.loads((root / "fixed.json").read_text())
        fixed["coefficients"] = np.asarray(fixed["coefficients"], np.float64)
        effects = {}
        for name, info in meta["effects"].items():
            table = pd.read_parquet(root / "coefficients" / f"{name}.parquet")
            coefs = table.drop(columns=["id"]).to_numpy(np.float64).reshape(len(table), len(info["features"]))
            effects[name] = {**info, "ids": table["id"].to_numpy(), "coefficients": coefs}
        history = [{k: (float("nan") if v is None else v) for k, v in h.items()} for h in meta["history"]]
        return cls(GLMixSpec.from_dict(meta["spec"]), fixed=fixed, effects=effects, history=history,
                   best_pass=meta["best_pass"], offset=meta.get("offset"))
