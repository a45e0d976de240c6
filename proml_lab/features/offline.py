"""Offline features on Spark: sources → feature tables (with sliding windows) → point-in-time joins.

A feature table holds every value an anchor ever had, one row per (key, event time) change point::

    <lake>/features/<anchor>/batch=<n>/date=<YYYY-MM-DD>/*.parquet   (date=<YYYY-MM-01> for monthly anchors)
        <join_key>, event_ts (UTC), <feature> ..., _batch

Each :func:`materialize_anchor` call adds a new batch (published all-or-nothing); readers read all of
them, and for equal (key, event_ts) the highest ``_batch`` wins, so late-arriving data is a new batch,
never a rewrite. :mod:`proml_lab.features.pit` joins labels with these tables (point in time).

Examples
--------
>>> done = materialize_anchor(spark, anchor, member, source, lake=lake, sources={})   # doctest: +SKIP
>>> requests = feature_requests(anchor, member, lake=lake)                             # doctest: +SKIP
>>> train = get_training_data(spark, labels, requests, timestamp_column="ts")         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proml_lab.errors import DataNotFoundError, DefinitionError, FeatureError
from proml_lab.features.spec import Anchor, Entity, Feature, Source, WindowAggregation

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType

_US = 1_000_000
_EPOCH, _ONE_US = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.timedelta(microseconds=1)
_RESERVED = ("event_ts", "_batch", "batch", "date")
_BATCH_DIR = re.compile(r"^\.?batch=(\d+)(?:\.staging-\w+)?$")
_DIM_MARKER = "PROML_VECTOR_DIMENSION"
# Internal column names of the as-of merge; prefixed so they never meet a label column.
_T, _KIND, _BATCH, _SALT = "__proml_t", "__proml_kind", "__proml_batch", "__proml_salt"


@dataclass(frozen=True)
class MaterializedAnchor:
    """What one :func:`materialize_anchor` call wrote.

    ``start``/``end`` are the requested range (None: unbounded); ``min_event_ts``/``max_event_ts`` the
    range of the rows written (None when no row was). ``frame`` reads the new batch back.
    """

    anchor: str
    table_path: Path
    batch_path: Path
    batch: int
    rows: int
    start: dt.datetime | None
    end: dt.datetime | None
    min_event_ts: dt.datetime | None
    max_event_ts: dt.datetime | None
    features: dict[str, str]
    spark: SparkSession = field(repr=False, compare=False)
    schema: Any = field(repr=False, compare=False, default=None)

    @property
    def frame(self) -> DataFrame:
        """The batch's rows: key, event_ts, one column per feature, _batch (empty batches too)."""
        if self.rows == 0:  # an empty batch has no Parquet file to read a schema from
            return self.spark.createDataFrame([], self.schema)
        return _read_parquet(self.spark, str(self.batch_path)).drop("date")


@dataclass(frozen=True)
class FeatureRequest:
    """One feature wanted in training data: where its table is and how old a value may be.

    ``ttl`` (a timedelta, or a duration such as ``"30d"``) None means values never expire; a value
    older than ``ttl`` at the label's time is null.
    """

    feature: str
    anchor: str
    table_path: Path | str
    join_key: str
    ttl: dt.timedelta | str | None = None


def feature_table_path(lake: Path | str, anchor: str) -> Path:
    """``<lake>/features/<anchor>``: the table every batch of ``anchor`` lives in."""
    return Path(lake) / "features" / anchor


def feature_requests(anchor: Anchor, entity: Entity, *, lake: Path | str) -> list[FeatureRequest]:
    """Requests for every feature of ``anchor`` (TTL: the feature's, else the anchor's).

    Examples
    --------
    >>> [r.feature for r in feature_requests(anchor, member, lake="/lake")]   # doctest: +SKIP
    ['member_seniority']
    """
    table = feature_table_path(lake, anchor.name)
    return [FeatureRequest(f.name, anchor.name, table, entity.join_key, f.ttl or anchor.ttl)
            for f in anchor.all_features]


