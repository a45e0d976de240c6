"""The Spark engine: the same Quasar IR and the same operator code as the local engine, run on Spark.

Two entry points:

* :meth:`SparkEngine.score` — pairwise scoring for training data and batch scoring. ``df`` holds one row
  per (query / member, document) pair with a column per input feature (member-scope and document-scope
  columns side by side, as a point-in-time join produces them). Each Arrow batch of a ``mapInPandas``
  becomes a :class:`~proml_lab.quasar.engine.local.QueryBatch` in which **every row is its own query**
  (``query_index = arange(n)``; member / request columns are the batch's columns, already aligned per
  row) and is evaluated by :class:`~proml_lab.quasar.engine.local.LocalEngine` — no operator is
  reimplemented here. Phase boundaries (``KEEP``) and list operations (``ORDER`` / ``TOP`` / ``FILTER``
  / ``DIVERSIFY``) do not apply to pairwise scoring: they are dropped and every requested value node is
  computed for every row (a node declared after a ``KEEP`` is scored on all rows, not on the kept ones).
* :meth:`SparkEngine.rank` — per-query ranking: ``groupBy(query_column).applyInPandas`` runs
  :meth:`LocalEngine.rank` on each query's candidates (list operations and ``KEEP`` apply).

Pairwise scoring itself lives in :mod:`proml_lab.quasar.engine.frame` (shared with training); this module
runs it inside ``mapInPandas``.

Output columns: ``double`` -> ``DoubleType``, ``Vector[...]`` -> ``ArrayType(FloatType)``,
``Categorical`` / ``string`` -> ``StringType``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab.quasar import ir as irm
from proml_lab.quasar.engine.frame import _LIST_KINDS, FrameScorer, _OnWorkers, score_node, scoring_ir
from proml_lab.quasar.errors import QuasarError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["SparkEngine", "scoring_ir"]

def _spark_type(type_: str) -> Any:
    from pyspark.sql import types as T

    if type_ == "double":
        return T.DoubleType()
    if type_.startswith("Vector"):
        return T.ArrayType(T.FloatType())
    if type_ in ("Categorical", "string", "String"):
        return T.StringType()
    raise QuasarError(f"the Spark engine cannot output a value of type {type_!r}")


class _Ranker(_OnWorkers):
    """The picklable group function of :meth:`SparkEngine.rank` (one group = one query)."""

    def __init__(self, ir: irm.IR, state: Mapping[str, Any], query_column: str, k: int | None,
                 columns: list[str], member_id_column: str | None,
                 document_id_column: str | None) -> None:
        super().__init__(ir, state, member_id_column, document_id_column)
        self.query_column = query_column
        self.k = k
        self.columns = columns

    def __call__(self, pdf: Any) -> Any:
        import pandas as pd  # type: ignore[import-untyped]

        result = self.engine.rank(self.batch(pdf, one_query=True))
        keep = np.ones(len(result), dtype=bool) if self.k is None else result.positions < self.k
        rows = result.document_rows[keep]
        picked = pdf.iloc[rows].reset_index(drop=True)
        data: dict[str, Any] = {self.query_column: picked[self.query_column],
                                "position": result.positions[keep].astype(np.int64)}
        for c in self.columns:
            if c != self.query_column:
                data[c] = picked[c]
        data["score"] = result.scores[keep].astype(np.float64)
        return pd.DataFrame(data)


class SparkEngine:
    """Runs one compiled :class:`~proml_lab.quasar.ir.IR` on Spark DataFrames; ``state`` as for
    :class:`~proml_lab.quasar.engine.local.LocalEngine`."""

    def __init__(self, ir: irm.IR, *, state: Mapping[str, Any] | None = None) -> None:
        self.ir = ir
        self.state = dict(state or {})
        self._by_id = {n.id: n for n in ir.nodes}

    # ---- node selection --------------------------------------------------------------------------------

    def score_node(self) -> str:
        """The value node the output's ``ORDER`` sorts by (the program's score)."""
        return score_node(self.ir)

    def _nodes(self, nodes: Sequence[str] | str | None) -> list[str]:
        if nodes is None:
            return [self.score_node()]
        if isinstance(nodes, str):
            if nodes != "all":
                nodes = [nodes]
            else:
                reach = set(self.ir.reachable())
                return [n.id for n in self.ir.nodes if n.id in reach and n.type == "double"
                        and isinstance(n, irm.Op | irm.Trainable)]
        out = []
        for node_id in nodes:
            node = self._by_id.get(node_id)
            if node is None:
                raise QuasarError(f"the program has no node {node_id!r}")
            if isinstance(node, _LIST_KINDS):
                raise QuasarError(f"node {node_id!r} is a list ({node.kind}); only value nodes can be "
                                  f"scored pairwise")
            out.append(node_id)
        return out

    def _check_columns(self, ir: irm.IR, columns: Sequence[str], *extra: str | None) -> None:
        have = set(columns)
        reach = set(ir.reachable())
        missing = [n for n in ir.nodes if isinstance(n, irm.Input) and n.id in reach
                   and n.feature not in have]
        if missing:
            listing = ", ".join(f"{n.feature!r} ({n.scope.upper()})" for n in missing)
            raise QuasarError(f"the DataFrame has no column for input feature(s) {listing}")
        for c in extra:
            if c is not None and c not in have:
                raise QuasarError(f"the DataFrame has no column {c!r}")

    # ---- Spark ------------------------------------------------------------------------------------------

    def score(self, df: DataFrame, *, nodes: Sequence[str] | str | None = None,
              member_id_column: str | None = None, document_id_column: str | None = None) -> DataFrame:
        """*df* with one extra column per requested value node (default: the score; ``"all"``: every
        reachable operator / trainable node of type double), computed pairwise on every row."""
        from pyspark.sql import types as T

        wanted = self._nodes(nodes)
        scorer = FrameScorer(self.ir, self.state, wanted, member_id_column, document_id_column)
        self._check_columns(scorer.ir, df.columns, member_id_column, document_id_column)
        new = {n: T.StructField(n, _spark_type(self._by_id[n].type), True) for n in wanted}
        fields = [new.get(f.name, f) for f in df.schema.fields]  # a node named like a column replaces it
        fields += [new[n] for n in wanted if n not in set(df.columns)]
        def score_batches(batches):  # a plain function: Spark inspects its signature
            return scorer(batches)

        return df.mapInPandas(score_batches, T.StructType(fields))

    def rank(self, df: DataFrame, *, query_column: str, k: int | None = None,
             member_id_column: str | None = None, document_id_column: str | None = None) -> DataFrame:
        """Per-query ranking: ``(query_column, position, df's other columns, score)``, the top *k*
        per query (all returned rows when ``k`` is None), computed by the local engine per group."""
        from pyspark.sql import types as T

        self._check_columns(self.ir, df.columns, query_column, member_id_column, document_id_column)
        by_name = {f.name: f for f in df.schema.fields}
        fields = [by_name[query_column], T.StructField("position", T.LongType(), False)]
        fields += [f for f in df.schema.fields if f.name != query_column]
        fields.append(T.StructField("score", T.DoubleType(), True))
        ranker = _Ranker(self.ir, self.state, query_column, k, list(df.columns), member_id_column,
                         document_id_column)
        def rank_group(pdf):  # a plain one-argument function: Spark inspects its signature
            return ranker(pdf)

        return df.groupBy(query_column).applyInPandas(rank_group, T.StructType(fields))
