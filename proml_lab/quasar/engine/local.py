"""The local columnar engine: a Quasar IR evaluated over numpy column batches of many queries at once.

A :class:`QueryBatch` holds Q queries: member (and request) columns with one row per query, document
columns for all N candidates of all queries concatenated, and ``query_index`` saying which query each
candidate row belongs to. :meth:`LocalEngine.rank` evaluates

* only the nodes the output reaches (lazy: an unreachable untrained node never raises);
* constant / request / member-scope nodes once per query (arrays of length Q), broadcast to the
  candidates with ``take(query_index)`` when a document-scope node reads them;
* document-scope nodes vectorized over the candidates of the current phase: after
  ``KEEP TOP n DOCUMENTS BY x`` only the kept rows flow on, and each document-scope node is computed
  in the latest phase that still serves every node that reads it (so an expensive node declared
  before a ``KEEP`` but read only after it runs on the kept rows only);
* list nodes with whole-batch array operations (one ``lexsort`` on ``(query, key)``, ranks within
  groups from cumulative counts); nothing loops over rows or queries.

>>> import numpy as np
>>> from proml_lab.quasar.ir import compile
>>> ir = compile('''INPUT DOCUMENT double x;
... ranked = ORDER DOCUMENTS BY x WITH DESC;
... RETURN ranked;''')
>>> batch = QueryBatch(documents={"x": np.array([1.0, 3.0, 2.0, 5.0, 4.0])},
...                    query_index=np.array([0, 0, 0, 1, 1]))
>>> [rows.tolist() for rows in LocalEngine(ir).rank(batch).per_query()]
[[1, 2, 0], [3, 4]]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proml_lab.quasar import ir as irm
from proml_lab.quasar.errors import QuasarError
from proml_lab.quasar.ops.registry import Operator, get_operator, run_operator

__all__ = ["LocalEngine", "QueryBatch", "RankResult"]

_PER_QUERY = ("constant", "request", "member")
_LIST_KINDS = (irm.Order, irm.Top, irm.Filter, irm.Diversify, irm.Keep, irm.Return)


# ---- batch and result ----------------------------------------------------------------------------------


@dataclass
class QueryBatch:
    """Many ranking queries, columnar.

    ``member`` / ``request``: feature name -> array with one row per query (length Q);
    ``documents``: feature name -> array for all candidates of all queries (length N);
    ``query_index``: length N, the query of each candidate row (0 .. Q-1; grouped by query is the fast
    path, any order is accepted); ``member_ids`` (length Q) and ``document_ids`` (length N) for the
    operators that look coefficients up by entity id (GLMix). ``num_queries`` is needed only when no
    member or request column says how many queries there are (otherwise ``max(query_index) + 1``).
    Vectors are float arrays ``(n, d)``; strings / categoricals are object or str arrays.
    """

    documents: Mapping[str, Any]
    query_index: Any
    member: Mapping[str, Any] = field(default_factory=dict)
    request: Mapping[str, Any] | None = None
    member_ids: Any = None
    document_ids: Any = None
    num_queries: int | None = None


@dataclass
class RankResult:
    """The ranked lists of a batch, flattened: one entry per returned (query, document) pair.

    Rows are grouped by query (ascending) and in rank order within a query. ``document_rows`` index
    the batch's original candidate arrays; ``scores`` is the ORDER key of each row (NaN when the
    returned list was never ordered); ``explain`` maps node ids to their values for the returned rows
    (only with ``rank(..., explain=True)``).
    """

    query_index: np.ndarray
    positions: np.ndarray
    document_rows: np.ndarray
    scores: np.ndarray
    num_queries: int
    explain: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.document_rows)

    def per_query(self) -> list[np.ndarray]:
        """The ranked candidate rows of each query (a list of Q arrays, empty for a query with none)."""
        bounds = np.searchsorted(self.query_index, np.arange(self.num_queries + 1))
        return [self.document_rows[bounds[q]:bounds[q + 1]] for q in range(self.num_queries)]

    def to_pandas(self) -> Any:
        """A DataFrame: ``query``, ``position``, ``document_row``, ``score`` and one column per explained
        node (vectors as lists)."""
        import pandas as pd  # type: ignore[import-untyped]

        data: dict[str, Any] = {"query": self.query_index, "position": self.positions,
                                "document_row": self.document_rows, "score": self.scores}
        for node_id, values in self.explain.items():
            arr = np.asarray(values)
            data[node_id] = list(arr) if arr.ndim > 1 else arr
        return pd.DataFrame(data)


# ---- the engine ----------------------------------------------------------------------------------------


@dataclass
class _Value:
    """A computed value node: its array and the phase whose rows it is aligned with (documents only)."""

    array: Any
    scope: str
    phase: int = 0


@dataclass
class _List:
    """A ranked list: positions in its phase's rows, grouped by query, in list order; its ORDER key.

    A one-query ORDER is left *pending* (``descending`` set, rows not yet sorted): a TOP that reads it
    selects its n rows with a partition and sorts only those; any other reader sorts it first.
    """

    rows: np.ndarray
    phase: int
    score: np.ndarray | None = None
    descending: bool | None = None
    whole: bool = False  # rows is every row of its phase, in order (arange)

    def take(self, values: np.ndarray) -> np.ndarray:
        """*values* (aligned with the phase's rows) for this list's rows."""
        return values if self.whole else values[self.rows]


class LocalEngine:
    """Evaluates one compiled :class:`~proml_lab.quasar.ir.IR` over :class:`QueryBatch` es.

    ``state`` maps trainable nodes (their ``state_ref``, or their id) to the learned state the
    operator reads (e.g. ``{"coefficients": ..., "intercept": ...}`` for ``LinearScorer``).
    """

    def __init__(self, ir: irm.IR, *, state: Mapping[str, Any] | None = None) -> None:
        self.ir = ir
        self.state = dict(state or {})
        self._by_id = {n.id: n for n in ir.nodes}
        reach = ir.reachable()
        self._reach = reach
        self._ops: dict[str, Operator] = {
            n.id: get_operator(n.op) for n in (self._by_id[i] for i in reach)
            if isinstance(n, irm.Op | irm.Trainable)}
        self._plan = self._make_plan(reach)

    # ---- planning (once per engine) -------------------------------------------------------------------

    def _list_phase(self, node_id: str, memo: dict[str, int]) -> int:
        """Phase of the rows a list node's output lives in (KEEP k outputs phase k)."""
        if node_id in memo:
            return memo[node_id]
        node = self._by_id[node_id]
        if isinstance(node, irm.Keep):
            phase = self._source_phase(node.params["source"], memo) + 1
        else:
            phase = self._source_phase(node.params["source"], memo)
        memo[node_id] = phase
        return phase

    def _source_phase(self, source: Any, memo: dict[str, int]) -> int:
        if isinstance(source, dict) and "$ref" in source:
            return self._list_phase(source["$ref"], memo)
        return 0  # {"$documents": null}: all candidates

    def _make_plan(self, reach: list[str]) -> list[tuple[str, int]]:
        """(node id, phase) in evaluation order: by phase, KEEP last within its phase, then topologically.

        A list node is evaluated in the phase of its source's rows (a KEEP in its source's phase); a
        value node in the smallest phase any reader needs it in (readers pull it, never push it later).
        """
        memo: dict[str, int] = {}
        position = {node_id: k for k, node_id in enumerate(reach)}
        needed: dict[str, int] = {}
        for node_id in reach:
            node = self._by_id[node_id]
            if isinstance(node, _LIST_KINDS):
                src = node.params.get("source")
                needed[node_id] = self._source_phase(src, memo)
        for node_id in reversed(reach):  # readers come after what they read
            node = self._by_id[node_id]
            for dep in node.inputs:
                if isinstance(self._by_id[dep], _LIST_KINDS):
                    continue
                phase = needed.get(node_id, 0)
                needed[dep] = min(needed.get(dep, phase), phase)
        plan = sorted(reach, key=lambda i: (needed.get(i, 0), isinstance(self._by_id[i], irm.Keep),
                                            position[i]))
        return [(i, needed.get(i, 0)) for i in plan]

    # ---- ranking ----------------------------------------------------------------------------------------

    def rank(self, batch: QueryBatch, *, explain: bool = False,
             state: Mapping[str, Any] | None = None) -> RankResult:
        """Rank every query of *batch*; see :class:`RankResult`.

        ``state`` replaces the engine's state of some trainable nodes for this call only (the serving
        path passes the requesting member's coefficient rows read from the online store).
        """
        run = _Run(self, batch, state)
        out = run.evaluate()
        return run.result(out, explain=explain)


class _Run:
    """One evaluation of the engine's plan over one batch."""

    def __init__(self, engine: LocalEngine, batch: QueryBatch,
                 state: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self.batch = batch
        self.state = {**engine.state, **state} if state else engine.state
        qi = np.asarray(batch.query_index)
        if qi.ndim != 1:
            raise QuasarError(f"query_index must be one-dimensional; got shape {qi.shape}")
        if qi.size and not np.issubdtype(qi.dtype, np.integer):
            raise QuasarError(f"query_index must hold integers; got dtype {qi.dtype}")
        qi = qi.astype(np.int64, copy=False)
        self.n = len(qi)
        self.q = self._num_queries(batch, qi)
        if self.n and (qi.min() < 0 or qi.max() >= self.q):
            raise QuasarError(f"query_index values must lie in 0 .. {self.q - 1} (the batch has {self.q} "
                              f"queries); got {qi.min()} .. {qi.max()}")
        # grouped by query (stable) once; every later array is in this order
        if self.n > 1 and np.any(qi[1:] < qi[:-1]):
            self.order0: np.ndarray | None = np.argsort(qi, kind="stable")
            qi = qi[self.order0]
        else:
            self.order0 = None
        self.phase_rows: list[np.ndarray] = [np.arange(self.n)]  # phase k rows as phase-0 positions
        self.phase_qi: list[np.ndarray] = [qi]
        self.values: dict[str, _Value] = {}
        self.lists: dict[str, _List] = {}
        self._check_inputs()

    # ---- batch checks -----------------------------------------------------------------------------------

    def _num_queries(self, batch: QueryBatch, qi: np.ndarray) -> int:
        lengths = {}
        for scope, cols in (("member", batch.member), ("request", batch.request or {})):
            for name, col in cols.items():
                lengths[f"{scope} column {name!r}"] = len(col)
        if batch.member_ids is not None:
            lengths["member_ids"] = len(batch.member_ids)
        if batch.num_queries is not None:
            lengths["num_queries"] = int(batch.num_queries)
        distinct = set(lengths.values())
        if len(distinct) > 1:
            listing = ", ".join(f"{k}: {v}" for k, v in lengths.items())
            raise QuasarError(f"the per-query columns of the batch disagree on the number of queries "
                              f"({listing})")
        if distinct:
            return distinct.pop()
        return int(qi.max()) + 1 if len(qi) else 0

    def _check_inputs(self) -> None:
        batch = self.batch
        missing: dict[str, list[str]] = {}
        for node_id in self.engine._reach:
            node = self.engine._by_id[node_id]
            if not isinstance(node, irm.Input):
                continue
            cols = self._columns(node.scope)
            if cols is None or node.feature not in cols:
                missing.setdefault(node.scope, []).append(node.feature)
        if missing:
            parts = [f"{scope.upper()} scope: {', '.join(repr(f) for f in names)}"
                     for scope, names in missing.items()]
            raise QuasarError(f"the batch has no column for input feature(s) at {'; '.join(parts)}")
        for name, col in batch.documents.items():
            if len(col) != self.n:
                raise QuasarError(f"document column {name!r} has {len(col)} rows but query_index has "
                                  f"{self.n} (one per candidate)")
        if batch.document_ids is not None and len(batch.document_ids) != self.n:
            raise QuasarError(f"document_ids has {len(batch.document_ids)} rows but query_index has "
                              f"{self.n} (one per candidate)")

    def _columns(self, scope: str) -> Mapping[str, Any] | None:
        return {"member": self.batch.member, "request": self.batch.request,
                "document": self.batch.documents}.get(scope)

    # ---- evaluation -------------------------------------------------------------------------------------

    def evaluate(self) -> _List:
        by_id = self.engine._by_id
        for node_id, phase in self.engine._plan:
            node = by_id[node_id]
            if isinstance(node, irm.Input):
                self.values[node_id] = self._input(node)
            elif isinstance(node, irm.Op | irm.Trainable):
                self.values[node_id] = self._op(node, phase)
            elif isinstance(node, irm.Keep):
                self._keep(node)
            else:
                self.lists[node_id] = self._list(node)
        out = self.lists[self.engine.ir.output]
        return out if out.descending is None else _sorted(out)

    def _input(self, node: irm.Input) -> _Value:
        cols = self._columns(node.scope)
        assert cols is not None
        arr = _as_column(cols[node.feature], node.type)
        if node.scope == "document":
            if self.order0 is not None:
                arr = arr[self.order0]
            return _Value(arr, "document", 0)
        return _Value(arr, node.scope)

    def _at(self, node_id: str, scope: str, phase: int) -> Any:
        """The value of *node_id* shaped for a reader of *scope* in *phase* (broadcast / subset)."""
        v = self.values[node_id]
        arr = v.array
        if scope == "constant":
            return arr
        if v.scope == "document":
            if v.phase != phase:
                arr = arr[self._translate(v.phase, phase)]
                self.values[node_id] = _Value(arr, "document", phase)  # later readers reuse the subset
            return arr
        if v.scope == "constant":
            a = np.asarray(arr)
            n = self.q if scope in _PER_QUERY else len(self.phase_qi[phase])
            return np.full(n, a) if a.ndim == 0 else np.broadcast_to(a, (n, *a.shape)).copy()
        if scope == "document":  # one value per query -> one per candidate
            arr, qi = np.asarray(arr), self.phase_qi[phase]
            if self.q == 1 and arr.ndim > 1:  # one query: a read-only view, no (n, d) copy; ops that
                return np.broadcast_to(arr[0], (len(qi), *arr.shape[1:]))  # see stride 0 use it once
            return arr.take(qi, axis=0)
        return arr

    def _translate(self, src: int, dst: int) -> np.ndarray:
        """Positions of phase *dst*'s rows within phase *src*'s rows (dst >= src; both ascending)."""
        if dst < src:
            raise AssertionError(f"a value of phase {src} read in the earlier phase {dst}")
        if src == 0:  # phase 0 is every row: positions are the rows themselves
            return self.phase_rows[dst]
        return np.searchsorted(self.phase_rows[src], self.phase_rows[dst])

    def _op(self, node: irm.Op | irm.Trainable, phase: int) -> _Value:
        op = self.engine._ops[node.id]
        scope = node.scope
        n = None if scope == "constant" else (self.q if scope in _PER_QUERY else len(self.phase_qi[phase]))

        def value(v: Any, in_list: bool = False) -> Any:
            if isinstance(v, dict) and "$ref" in v:
                return self._at(v["$ref"], scope, phase)
            if in_list and isinstance(v, int | float) and n is not None:
                return np.full(n, float(v))
            return v

        bound: dict[str, Any] = {}
        for arg in op.args:
            if arg.name not in node.params:
                continue
            raw = node.params[arg.name]
            if arg.kind in ("node", "model"):
                bound[arg.name] = value(raw)
            elif arg.kind == "nodes":
                bound[arg.name] = [value(v, True) for v in raw]
            elif arg.kind == "params" and isinstance(raw, dict):
                resolved = dict(raw)
                for key, kind in op.node_params.items():
                    if key in resolved and resolved[key] is not None:
                        resolved[key] = ([value(v, True) for v in resolved[key]] if kind == "nodes"
                                         else value(resolved[key], True))
                bound[arg.name] = resolved
            else:
                bound[arg.name] = raw
        state = None
        if isinstance(node, irm.Trainable):
            state = self.state.get(node.state_ref, self.state.get(node.id))
        ids = self._ids(scope, phase) if op.needs_ids else None
        try:
            out = run_operator(op, bound, state=state, ids=ids, node_id=node.id)
        except KeyError as err:
            if op.needs_ids and err.args and err.args[0] in ("member", "document"):
                raise QuasarError(f"node {node.id!r} ({op.name}) needs {err.args[0]}_ids in the "
                                  f"QueryBatch") from None
            raise
        out = np.asarray(out)
        if n is not None and (out.ndim == 0 or len(out) != n):
            got = "a scalar" if out.ndim == 0 else f"{len(out)} rows"
            raise QuasarError(f"operator {op.name} (node {node.id!r}, {scope.upper()} scope) returned {got}; "
                              f"expected {n}")
        return _Value(out, scope, phase)

    def _ids(self, scope: str, phase: int) -> dict[str, np.ndarray]:
        ids: dict[str, np.ndarray] = {}
        b = self.batch
        if b.member_ids is not None:
            m = np.asarray(b.member_ids)
            ids["member"] = m.take(self.phase_qi[phase]) if scope == "document" else m
            if scope == "document":  # per-member tables can be read once per query, then gathered
                ids["member_of_query"], ids["query_index"] = m, self.phase_qi[phase]
        if b.document_ids is not None and scope == "document":
            d = np.asarray(b.document_ids)
            if self.order0 is not None:
                d = d[self.order0]
            ids["document"] = d[self.phase_rows[phase]]
        return ids

    # ---- list nodes --------------------------------------------------------------------------------------

    def _source(self, source: Any, *, pending_ok: bool = False) -> _List:
        if isinstance(source, dict) and "$ref" in source:
            src = self.lists[source["$ref"]]
            return src if pending_ok or src.descending is None else _sorted(src)
        return _List(np.arange(self.n), 0, whole=True)

    def _key(self, ref: Any, phase: int) -> np.ndarray:
        arr = np.asarray(self._at(ref["$ref"], "document", phase))
        return arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr

    def _list(self, node: irm.IRNode) -> _List:
        src = self._source(node.params["source"], pending_ok=isinstance(node, irm.Top))
        rows, phase = src.rows, src.phase
        qi = src.take(self.phase_qi[phase])
        if isinstance(node, irm.Return):
            return src
        if isinstance(node, irm.Order):
            key = np.asarray(src.take(self._key(node.params["by"], phase)), dtype=np.float64)
            order = _List(rows, phase, key, node.params.get("direction", "DESC") == "DESC")
            return order if len(qi) and qi[0] == qi[-1] else _sorted(order, qi)
        if isinstance(node, irm.Top):
            n = int(node.params["n"])
            if src.descending is not None:  # a pending one-query ORDER: select n, sort only those
                assert src.score is not None
                pick = _stable_top(src.score, n, src.descending)
                return _List(rows[pick], phase, src.score[pick])
            keep = _rank_in_groups(qi) < n
        elif isinstance(node, irm.Filter):
            cond = np.asarray(src.take(self._key(node.params["condition"], phase)), dtype=np.float64)
            keep = (cond != 0) & ~np.isnan(cond)
        elif isinstance(node, irm.Diversify):
            by = src.take(self._key(node.params["by"], phase))
            codes = _factorize(by)
            perm = np.lexsort((codes, qi))  # stable: list order kept within each (query, value)
            rank = np.empty(len(rows), dtype=np.int64)
            rank[perm] = _rank_in_groups(np.stack([qi[perm], codes[perm]], axis=1))
            keep = rank < int(node.params["max"])
        else:
            raise QuasarError(f"the local engine cannot run list node {node.id!r} ({node.kind})")
        return _List(rows[keep], phase, src.score[keep] if src.score is not None else None)

    def _keep(self, node: irm.Keep) -> None:
        """Phase boundary: the n best documents per query by ``by`` (highest first) flow on."""
        src = self._source(node.params["source"])
        phase = src.phase
        assert phase == len(self.phase_rows) - 1, "KEEPs run in phase order"
        rows = src.rows
        qi = src.take(self.phase_qi[phase])
        key = np.asarray(src.take(self._key(node.params["by"], phase)), dtype=np.float64)
        n = int(node.params["n"])
        if len(qi) and qi[0] == qi[-1]:  # one query (rows are grouped): O(n) selection, no sort
            chosen = rows[_top_n_mask(key, n)]
        else:
            perm = np.lexsort((-key, qi))
            chosen = rows[perm][_rank_in_groups(qi[perm]) < n]
        kept = np.sort(chosen)  # candidate order is kept; ties later break as without the KEEP
        self.phase_rows.append(self.phase_rows[phase][kept])
        self.phase_qi.append(self.phase_qi[phase][kept])
        self.lists[node.id] = _List(np.arange(len(kept)), phase + 1, whole=True)

    # ---- output ----------------------------------------------------------------------------------------

    def result(self, out: _List, *, explain: bool) -> RankResult:
        phase, rows = out.phase, out.rows
        qi = self.phase_qi[phase][rows]
        pos0 = self.phase_rows[phase][rows]
        doc_rows = self.order0[pos0] if self.order0 is not None else pos0
        scores = out.score if out.score is not None else np.full(len(rows), np.nan)
        details: dict[str, np.ndarray] = {}
        if explain:
            for node_id, v in self.values.items():
                if v.scope == "document":
                    details[node_id] = np.asarray(v.array)[np.searchsorted(self.phase_rows[v.phase], pos0)]
                elif v.scope == "constant":
                    a = np.asarray(v.array)
                    details[node_id] = np.full(len(rows), a) if a.ndim == 0 else \
                        np.broadcast_to(a, (len(rows), *a.shape)).copy()
                else:
                    details[node_id] = np.asarray(v.array).take(qi, axis=0)
        return RankResult(qi, _rank_in_groups(qi), doc_rows, np.asarray(scores, np.float64), self.q, details)


# ---- vectorized helpers -------------------------------------------------------------------------------


def _sorted(order: _List, qi: np.ndarray | None = None) -> _List:
    """A pending ORDER, sorted: stable by (query, key), NaN keys last in either direction."""
    assert order.score is not None and order.descending is not None
    key = order.score
    if qi is None:
        perm = np.argsort(-key if order.descending else key, kind="stable")
    else:
        perm = np.lexsort((-key if order.descending else key, qi))
    return _List(order.rows[perm], order.phase, key[perm])


def _stable_top(key: np.ndarray, n: int, descending: bool) -> np.ndarray:
    """Positions of the first n rows of the stable sort of *key* (NaN last), in that order — found
    with a partition, sorting only the rows at or above the cut-off."""
    k = key if descending else -key  # stable ascending by key == stable descending by -key
    if n >= len(k):
        return np.argsort(-k, kind="stable")
    kk = np.where(np.isnan(k), -np.inf, k)
    cut = np.partition(kk, len(kk) - n)[len(kk) - n]
    if cut == -np.inf:  # NaN and -inf tie at the cut-off: let the full sort order them
        return np.argsort(-k, kind="stable")[:n]
    idx = np.flatnonzero(kk >= cut)
    return idx[np.argsort(-kk[idx], kind="stable")][:n]


def _top_n_mask(key: np.ndarray, n: int) -> np.ndarray:
    """The n highest keys (NaN lowest; ties at the cut-off: the earliest rows), as a mask — what a
    stable descending sort's first n rows are, found with a partition instead of a sort."""
    if n >= len(key):
        return np.ones(len(key), dtype=bool)
    k = np.where(np.isnan(key), -np.inf, key)
    cut = np.partition(k, len(k) - n)[len(k) - n]
    mask = k > cut
    mask[np.flatnonzero(k == cut)[: n - int(mask.sum())]] = True
    return mask


def _rank_in_groups(keys: np.ndarray) -> np.ndarray:
    """0-based rank of each row within its run of equal *keys* (rows already grouped; 2-D = row tuples)."""
    m = len(keys)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.any(keys[1:] != keys[:-1], axis=1) if keys.ndim == 2 else keys[1:] != keys[:-1]
    starts = np.concatenate([[True], change])
    idx = np.arange(m)
    return idx - np.maximum.accumulate(np.where(starts, idx, 0))


def _factorize(values: np.ndarray) -> np.ndarray:
    """Integer codes of *values* (equal values -> equal codes), for grouping."""
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = arr.astype(str)
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def _as_column(col: Any, type_: str) -> np.ndarray:
    """A batch column as an array: vectors (n, d) float; numbers float; strings as given."""
    if type_.startswith("Vector"):
        arr = np.asarray(col)
        if arr.dtype == object:  # e.g. a pandas column of arrays
            arr = np.stack([np.asarray(x, dtype=np.float64) for x in arr]) if len(arr) else \
                np.zeros((0, 0))
        if arr.dtype not in (np.float32, np.float64):  # float32 stays float32: no copy of wide inputs
            arr = arr.astype(np.float64)
        return arr[:, None] if arr.ndim == 1 else arr
    if type_ == "double":
        return np.asarray(col, dtype=np.float64)
    if type_ == "List":  # one list per row, even when every list has the same length
        if isinstance(col, np.ndarray) and col.dtype == object and col.ndim == 1:
            return col
        return np.fromiter(col, dtype=object, count=len(col))
    return np.asarray(col)