# -- sources ---------------------------------------------------------------------------------------
def source_frame(
    spark: SparkSession, source: Source, *, lake: Path | str, sources: Mapping[str, Source],
    _seen: tuple[str, ...] = (),
) -> DataFrame:
    """The rows of a source as a Spark DataFrame.

    Parquet paths and globs resolve against ``lake`` (hive partitions such as ``date=...`` become
    columns); SQL may name other sources, which are registered as temporary views first.

    Examples
    --------
    >>> src = Source(name="acts", path="world/member_activity", timestamp_column="event_ts")
    >>> source_frame(spark, src, lake=lake, sources={}).count()             # doctest: +SKIP
    10229
    """
    from pyspark.errors import AnalysisException

    what = f"Source {source.name!r}"
    if source.path:
        where = source.path if "://" in source.path else str(Path(lake) / source.path)
        pattern = glob.has_magic(where)
        if "://" not in where and not (glob.glob(where) if pattern else os.path.exists(where)):
            raise DataNotFoundError(f"{what}: no data at {where}", path=where)
        options: dict[str, str] = {}
        if pattern:  # keep hive partition columns when the glob picks partitions
            parts = where.split("/")
            options["basePath"] = "/".join(parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))])
        try:
            return _read_parquet(spark, where, options=options)
        except AnalysisException as exc:
            reason = f"{what}: cannot read Parquet at {where} [{_condition(exc)}]"
            raise DataNotFoundError(reason, path=where) from None
    if source.table:
        if not spark.catalog.tableExists(source.table):
            raise DataNotFoundError(f"{what}: no Spark table {source.table!r}", path=source.table)
        return spark.table(source.table)
    for name in sorted(sources):
        if name != source.name and re.search(rf"\b{re.escape(name)}\b", source.sql or ""):
            if name in _seen:
                raise DefinitionError(f"source {source.name!r}: SQL refers back to {name!r}", field="sql")
            view = source_frame(spark, sources[name], lake=lake, sources=sources, _seen=(*_seen, source.name))
            view.createOrReplaceTempView(name)
    try:
        return spark.sql(source.sql or "")
    except AnalysisException as exc:
        reason = f"source {source.name!r}: the SQL fails [{_condition(exc)}]"
        raise DefinitionError(reason, field="sql") from None


