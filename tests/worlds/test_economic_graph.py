"""The synthetic economic graph: determinism, sizes, schema, integrity, drift, anomalies, atomicity."""

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from proml_lab.errors import ConfigurationError, DataNotFoundError
from proml_lab.worlds import SIZES, World, WorldConfig, generate_world
from proml_lab.worlds.economic_graph import write_world
from proml_lab.worlds.taxonomy import FAMILIES


def _digest(path):
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    cfg = WorldConfig.preset("tiny", seed=11, anomalies=2)
    a = _digest(write_world(cfg, tmp_path / "a"))
    b = _digest(write_world(cfg, tmp_path / "b"))
    c = _digest(write_world(WorldConfig.preset("tiny", seed=12, anomalies=2), tmp_path / "c"))
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".parquet"))


def test_preset_sizes_match_the_promise():
    assert (SIZES["tiny"]["n_members"], SIZES["small"]["n_members"], SIZES["large"]["n_members"]) == (
        1_000, 20_000, 1_000_000)
    assert SIZES["small"]["n_jobs"] == 2_000 and SIZES["large"]["n_jobs"] == 100_000
    assert SIZES["small"]["n_impressions"] == 500_000 and SIZES["large"]["n_impressions"] == 20_000_000


def test_tiny_world_has_the_configured_rows(tiny_world):
    rows = tiny_world.rows
    for table in ("members", "jobs", "companies", "impressions", "business_metrics", "member_activity"):
        assert tiny_world.dataset(table).count_rows() == rows[table]
    assert rows["members"] == 1_000 and rows["jobs"] == 200 and rows["impressions"] == 20_000
    assert rows["business_metrics"] == 14 * 24


def test_chunked_members_are_the_same_table(tmp_path):
    whole = World(write_world(WorldConfig.preset("tiny", seed=5), tmp_path / "whole"))
    chunked = World(write_world(WorldConfig.preset("tiny", seed=5, member_chunk=300), tmp_path / "chunks"))
    assert len(list((chunked.path / "members").glob("*.parquet"))) == 4
    pd.testing.assert_frame_equal(whole.read("members"), chunked.read("members"))
    pd.testing.assert_frame_equal(whole.read("impressions"), chunked.read("impressions"))


def test_member_and_job_profiles(tiny_world):
    members = tiny_world.read("members")
    assert members["member_id"].is_unique
    titles = {t for _, ts, _ in FAMILIES.values() for t, _ in ts}
    assert set(members["primary_title"]) <= titles
    assert {"sous chef", "recruiter", "legal counsel", "software engineer"} <= titles
    assert members["seniority"].between(1, 6).all()
    assert members["skills"].map(len).ge(1).all()
    # The headline mentions the member's own title.
    assert all(t in h for t, h in zip(members["primary_title"], members["headline"]))
    jobs = tiny_world.read("jobs")
    assert (jobs["active"] == jobs["closed_date"].isna()).all()
    assert (jobs.loc[jobs.closed_date.notna(), "closed_date"] > jobs.loc[jobs.closed_date.notna(), "posted_date"]).all()
    assert jobs["description"].str.contains("Required skills:").all()


def test_impressions_reference_jobs_open_that_day(tiny_world):
    imp = tiny_world.read("impressions")
    jobs = tiny_world.read("jobs").set_index("job_id")
    assert imp["member_id"].between(1, tiny_world.rows["members"]).all()
    day = imp["impression_ts"].dt.date
    posted = imp["job_id"].map(jobs["posted_date"])
    closed = imp["job_id"].map(jobs["closed_date"])
    assert (posted <= day).all()
    assert (closed.isna() | (day < closed)).all()
    assert (pd.to_datetime(imp["date"]).dt.date == day).all()  # hive partition matches the timestamp
    assert imp["impression_id"].is_unique
    assert not (imp["applied"] & ~imp["clicked"]).any()  # applies only after clicks


def test_activity_is_daily_and_inside_the_history(tiny_world):
    act = tiny_world.read("member_activity")
    assert not act.duplicated(["member_id", "activity_date"]).any()
    start = dt.date.fromisoformat(tiny_world.info["history_start"])
    end = dt.date.fromisoformat(tiny_world.info["end"])
    assert act["activity_date"].min() >= start and act["activity_date"].max() < end
    assert (act["event_ts"].dt.date == act["activity_date"]).all()


def test_drift_changes_behaviour_after_the_date(tiny_world):
    drift = dt.date(2026, 1, 12)
    act = tiny_world.read("member_activity")
    before = act.loc[(act.activity_date < drift), "job_views"].mean()
    after = act.loc[(act.activity_date >= drift), "job_views"].mean()
    assert after > 1.4 * before
    jobs = tiny_world.read("jobs")
    assert jobs.loc[jobs.posted_date >= drift, "remote"].mean() > jobs.loc[jobs.posted_date < drift, "remote"].mean() + 0.2


def test_anomalies_are_visible_where_the_truth_says(tiny_world):
    metrics = tiny_world.read("business_metrics")
    anomalies = tiny_world.info["anomalies"]
    assert len(anomalies) == 3
    inside = np.zeros(len(metrics), bool)
    for a in anomalies:
        start = pd.Timestamp(a["start"])
        window = (metrics.hour >= start) & (metrics.hour < start + pd.Timedelta(hours=a["hours"]))
        assert window.sum() == a["hours"]
        inside |= window.to_numpy()
        normal = metrics.loc[~window & (metrics.impressions > 100), "ctr"].median()
        assert metrics.loc[window, "ctr"].median() < 0.6 * normal  # both kinds depress CTR
    assert inside.sum() == sum(a["hours"] for a in anomalies)


def test_truth_tables_cover_every_entity(tiny_world):
    members = tiny_world.read("member_effects")
    jobs = tiny_world.read("job_effects")
    assert list(members.columns) == ["member_id", "bias", "taste_remote", "taste_company_size", "taste_seniority"]
    assert len(members) == tiny_world.rows["members"] and len(jobs) == tiny_world.rows["jobs"]


def test_schema_types(tiny_world):
    schema = tiny_world.dataset("impressions").schema
    assert schema.field("impression_ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("clicked").type == pa.bool_()
    assert tiny_world.dataset("members").schema.field("skills").type == pa.list_(pa.string())


def test_failed_generation_leaves_the_previous_world(tmp_path, workspace):
    first = generate_world("tiny", seed=1, workspace=workspace)
    before = _digest(first.path)

    def explode(stage, done, total):
        if stage == "impressions" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_world("tiny", seed=2, workspace=workspace, progress=explode)
    assert _digest(first.path) == before
    assert [p.name for p in workspace.lake.iterdir()] == ["world"]  # no staging folder left


def test_bad_options_are_clear_errors(workspace):
    with pytest.raises(ConfigurationError, match="Unknown world size 'medium'; choose one of: tiny, small, large"):
        generate_world("medium", workspace=workspace)
    with pytest.raises(ConfigurationError, match="drift_from must fall strictly inside"):
        generate_world("tiny", workspace=workspace, drift_from=dt.date(2030, 1, 1))
    with pytest.raises(ConfigurationError, match="seed"):
        generate_world("tiny", workspace=workspace, seed=-1)
    with pytest.raises(DataNotFoundError, match="proml worlds generate"):
        World.open(workspace)
