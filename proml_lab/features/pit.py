"""Point-in-time joins over feature tables, and derived features computed on Spark.

:func:`get_training_data` joins labels with each feature's latest value at or before the label's
timestamp (within its TTL) by an as-of merge: labels and feature rows are unioned per entity key, sorted
once, and the last feature row is carried forward — no range joins, no cross joins, every label row
exactly once. :func:`add_derived` runs the registered derived-feature functions over Arrow batches, the
same code the online path runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proml_lab.errors import DataNotFoundError, FeatureError, UnknownFeatureError
from proml_lab.features.offline import (
    _BATCH, _BATCH_DIR, _KIND, _ONE_US, _RESERVED, _SALT, _T, FeatureRequest, _condition, _micros_of,
    _read_parquet,
)
from proml_lab.features.spec import DerivedFeature, parse_duration

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType


# -- point-in-time join ----------------------------------------------------------------------------
def get_training_data(
    spark: SparkSession, labels: DataFrame, requests: Sequence[FeatureRequest], *, timestamp_column: str,
    return_event_ts: bool = False,
) -> DataFrame:
    """Join labels with each requested feature's latest value at or before the label's timestamp.

    Every label row comes back exactly once with its columns untouched, plus one column per feature
    (null where no value exists, where the key is null, or where the value is older than the TTL).
    A value stamped exactly at the label's time is used; a later one never is. Anchors of the same
    entity key share one as-of merge (one sort); ``return_event_ts`` adds ``<anchor>__event_ts``, the
    time of the row each value came from.

    Examples
    --------
    >>> reqs = [FeatureRequest("member_jobViews_7d", "member_activity", table, "member_id")]  # doctest: +SKIP
    >>> get_training_data(spark, labels, reqs, timestamp_column="impression_ts").columns  # doctest: +SKIP
    ['impression_id', 'member_id', 'impression_ts', 'clicked', 'member_jobViews_7d']
    """
    from pyspark.sql import functions as F

    _check_requests(labels, requests, timestamp_column)
    columns = list(labels.columns)
    ts_type = labels.schema[timestamp_column].dataType
    frame = labels.withColumn(_T, _micros_of(F.col(timestamp_column), ts_type))
    by_key: dict[str, dict[str, list[FeatureRequest]]] = {}
    for r in requests:
        by_key.setdefault(r.join_key, {}).setdefault(str(r.table_path), []).append(r)
    for key, tables in by_key.items():  # one shuffle of the labels per entity key
        frame = _as_of(spark, frame, key, tables, return_event_ts)
    anchors = [reqs[0].anchor for tables in by_key.values() for reqs in tables.values()]
    extra = [f"{a}__event_ts" for a in anchors] if return_event_ts else []
    return frame.select(*columns, *[r.feature for r in requests], *extra)


def _check_requests(labels: DataFrame, requests: Sequence[FeatureRequest], timestamp_column: str) -> None:
    names = [r.feature for r in requests]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise FeatureError(f"Features requested more than once: {', '.join(dupes)}")
    needed = [timestamp_column, *dict.fromkeys(r.join_key for r in requests)]
    if missing := [c for c in needed if c not in labels.columns]:
        have = ", ".join(labels.columns)
        raise FeatureError(f"The labels lack column(s) {', '.join(missing)}; they have {have}")
    if clash := [n for n in names if n in labels.columns]:
        raise FeatureError(f"Feature(s) {', '.join(clash)} clash with label columns of the same name")
    anchors: dict[str, set[str]] = {}
    for r in requests:
        if len(anchors.setdefault(str(r.table_path), set()) | {r.anchor}) > 1:
            raise FeatureError(f"Table {r.table_path} is requested under more than one anchor name")
        anchors[str(r.table_path)].add(r.anchor)


def _as_of(
    spark: SparkSession, frame: DataFrame, key: str, tables: Mapping[str, list[FeatureRequest]],
    event_ts: bool,
) -> DataFrame:
    """One as-of merge for every table keyed by ``key``: union, sort, carry each table's struct forward."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key_type = frame.schema[key].dataType
    union = frame.withColumns({
        _KIND: F.lit(1), _BATCH: F.lit(None).cast("long"),
        # Null keys never match; spreading them over many groups keeps them off one task.
        _SALT: F.when(F.col(key).isNull(), F.floor(F.rand() * 1024)).cast("int"),
    })
    for i, (table, reqs) in enumerate(tables.items()):
        rows = _read_table(spark, table, reqs[0].anchor, key, [r.feature for r in reqs])
        t = F.unix_micros("event_ts")
        union = union.unionByName(rows.select(
            F.col(key).try_cast(key_type).alias(key), t.alias(_T), F.col("_batch").alias(_BATCH),
            F.lit(0).alias(_KIND), F.lit(None).cast("int").alias(_SALT),
            # A struct, so a genuinely null value is carried as null, not skipped for an older one.
            F.struct(t.alias(_T), *[r.feature for r in reqs]).alias(f"__s{i}"),
        ).where(F.col(key).isNotNull()), allowMissingColumns=True)
    # At equal times features sort before labels ("at or before") and newer batches after older ones.
    window = (Window.partitionBy(key, _SALT).orderBy(_T, _KIND, _BATCH)
              .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    carried = union.withColumns(
        {f"__s{i}": F.last(f"__s{i}", ignorenulls=True).over(window) for i in range(len(tables))}
    ).where(F.col(_KIND) == 1)
    added = {}
    for i, reqs in enumerate(tables.values()):
        matched = F.col(f"__s{i}").getField(_T)
        for r in reqs:
            value = F.col(f"__s{i}").getField(r.feature)
            if r.ttl is not None:
                value = F.when(F.col(_T) - matched <= parse_duration(r.ttl) // _ONE_US, value)
            added[r.feature] = value
        if event_ts:
            added[f"{reqs[0].anchor}__event_ts"] = F.timestamp_micros(matched)
    return carried.select(*frame.columns, *[v.alias(n) for n, v in added.items()])


def _read_table(spark: SparkSession, table: str, anchor: str, key: str, features: Sequence[str]) -> DataFrame:
    from pyspark.errors import AnalysisException

    path = None if "://" in table else Path(table)
    if path and not (path.is_dir() and any(_BATCH_DIR.match(p.name) for p in path.glob("batch=*"))):
        raise DataNotFoundError(f"Anchor {anchor!r} has no feature table at {table}; materialize it first.",
                                path=table)
    try:
        rows = _read_parquet(spark, table)
    except AnalysisException as exc:  # every batch is empty: no file to read a schema from
        reason = f"Anchor {anchor!r}: its feature table at {table} has no rows [{_condition(exc)}]"
        raise DataNotFoundError(reason, path=table) from None
    if any(c not in rows.columns for c in features):  # a feature added after the first batch
        rows = _read_parquet(spark, table, merge=True)
    if missing := [c for c in (key, *features) if c not in rows.columns]:
        known = [c for c in rows.columns if c not in _RESERVED]
        raise UnknownFeatureError(missing[0], known, what=f"column of feature table {anchor!r}")
    return rows.select(key, "event_ts", "_batch", *features)


# -- derived features ------------------------------------------------------------------------------
def add_derived(df: DataFrame, derived: Sequence[DerivedFeature]) -> DataFrame:
    """Add derived features, computed by the registered functions over Arrow batches (``mapInPandas``).

    Numeric inputs reach the function as float64 arrays with NaN for null, vectors as 2-D float64
    arrays (a NaN row for null), other inputs as object arrays; the same function serves online.
    A derived feature may use the ones before it in ``derived``.

    Examples
    --------
    >>> d = DerivedFeature(name="x_log", entity="member", inputs=["x"], function="log1p_sum")
    >>> add_derived(df, [d]).columns                                        # doctest: +SKIP
    ['member_id', 'x', 'x_log']
    """
    from pyspark.sql.types import StructField, StructType

    from proml_lab.features.derived import get_derived_function

    kinds = {f.name: _input_kind(f.dataType) for f in df.schema.fields}
    specs = []
    for d in derived:
        if missing := [n for n in d.inputs if n not in kinds]:
            raise UnknownFeatureError(missing[0], sorted(kinds), what=f"input of derived feature {d.name!r}")
        fn = get_derived_function(d.function)  # resolved here: unknown names fail on the driver
        specs.append((d.name, d.function, fn, tuple(d.inputs), dict(d.params), d.type))
        kinds[d.name] = {"numeric": "float", "binary": "float", "vector": "vector"}.get(d.type, "object")
    schema = StructType([*df.schema.fields, *[StructField(d.name, _spark_type(d.type)) for d in derived]])
    return df.mapInPandas(_DerivedBatches(specs, kinds), schema)


class _DerivedBatches:
    """The batch function shipped to the Python workers (a picklable callable)."""

    def __init__(self, specs: list[tuple], kinds: dict[str, str]) -> None:
        self.specs, self.kinds = specs, kinds

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        from proml_lab.features.derived import compute_derived, derived_function

        for _, function, fn, *_ in self.specs:  # so functions defined in a notebook reach the workers
            derived_function(function)(fn)
        for pdf in batches:
            for name, function, _, inputs, params, out_type in self.specs:
                arrays = {n: _to_numpy(pdf[n], self.kinds[n]) for n in inputs}
                pdf[name] = _from_numpy(compute_derived(function, arrays, params), out_type)
            yield pdf


def _input_kind(dtype: DataType) -> str:
    from pyspark.sql.types import ArrayType, BooleanType, NumericType

    number = (NumericType, BooleanType)
    if isinstance(dtype, number):
        return "float"
    return "vector" if isinstance(dtype, ArrayType) and isinstance(dtype.elementType, number) else "object"


def _to_numpy(series: Any, kind: str) -> Any:
    import numpy as np
    import pandas as pd

    if kind == "float":
        return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()
    if kind == "vector":
        rows = [None if v is None or (np.isscalar(v) and pd.isna(v)) else np.asarray(v, float)
                for v in series]
        width = max((len(v) for v in rows if v is not None), default=0)
        return np.array([np.full(width, np.nan) if v is None else v for v in rows]).reshape(len(rows), width)
    return series.astype(object).where(series.notna(), None).to_numpy()


def _from_numpy(values: Any, out_type: str) -> Any:
    import numpy as np

    if out_type in ("numeric", "binary"):
        return np.asarray(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    if out_type == "vector":
        out[:] = [None if np.isnan(r).all() else r.astype(np.float32) for r in np.asarray(values, float)]
    else:
        out[:] = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    return out


def _spark_type(value_type: str) -> DataType:
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, StringType

    types = {"numeric": DoubleType(), "binary": DoubleType(), "vector": ArrayType(FloatType())}
    return types.get(value_type, StringType())