# -- materialization -------------------------------------------------------------------------------
def materialize_anchor(
    spark: SparkSession, anchor: Anchor, entity: Entity, source: Source, *, lake: Path | str,
    sources: Mapping[str, Source], start: dt.datetime | None = None, end: dt.datetime | None = None,
) -> MaterializedAnchor:
    """Compute an anchor's features on Spark and publish them as a new batch of its feature table.

    Plain features give one row per source row with ``start <= event_ts < end``. Window aggregations
    give one row per change point (every event time and every expiry time ``event_ts + window``), so
    a point-in-time lookup at any time finds the exact window value; with ``start``, events from
    ``start - max window`` count and every key active then gets a row at exactly ``start``.

    Examples
    --------
    >>> done = materialize_anchor(spark, anchor, member, source, lake=lake, sources={})  # doctest: +SKIP
    >>> done.batch, done.rows                                                          # doctest: +SKIP
    (1, 30482)
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    key = entity.join_key
    _check_names(anchor, key)
    events = _events(source_frame(spark, source, lake=lake, sources=sources), anchor, entity, source)
    lo, hi = _micros(start), _micros(end)
    rows = _window_rows(events, anchor, key, lo, hi) if anchor.aggregations else _in_range(events, lo, hi)
    table = feature_table_path(lake, anchor.name)
    batch = _next_batch(table)
    seen = Observation(f"materialize-{anchor.name}-{uuid.uuid4().hex[:8]}")
    rows = rows.observe(seen, F.count(F.lit(1)).alias("rows"), F.min(_T).alias("lo"), F.max(_T).alias("hi"))
    day = F.date_from_unix_date(F.floor(F.col(_T) / (86_400 * _US)).cast("int"))
    if anchor.partition == "month":  # slowly changing anchors: a folder per month, not thousands of days
        day = F.trunc(day, "month")
    out = rows.select(
        F.col(key), F.timestamp_micros(_T).alias("event_ts"),
        *[_dimension_checked(F.col(f.name), f) for f in anchor.all_features],
        F.lit(batch).cast("long").alias("_batch"), day.cast("string").alias("date"),
    )
    batch_path = _publish(spark, out, table, batch, anchor, key)
    got = _observed(spark, seen, batch_path)
    return MaterializedAnchor(
        anchor=anchor.name, table_path=table, batch_path=batch_path, batch=batch, rows=int(got["rows"]),
        start=start, end=end, min_event_ts=_datetime(got["lo"]), max_event_ts=_datetime(got["hi"]),
        features={f.name: f.type for f in anchor.all_features}, spark=spark, schema=out.drop("date").schema,
    )


def _observed(spark: SparkSession, seen: Any, batch_path: Path) -> dict[str, Any]:
    """Rows and time range of the write (observed while writing; read back if Spark kept no metrics)."""
    from pyspark.sql import functions as F

    with contextlib.suppress(Exception):
        return dict(seen.get)
    if not any(batch_path.glob("date=*/*.parquet")):
        return {"rows": 0, "lo": None, "hi": None}
    t = F.unix_micros("event_ts")
    row = _read_parquet(spark, str(batch_path)).agg(F.count(F.lit(1)), F.min(t), F.max(t)).collect()[0]
    return {"rows": row[0], "lo": row[1], "hi": row[2]}


def _check_names(anchor: Anchor, key: str) -> None:
    for f in anchor.all_features:
        if f.name in _RESERVED or f.name == key:
            raise DefinitionError(
                f"anchor {anchor.name!r}: feature name {f.name!r} is reserved in feature tables "
                f"({', '.join((key, *_RESERVED))})", field="name",
            )


def _events(frame: DataFrame, anchor: Anchor, entity: Entity, source: Source) -> DataFrame:
    """Source rows as (key, _T micros, one typed column per feature); bad expressions → DefinitionError."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType, StringType

    key, ts = anchor.key or entity.join_key, source.timestamp_column
    exprs = {f.name: e for f in anchor.all_features
             if (e := f.expression if isinstance(f, Feature) else f.expr)}
    try:  # one analysis for all expressions; only a failure looks at them one by one
        schema = frame.select(F.expr(key), F.expr(ts), *[F.expr(e) for e in exprs.values()]).schema
    except AnalysisException:
        _resolve(frame, key, anchor, None, "key", source)
        _resolve(frame, ts, anchor, None, "timestamp_column", source)
        for f in anchor.all_features:
            if f.name in exprs:
                _resolve(frame, exprs[f.name], anchor, f, "expr", source)
        raise DefinitionError(f"anchor {anchor.name!r}: its expressions fail on {source.name!r}") from None
    key_type, ts_type, *types = [f.dataType for f in schema]
    if not isinstance(key_type, (NumericType, StringType)):
        raise DefinitionError(
            f"anchor {anchor.name!r}: key {key!r} has type {key_type.simpleString()}; "
            f"entity {entity.name!r} needs {entity.key_type}", field="key",
        )
    dtype = dict(zip(exprs, types))
    values = [
        _typed(F.expr(exprs[f.name]), dtype[f.name], f, anchor).alias(f.name) if f.name in exprs
        else F.lit(1.0).alias(f.name)  # a count of events needs no expression
        for f in anchor.all_features
    ]
    return frame.select(
        F.expr(key).cast("long" if entity.key_type == "int64" else "string").alias(entity.join_key),
        _micros_of(F.expr(ts), ts_type).alias(_T), *values,
    ).where(F.col(entity.join_key).isNotNull() & F.col(_T).isNotNull())


