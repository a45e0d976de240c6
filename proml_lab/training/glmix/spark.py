"""GLMix on Spark: the same coordinate descent, with the data and the scores in a Spark DataFrame.

* Assembly: one ``mapInArrow`` turns the user's columns into a cached *work* DataFrame of
  ``_y, _w, _o`` (label, weight, offset), ``_x`` (fixed design, ``array<double>``), ``_z<i>`` (each
  random effect's design, intercept last), the entity columns, ``_h`` (the row-content hash that picks
  upper-bound samples) and the current score of every coordinate (``_s_fixed``, ``_s<i>``). The same
  numpy functions as the local path build these columns, so widths, names and errors are identical.
* Fixed effect: distributed L-BFGS. scipy's L-BFGS-B runs on the driver; each loss/gradient evaluation
  is one ``mapInArrow`` job yielding one ``(loss, grad)`` row per partition, summed on the driver.
* Random effect: ``repartition(n, entity)`` + ``sortWithinPartitions(entity)``; a ``mapInArrow`` takes
  a whole partition and solves all its entities with the batched kernel of
  :mod:`.random_effects`, warm-started from the coefficients joined onto the rows in the last pass.
  New scores come from joining the coefficient table back onto the work rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from proml_lab.errors import TrainingError
from proml_lab.training.glmix.families import get_family
from proml_lab.training.glmix.fit import _labels, _validator, _weights, coordinate_descent, row_content_keys
from proml_lab.training.glmix.fixed import data_loss_grad, minimize_fixed
from proml_lab.training.glmix.model import (
    GLMixModel,
    GLMixSpec,
    RandomEffect,
    design_matrix,
    effect_design,
    entity_values,
    validate_spec,
)
from proml_lab.training.glmix.random_effects import group_entities, solve_blocks

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = ["SparkBackend", "fit_glmix_spark"]

_ROWS_PER_PARTITION = 1_000_000


def _matrix(batch: pa.RecordBatch, name: str, width: int) -> np.ndarray:
    """An ``array<double>`` column as an (n, width) matrix; null lists read as zeros."""
    import pyarrow.compute as pc

    col = batch.column(name)
    n = len(col)
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if col.null_count == 0:
        return values.reshape(n, width)
    out = np.zeros((n, width))
    out[pc.is_valid(col).to_numpy(zero_copy_only=False)] = values.reshape(-1, width)
    return out


def _vec(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _with_column(batch: pa.RecordBatch, name: str, values: np.ndarray) -> pa.RecordBatch:
    import pyarrow as pa

    arrays = [pa.array(values, pa.float64()) if f.name == name else batch.column(i)
              for i, f in enumerate(batch.schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


class SparkBackend:
    """The coordinate-descent backend over a Spark DataFrame (see the module docstring)."""

    def __init__(self, train: DataFrame, spec: GLMixSpec, *, label: str, weight: str | None,
                 offset: str | None) -> None:
        from pyspark.sql import functions as F

        self.spec = spec
        self.family = get_family(spec.family)
        self.spark = train.sparkSession
        effects = spec.random_effects
        roles: dict[str, str] = {}  # column -> what needs it (the first role wins), for errors
        for col, role in [(label, "the label"), (weight, "the weight"), (offset, "the offset"),
                          *[(c, "fixed-effect features") for c in spec.features],
                          *[(e.entity, f"the entity of random effect {e.name!r}") for e in effects],
                          *[(c, f"random effect {e.name!r}") for e in effects for c in e.features]]:
            if col is not None:
                roles.setdefault(col, role)
        for col, role in roles.items():
            if col not in train.columns:
                raise TrainingError(f"column {col!r} (listed in {role}) is missing from the Spark DataFrame; "
                                    "add it or remove it from the spec", node=col)
        types = {f.name: f.dataType for f in train.schema.fields}
        entity_cols = list(dict.fromkeys(e.entity for e in effects))
        cols = [F.col(c) for c in roles if c not in entity_cols]
        for c in entity_cols:
            kind = "long" if types[c].typeName() in ("integer", "long", "short", "byte") else "string"
            cols.append(F.col(c).cast(kind).alias(c))
        source = train.select(*cols)
        self.entity_types = {c: ("long" if source.schema[c].dataType.typeName() == "long" else "string")
                             for c in entity_cols}
        self.names = self._check(source, label, weight, offset)
        # enough partitions to use every core, no more: each Spark job of the L-BFGS loop pays per task
        self.partitions = max(_cores(self.spark), -(-self.num_rows // _ROWS_PER_PARTITION))
        self.fixed_names: list[str] = self.names["fixed"]
        self.effect_names: dict[str, list[str]] = {e.name: self.names[e.name] for e in effects}
        self.work = self._assemble(source, label, weight, offset)
        self._loss: float | None = None

    # ---- assembly --------------------------------------------------------------------------------------

    def _check(self, source: DataFrame, label: str, weight: str | None, offset: str | None) -> dict[str, Any]:
        """One job: the local checks on every batch; returns the expanded names or raises the first error."""
        spec, family = self.spec, self.family

        def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            names: dict[str, Any] | None = None
            error = None
            rows = 0
            for batch in batches:
                rows += len(batch)
                pdf = batch.to_pandas()
                try:
                    _labels(pdf, label, family)
                    _weights(pdf, weight)
                    if offset:
                        design_matrix(pdf, [offset], what="the offset")
                    found = {"fixed": design_matrix(pdf, spec.features, what="fixed-effect features")[1]}
                    for e in spec.random_effects:
                        entity_values(pdf, e)
                        found[e.name] = effect_design(pdf, e)[1]
                    names = names or found
                except TrainingError as exc:
                    error = error or str(exc)
            yield pa.RecordBatch.from_pydict({"error": [error],  # in the order of the schema below
                                              "names": [json.dumps(names) if names else None],
                                              "rows": [rows]})

        rows = source.mapInArrow(check, "error string, names string, rows long").collect()
        self.num_rows = int(sum(r["rows"] for r in rows))
        errors = [r["error"] for r in rows if r["error"]]
        if errors:
            raise TrainingError(errors[0])
        found = [json.loads(r["names"]) for r in rows if r["names"]]
        if not found:
            raise TrainingError("the training data has no rows")
        return found[0]

    def _assemble(self, source: DataFrame, label: str, weight: str | None, offset: str | None) -> DataFrame:
        spec, family = self.spec, self.family
        effects = spec.random_effects
        entity_cols = list(dict.fromkeys(e.entity for e in effects))
        schema = ", ".join([f"`{c}` {self.entity_types[c]}" for c in entity_cols]
                           + ["_y double", "_w double", "_o double", "_x array<double>"]
                           + [f"_z{i} array<double>" for i in range(len(effects))] + ["_h long"])

        def assemble(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            for batch in batches:
                pdf = batch.to_pandas()
                n = len(pdf)
                y = _labels(pdf, label, family)
                w = _weights(pdf, weight)
                o = np.zeros(n) if not offset else design_matrix(pdf, [offset], what="the offset")[0][:, 0]
                x = design_matrix(pdf, spec.features, what="fixed-effect features")[0]
                zs = [effect_design(pdf, e)[0] for e in effects]
                ents = [entity_values(pdf, e) for e in effects]
                keys = row_content_keys(y, w, o, x, zs, ents)
                data: dict[str, Any] = {c: pdf[c].to_numpy() for c in entity_cols}
                data.update({"_y": y, "_w": w, "_o": o, "_x": _lists(x)})
                data.update({f"_z{i}": _lists(z) for i, z in enumerate(zs)})
                data["_h"] = keys.view(np.int64)
                yield pa.RecordBatch.from_pydict(data)

        from pyspark.sql import functions as F

        work = source.mapInArrow(assemble, schema).withColumn("_s_fixed", F.lit(0.0))
        for i in range(len(effects)):
            work = (work.withColumn(f"_s{i}", F.lit(0.0))
                    .withColumn(f"_c{i}", F.lit(None).cast("array<double>")))
        return work.coalesce(self.partitions).localCheckpoint(eager=True)

    def _offset_expr(self, skip: str) -> Any:
        from pyspark.sql import functions as F

        expr = F.col("_o")
        for c in ["_s_fixed", *[f"_s{i}" for i in range(len(self.spec.random_effects))]]:
            if c != skip:
                expr = expr + F.col(c)
        return expr

    # ---- coordinates -----------------------------------------------------------------------------------

    def fit_fixed(self, init: tuple[np.ndarray, float] | None) -> tuple[np.ndarray, float]:
        spec, family = self.spec, self.family
        d = len(self.fixed_names)
        data = self.work.select("_y", "_w", "_x", self._offset_expr("_s_fixed").alias("_off"))

        def oracle(beta: np.ndarray, b: float) -> tuple[float, np.ndarray, float]:
            def partial(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
                import pyarrow as pa

                loss, grad, gb = 0.0, np.zeros(d), 0.0
                for batch in batches:
                    l_, g_, gb_ = data_loss_grad(_matrix(batch, "_x", d), _vec(batch, "_y"),
                                                 _vec(batch, "_w"), _vec(batch, "_off"), family, beta, b)
                    loss, grad, gb = loss + l_, grad + g_, gb + gb_
                yield pa.RecordBatch.from_pydict({"loss": [loss], "grad": [grad.tolist()], "gb": [gb]})

            rows = data.mapInArrow(partial, "loss double, grad array<double>, gb double").collect()
            return (float(sum(r["loss"] for r in rows)), np.sum([np.asarray(r["grad"]) for r in rows], axis=0)
                    .reshape(d), float(sum(r["gb"] for r in rows)))

        res = minimize_fixed(oracle, d, l2=spec.l2, l1=spec.l1, max_iter=spec.max_iter, tol=spec.tol,
                             init=init)
        beta, b = res.coefficients, res.intercept

        def rescore(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield _with_column(batch, "_s_fixed", _matrix(batch, "_x", d) @ beta + b)

        self._replace(self.work.mapInArrow(rescore, self.work.schema))
        return beta, b

    def fit_effect(self, effect: RandomEffect, init: tuple[np.ndarray, np.ndarray] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        from pyspark.sql import functions as F

        spec, family = self.spec, self.family
        i = spec.random_effects.index(effect)
        p = len(self.effect_names[effect.name])
        ent = effect.entity
        rows = (self.work.select(F.col(ent), "_y", "_w", f"_z{i}", "_h", f"_c{i}",
                                 self._offset_expr(f"_s{i}").alias("_off"))
                .repartition(self.partitions, ent).sortWithinPartitions(ent))

        def solve(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            parts = list(batches)
            if not parts or sum(len(b) for b in parts) == 0:
                return
            batch = pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
            ids = batch.column(ent).to_numpy(zero_copy_only=False)
            ids = ids.astype(str) if ids.dtype == object else ids
            blocks = group_entities(ids, _matrix(batch, f"_z{i}", p), _vec(batch, "_y"), _vec(batch, "_w"),
                                    lower_bound=effect.lower_bound, upper_bound=effect.upper_bound,
                                    seed=spec.seed, row_keys=batch.column("_h").to_numpy().view(np.uint64))
            if len(blocks.ids) == 0:
                return
            warm = _matrix(batch, f"_c{i}", p)  # the entity's previous coefficients on each of its rows
            order = np.argsort(ids, kind="stable")  # any row of an entity carries its coefficients
            first = order[np.searchsorted(ids[order], blocks.ids)]
            coefs, _ = solve_blocks(blocks, _vec(batch, "_off"), family, l2=effect.l2, init=warm[first],
                                    steps=spec.newton_steps, tol=spec.tol)
            yield pa.RecordBatch.from_pydict({ent: blocks.ids, f"_c{i}": _lists(coefs)})

        table = rows.mapInArrow(solve, f"`{ent}` {self.entity_types[ent]}, _c{i} array<double>")
        table = table.localCheckpoint(eager=True)
        got = table.collect()
        ids = np.asarray([r[ent] for r in got])
        coefs = np.asarray([r[f"_c{i}"] for r in got], np.float64).reshape(len(got), p)
        order = np.argsort(ids, kind="stable")
        ids, coefs = ids[order], coefs[order]

        def rescore(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                z, c = _matrix(batch, f"_z{i}", p), _matrix(batch, f"_c{i}", p)
                yield _with_column(batch, f"_s{i}", np.einsum("ij,ij->i", z, c))

        joined = self.work.drop(f"_c{i}").join(table, on=ent, how="left")
        self._replace(joined.mapInArrow(rescore, joined.schema))
        return ids, coefs

    def _replace(self, work: DataFrame) -> None:
        old = self.work
        self.work = work.coalesce(self.partitions).localCheckpoint(eager=True)
        old.unpersist()
        self._loss = None

    def train_loss(self) -> float:
        if self._loss is None:
            from pyspark.sql import functions as F

            family = self.family
            eta = self._offset_expr("").alias("_eta")

            def partial(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
                import pyarrow as pa

                loss, total = 0.0, 0.0
                for batch in batches:
                    w = _vec(batch, "_w")
                    loss += float(w @ family.loss(_vec(batch, "_y"), _vec(batch, "_eta")))
                    total += float(w.sum())
                yield pa.RecordBatch.from_pydict({"loss": [loss], "w": [total]})

            row = (self.work.select("_y", "_w", eta).mapInArrow(partial, "loss double, w double")
                   .agg(F.sum("loss").alias("loss"), F.sum("w").alias("w")).collect()[0])
            self._loss = float(row["loss"]) / max(float(row["w"]), 1e-300)
        return self._loss

    def release(self) -> None:
        """Drop the cached work data."""
        self.work.unpersist()


def _cores(spark: Any) -> int:
    """Task slots: ``N`` of ``local[N]`` (the CPU count for ``local[*]``), else the default parallelism."""
    import os
    import re

    sc = spark.sparkContext
    found = re.fullmatch(r"local\[(\d+|\*)(?:,\d+)?\]", sc.master)
    if sc.master == "local":
        return 1
    if found:
        return os.cpu_count() or 1 if found.group(1) == "*" else int(found.group(1))
    return int(sc.defaultParallelism)


def _lists(matrix: np.ndarray) -> pa.Array:
    """An (n, k) float matrix as an Arrow ``list<double>`` array without per-row Python objects."""
    import pyarrow as pa

    n, k = matrix.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).reshape(-1), pa.float64()))


def fit_glmix_spark(train: DataFrame, spec: GLMixSpec, *, label: str = "label", weight: str | None = None,
                    offset: str | None = None, validation: pd.DataFrame | DataFrame | None = None,
                    callback: Callable[[dict[str, Any]], None] | None = None) -> GLMixModel:
    """Fit a GLMix model from a Spark DataFrame; the same model :func:`~proml_lab.training.glmix.fit_glmix`
    fits from the same rows (feature vectors as ``array<double>`` columns).

    Examples
    --------
    >>> from proml_lab.training.glmix import GLMixSpec, RandomEffect, fit_glmix_spark   # doctest: +SKIP
    >>> spec = GLMixSpec(features=("x",), random_effects=(RandomEffect("per_member", "member_id", ()),))
    >>> model = fit_glmix_spark(spark.read.parquet("train"), spec)                      # doctest: +SKIP
    """
    validate_spec(spec)
    backend = SparkBackend(train, spec, label=label, weight=weight, offset=offset)
    if validation is not None and not isinstance(validation, pd.DataFrame):
        validation = validation.toPandas()
    try:
        return coordinate_descent(spec, backend, offset=offset, external_fixed=False,
                                  validate=_validator(validation, spec, label, None), callback=callback)
    finally:
        backend.release()
