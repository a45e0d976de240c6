"""Point-in-time correctness: each label gets each feature's latest value at or before its time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proml_lab.errors import DataNotFoundError, FeatureError
from proml_lab.features.offline import (
    FeatureRequest,
    feature_requests,
    feature_table_path,
    materialize_anchor,
)
from proml_lab.features.pit import get_training_data
from proml_lab.features.spec import Anchor, Entity, Feature, Source, WindowAggregation

pytestmark = pytest.mark.spark

UTC = dt.timezone.utc
MEMBER = Entity(name="member", join_key="member_id")
JOB = Entity(name="job", join_key="job_id")
LABELS = (
    "label_id long, member_id long, job_id long, ts timestamp, clicked boolean"
)


def at(hour: float, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC) + dt.timedelta(hours=hour)


def write_source(lake: Path, name: str, rows: list[dict]) -> Source:
    folder = lake / "raw" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")
    return Source(name=name, path=f"raw/{name}", timestamp_column="ts")


def plain_anchor(name: str, entity: str, source: str, features: dict[str, str], ttl: str = "3650d") -> Anchor:
    kind = lambda n: "categorical" if n.endswith("region") else "numeric"  # noqa: E731
    return Anchor(name=name, entity=entity, source=source, owner="t", ttl=ttl,
                  features=[Feature(name=n, expr=e, type=kind(n)) for n, e in features.items()])


def labels_frame(spark, rows: list[tuple]):
    return spark.createDataFrame(rows, LABELS)


def by_label(frame, duplicated: int | None = None) -> dict[int, dict]:
    out = {}
    for row in frame.collect():
        assert row.label_id not in out or row.label_id == duplicated, "every label row comes back once"
        out.setdefault(row.label_id, []).append(row.asDict())
    if duplicated is not None:
        assert len(out[duplicated]) == 2 and out[duplicated][0] == out[duplicated][1]
    return {k: v[0] for k, v in out.items()}


@pytest.fixture(scope="module")
def member_and_job_tables(spark, tmp_path_factory):
    """Member scores (with a genuinely null value), member activity and job profiles, materialized once."""
    lake = tmp_path_factory.mktemp("pit")
    scores = write_source(lake, "scores", [
        {"member_id": 1, "ts": at(10), "score": 1.0},
        {"member_id": 1, "ts": at(12), "score": 2.0},
        {"member_id": 1, "ts": at(14), "score": None},
        {"member_id": 2, "ts": at(9), "score": 5.0},
    ])
    jobs = write_source(lake, "jobs", [
        {"job_id": 7, "ts": at(0), "seniority": 3, "region": "berlin"},
        {"job_id": 7, "ts": at(11), "seniority": 4, "region": "paris"},
    ])
    views = write_source(lake, "views", [
        {"member_id": 1, "ts": at(8), "n": 2}, {"member_id": 1, "ts": at(11), "n": 3},
    ])
    anchors = [
        (plain_anchor("m_scores", "member", "scores", {"m_score": "score"}, ttl="2d"), MEMBER, scores),
        (plain_anchor("j_profile", "job", "jobs", {"j_seniority": "seniority", "j_region": "region"}),
         JOB, jobs),
        (Anchor(name="m_views", entity="member", source="views", owner="t", aggregations=[
            WindowAggregation(name="m_views_1d", expr="n", function="sum", window="1d")]), MEMBER, views),
    ]
    for anchor, entity, source in anchors:
        materialize_anchor(spark, anchor, entity, source, lake=lake, sources={})
    requests = [r for anchor, entity, _ in anchors for r in feature_requests(anchor, entity, lake=lake)]
    return lake, requests


def test_labels_get_the_latest_value_at_or_before_their_time(spark, member_and_job_tables):
    _, requests = member_and_job_tables
    member_requests = [r for r in requests if r.anchor == "m_scores"]
    labels = labels_frame(spark, [
        (1, 1, 7, at(9), True),     # before member 1's first value
        (2, 1, 7, at(10), False),   # exactly at a value's time: it is used
        (3, 1, 7, at(11.5), False),
        (4, 1, 7, at(12), True),    # a newer value at exactly the label's time
        (5, 1, 7, at(15), False),   # the latest value is null: null, not the older 2.0
        (6, 2, 7, at(9, day=3), False),   # exactly the TTL (2 days) old: kept
        (7, 2, 7, at(9.01, day=3), False),  # older than the TTL: null
        (8, 3, 7, at(12), False),   # a member without any feature row
        (9, None, 7, at(12), False),  # a null key
        (10, 1, 7, None, False),    # a null timestamp
        (11, 1, 7, at(13), True), (11, 1, 7, at(13), True),  # duplicate label rows: both come back
    ])
    joined = get_training_data(spark, labels, member_requests, timestamp_column="ts", return_event_ts=True)
    out = by_label(joined, duplicated=11)
    assert {k: v["m_score"] for k, v in out.items()} == {
        1: None, 2: 1.0, 3: 1.0, 4: 2.0, 5: None, 6: 5.0, 7: None, 8: None, 9: None, 10: None, 11: 2.0,
    }
    assert out[4]["m_scores__event_ts"].replace(tzinfo=UTC) == at(12)
    assert out[3]["clicked"] is False and out[9]["member_id"] is None  # label columns pass through


def test_several_anchors_and_entities_in_one_call(spark, member_and_job_tables):
    _, requests = member_and_job_tables
    labels = labels_frame(spark, [
        (1, 1, 7, at(10.5), True), (2, 1, 7, at(11), False), (3, 2, 8, at(12), False),
        (4, 1, 7, at(12, day=2), False),
    ])
    frame = get_training_data(spark, labels, requests, timestamp_column="ts")
    assert frame.columns == ["label_id", "member_id", "job_id", "ts", "clicked",
                             "m_score", "j_seniority", "j_region", "m_views_1d"]
    out = by_label(frame)
    names = ("m_score", "j_seniority", "j_region", "m_views_1d")
    assert [tuple(out[i][n] for n in names) for i in range(1, 5)] == [
        (1.0, 3.0, "berlin", 2.0),
        (1.0, 4.0, "paris", 5.0),
        (5.0, None, None, None),
        (None, 4.0, "paris", 0.0),  # score older than its 2-day TTL; both views expired (sum of none: 0)
    ]


def test_late_arriving_rows_are_seen_only_after_their_event_time_and_newer_batches_win(spark, tmp_path):
    anchor = plain_anchor("m_late", "member", "late", {"m_value": "value"})
    source = write_source(tmp_path, "late", [
        {"member_id": 1, "ts": at(10), "value": 1.0}, {"member_id": 1, "ts": at(12), "value": 2.0},
    ])
    first = materialize_anchor(spark, anchor, MEMBER, source, lake=tmp_path, sources={})
    # Later, an older event arrives and the 12:00 value is corrected: a second batch.
    write_source(tmp_path, "late", [
        {"member_id": 1, "ts": at(11), "value": 1.5}, {"member_id": 1, "ts": at(12), "value": 2.5},
    ])
    second = materialize_anchor(spark, anchor, MEMBER, source, lake=tmp_path, sources={})
    assert (first.batch, second.batch) == (1, 2)
    labels = labels_frame(spark, [(i, 1, 7, at(h), False) for i, h in enumerate([9, 10.5, 11, 11.5, 12, 13])])
    out = by_label(get_training_data(spark, labels, feature_requests(anchor, MEMBER, lake=tmp_path),
                                     timestamp_column="ts"))
    assert [out[i]["m_value"] for i in range(6)] == [None, 1.0, 1.5, 1.5, 2.5, 2.5]


def test_request_errors_are_clear(spark, tmp_path, member_and_job_tables):
    _, requests = member_and_job_tables
    labels = labels_frame(spark, [(1, 1, 7, at(9), True)])
    with pytest.raises(FeatureError, match="The labels lack column"):
        get_training_data(spark, labels.drop("job_id"), requests, timestamp_column="ts")
    with pytest.raises(FeatureError, match="requested more than once: m_score"):
        get_training_data(spark, labels, [requests[0], requests[0]], timestamp_column="ts")
    never = FeatureRequest("x", "never", feature_table_path(tmp_path, "never"), "member_id")
    with pytest.raises(DataNotFoundError, match="Anchor 'never' has no feature table"):
        get_training_data(spark, labels, [never], timestamp_column="ts")


def test_tiny_world_training_data_is_complete_and_point_in_time_correct(spark, tiny_world, tmp_path):
    world = tiny_world.path
    activity = Source(name="activity", path=str(world / "member_activity"), timestamp_column="event_ts")
    jobs = Source(name="jobs", path=str(world / "jobs"), timestamp_column="posted_date")
    impressions = Source(name="imps", path=str(world / "impressions"), timestamp_column="impression_ts")
    windows = [
        WindowAggregation(name="member_jobViews_7d", expr="job_views", function="sum", window="7d"),
        WindowAggregation(name="member_activeDays_30d", function="count", window="30d"),
    ]
    member_activity = Anchor(name="member_activity", entity="member", source="activity", owner="t",
                             aggregations=windows)
    job_profile = Anchor(name="job_profile", entity="job", source="jobs", owner="t", features=[
        Feature(name="job_seniority", expr="seniority", type="numeric"),
        Feature(name="job_remote", expr="remote", type="binary"),
    ])
    sources = {s.name: s for s in (activity, jobs, impressions)}
    materialize_anchor(spark, member_activity, MEMBER, activity, lake=tmp_path, sources=sources)
    materialize_anchor(spark, job_profile, JOB, jobs, lake=tmp_path, sources=sources)
    from proml_lab.features.offline import source_frame

    labels = source_frame(spark, impressions, lake=tmp_path, sources=sources)
    requests = [*feature_requests(member_activity, MEMBER, lake=tmp_path),
                *feature_requests(job_profile, JOB, lake=tmp_path)]
    out = get_training_data(
        spark, labels, requests, timestamp_column="impression_ts", return_event_ts=True
    ).toPandas()

    assert len(out) == tiny_world.rows["impressions"] and out.impression_id.is_unique
    for anchor in ("member_activity", "job_profile"):
        matched = pd.to_datetime(out[f"{anchor}__event_ts"], utc=True)
        assert (matched.isna() | (matched <= pd.to_datetime(out.impression_ts, utc=True))).all()
    assert out.job_seniority.notna().all()  # every job shown was posted before it was shown

    acts = tiny_world.read("member_activity", columns=["member_id", "event_ts", "job_views"])
    sample = out.sample(200, random_state=0)
    for row in sample.itertuples(index=False):
        t = pd.Timestamp(row.impression_ts).tz_localize(UTC) if pd.Timestamp(row.impression_ts).tz is None \
            else pd.Timestamp(row.impression_ts)
        mine = acts[acts.member_id == row.member_id]
        if not (mine.event_ts <= t).any():
            assert np.isnan(row.member_jobViews_7d)
            continue
        in_window = mine[(mine.event_ts > t - pd.Timedelta(days=7)) & (mine.event_ts <= t)]
        assert row.member_jobViews_7d == float(in_window.job_views.sum()), (row.member_id, t)
