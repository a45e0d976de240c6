"""The marketplace end to end on the tiny world: apply, materialize, search, join, serve, consistency."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from proml_lab.errors import FeatureError, FeatureInUseError, UnknownFeatureError
from proml_lab.features.spec import Anchor, Feature
from proml_lab.settings import Settings
from proml_lab.workspace import Workspace
from proml_lab.worlds import generate_world

pytestmark = pytest.mark.spark

WORLD_FEATURES = "proml_lab/worlds/feature_definitions"
MEMBER_FEATURES = ["member_primaryTitle", "member_seniority", "member_skillCount", "member_jobViews_7d",
                   "member_activeDays_30d", "member_impressions_7d", "member_activityLevel_30d"]


@pytest.fixture(scope="module")
def market(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("market")
    ws = Workspace.init(root, settings=Settings(home=root))
    world = generate_world("tiny", seed=2, workspace=ws)
    end = dt.datetime.fromisoformat(world.info["end"]).replace(tzinfo=dt.timezone.utc)
    ws.features.apply(WORLD_FEATURES)
    report = ws.features.materialize(online=True, as_of=end)
    return ws, world, end, report


def test_world_features_are_applied_once(market):
    ws, *_ = market
    assert ws.features.catalog.summary()["features"] == 40
    again = ws.features.apply(WORLD_FEATURES)
    assert not again.changed


def test_materialize_reports_every_anchor(market):
    *_, report = market
    assert set(report.offline_rows) == {"member_profile", "member_activity", "member_impressions",
                                        "job_profile", "job_engagement"}
    assert report.online_rows["member_profile"] == 1_000 and report.online_rows["job_profile"] == 200


def test_search_title_lists_title_features_first(market):
    ws, *_ = market
    hits = ws.features.search("title", limit=8)
    assert all("title" in h.name.lower() for h in hits[:6])
    assert "member_primaryTitle" in [h.name for h in hits]
    assert {h.entity for h in ws.features.search("title", entity="job")} == {"job"}


def test_describe_shows_stats_and_online_freshness(market):
    ws, *_ = market
    info = ws.features.describe("member_jobViews_7d")
    latest = info["stats"][0]
    assert latest["stats"]["count"] > 0 and latest["stats"]["min"] >= 0
    assert info["online"]["rows"] == 1_000 or info["online"]["rows"] > 0
    assert [v["version"] for v in info["versions"]] == [1]


def test_training_data_has_every_impression_once(market, spark):
    ws, world, *_ = market
    labels = spark.read.parquet(str(world.table_path("impressions"))).drop("date")
    train = ws.features.get_training_data(
        labels, ["member_jobViews_7d", "job_seniority", "job_isSenior", "member_titleFamily"],
        timestamp_column="impression_ts",
    ).toPandas()
    assert len(train) == world.rows["impressions"] and train["impression_id"].is_unique
    assert {"clicked", "applied", "position"} <= set(train.columns)  # label columns pass through
    senior = train.dropna(subset=["job_seniority"])
    assert ((senior["job_seniority"] >= 4) == (senior["job_isSenior"] == 1.0)).all()
    assert train["member_titleFamily"].notna().mean() > 0.99


def test_online_values_equal_offline_values_at_the_same_moment(market):
    """Offline/online consistency: same rows, same moment, same numbers (derived included)."""
    ws, world, end, _ = market
    keys = np.arange(1, 201)
    online = ws.features.get_online_features("member", keys, MEMBER_FEATURES).to_pandas()
    labels = pd.DataFrame({"member_id": keys, "ts": pd.Timestamp(end) - pd.Timedelta(microseconds=1)})
    offline = (
        ws.features.get_training_data(labels, MEMBER_FEATURES, timestamp_column="ts")
        .toPandas().sort_values("member_id").reset_index(drop=True)
    )
    for name in MEMBER_FEATURES:
        if offline[name].dtype == object:
            assert list(online[name]) == list(offline[name]), name
        else:
            np.testing.assert_allclose(online[name].astype(float), offline[name].astype(float), err_msg=name)
    assert online["member_jobViews_7d"].sum() > 0


def test_online_read_keeps_request_order_and_nulls_missing_keys(market):
    ws, *_ = market
    out = ws.features.get_online_features("member", [3, 987_654, 1, 3], ["member_seniority", "member_primaryTitle"])
    values = out.to_pydict()
    assert values["member_seniority"][1] is None and values["member_primaryTitle"][1] is None
    assert values["member_seniority"][0] == values["member_seniority"][3] is not None
    assert out.num_rows == 4


def test_bad_online_requests_are_clear(market):
    ws, *_ = market
    with pytest.raises(UnknownFeatureError, match="member_jobViews_7day.*Did you mean: member_jobViews_7d"):
        ws.features.get_online_features("member", [1], ["member_jobViews_7day"])
    with pytest.raises(FeatureError, match="job_seniority do not belong to entity 'member'"):
        ws.features.get_online_features("member", [1], ["job_seniority"])


def test_changed_definition_is_a_new_version_and_in_use_features_cannot_be_deleted(market):
    ws, *_ = market
    catalog = ws.features.catalog
    old = catalog.anchor("job_engagement")
    changed = Anchor(**{**old.model_dump(), "description": "How often jobs are shown."})
    result = ws.features.apply([changed], validate=False)
    assert [c.name for c in result.updated if c.kind == "anchor"] == ["job_engagement"]
    catalog.record_lineage("job_recs", "3", ["job_impressions_7d"])
    with pytest.raises(FeatureInUseError, match="job_recs:3"):
        ws.features.delete("job_impressions_7d")
    extra = Anchor(name="job_extra", entity="job", source="world_jobs", owner="t",
                   features=[Feature(name="job_postedDay", expr="dayofmonth(posted_date)", type="numeric")])
    ws.features.apply([extra])
    ws.features.delete("job_postedDay")
    with pytest.raises(UnknownFeatureError):
        catalog.feature("job_postedDay")
