"""Design tables: a trainable node's arguments as numeric columns, on pandas or on Spark.

A trainable node reads lists of expressions (``GLMix([a, b], {"per_member": [c, 1]})``). Training needs
them as numeric columns with the label and the entity ids beside them. Upstream nodes are computed with
the serving operator code — :func:`~proml_lab.quasar.engine.score_frame` on pandas,
:class:`~proml_lab.quasar.engine.SparkEngine` on Spark — then each entry becomes columns by a plan decided
once, on the training rows, and applied identically to validation rows:

* a number literal -> a constant column (``1`` is an entity's own intercept);
* a ``double`` -> one column; a ``Vector`` -> one column per component;
* a ``Categorical`` / ``String`` -> one 0/1 column per level seen in training, in sorted order (the
  vocabulary the GLMix operator one-hot encodes with at serving time).

Column names are plain identifiers (``features0_x1``, ``per_member1_const``, ``features2_title_is3``) so
they are valid on Spark as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proml_lab.errors import TrainingError
from proml_lab.quasar import ir as irm

__all__ = ["DesignTable", "design_table", "is_spark", "node_values"]


def is_spark(data: Any) -> bool:
    return hasattr(data, "sparkSession")


@dataclass(frozen=True)
class _Entry:
    """How one argument becomes columns: kind in const / num / vec / cat."""

    kind: str
    name: str
    ref: str | None = None
    column: str | None = None  # where the values live in the scored frame
    value: float = 0.0
    dim: int = 0
    levels: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        if self.kind == "vec":
            return [f"{self.name}_{j}" for j in range(self.dim)]
        if self.kind == "cat":
            return [f"{self.name}_is{k}" for k in range(len(self.levels))]
        return [self.name]


@dataclass
class DesignTable:
    """Design columns of a node's parts with label / ids / weight / offset beside them."""

    train: Any                             # pandas or Spark DataFrame
    validation: Any                        # pandas DataFrame or None
    columns: dict[str, list[str]]          # part -> its design columns, in operator order
    vocabularies: dict[str, list[str]] = field(default_factory=dict)  # "<part>.<i>" -> levels
    offset: str | None = None

    @property
    def spark(self) -> bool:
        return is_spark(self.train)


def node_values(ir: irm.IR, state: Mapping[str, Any], data: Any, refs: Sequence[str], *,
                member_id_column: str | None, document_id_column: str | None) -> tuple[Any, dict[str, str]]:
    """*data* with every node of *refs* computed, and the column each node's values are in."""
    refs = list(dict.fromkeys(refs))
    where: dict[str, str] = {}
    computed = []
    for r in refs:
        node = ir.node(r)
        if isinstance(node, irm.Input):
            if node.feature not in data.columns:
                raise TrainingError(f"the data has no column for input feature {node.feature!r}")
            where[r] = node.feature
        else:
            computed.append(r)
            where[r] = r
    if not computed:
        return data, where
    ids = {"member_id_column": member_id_column if member_id_column in data.columns else None,
           "document_id_column": document_id_column if document_id_column in data.columns else None}
    if is_spark(data):
        from proml_lab.quasar.engine import SparkEngine

        return SparkEngine(ir, state=state).score(data, nodes=computed, **ids), where
    from proml_lab.quasar.engine import score_frame

    return score_frame(ir, data, computed, state=state, **ids), where


def design_table(
    ir: irm.IR,
    state: Mapping[str, Any],
    node: irm.Trainable,
    data: Any,
    validation: Any,
    parts: Mapping[str, Sequence[Any]],
    *,
    keep: Sequence[str],
    offset: Any = None,
    member_id_column: str | None = None,
    document_id_column: str | None = None,
) -> DesignTable:
    """Build the design of *parts* (``{"features": [...], "per_member": [...]}``) for *node*.

    ``keep`` names columns carried through unchanged (label, ids, weight); ``offset`` is a node reference
    (or a number) whose values become the ``offset`` column.
    """
    refs = [e["$ref"] for entries in parts.values() for e in entries if isinstance(e, dict) and "$ref" in e]
    if isinstance(offset, dict) and "$ref" in offset:
        refs.append(offset["$ref"])
    id_cols = {"member_id_column": member_id_column, "document_id_column": document_id_column}
    scored, where = node_values(ir, state, data, refs, **id_cols)
    plans = {part: [_plan(ir, node, scored, where, e, f"{part}{i}") for i, e in enumerate(entries)]
             for part, entries in parts.items()}
    vocab = {f"{part}.{i}": list(e.levels) for part, es in plans.items() for i, e in enumerate(es)
             if e.kind == "cat"}
    columns = {part: [c for e in es for c in e.columns] for part, es in plans.items()}
    entries = [e for es in plans.values() for e in es]
    train = _apply(scored, entries, keep, offset, where)
    val = None
    if validation is not None:
        vscored, vwhere = node_values(ir, state, validation, refs, **id_cols)
        val = _apply(vscored, entries, keep, offset, vwhere)
    return DesignTable(train, val, columns, vocab, "offset" if offset is not None else None)