def _resolve(frame: DataFrame, expr: str, anchor: Anchor, feature: Any, what: str, source: Source) -> None:
    """Raise a DefinitionError naming the anchor, feature and field if ``expr`` does not analyze."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    try:
        frame.select(F.expr(expr)).schema
    except AnalysisException as exc:
        subject = f"anchor {anchor.name!r}" + (f", feature {feature.name!r}" if feature else "")
        raise DefinitionError(
            f"{subject}: expression {expr!r} cannot be evaluated on source {source.name!r} "
            f"[{_condition(exc)}]; its columns are {', '.join(frame.columns)}", field=what,
        ) from None


def _typed(column: Column, dtype: DataType, f: Feature | WindowAggregation, anchor: Anchor) -> Column:
    """Cast to the feature table's type: numbers and 0/1 → double, vectors → array<float>, else string."""
    from pyspark.sql.types import ArrayType, BinaryType, BooleanType, MapType, NumericType, StructType

    number = (NumericType, BooleanType)
    if f.type in ("numeric", "binary") and isinstance(dtype, number):
        return column.cast("double")
    if f.type == "vector" and isinstance(dtype, ArrayType) and isinstance(dtype.elementType, number):
        return column.cast("array<float>")
    nested = (ArrayType, MapType, StructType, BinaryType)
    if f.type in ("categorical", "text") and not isinstance(dtype, nested):
        return column.cast("string")
    need = {"numeric": "a number", "binary": "a number or boolean", "vector": "an array of numbers"}
    hint = "; join lists with array_join(...)" if isinstance(dtype, ArrayType) else ""
    raise DefinitionError(
        f"anchor {anchor.name!r}, feature {f.name!r}: type {f.type!r} needs "
        f"{need.get(f.type, 'a scalar')}, but its expression has type {dtype.simpleString()}{hint}",
        field="type",
    )


def _dimension_checked(column: Column, f: Feature | WindowAggregation) -> Column:
    """Vectors of the wrong length fail the write with a marker that becomes a DefinitionError."""
    from pyspark.sql import functions as F

    if f.type != "vector":
        return column.alias(f.name)
    size = F.size(column)
    bad = F.raise_error(F.concat(F.lit(f"{_DIM_MARKER}|{f.name}|"), size.cast("string"), F.lit("|")))
    return F.when(column.isNull() | (size == f.dimension), column).otherwise(bad).alias(f.name)


def _in_range(rows: DataFrame, lo: int | None, hi: int | None) -> DataFrame:
    """Rows with ``lo <= _T < hi`` (either bound may be None)."""
    from pyspark.sql import functions as F

    rows = rows if lo is None else rows.where(F.col(_T) >= lo)
    return rows if hi is None else rows.where(F.col(_T) < hi)


