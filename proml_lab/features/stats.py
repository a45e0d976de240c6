"""Distribution summaries of feature columns, computed on Spark in two aggregation passes.

Pass one gets counts, moments, extremes, approximate quantiles, approximate distinct counts and
mean vector norms for every feature at once; pass two counts histogram bins (numbers) and the commonest
values (categories) for every feature at once, over one stacked (feature, bucket) column. The result is
plain JSON data (floats, ints, strings, None for NaN), what the catalog records per materialization.

Examples
--------
>>> df = spark.createDataFrame([(1.0, "a"), (3.0, "b"), (None, "a")], "x double, c string")  # doctest: +SKIP
>>> s = summarize(df, {"x": "numeric", "c": "categorical"})                 # doctest: +SKIP
>>> s["x"]["mean"], s["x"]["null_rate"], s["c"]["top"][0]                   # doctest: +SKIP
(2.0, 0.3333333333333333, {'value': 'a', 'count': 2})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from proml_lab.errors import UnknownFeatureError
from proml_lab.features.spec import ValueType

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 10
QUANTILE_ACCURACY = 10_000
_NUMERIC = ("numeric", "binary")
_CATEGORICAL = ("categorical", "text")


def summarize(df: DataFrame, features: Mapping[str, ValueType]) -> dict[str, dict[str, Any]]:
    """Summaries per feature column of ``df``.

    Every feature gets ``type``, ``rows`` (all rows), ``count`` (non-null values; NaN counts as null)
    and ``null_rate``. Numbers (numeric, binary) add ``mean``, ``std`` (sample), ``min``, ``max``,
    ``quantiles`` (p01 ... p99, approximate) and ``histogram`` (20 equal-width bins from min to max,
    each ``{lo, hi, count}``; the last bin includes max). Categories and text add ``distinct``
    (approximate) and ``top`` (the 10 commonest values with counts); vectors add ``mean_norm`` (mean L2
    norm).

    Examples
    --------
    >>> stats = summarize(df, {"member_jobViews_7d": "numeric"})             # doctest: +SKIP
    >>> stats["member_jobViews_7d"]["quantiles"]["p50"]                      # doctest: +SKIP
    3.0
    """
    if missing := [n for n in features if n not in df.columns]:
        raise UnknownFeatureError(missing[0], sorted(df.columns), what="column to summarize")
    first = _first_pass(df, features)
    rows = int(first["__rows"])
    out = {name: _basic(name, kind, first, rows) for name, kind in features.items()}
    for name, buckets in _second_pass(df, features, out).items():
        if features[name] in _NUMERIC:
            out[name]["histogram"] = _histogram(out[name], buckets)
        else:
            top = sorted(buckets.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]
            out[name]["top"] = [{"value": v, "count": c} for v, c in top]
    return out


def _value(df: DataFrame, name: str, kind: str) -> Column:
    """The column with NaN as null, so numeric nulls and NaNs count the same."""
    from pyspark.sql import functions as F

    column = F.col(f"`{name}`")
    if kind in _NUMERIC:
        column = column.cast("double")
        return F.when(~F.isnan(column), column)
    if kind == "vector":
        return column
    return column.cast("string")


def _first_pass(df: DataFrame, features: Mapping[str, ValueType]) -> dict[Any, Any]:
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, (name, kind) in enumerate(features.items()):
        v = _value(df, name, kind)
        aggs.append(F.count(v).alias(f"{i}_count"))
        if kind in _NUMERIC:
            aggs += [
                F.avg(v).alias(f"{i}_mean"), F.stddev_samp(v).alias(f"{i}_std"),
                F.min(v).alias(f"{i}_min"), F.max(v).alias(f"{i}_max"),
                F.percentile_approx(v, list(QUANTILES.values()), QUANTILE_ACCURACY).alias(f"{i}_q"),
            ]
        elif kind in _CATEGORICAL:
            aggs.append(F.approx_count_distinct(v).alias(f"{i}_distinct"))
        elif kind == "vector":
            squares = F.aggregate(v, F.lit(0.0), lambda acc, x: acc + x.cast("double") * x.cast("double"))
            norm = F.sqrt(squares)
            aggs.append(F.avg(norm).alias(f"{i}_norm"))
    row = df.agg(*aggs).collect()[0].asDict()
    # Re-key by feature name: positional aliases keep odd feature names out of Spark column names.
    names = list(features)
    return {"__rows": row["__rows"], **{
        (names[int(k.split("_", 1)[0])], k.split("_", 1)[1]): v for k, v in row.items() if k != "__rows"
    }}


def _basic(name: str, kind: str, first: Mapping[Any, Any], rows: int) -> dict[str, Any]:
    count = int(first[(name, "count")])
    out: dict[str, Any] = {
        "type": kind, "rows": rows, "count": count, "null_rate": _float(1 - count / rows) if rows else None,
    }
    if kind in _NUMERIC:
        quantiles = first[(name, "q")] or [None] * len(QUANTILES)
        out.update(
            mean=_float(first[(name, "mean")]), std=_float(first[(name, "std")]),
            min=_float(first[(name, "min")]), max=_float(first[(name, "max")]),
            quantiles={k: _float(q) for k, q in zip(QUANTILES, quantiles)}, histogram=[],
        )
    elif kind in _CATEGORICAL:
        out.update(distinct=int(first[(name, "distinct")]), top=[])
    elif kind == "vector":
        out["mean_norm"] = _float(first[(name, "norm")])
    return out


def _second_pass(
    df: DataFrame, features: Mapping[str, ValueType], basic: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, int]]:
    """Counts per (feature, bucket): histogram bin index for numbers, the value for categories."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pairs = []
    for i, (name, kind) in enumerate(features.items()):
        v = _value(df, name, kind)
        lo, hi = basic[name].get("min"), basic[name].get("max")
        if kind in _NUMERIC and lo is not None and hi is not None:  # None: no values, or infinite ones
            width = (hi - lo) / HISTOGRAM_BINS if hi > lo else 1.0
            index = F.least(F.floor((v - F.lit(lo)) / F.lit(width)), F.lit(HISTOGRAM_BINS - 1))
            bucket = F.when(v.isNotNull(), index.cast("string"))  # least() would turn null into the last bin
        elif kind in _CATEGORICAL and basic[name]["count"]:
            bucket = v
        else:
            continue
        pairs.append(F.struct(F.lit(i).alias("f"), bucket.alias("b")))
    if not pairs:
        return {}
    counts = (
        df.select(F.explode(F.array(*pairs)).alias("p")).where(F.col("p.b").isNotNull())
        .groupBy(F.col("p.f").alias("f"), F.col("p.b").alias("b")).count()
    )
    rank = F.row_number().over(Window.partitionBy("f").orderBy(F.desc("count"), "b"))
    numeric = [i for i, k in enumerate(features.values()) if k in _NUMERIC]
    kept = counts.withColumn("r", rank).where((F.col("r") <= TOP_CATEGORIES) | F.col("f").isin(numeric))
    names = list(features)
    out: dict[str, dict[str, int]] = {}
    for row in kept.collect():
        out.setdefault(names[row["f"]], {})[row["b"]] = int(row["count"])
    return out


def _histogram(summary: Mapping[str, Any], buckets: Mapping[str, int]) -> list[dict[str, Any]]:
    lo, hi = summary["min"], summary["max"]
    if hi == lo:
        return [{"lo": lo, "hi": hi, "count": summary["count"]}]
    width = (hi - lo) / HISTOGRAM_BINS
    return [
        {"lo": lo + i * width, "hi": hi if i == HISTOGRAM_BINS - 1 else lo + (i + 1) * width,
         "count": int(buckets.get(str(i), 0))}
        for i in range(HISTOGRAM_BINS)
    ]


def _float(value: Any) -> float | None:
    """A plain float, or None for null, NaN and infinities (JSON has none of them)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