def _plan(ir: irm.IR, node: irm.Trainable, scored: Any, where: dict[str, str], entry: Any, name: str) -> _Entry:
    if isinstance(entry, int | float) and not isinstance(entry, bool):
        return _Entry("const", f"{name}_const", value=float(entry))
    if not (isinstance(entry, dict) and "$ref" in entry):
        raise TrainingError(f"node {node.id!r}: cannot train on the literal {entry!r}", node=node.id)
    ref = entry["$ref"]
    column = where[ref]
    kind = ir.node(ref).type
    base = f"{name}_{_ident(ref)}"
    if kind in ("Categorical", "String"):
        return _Entry("cat", base, ref, column, levels=tuple(_levels(scored, column)))
    if kind.startswith("Vector"):
        return _Entry("vec", base, ref, column, dim=_dim(scored, column, kind))
    return _Entry("num", base, ref, column)


def _ident(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)


def _levels(scored: Any, column: str) -> list[str]:
    if is_spark(scored):
        from pyspark.sql import functions as F

        rows = scored.select(F.col(column).cast("string").alias("v")).distinct().collect()
        return sorted(str(r["v"]) for r in rows)
    return sorted(np.unique(np.asarray(scored[column]).astype(str)).tolist())


def _dim(scored: Any, column: str, kind: str) -> int:
    from proml_lab.quasar.ops.registry import QType

    declared = QType.parse(kind).dim
    if declared:
        return int(declared)
    if is_spark(scored):
        from pyspark.sql import functions as F

        first = scored.select(F.size(F.col(column)).alias("d")).first()
        return int(first["d"]) if first is not None else 0
    values = scored[column].to_numpy()
    return int(np.asarray(values[0]).size) if len(values) else 0


def _apply(scored: Any, entries: list[_Entry], keep: Sequence[str], offset: Any, where: dict[str, str]) -> Any:
    if is_spark(scored):
        return _apply_spark(scored, entries, keep, offset, where)
    return _apply_pandas(scored, entries, keep, offset, where)


def _apply_pandas(scored: Any, entries: list[_Entry], keep: Sequence[str], offset: Any,
                  where: dict[str, str]) -> Any:
    import pandas as pd

    n = len(scored)
    cols: dict[str, np.ndarray] = {}
    for e in entries:
        if e.kind == "const":
            cols[e.name] = np.full(n, e.value)
        elif e.kind == "num":
            cols[e.name] = _numeric(scored[e.column], e.ref)
        elif e.kind == "vec":
            mat = _matrix(scored[e.column], e.ref, e.dim)
            cols.update({c: mat[:, j] for j, c in enumerate(e.columns)})
        else:
            text = np.asarray(scored[e.column]).astype(str)
            cols.update({c: (text == level).astype(np.float64) for c, level in zip(e.columns, e.levels,
                                                                                    strict=True)})
    if isinstance(offset, dict) and "$ref" in offset:
        cols["offset"] = _numeric(scored[where[offset["$ref"]]], offset["$ref"])
    elif offset is not None:
        cols["offset"] = np.full(n, float(offset))
    frame = pd.DataFrame(cols, index=scored.index)
    for c in keep:
        if c in scored.columns and c not in frame.columns:
            frame[c] = scored[c].to_numpy()
    return frame.reset_index(drop=True)


def _apply_spark(scored: Any, entries: list[_Entry], keep: Sequence[str], offset: Any,
                 where: dict[str, str]) -> Any:
    from pyspark.sql import functions as F

    exprs = []
    for e in entries:
        if e.kind == "const":
            exprs.append(F.lit(e.value).alias(e.name))
        elif e.kind == "num":
            exprs.append(F.col(e.column).cast("double").alias(e.name))
        elif e.kind == "vec":
            exprs += [F.col(e.column).getItem(j).cast("double").alias(c) for j, c in enumerate(e.columns)]
        else:
            value = F.col(e.column).cast("string")
            exprs += [F.when(value == level, 1.0).otherwise(0.0).alias(c)
                      for c, level in zip(e.columns, e.levels, strict=True)]
    if isinstance(offset, dict) and "$ref" in offset:
        exprs.append(F.col(where[offset["$ref"]]).cast("double").alias("offset"))
    elif offset is not None:
        exprs.append(F.lit(float(offset)).alias("offset"))
    names = {e.name for e in entries}
    exprs += [F.col(c) for c in keep if c in scored.columns and c not in names]
    return scored.select(*exprs)


def _numeric(values: Any, ref: str | None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrainingError(f"the values of {ref!r} are not numeric") from None
    return arr.reshape(len(arr))


def _matrix(values: Any, ref: str | None, dim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:
        try:
            arr = np.stack([np.asarray(v, dtype=np.float64) for v in arr]) if len(arr) else np.zeros((0, dim))
        except (TypeError, ValueError):
            raise TrainingError(f"the values of {ref!r} are not vectors of one length") from None
    return np.asarray(arr, dtype=np.float64).reshape(len(arr), -1)
