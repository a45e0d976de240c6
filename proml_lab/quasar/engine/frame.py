"""Pairwise scoring of data frames with the local engine: the shared core of training and batch scoring.

A frame holds one row per (member, document) pair with a column per input feature (member-scope and
document-scope columns side by side, as a point-in-time join produces them). It becomes a
:class:`~proml_lab.quasar.engine.local.QueryBatch` in which **every row is its own query** and is evaluated
by :class:`~proml_lab.quasar.engine.local.LocalEngine` over a *scoring IR*: the program's value nodes, no
list nodes, and a synthetic ``RETURN`` of all documents that reads the requested nodes (so the lazy engine
computes exactly those and what they depend on). The Spark engine runs the same code inside
``mapInPandas``; training runs it on pandas frames directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from proml_lab.quasar import ir as irm
from proml_lab.quasar.engine.local import LocalEngine, QueryBatch
from proml_lab.quasar.errors import QuasarError

__all__ = ["FrameScorer", "score_frame", "score_node", "scoring_ir"]

_LIST_KINDS = (irm.Order, irm.Top, irm.Filter, irm.Diversify, irm.Keep, irm.Return)
_RETURN_ID = "__score_return__"


def score_node(ir: irm.IR) -> str:
    """The value node the program's output ``ORDER`` sorts by (the program's score)."""
    by_id = {n.id: n for n in ir.nodes}
    node = by_id[ir.output]
    while isinstance(node, _LIST_KINDS):
        if isinstance(node, irm.Order):
            return str(node.params["by"]["$ref"])
        src = node.params.get("source")
        if not (isinstance(src, dict) and "$ref" in src):
            break
        node = by_id[src["$ref"]]
    raise QuasarError("the program's RETURN is not ordered by a score (no ORDER ... BY); name the node "
                      "to score")


def scoring_ir(ir: irm.IR, nodes: Sequence[str]) -> irm.IR:
    """The pairwise-scoring IR of *ir*: its value nodes, no list nodes, and a ``RETURN`` of all
    documents that reads *nodes* (so a lazy engine computes exactly those and what they depend on)."""
    values = tuple(n for n in ir.nodes if not isinstance(n, _LIST_KINDS))
    ret = irm.Return(id=_RETURN_ID, type="List", scope="list", inputs=tuple(nodes),
                     params={"source": {"$documents": None}})
    return irm.IR(ir.name, (*values, ret), _RETURN_ID, ir.training_config)


def _to_pandas_column(values: np.ndarray, type_: str) -> Any:
    arr = np.asarray(values)
    if type_ == "double":
        return arr.astype(np.float64, copy=False).reshape(len(arr))
    if type_.startswith("Vector"):
        arr = arr.astype(np.float32, copy=False)
        if arr.ndim == 1:
            arr = arr[:, None]
        return list(arr)
    return [None if v is None else str(v) for v in arr]


class _OnWorkers:
    """Holds IR + state for a Spark batch function; builds the local engine once per Python worker."""

    def __init__(self, ir: irm.IR, state: Mapping[str, Any], member_id_column: str | None,
                 document_id_column: str | None) -> None:
        self.ir = ir
        self.state = dict(state)
        reachable = set(ir.reachable())
        self.inputs = [n for n in ir.nodes if isinstance(n, irm.Input) and n.id in reachable]
        self.member_id_column = member_id_column
        self.document_id_column = document_id_column
        self._engine: LocalEngine | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}

    @property
    def engine(self) -> LocalEngine:
        if self._engine is None:
            self._engine = LocalEngine(self.ir, state=self.state)
        return self._engine

    def batch(self, pdf: Any, *, one_query: bool) -> QueryBatch:
        """A pandas frame as a QueryBatch: every row its own query, or all rows one query."""
        n = len(pdf)
        per_query = slice(0, 1) if one_query else slice(None)
        cols: dict[str, dict[str, Any]] = {"member": {}, "request": {}, "document": {}}
        for node in self.inputs:
            col = pdf[node.feature].to_numpy()
            cols[node.scope][node.feature] = col if node.scope == "document" else col[per_query]
        member_ids = document_ids = None
        if self.member_id_column is not None:
            member_ids = pdf[self.member_id_column].to_numpy()[per_query]
        if self.document_id_column is not None:
            document_ids = pdf[self.document_id_column].to_numpy()
        return QueryBatch(
            documents=cols["document"], member=cols["member"], request=cols["request"],
            query_index=np.zeros(n, dtype=np.int64) if one_query else np.arange(n, dtype=np.int64),
            num_queries=1 if one_query else n, member_ids=member_ids, document_ids=document_ids)


class FrameScorer(_OnWorkers):
    """Scores pandas frames (and is the picklable batch function of :meth:`SparkEngine.score`)."""

    def __init__(self, ir: irm.IR, state: Mapping[str, Any], nodes: list[str],
                 member_id_column: str | None, document_id_column: str | None) -> None:
        super().__init__(scoring_ir(ir, nodes), state, member_id_column, document_id_column)
        self.nodes = nodes
        self.types = {n: ir.node(n).type for n in nodes}

    def score_pandas(self, pdf: Any) -> Any:
        """*pdf* with one extra column per requested node (every row its own query)."""
        n = len(pdf)
        result = self.engine.rank(self.batch(pdf, one_query=False), explain=True)
        out = pdf.copy()
        inverse = np.empty(n, dtype=np.int64)
        inverse[result.document_rows] = np.arange(len(result.document_rows))
        for node_id in self.nodes:
            values = np.asarray(result.explain[node_id])[inverse] if n else result.explain.get(
                node_id, np.zeros(0))
            out[node_id] = _to_pandas_column(values, self.types[node_id])
        return out

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        for pdf in batches:
            yield self.score_pandas(pdf)


def score_frame(ir: irm.IR, pdf: Any, nodes: Sequence[str], *, state: Mapping[str, Any] | None = None,
                member_id_column: str | None = None, document_id_column: str | None = None) -> Any:
    """*pdf* (pandas) with one column per value node in *nodes*, computed pairwise on every row.

    Examples
    --------
    >>> import pandas as pd
    >>> from proml_lab.quasar import compile
    >>> ir = compile("INPUT DOCUMENT double x; double y = Log1p(x); r = ORDER DOCUMENTS BY y WITH DESC; RETURN r;")
    >>> score_frame(ir, pd.DataFrame({"x": [0.0, 1.0]}), ["y"])["y"].round(3).tolist()
    [0.0, 0.693]
    """
    by_id = {n.id: n for n in ir.nodes}
    for node_id in nodes:
        node = by_id.get(node_id)
        if node is None:
            raise QuasarError(f"the program has no node {node_id!r}")
        if isinstance(node, _LIST_KINDS):
            raise QuasarError(f"node {node_id!r} is a list ({node.kind}); only value nodes can be scored "
                              f"pairwise")
    scorer = FrameScorer(ir, state or {}, list(nodes), member_id_column, document_id_column)
    have = set(pdf.columns)
    missing = [n for n in scorer.inputs if n.feature not in have]
    if missing:
        listing = ", ".join(f"{n.feature!r} ({n.scope.upper()})" for n in missing)
        raise QuasarError(f"the data has no column for input feature(s) {listing}")
    for c in (member_id_column, document_id_column):
        if c is not None and c not in have:
            raise QuasarError(f"the data has no column {c!r}")
    return scorer.score_pandas(pdf)