def _window_rows(events: DataFrame, anchor: Anchor, key: str, lo: int | None, hi: int | None) -> DataFrame:
    """Window values at every change point: range windows over (t - w, t], one sort per key."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    width = {a.name: int(a.window.total_seconds() * _US) for a in anchor.aggregations}
    windows = sorted(set(width.values()))
    events = _in_range(events, None if lo is None else lo - windows[-1], hi)

    def point(t: Column, is_event: bool) -> Column:
        return F.struct(t.alias("t"), F.lit(is_event).alias("ev"))

    points = [point(F.col(_T), True), *(point(F.col(_T) + w, False) for w in windows)]
    if lo is not None:  # every key active in [lo - max window, lo) gets a complete row at lo
        points.append(F.when(F.col(_T) < lo, point(F.lit(lo), False)))
    names = [f.name for f in anchor.all_features]
    exploded = events.select(key, *names, F.explode(F.array(*points)).alias("_p")).where("_p is not null")
    rows = exploded.select(  # expiry rows carry no values
        key, F.col("_p.t").alias(_T), F.col("_p.ev").alias("_ev"),
        *[F.when(F.col("_p.ev"), F.col(n)).alias(n) for n in names],
    )
    by_key = Window.partitionBy(key).orderBy(_T)
    values = [_window_value(a, by_key.rangeBetween(-(width[a.name] - 1), 0)) for a in anchor.aggregations]
    if anchor.features:  # plain features of a mixed anchor: the latest event's values, carried forward
        plain = F.struct(*[f.name for f in anchor.features]).alias("v")
        latest = F.max(F.when(F.col("_ev"), F.struct(F.col(_T), plain)))
        carried = latest.over(by_key.rangeBetween(Window.unboundedPreceding, 0)).getField("v")
        values += [carried.getField(f.name).alias(f.name) for f in anchor.features]
    # All rows at one (key, time) are peers in the range frames, so they carry identical values.
    return _in_range(rows.select(key, _T, *values), lo, hi).dropDuplicates([key, _T])


def _window_value(a: WindowAggregation, frame: Any) -> Column:
    from pyspark.sql import functions as F

    v = F.col(a.name)
    if a.function == "count":
        value = F.count(v).over(frame).cast("double")
    elif a.function == "sum":
        value = F.coalesce(F.sum(v).over(frame), F.lit(0.0))
    elif a.function == "latest":  # most recent non-null value; ties at one time: the largest
        value = F.max(F.when(v.isNotNull(), F.struct(F.col(_T), v))).over(frame).getField(a.name)
    else:
        value = {"avg": F.avg, "min": F.min, "max": F.max}[a.function](v).over(frame)
    return value.alias(a.name)


def _next_batch(table: Path) -> int:
    names = [p.name for p in table.iterdir()] if table.is_dir() else []
    return max((int(m.group(1)) for n in names if (m := _BATCH_DIR.match(n))), default=0) + 1


def _publish(spark: SparkSession, out: DataFrame, table: Path, batch: int, anchor: Anchor, key: str) -> Path:
    """Write into a hidden staging folder, then rename it into place: all or nothing."""
    table.mkdir(parents=True, exist_ok=True)
    target = table / f"batch={batch}"
    staging = table / f".batch={batch}.staging-{uuid.uuid4().hex[:12]}"
    try:
        try:
            with _conf(spark, "spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"):
                (out.repartition("date").sortWithinPartitions(key, "event_ts")
                    .write.partitionBy("date").mode("errorifexists").parquet(str(staging)))
        except Exception as exc:
            if match := re.search(rf"{_DIM_MARKER}\|(\w+)\|(\d+)\|", str(exc)):
                f = next(f for f in anchor.features if f.name == match.group(1))
                raise DefinitionError(
                    f"anchor {anchor.name!r}, feature {f.name!r}: a vector has {match.group(2)} values; "
                    f"the definition says dimension {f.dimension}", field="dimension",
                ) from None
            raise
        try:
            os.rename(staging, target)  # fails if a concurrent run took this batch id
        except OSError as exc:
            raise FeatureError(f"anchor {anchor.name!r}: batch {batch} was published concurrently") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# -- helpers ---------------------------------------------------------------------------------------
def _read_parquet(
    spark: SparkSession, path: str, *, merge: bool = False, options: Mapping[str, str] | None = None
) -> DataFrame:
    """Read Parquet; local folders are listed on the driver (a listing job costs seconds locally)."""
    listing = "spark.sql.sources.parallelPartitionDiscovery.threshold"
    with _conf(spark, listing, "1000000") if "://" not in path else contextlib.nullcontext():
        return spark.read.options(mergeSchema=str(merge).lower(), **(options or {})).parquet(path)


@contextlib.contextmanager
def _conf(spark: SparkSession, name: str, value: str) -> Iterator[None]:
    old = spark.conf.get(name, None)
    spark.conf.set(name, value)
    try:
        yield
    finally:
        spark.conf.unset(name) if old is None else spark.conf.set(name, old)


def _micros_of(column: Column, dtype: DataType) -> Column:
    """Epoch microseconds of a timestamp, date, date/time string or epoch-seconds number."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    if isinstance(dtype, NumericType):
        return (column.cast("double") * _US).cast("long")
    return F.unix_micros(column.cast("timestamp"))


def _micros(value: dt.datetime | dt.date | None) -> int | None:
    """Epoch microseconds of a datetime (naive means UTC) or a date (its UTC midnight)."""
    if value is None:
        return None
    value = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    return ((value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)) - _EPOCH) // _ONE_US


def _datetime(micros: int | None) -> dt.datetime | None:
    return None if micros is None else _EPOCH + int(micros) * _ONE_US


def _condition(exc: Exception) -> str:
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    return (getter() if getter else None) or type(exc).__name__
