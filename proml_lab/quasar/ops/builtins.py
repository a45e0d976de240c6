"""Built-in Quasar operators: each a vectorized numpy implementation plus its declared signature.

Built-ins register through the same decorator plugins use. Trainable operators read their learned
``state`` (a mapping, or a Booster / Keras model) and never train here: training lives in
``proml_lab.training``.
"""

from __future__ import annotations

import weakref
import zlib
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from proml_lab.quasar.errors import QuasarParamError, QuasarTypeError
from proml_lab.quasar.ops.registry import DOUBLE, Arg, OpParams, QType, lazy_import, operator

NUM = ("double",)
NUMVEC = ("double", "Vector")
ANY = ("double", "Vector", "String", "Categorical", "List")


def _col(x: Any) -> np.ndarray:
    """One numeric column: a (n, 1) vector reads as (n,)."""
    a = np.asarray(x, dtype=np.float64)
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


def _matrix(columns: list[np.ndarray]) -> np.ndarray:
    """Stack numeric columns (doubles and vectors) side by side into an (n, d) float matrix."""
    parts = [np.asarray(c, dtype=np.float64) for c in columns]
    parts = [p[:, None] if p.ndim == 1 else p for p in parts]
    return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))


def _dim(t: QType) -> int | None:
    return 1 if t.name == "double" else t.dim


# ---- arithmetic and logic (what the expression syntax compiles to) -----------------------------------


def _arith_type(types: dict[str, Any], _: dict[str, Any]) -> QType:
    shapes = [t for t in types.values() if isinstance(t, QType)]
    vectors = [t for t in shapes if t.name == "Vector" and t.dim != 1]
    if not vectors:
        return DOUBLE
    dims = sorted({t.dim for t in vectors if t.dim is not None})
    if len(dims) > 1:
        listing = " and ".join(str(t) for t in vectors)
        raise QuasarTypeError(f"cannot combine vectors of different dimensions: {listing}")
    return QType("Vector", dims[0] if dims else None)


def _binary(name: str, fn: Any, arg_types: tuple[str, ...] = NUMVEC) -> None:
    def impl(left: Any, right: Any) -> np.ndarray:
        lhs, rhs = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
        if lhs.ndim == 2 and lhs.shape[1] == 1 and rhs.ndim <= 1:
            lhs = lhs[:, 0]
        if rhs.ndim == 2 and rhs.shape[1] == 1 and lhs.ndim <= 1:
            rhs = rhs[:, 0]
        if lhs.ndim == 1 and rhs.ndim == 2:
            lhs = lhs[:, None]
        if rhs.ndim == 1 and lhs.ndim == 2:
            rhs = rhs[:, None]
        return np.asarray(fn(lhs, rhs), dtype=np.float64)

    impl.__name__ = name.lower()
    operator(name, args=[Arg("left", types=arg_types), Arg("right", types=arg_types)],
             output=_arith_type if arg_types == NUMVEC else DOUBLE)(impl)


_ARITHMETIC: list[tuple[str, Any]] = [("Add", np.add), ("Sub", np.subtract), ("Mul", np.multiply),
                                       ("Div", np.divide)]
for _name, _fn in _ARITHMETIC:
    _binary(_name, _fn)
_LOGIC: list[tuple[str, Any]] = [("Lt", np.less), ("Le", np.less_equal),
                   ("Gt", np.greater), ("Ge", np.greater_equal),
                   ("And", lambda a, b: (a != 0) & (b != 0)), ("Or", lambda a, b: (a != 0) | (b != 0))]
for _name, _fn in _LOGIC:
    _binary(_name, _fn, NUM)


@operator("Eq", args=[Arg("left", types=ANY), Arg("right", types=ANY)], output="double")
def eq(left: Any, right: Any) -> np.ndarray:
    return (_values(left) == _values(right)).astype(np.float64)


@operator("Ne", args=[Arg("left", types=ANY), Arg("right", types=ANY)], output="double")
def ne(left: Any, right: Any) -> np.ndarray:
    return (_values(left) != _values(right)).astype(np.float64)


