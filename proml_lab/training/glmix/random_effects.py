"""Random effects: one small ridge-penalized GLM per entity, all solved together by batched Newton steps.

Rows are grouped by entity once (:func:`group_entities`: one stable argsort of the entity codes).
Entities are bucketed by row count into powers of two and each bucket becomes padded arrays
``x (E_b, m_b, p)``, ``y``, ``w (E_b, m_b)`` with zero weight on the padding. :func:`newton_solve` then
runs Newton steps on a whole bucket at once (gradient and Hessian by batched ``matmul``, ``l2 * I``
added, one batched ``solve``) with per-entity step halving whenever a step does not lower that
entity's objective. Python loops over buckets and steps only, never over entities.

Each entity minimizes ``sum_i w_i loss(y_i, z_i . beta + offset_i) + l2 / 2 ||beta||^2``; the
per-entity intercept (the last design column, a constant 1) is penalized too: it is a random effect
with prior mean 0, so an entity with few rows is shrunk towards the fixed effect, never divergent.

Active-data bounds: entities with fewer than ``lower_bound`` rows get no model (score 0); an entity
with more than ``upper_bound`` rows is fitted on a reproducible sample of ``upper_bound`` of them,
reweighted by ``n / upper_bound``. The sample is keyed by a hash of the seed, the entity and the *row
content* (:func:`row_hashes`), not by row position, so the Spark path picks the same rows.

The kernel is written over the array API (``array_api_compat``): numpy here, CuPy or torch arrays work
the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proml_lab.training.glmix.families import Family

__all__ = ["Bucket", "EntityBlocks", "entity_hashes", "group_entities", "lookup_rows", "newton_solve",
           "row_hashes", "score_rows", "solve_blocks"]

_CPU_BLOCK_BYTES = 2 << 20  # entities solved together on a CPU: their design block fits in cache
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer, vectorized (uint64 arithmetic wraps on purpose)."""
    with np.errstate(over="ignore"):
        h = (h + _GOLDEN).astype(np.uint64)
        h = (h ^ (h >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        return h ^ (h >> np.uint64(31))


def row_hashes(columns: list[np.ndarray], n: int) -> np.ndarray:
    """A uint64 hash per row of ``columns`` ((n,) or (n, k) float or uint64 arrays), order-sensitive.

    Examples
    --------
    >>> import numpy as np
    >>> a = row_hashes([np.array([1.0, 2.0, 1.0])], 3)
    >>> bool(a[0] == a[2]) and bool(a[0] != a[1])
    True
    """
    h = np.zeros(n, dtype=np.uint64)
    for col in columns:
        col = np.asarray(col)
        if col.dtype == np.uint64:  # already hashes (entity ids)
            bits = col.reshape(n, -1)
        else:
            arr = np.asarray(col, dtype=np.float64).reshape(n, -1) + 0.0  # -0.0 -> 0.0
            bits = np.ascontiguousarray(arr).view(np.uint64)
        for j in range(bits.shape[1]):
            h = _splitmix(h ^ bits[:, j])
    return h


def entity_hashes(values: np.ndarray) -> np.ndarray:
    """A stable uint64 hash per entity id (ids compare as text: ``7`` and ``"7"`` hash alike)."""
    import pandas as pd  # type: ignore[import-untyped]

    arr = np.asarray(values)
    if len(arr) == 0:
        return np.zeros(0, np.uint64)
    return pd.util.hash_array(arr.astype(str).astype(object))


@dataclass
class Bucket:
    """Entities with row counts in ``(m/2, m]``: padded arrays for one batched solve."""

    entities: np.ndarray  # (E_b,) positions in EntityBlocks.ids
    rows: np.ndarray      # (E_b, m) row indices into the data (padding points at row 0)
    x: Any                # (E_b, m, p)
    y: Any                # (E_b, m)
    w: Any                # (E_b, m): 0 on padding, n / upper_bound on sampled entities


@dataclass
class EntityBlocks:
    """The rows of one random-effect coordinate, grouped by entity once and reused by every pass."""

    ids: np.ndarray               # (E,) sorted ids of the entities that get a model
    row_entity: np.ndarray        # (n,) position of each row's entity in ids, -1 when it has none
    buckets: list[Bucket] = field(default_factory=list)
    num_features: int = 0


def group_entities(entity: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray, *,
                   lower_bound: int = 1, upper_bound: int | None = None, seed: int = 0,
                   row_keys: np.ndarray | None = None, xp: Any = None) -> EntityBlocks:
    """Group rows by ``entity`` into power-of-two buckets of padded arrays (see the module docstring).

    ``row_keys`` (uint64 per row, e.g. :func:`row_hashes`) choose the sample of an entity above
    ``upper_bound``; ``xp`` is the array namespace for the bucket arrays (numpy when ``None``).

    Examples
    --------
    >>> import numpy as np
    >>> blocks = group_entities(np.array(["a", "b", "a"]), np.ones((3, 1)), np.zeros(3), np.ones(3))
    >>> blocks.ids.tolist(), blocks.row_entity.tolist()
    (['a', 'b'], [0, 1, 0])
    """
    import pandas as pd  # type: ignore[import-untyped]

    n = len(y)
    entity = np.asarray(entity)
    codes, uniques = pd.factorize(entity, sort=True)  # np.unique's order, several times faster
    ids = np.asarray(uniques).astype(entity.dtype, copy=False)
    counts = np.bincount(codes, minlength=len(ids))
    keep = counts >= max(lower_bound, 1)
    new_pos = np.cumsum(keep) - 1
    row_entity = np.where(keep[codes], new_pos[codes], -1).astype(np.int64)
    kept_ids = ids[keep]
    scale = np.ones(len(ids))
    if upper_bound is not None and np.any(counts > upper_bound):
        keys = np.zeros(n, np.uint64) if row_keys is None else np.asarray(row_keys, np.uint64)
        with np.errstate(over="ignore"):
            salt = _splitmix(np.asarray([seed], np.uint64))[0]
            sample_key = _splitmix(keys ^ entity_hashes(ids)[codes] ^ salt)
        order = np.lexsort((sample_key, codes))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n) - starts[codes[order]]
        sampled = rank < upper_bound
        big = counts > upper_bound
        scale[big] = counts[big] / upper_bound
    else:
        order = np.argsort(codes, kind="stable")
        sampled = np.ones(n, bool)
    # rows that take part in a fit, grouped by entity (order is already grouped by code)
    order = order[(sampled & keep[codes])[order]]
    used_counts = np.bincount(codes[order], minlength=len(ids))[keep]
    starts = np.concatenate([[0], np.cumsum(used_counts)[:-1]]).astype(np.int64)
    xp = xp or np
    # one zero row appended: padding gathers it, so the padded arrays need no masking pass
    x = np.concatenate([np.asarray(x, np.float64).reshape(n, -1), np.zeros((1, np.shape(x)[1]))])
    weight = np.concatenate([np.asarray(w, np.float64) * scale[codes], [0.0]])
    y = np.concatenate([np.asarray(y, np.float64), [0.0]])
    blocks = EntityBlocks(ids=kept_ids, row_entity=row_entity, num_features=x.shape[1])
    if len(kept_ids) == 0:
        return blocks
    width = np.maximum(1, 2 ** np.ceil(np.log2(np.maximum(used_counts, 1))).astype(np.int64))
    for m in np.unique(width):
        ents = np.flatnonzero(width == m)
        offs = np.arange(m)[None, :]
        valid = offs < used_counts[ents][:, None]
        rows = np.where(valid, order[np.where(valid, starts[ents][:, None] + offs, 0)], n)
        blocks.buckets.append(Bucket(
            entities=ents, rows=np.where(valid, rows, 0),
            x=xp.asarray(np.take(x, rows, axis=0)), y=xp.asarray(np.take(y, rows)),
            w=xp.asarray(np.take(weight, rows))))
    return blocks


def newton_solve(x: Any, y: Any, w: Any, offset: Any, beta: Any, family: Family, *, l2: float,
                 steps: int = 10, tol: float = 1e-8) -> tuple[Any, int]:
    """Batched penalized Newton: minimize each entity's objective over ``beta`` (E, p); returns
    ``(beta, steps taken)``.

    ``x`` (E, m, p), ``y``, ``w``, ``offset`` (E, m); any array-API namespace.

    Examples
    --------
    >>> import numpy as np
    >>> from proml_lab.training.glmix.families import get_family
    >>> x = np.ones((1, 2, 1)); y = np.array([[1.0, 3.0]]); w = np.ones((1, 2))
    >>> beta, k = newton_solve(x, y, w, np.zeros((1, 2)), np.zeros((1, 1)), get_family("linear"), l2=0.0)
    >>> round(float(beta[0, 0]), 9)
    2.0
    """
    from array_api_compat import array_namespace

    xp = array_namespace(x, beta)
    p = x.shape[2]
    eye = xp.eye(p, dtype=x.dtype)
    xt = xp.permute_dims(x, (0, 2, 1))

    def objective(b: Any) -> tuple[Any, Any]:
        eta = xp.matmul(x, b[:, :, None])[:, :, 0] + offset
        return xp.sum(w * family.loss(y, eta), axis=1) + 0.5 * l2 * xp.sum(b * b, axis=1), eta

    f, eta = objective(beta)
    taken = 0
    for _ in range(steps):
        taken += 1
        d1, d2 = family.derivatives(y, eta)
        grad = xp.matmul(xt, (w * d1)[:, :, None])[:, :, 0] + l2 * beta
        # (x * w d2)^T x: the transposed view of a contiguous array keeps batched matmul on BLAS
        hess = xp.matmul(xp.permute_dims(x * (w * d2)[:, :, None], (0, 2, 1)), x) + l2 * eye
        hess = hess + 1e-12 * eye  # keeps an all-zero design (l2 = 0) solvable
        delta = xp.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        t = xp.ones(f.shape, dtype=x.dtype)
        for _halving in range(30):
            cand = beta - t[:, None] * delta
            f_new, eta_new = objective(cand)
            worse = f_new > f + 1e-12 * (1.0 + xp.abs(f))
            if not bool(xp.any(worse)):
                break
            t = xp.where(worse, t * 0.5, t)
        else:  # an entity that cannot improve keeps its coefficients
            t = xp.where(worse, xp.zeros_like(t), t)
            cand = beta - t[:, None] * delta
            f_new, eta_new = objective(cand)
        move = float(xp.max(xp.abs(t[:, None] * delta))) if delta.shape[0] else 0.0
        beta, f, eta = cand, f_new, eta_new
        if move <= tol:
            break
    return beta, taken


def solve_blocks(blocks: EntityBlocks, offset: np.ndarray, family: Family, *, l2: float,
                 init: np.ndarray | None = None, steps: int = 10,
                 tol: float = 1e-8) -> tuple[np.ndarray, int]:
    """Solve every entity of ``blocks`` with residual ``offset`` (n,); returns ``(coefficients (E, p),
    Newton steps summed over buckets)``. ``init`` (E, p) warm-starts the solve.

    A bucket is solved in one batch on a GPU namespace and in cache-sized blocks of entities on a CPU
    (numpy); every block converges on its own, so warm-started passes stop early where they can.

    Examples
    --------
    >>> import numpy as np
    >>> from proml_lab.training.glmix.families import get_family
    >>> b = group_entities(np.array([1, 1, 2]), np.ones((3, 1)), np.array([1.0, 3.0, 5.0]), np.ones(3))
    >>> coef, _ = solve_blocks(b, np.zeros(3), get_family("linear"), l2=1e-9)
    >>> np.round(coef[:, 0], 6).tolist()
    [2.0, 5.0]
    """
    from array_api_compat import array_namespace, is_numpy_namespace

    coefs = np.zeros((len(blocks.ids), blocks.num_features))
    if init is not None:
        coefs[:] = init
    total = 0
    offset = np.asarray(offset, np.float64)
    for bucket in blocks.buckets:
        xp = array_namespace(bucket.x)
        e_b, m, p = bucket.x.shape
        # On a CPU, blocks of entities whose arrays fit in cache run ~2.5x faster than one huge batch
        # (the temporaries stop streaming through memory); a GPU wants the whole bucket at once.
        step = max(1, _CPU_BLOCK_BYTES // (8 * m * max(p, 1))) if is_numpy_namespace(xp) else e_b
        taken = 0
        for lo in range(0, e_b, step):
            hi = min(lo + step, e_b)
            ents = bucket.entities[lo:hi]
            beta, k = newton_solve(bucket.x[lo:hi], bucket.y[lo:hi], bucket.w[lo:hi],
                                   xp.asarray(offset[bucket.rows[lo:hi]]), xp.asarray(coefs[ents]), family,
                                   l2=l2, steps=steps, tol=tol)
            coefs[ents] = np.asarray(beta)
            taken = max(taken, k)
        total += taken
    return coefs, total


def score_rows(row_entity: np.ndarray, z: np.ndarray, coefs: np.ndarray) -> np.ndarray:
    """``z_i . coefs[row_entity_i]`` per row; rows whose entity has no model (-1) score 0."""
    hit = row_entity >= 0
    out = np.zeros(len(row_entity))
    if coefs.shape[0]:
        c = coefs[np.where(hit, row_entity, 0)]
        out = np.where(hit, np.einsum("ij,ij->i", z, c), 0.0)
    return out


def lookup_rows(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each ``wanted`` id in the sorted ``ids`` (-1 when absent), vectorized."""
    ids = np.asarray(ids)
    want = np.asarray(wanted)
    if len(ids) == 0:
        return np.full(len(want), -1, np.int64)
    if ids.dtype.kind != want.dtype.kind and not (ids.dtype.kind in "iu" and want.dtype.kind in "iu"):
        ids, want = ids.astype(str), want.astype(str)  # ids of different kinds compare as text
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
    else:
        order = np.arange(len(ids))
    pos = np.clip(np.searchsorted(ids, want), 0, len(ids) - 1)
    hit = ids[pos] == want
    return np.where(hit, order[pos], -1).astype(np.int64)
