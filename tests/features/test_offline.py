"""Feature tables on Spark: sources, plain features, sliding windows, batches, errors, derived features."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proml_lab.errors import DataNotFoundError, DefinitionError
from proml_lab.features.derived import compute_derived
from proml_lab.features.offline import (
    feature_table_path,
    materialize_anchor,
    source_frame,
)
from proml_lab.features.pit import add_derived
from proml_lab.features.spec import Anchor, DerivedFeature, Entity, Feature, Source, WindowAggregation

pytestmark = pytest.mark.spark

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
MEMBER = Entity(name="member", join_key="member_id")
EVENTS = Source(name="events", path="raw/events", timestamp_column="ts")
FUNCTIONS = ("count", "sum", "avg", "min", "max", "latest")
WINDOWS = {"2d": pd.Timedelta(days=2), "5d": pd.Timedelta(days=5)}


def write_parquet(lake: Path, rel: str, frame: pd.DataFrame) -> None:
    folder = lake / rel
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-0.parquet",
                   coerce_timestamps="us", allow_truncated_timestamps=True)


def random_events(seed: int = 7, n: int = 80) -> pd.DataFrame:
    """Events on an hourly grid (so expiries coincide with other events), with ties and nulls."""
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, 24 * 12, n)
    value = rng.integers(0, 10, n).astype(float)
    value[rng.random(n) < 0.15] = np.nan
    frame = pd.DataFrame({
        "member_id": rng.integers(1, 5, n),
        "ts": pd.Timestamp(T0) + pd.to_timedelta(hours, unit="h"),
        "value": value,
    })
    dup = frame.iloc[:5].assign(value=[1.0, 2.0, np.nan, 3.0, 4.0])  # same key and time, other values
    return pd.concat([frame, dup], ignore_index=True)


def window_anchor(name: str = "acts") -> Anchor:
    return Anchor(name=name, entity="member", source="events", owner="t", aggregations=[
        WindowAggregation(name=f"v_{fn}_{w}", expr=None if fn == "count" else "value", function=fn, window=w)
        for fn in FUNCTIONS for w in WINDOWS
    ])


def brute_force(events: pd.DataFrame, key: int, t: pd.Timestamp) -> dict[str, float | None]:
    """Window values at ``t`` straight from the definition: events in (t - w, t]."""
    out = {}
    for w, width in WINDOWS.items():
        rows = events[(events.member_id == key) & (events.ts > t - width) & (events.ts <= t)]
        v = rows.value.dropna()
        latest = rows.dropna(subset=["value"]).sort_values(["ts", "value"]).value
        out.update({
            f"v_count_{w}": float(len(rows)), f"v_sum_{w}": float(v.sum()),
            f"v_avg_{w}": v.mean() if len(v) else None, f"v_min_{w}": v.min() if len(v) else None,
            f"v_max_{w}": v.max() if len(v) else None, f"v_latest_{w}": latest.iloc[-1] if len(v) else None,
        })
    return out


def as_of(table: pd.DataFrame, key: int, t: pd.Timestamp) -> pd.Series | None:
    rows = table[(table.member_id == key) & (table.event_ts <= t)]
    return None if rows.empty else rows.sort_values(["event_ts", "_batch"]).iloc[-1]


def same(a: object, b: object) -> bool:
    if a is None or (isinstance(a, float) and np.isnan(a)):
        return b is None or (isinstance(b, float) and np.isnan(b))
    return b is not None and abs(float(a) - float(b)) < 1e-9


@pytest.fixture(scope="module")
def windowed(spark, tmp_path_factory):
    """One full materialization of the random events, shared by the window tests."""
    lake = tmp_path_factory.mktemp("lake")
    events = random_events()
    write_parquet(lake, "raw/events", events)
    done = materialize_anchor(spark, window_anchor(), MEMBER, EVENTS, lake=lake, sources={})
    table = done.frame.toPandas()
    table["event_ts"] = pd.to_datetime(table["event_ts"], utc=True)
    return lake, events, done, table


def test_window_values_at_every_change_point_match_brute_force(windowed):
    _, events, done, table = windowed
    offsets = [pd.Timedelta(0), *WINDOWS.values()]  # each event, and each expiry of it
    expected_points = {(k, t + o) for k, t in zip(events.member_id, events.ts) for o in offsets}
    assert {(k, t) for k, t in zip(table.member_id, table.event_ts)} == expected_points
    assert not table.duplicated(["member_id", "event_ts"]).any()
    for row in table.itertuples(index=False):
        want = brute_force(events, row.member_id, row.event_ts)
        for name, value in want.items():
            assert same(value, getattr(row, name)), (row.member_id, row.event_ts, name, value)
    assert done.rows == len(table) and done.batch == 1
    assert done.min_event_ts == events.ts.min().to_pydatetime()


def test_a_lookup_at_any_time_gets_the_exact_window_value(windowed):
    _, events, _, table = windowed
    rng = np.random.default_rng(1)
    for _ in range(150):
        key = int(rng.integers(1, 5))
        t = pd.Timestamp(T0) + pd.Timedelta(seconds=int(rng.integers(-86_400, 86_400 * 18)))
        row, want = as_of(table, key, t), brute_force(events, key, t)
        if row is None:  # nothing happened yet for this key
            assert not (events[events.member_id == key].ts <= t).any()
            continue
        for name, value in want.items():
            assert same(value, row[name]), (key, t, name)


def test_time_range_materialization_equals_the_full_one_within_the_range(spark, windowed):
    lake, events, _, full = windowed
    start, end = T0 + dt.timedelta(days=4, hours=5), T0 + dt.timedelta(days=9)
    part = materialize_anchor(spark, window_anchor("acts_range"), MEMBER, EVENTS, lake=lake, sources={},
                              start=start, end=end)
    ranged = part.frame.toPandas()
    ranged["event_ts"] = pd.to_datetime(ranged["event_ts"], utc=True)
    assert ranged.event_ts.min() >= pd.Timestamp(start) and ranged.event_ts.max() < pd.Timestamp(end)
    # Every key active in the lookback gets a row at exactly `start`.
    lookback = events[(events.ts >= pd.Timestamp(start) - WINDOWS["5d"]) & (events.ts < pd.Timestamp(start))]
    assert set(ranged[ranged.event_ts == pd.Timestamp(start)].member_id) >= set(lookback.member_id)
    names = [f.name for f in window_anchor().aggregations]
    inside = full.event_ts[(full.event_ts >= start) & (full.event_ts < end)]
    probes = sorted(set(ranged.event_ts) | set(inside))
    for key in range(1, 5):
        for t in probes:
            a, b = as_of(full, key, t), as_of(ranged, key, t)
            assert (a is None) == (b is None), (key, t)
            if a is not None:
                assert all(same(a[n], b[n]) for n in names), (key, t)
    assert (part.start, part.end, part.batch) == (start, end, 1)


def test_layout_types_and_new_batch_per_run(spark, tmp_path):
    frame = pd.DataFrame({
        "member_id": [1, 2, 3],
        "ts": pd.to_datetime(["2026-01-01 10:00", "2026-01-02 11:00", "2026-01-02 12:00"], utc=True),
        "seniority": pd.array([3, None, 5], dtype="Int32"), "premium": [True, False, None],
        "title": ["chef", None, "cook"], "emb": [[1.0, 2.0], None, [0.5, 0.25]],
    })
    write_parquet(tmp_path, "raw/events", frame)
    anchor = Anchor(name="profile", entity="member", source="events", owner="t", features=[
        Feature(name="m_seniority", expr="seniority", type="numeric"),
        Feature(name="m_premium", expr="premium", type="binary"),
        Feature(name="m_title", expr="upper(title)", type="categorical"),
        Feature(name="m_emb", expr="emb", type="vector", dimension=2),
    ])
    first = materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={})
    second = materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={},
                                start=dt.datetime(2026, 1, 2), end=dt.datetime(2026, 1, 2, 12))
    table = feature_table_path(tmp_path, "profile")
    assert first.batch_path == table / "batch=1" and second.batch_path == table / "batch=2"
    days = sorted(p.name for p in (table / "batch=1").iterdir() if p.is_dir())
    assert days == ["date=2026-01-01", "date=2026-01-02"]
    assert dict(first.frame.dtypes) == {
        "member_id": "bigint", "event_ts": "timestamp", "m_seniority": "double", "m_premium": "double",
        "m_title": "string", "m_emb": "array<float>", "_batch": "bigint",
    }
    arrow = pq.read_table(table / "batch=1" / "date=2026-01-01")
    assert arrow.schema.field("event_ts").type == pa.timestamp("us", tz="UTC")
    rows = first.frame.orderBy("member_id").toPandas()
    assert rows.m_premium.tolist()[:2] == [1.0, 0.0] and rows.m_title.tolist()[:2] == ["CHEF", None]
    assert rows.m_emb[2].tolist() == [0.5, 0.25] and rows._batch.tolist() == [1, 1, 1]
    only = second.frame.first()
    assert second.rows == 1 and (only["member_id"], only["_batch"]) == (2, 2)
    empty = materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={},
                               start=dt.date(2027, 1, 1))
    assert (empty.batch, empty.rows, empty.min_event_ts, empty.frame.count()) == (3, 0, None, 0)
    assert empty.frame.columns == first.frame.columns


def test_a_bad_expression_is_a_definition_error_and_leaves_no_batch(spark, tmp_path):
    write_parquet(tmp_path, "raw/events", random_events(n=5))
    anchor = Anchor(name="acts", entity="member", source="events", owner="t", features=[
        Feature(name="ok", expr="value", type="numeric"),
        Feature(name="bad", expr="no_such + 1", type="numeric"),
    ])
    with pytest.raises(DefinitionError) as info:
        materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={})
    assert str(info.value) == (
        "field expr: anchor 'acts', feature 'bad': expression 'no_such + 1' cannot be evaluated on source "
        "'events' [UNRESOLVED_COLUMN.WITH_SUGGESTION]; its columns are member_id, ts, value"
    )
    assert info.value.field == "expr"
    table = feature_table_path(tmp_path, "acts")
    assert not table.exists() or list(table.iterdir()) == []


def test_a_type_mismatch_names_the_feature(spark, tmp_path):
    write_parquet(tmp_path, "raw/events", random_events(n=5).assign(tag="x"))
    anchor = Anchor(name="acts", entity="member", source="events", owner="t",
                    features=[Feature(name="m_tag", expr="tag", type="numeric")])
    with pytest.raises(DefinitionError, match=r"^field type: anchor 'acts', feature 'm_tag': type 'numeric' "
                       r"needs a number, but its expression has type string$"):
        materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={})


def test_reserved_feature_names_are_refused_before_any_work(spark, tmp_path):
    anchor = Anchor(name="acts", entity="member", source="events", owner="t",
                    features=[Feature(name="date", expr="ts", type="categorical")])
    with pytest.raises(DefinitionError, match=r"^field name: anchor 'acts': feature name 'date' is reserved"):
        materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={})


def test_a_wrong_vector_dimension_fails_the_write_and_leaves_nothing(spark, tmp_path):
    frame = pd.DataFrame({"member_id": [1, 2], "ts": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
                          "emb": [[1.0, 2.0, 3.0], [1.0, 2.0]]})
    write_parquet(tmp_path, "raw/events", frame)
    anchor = Anchor(name="emb", entity="member", source="events", owner="t",
                    features=[Feature(name="m_emb", expr="emb", type="vector", dimension=3)])
    with pytest.raises(DefinitionError) as info:
        materialize_anchor(spark, anchor, MEMBER, EVENTS, lake=tmp_path, sources={})
    assert str(info.value) == (
        "field dimension: anchor 'emb', feature 'm_emb': a vector has 2 values; "
        "the definition says dimension 3"
    )
    assert list(feature_table_path(tmp_path, "emb").iterdir()) == []  # no batch, no staging folder


def test_sources_paths_globs_hive_partitions_sql_and_missing_data(spark, tmp_path):
    for day, ids in (("2026-01-01", [1, 2]), ("2026-01-02", [3])):
        write_parquet(tmp_path, f"raw/imps/date={day}", pd.DataFrame({"impression_id": ids}))
    imps = Source(name="imps", path="raw/imps", timestamp_column="date")
    assert sorted(source_frame(spark, imps, lake=tmp_path, sources={}).select("date").distinct().toPandas()
                  .date.astype(str)) == ["2026-01-01", "2026-01-02"]
    one_day = Source(name="one_day", path="raw/imps/date=2026-01-0[2]", timestamp_column="date")
    got = source_frame(spark, one_day, lake=tmp_path, sources={}).toPandas()
    assert got.impression_id.tolist() == [3] and "date" in got.columns
    query = "SELECT date, count(*) AS n FROM imps GROUP BY date"  # other sources by name
    sql = Source(name="counts", sql=query, timestamp_column="date")
    rows = source_frame(spark, sql, lake=tmp_path, sources={"imps": imps, "counts": sql}).orderBy("date")
    assert [r.n for r in rows.collect()] == [2, 1]
    missing = Source(name="gone", path="raw/nothing_here", timestamp_column="ts")
    with pytest.raises(DataNotFoundError, match=r"Source 'gone': no data at .*raw/nothing_here"):
        source_frame(spark, missing, lake=tmp_path, sources={})
    with pytest.raises(DataNotFoundError, match="no Spark table 'nope'"):
        source_frame(spark, Source(name="t", table="nope", timestamp_column="ts"), lake=tmp_path, sources={})


def test_derived_features_run_the_registered_function_over_arrow_batches(spark):
    df = spark.createDataFrame(
        [(1, 3.0, 1), (2, None, 4), (3, 7.5, None)], "member_id long, views double, applies int"
    ).coalesce(1)
    derived = [
        DerivedFeature(name="m_ratio", entity="member", inputs=("views", "applies"), function="ratio",
                       params={"numerator": "views", "denominator": "applies"}),
        DerivedFeature(name="m_busy", entity="member", inputs=("m_ratio",), function="at_least",
                       params={"threshold": 1.0}),
    ]
    out = add_derived(df, derived).orderBy("member_id").toPandas()
    views, applies = np.array([3.0, np.nan, 7.5]), np.array([1.0, 4.0, np.nan])
    ratio = compute_derived("ratio", {"views": views, "applies": applies}, derived[0].params)
    np.testing.assert_array_equal(out.m_ratio.to_numpy(dtype=float), ratio)
    np.testing.assert_array_equal(out.m_busy.to_numpy(dtype=float), [1.0, np.nan, np.nan])
    assert list(out.columns) == ["member_id", "views", "applies", "m_ratio", "m_busy"]