def _values(x: Any) -> Any:
    a = np.asarray(x)
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


@operator("Identity", args=[Arg("x", types=ANY)], output=lambda t, p: t["x"])
def identity(x: np.ndarray) -> np.ndarray:
    return np.asarray(x)


@operator("Constant", args=[Arg("value", "literal")], output="double")
def constant(value: float) -> np.ndarray:
    """A number; the engine broadcasts it (constant scope) to the rows it needs."""
    return np.asarray(value, dtype=np.float64)


@operator("Neg", args=[Arg("x", types=NUMVEC)], output=lambda t, p: t["x"])
def neg(x: np.ndarray) -> np.ndarray:
    return -np.asarray(x, dtype=np.float64)


@operator("Not", args=[Arg("x")], output="double")
def not_(x: np.ndarray) -> np.ndarray:
    return (_col(x) == 0).astype(np.float64)


# ---- elementwise ------------------------------------------------------------------------------------


@operator("Log1p", args=[Arg("x", types=NUMVEC)], output=lambda t, p: t["x"])
def log1p(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(x, dtype=np.float64))


@operator("Exp", args=[Arg("x", types=NUMVEC)], output=lambda t, p: t["x"])
def exp(x: np.ndarray) -> np.ndarray:
    return np.exp(np.asarray(x, dtype=np.float64))


@operator("Abs", args=[Arg("x", types=NUMVEC)], output=lambda t, p: t["x"])
def abs_(x: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(x, dtype=np.float64))


@operator("Sigmoid", args=[Arg("x", types=NUMVEC)], output=lambda t, p: t["x"])
def sigmoid(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


class ClipParams(OpParams):
    min: float | None = None
    max: float | None = None


@operator("Clip", args=[Arg("x", types=NUMVEC), Arg("params", "params", optional=True)],
          output=lambda t, p: t["x"], params=ClipParams)
def clip(x: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
    p = params or {}
    return np.clip(np.asarray(x, dtype=np.float64), p.get("min"), p.get("max"))


# ---- similarities -------------------------------------------------------------------------------------


def _vectors(x: Any) -> np.ndarray:
    """A 2-D float matrix; float32 stays float32 (embeddings are usually stored that way)."""
    a = np.asarray(x)
    if a.dtype != np.float32:
        a = a.astype(np.float64, copy=False)
    return np.atleast_2d(a)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _vectors(a), _vectors(b)
    dots = _dot(a, b)
    norms = np.sqrt(_squared_norms(a) * _squared_norms(b))
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


# Row norms of read-only matrices (a memory-mapped forward index, a frozen candidate set) do not change
# between requests: compute them once per array object. Writeable arrays are never cached.
_NORMS: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _squared_norms(x: np.ndarray) -> np.ndarray:
    cacheable = not x.flags.writeable and not _repeated(x) and len(x) >= 1024
    if cacheable:
        hit = _NORMS.get(id(x))
        if hit is not None and hit[0]() is x:
            return hit[1]
    out = _dot(x, x)
    if cacheable:
        key = id(x)
        try:
            ref = weakref.ref(x, lambda _, key=key: _NORMS.pop(key, None))
        except TypeError:  # not weak-referenceable: just do not cache
            return out
        if len(_NORMS) >= 64:
            _NORMS.clear()
        out.flags.writeable = False
        _NORMS[key] = (ref, out)
    return out


def _repeated(x: np.ndarray) -> bool:
    """One row broadcast to every candidate (the engine's single-query view, stride 0)."""
    return x.ndim == 2 and len(x) > 1 and x.strides[0] == 0


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products as float64. The arithmetic runs in the candidates' precision: a float32
    embedding matrix is read as float32 (half the memory traffic; relative error ~1e-7), never copied
    to float64."""
    a, b = _vectors(a), _vectors(b)
    # einsum, not BLAS: a BLAS matrix-vector product leaves OpenBLAS threads spinning, which slows the
    # OpenMP tree scoring that usually follows on small machines.
    if _repeated(a) and _repeated(b):
        return np.full(len(a), float(np.dot(a[0].astype(np.float64), b[0].astype(np.float64))))
    if _repeated(a):  # a member vector against every candidate, without materializing it n times
        a, b = b, a
    if _repeated(b):
        return np.einsum("ij,j->i", a, b[0].astype(a.dtype)).astype(np.float64, copy=False)
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    return np.einsum("ij,ij->i", a, b).astype(np.float64, copy=False)  # row-wise, no (n, d) temporaries


@operator("CosineSimilarity", args=[Arg("a", types=("Vector",)), Arg("b", types=("Vector",))],
          output="double")
def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cosine(a, b)


@operator("DotProduct", args=[Arg("a", types=("Vector",)), Arg("b", types=("Vector",))], output="double")
def dot_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _dot(a, b)


def _similarity_type(types: dict[str, Any], options: dict[str, Any]) -> QType:
    return QType("Vector", len(types["left"]))


def _similarity_check(bound: dict[str, Any]) -> None:
    if len(bound["left"]) != len(bound["right"]):
        raise QuasarParamError(f"SimilarityFeatureProducer pairs its two lists item by item; got "
                               f"{len(bound['left'])} and {len(bound['right'])} items")
    options = bound.get("options")
    if options is not None:
        kind = options[1] if isinstance(options, list) and len(options) > 1 else None
        if not isinstance(options, list) or kind not in ("", "cosine", "dot"):
            raise QuasarParamError(f"The 'options' parameter of SimilarityFeatureProducer must be a list "
                                   f"[name, \"cosine\" | \"dot\", {{...}}]. Got {options!r} instead.")


@operator("SimilarityFeatureProducer",
          args=[Arg("left", "nodes", ("Vector",)), Arg("right", "nodes", ("Vector",)),
                Arg("options", "literal", optional=True)],
          output=_similarity_type, validate=_similarity_check)
def similarity_feature_producer(left: list[np.ndarray], right: list[np.ndarray],
                                options: list[Any] | None = None) -> np.ndarray:
    """One similarity per (left[i], right[i]) pair; ``options[1]`` is ``"cosine"`` (default) or ``"dot"``."""
    kind = options[1] if options and len(options) > 1 and options[1] else "cosine"
    if kind not in ("cosine", "dot"):
        raise ValueError(f"SimilarityFeatureProducer: unknown similarity {kind!r}; allowed: cosine, dot")
    sim = _cosine if kind == "cosine" else _dot
    return np.stack([sim(a, b) for a, b in zip(left, right, strict=False)], axis=1)


@operator("Jaccard", args=[Arg("a", types=("List",)), Arg("b", types=("List",))], output="double")
def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a), dtype=np.float64)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):  # sets have no columnar form; lists are short
        sx, sy = set(x if x is not None else ()), set(y if y is not None else ())
        union = len(sx | sy)
        out[i] = len(sx & sy) / union if union else 0.0
    return out


# ---- encodings --------------------------------------------------------------------------------------


class OneHotParams(OpParams):
    categories: list[str] = Field(min_length=1)


@operator("OneHot", args=[Arg("x", types=("Categorical", "String")), Arg("params", "params")],
          output=lambda t, p: QType("Vector", len(p["params"]["categories"])), params=OneHotParams)
def one_hot(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    cats = np.asarray(params["categories"], dtype=object)
    return (np.asarray(x, dtype=object)[:, None] == cats[None, :]).astype(np.float64)


class HashParams(OpParams):
    buckets: int = Field(ge=1)


@operator("Hash", args=[Arg("x", types=("Categorical", "String", "double")), Arg("params", "params")],
          output="Categorical", params=HashParams)
def hash_(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    n = params["buckets"]  # crc32: stable across processes, unlike hash()
    return np.array([str(zlib.crc32(str(v).encode()) % n) for v in np.asarray(x, dtype=object)], dtype=object)


class BucketizeParams(OpParams):
    boundaries: list[float] = Field(min_length=1)

    @field_validator("boundaries")
    @classmethod
    def _sorted(cls, v: list[float]) -> list[float]:
        if v != sorted(v):
            raise ValueError("must be sorted ascending")
        return v


@operator("Bucketize", args=[Arg("x"), Arg("params", "params")], output="Categorical", params=BucketizeParams)
def bucketize(x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    idx = np.searchsorted(np.asarray(params["boundaries"]), _col(x), side="right")
    return idx.astype(str).astype(object)


@operator("Cross", args=[Arg("a", types=("Categorical", "String")),
                         Arg("b", types=("Categorical", "String"))],
          output="Categorical")
def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add(np.asarray(a, str), "_x_"), np.asarray(b, str)).astype(object)


def _concat_type(types: dict[str, Any], _: dict[str, Any]) -> QType:
    dims = [_dim(t) for t in types["parts"]]
    return QType("Vector", None if None in dims else sum(d for d in dims if d is not None))


@operator("Concat", args=[Arg("parts", "nodes", NUMVEC)], output=_concat_type)
def concat(parts: list[np.ndarray]) -> np.ndarray:
    return _matrix(parts)


class ProjectionParams(OpParams):
    dim: int = Field(ge=1)


@operator("Projection", args=[Arg("x", types=("Vector",)), Arg("params", "params")],
          output=lambda t, p: QType("Vector", p["params"]["dim"]), trainable=True, params=ProjectionParams)
def projection(x: np.ndarray, params: dict[str, Any], state: dict[str, Any]) -> np.ndarray:
    """``x @ state["weights"]`` (+ ``state["bias"]``); weights are (d_in, dim)."""
    out = np.asarray(x, np.float64) @ np.asarray(state["weights"], np.float64)
    return out + np.asarray(state.get("bias", 0.0), np.float64)


operator("MatMul", args=[Arg("x", types=("Vector",)), Arg("params", "params")],
         output=lambda t, p: QType("Vector", p["params"]["dim"]), trainable=True,
         params=ProjectionParams)(projection)


class EmbeddingParams(OpParams):
    dim: int = Field(ge=1)


@operator("EmbeddingLookup", args=[Arg("key", types=("Categorical", "String")), Arg("params", "params")],
          output=lambda t, p: QType("Vector", p["params"]["dim"]), trainable=True, params=EmbeddingParams)
def embedding_lookup(key: np.ndarray, params: dict[str, Any], state: dict[str, Any]) -> np.ndarray:
    """``state = {"keys": [...], "table": (k, dim)}``; an unknown key reads as zeros."""
    return _lookup(state["keys"], np.asarray(state["table"], np.float64), np.asarray(key, dtype=object))


def _lookup(keys: Any, table: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows of *table* for *wanted* keys (vectorized through a sorted key index); missing -> zeros."""
    want = np.asarray(wanted)
    as_text = want.dtype.kind not in "iu" or np.asarray(keys).dtype.kind not in "iu"
    sorted_keys, order = _key_index(keys, as_text)
    if as_text:  # ids of different kinds (or strings) compare as text
        want = want.astype(str, copy=False) if len(want) else np.zeros(0, str)
    pos = np.clip(np.searchsorted(sorted_keys, want), 0, max(len(sorted_keys) - 1, 0))
    hit = (sorted_keys[pos] == want) if len(sorted_keys) else np.zeros(len(want), bool)
    out = np.zeros((len(want), table.shape[1]), dtype=np.float64)
    out[hit] = table[order[pos[hit]]]
    return out


# A state's coefficient tables are looked up on every request: index each key array once.
_KEY_INDEX: dict[tuple[int, bool], tuple[Any, np.ndarray, np.ndarray]] = {}


def _key_index(keys: Any, as_text: bool) -> tuple[np.ndarray, np.ndarray]:
    if len(keys) <= 64:  # a request's own small table (one member's row): cheap, and caching would evict
        arr = np.asarray(keys)  # the large tables that are worth keeping
        arr = arr.astype(str) if as_text else arr
        order = np.argsort(arr, kind="stable")
        return arr[order], order
    cached = _KEY_INDEX.get((id(keys), as_text))
    if cached is not None and cached[0] is keys:
        return cached[1], cached[2]
    arr = np.asarray(keys)
    arr = arr.astype(str) if as_text else arr
    order = np.argsort(arr, kind="stable")
    if len(_KEY_INDEX) > 256:
        _KEY_INDEX.clear()
    _KEY_INDEX[(id(keys), as_text)] = (keys, arr[order], order)
    return arr[order], order


# ---- scorers ----------------------------------------------------------------------------------------


class LinearParams(OpParams):
    l1: float = Field(default=0.0, ge=0)
    l2: float = Field(default=0.0, ge=0)


def _linear(features: list[np.ndarray], state: dict[str, Any]) -> np.ndarray:
    """``state = {"coefficients": (d,), "intercept": float}``."""
    coefficients = np.asarray(state["coefficients"], np.float64)
    return _matrix(features) @ coefficients + float(state.get("intercept", 0.0))


@operator("LinearScorer", args=[Arg("features", "nodes", NUMVEC), Arg("params", "params", optional=True)],
          output="double", trainable=True, params=LinearParams)
def linear_scorer(features: list[np.ndarray], state: dict[str, Any], params: Any = None) -> np.ndarray:
    return _linear(features, state)


@operator("LogisticScorer", args=[Arg("features", "nodes", NUMVEC), Arg("params", "params", optional=True)],
          output="double", trainable=True, params=LinearParams)
def logistic_scorer(features: list[np.ndarray], state: dict[str, Any], params: Any = None) -> np.ndarray:
    return sigmoid(_linear(features, state))


class TreeParams(OpParams):
    num_trees: int = Field(default=100, ge=1)
    max_depth: int = Field(default=6, ge=1, le=32)
    learning_rate: float = Field(default=0.3, gt=0, le=1)
    objective: Literal["binary:logistic", "reg:squarederror", "rank:pairwise", "rank:ndcg"] = (
        "binary:logistic")


@operator("TreeEnsemble", args=[Arg("features", "nodes", NUMVEC), Arg("params", "params", optional=True)],
          output="double", trainable=True, params=TreeParams, extra="train")
def tree_ensemble(features: list[np.ndarray], state: Any, params: Any = None) -> np.ndarray:
    """The ensemble's margin; ``state`` is an ``xgboost.Booster``.

    The features go column by column into one C-contiguous float32 matrix (what XGBoost predicts on
    natively) and through ``Booster.inplace_predict(..., predict_type="margin")``: no DMatrix, no
    float64 copy.
    """
    lazy_import("xgboost", None)
    parts = [np.asarray(c) for c in features]
    if len(parts) == 1 and parts[0].ndim == 2 and parts[0].dtype == np.float32 and \
            parts[0].flags.c_contiguous:
        x = parts[0]  # already the matrix XGBoost wants
    else:
        widths = [1 if p.ndim == 1 else p.shape[1] for p in parts]
        n = len(parts[0]) if parts else 0
        x = np.empty((n, sum(widths)), dtype=np.float32)
        j = 0
        for part, w in zip(parts, widths, strict=True):
            x[:, j:j + w] = part[:, None] if part.ndim == 1 else part
            j += w
    return np.asarray(state.inplace_predict(x, predict_type="margin"), dtype=np.float64).reshape(-1)


@operator("DecisionTreesScorer", args=[Arg("model", "model", ("double",))], output="double",
          default_model="TreeEnsemble")
def decision_trees_scorer(model: np.ndarray) -> np.ndarray:
    """The score of a tree ensemble: its margin (a scorer names *which* model feeds the ranking)."""
    return _col(model)


class GLMixParams(OpParams):
    per_member: list[Any] = Field(default_factory=list)
    per_document: list[Any] = Field(default_factory=list)
    offset: Any = None
    family: Literal["logistic", "linear", "poisson"] = "logistic"
    l1: float = Field(default=0.0, ge=0)
    l2: float = Field(default=1.0, ge=0)
    per_member_l2: float | None = Field(default=None, ge=0)    # default: l2
    per_document_l2: float | None = Field(default=None, ge=0)  # default: l2
    lower_bound: int = Field(default=1, ge=1)         # fewer rows than this: no per-entity model
    upper_bound: int | None = Field(default=None, ge=1)  # more rows: a reproducible, reweighted sample
    passes: int = Field(default=2, ge=1)              # coordinate-descent passes
    max_iter: int = Field(default=100, ge=1)          # fixed-effect solver iterations


@operator("GLMix", args=[Arg("features", "nodes", ("double", "Vector", "Categorical")),
                         Arg("params", "params")],
          output="double", trainable=True, params=GLMixParams, needs_ids=True,
          node_params={"per_member": "nodes", "per_document": "nodes", "offset": "node"})
def glmix(features: list[np.ndarray], params: dict[str, Any], state: dict[str, Any],
          ids: dict[str, np.ndarray]) -> np.ndarray:
    """Fixed margin + per-member coefficients . per-member design + per-document ones (+ offset).

    ``state`` is ``{"fixed": {"coefficients": (d,), "intercept": float}, "vocabularies": {...},
    "per_member": {"ids": [...], "coefficients": (m, d_m)}, "per_document": {...}}``; a categorical
    column is one-hot encoded with its vocabulary under ``vocabularies["<part>.<i>"]``; an id missing
    from a table contributes 0 (its coefficients are the prior mean).
    """
    vocab = state.get("vocabularies", {})
    fixed = state["fixed"]
    score = _design(features, vocab, "features") @ np.asarray(fixed["coefficients"], np.float64)
    score = score + float(fixed.get("intercept", 0.0))
    for part, entity in (("per_member", "member"), ("per_document", "document")):
        table = state.get(part)
        if table and params.get(part):
            design = _design(params[part], vocab, part)
            coefs = np.asarray(table["coefficients"], np.float64)
            if entity == "member" and "member_of_query" in ids:  # one look-up per query, not per row
                per_query = _lookup(table["ids"], coefs, ids["member_of_query"])
                qi = ids["query_index"]
                coefs = (np.broadcast_to(per_query[0], (len(qi), per_query.shape[1])) if len(per_query) == 1
                         else per_query.take(qi, axis=0))
            else:
                coefs = _lookup(table["ids"], coefs, ids[entity])
            score = score + np.einsum("ij,ij->i", design, coefs)
    if params.get("offset") is not None:
        score = score + _col(params["offset"])
    return score


def _design(columns: list[np.ndarray], vocab: dict[str, list[str]], part: str) -> np.ndarray:
    numeric = []
    for i, col in enumerate(columns):
        arr = np.asarray(col)
        if arr.dtype == object or arr.dtype.kind in "US":
            cats = np.asarray(vocab.get(f"{part}.{i}", []), dtype=object)
            numeric.append((arr.astype(object)[:, None] == cats[None, :]).astype(np.float64))
        else:
            numeric.append(arr)
    return _matrix(numeric)


class KerasParams(OpParams):
    hidden: list[int] = Field(default_factory=lambda: [64])
    epochs: int = Field(default=5, ge=1)


@operator("KerasModel", args=[Arg("features", "nodes", NUMVEC), Arg("params", "params", optional=True)],
          output="double", trainable=True, params=KerasParams, extra="deep")
def keras_model(features: list[np.ndarray], state: Any, params: Any = None) -> np.ndarray:
    """``state`` is a Keras model with one output."""
    lazy_import("keras", "deep")
    return np.asarray(state.predict(_matrix(features), verbose=0), dtype=np.float64).reshape(-1)
