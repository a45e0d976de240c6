"""FeatureStore.latest_values: the value in force of every key, read offline, equal to what is served online."""

import datetime as dt

import numpy as np
import pytest

from proml_lab.errors import FeatureError
from proml_lab.worlds.world import World

pytestmark = pytest.mark.spark

JOB_FEATURES = ["job_seniority", "job_titleFamily", "job_remote", "job_companySizeLog", "job_impressions_7d",
                "job_isSenior"]


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """The tiny world materialized offline and online (shared with the deploy and serving tests)."""
    from tests.deploy.world import trained_world

    ws, _ = trained_world(tmp_path_factory)
    return ws, dt.datetime.fromisoformat(World.open(ws).info["end"]).replace(tzinfo=dt.timezone.utc)


def test_latest_values_equal_the_online_values_at_the_same_moment(market):
    ws, end = market
    table = ws.features.latest_values("job", JOB_FEATURES, as_of=end)
    assert table.column_names == ["job_id", *JOB_FEATURES]
    keys = table["job_id"].to_numpy()
    assert len(keys) == 200 and (np.diff(keys) > 0).all()
    online = ws.features.get_online_features("job", keys, JOB_FEATURES)
    for name in JOB_FEATURES:
        if name == "job_titleFamily":
            assert table[name].to_pylist() == online[name].to_pylist()
        else:
            np.testing.assert_allclose(table[name].to_numpy(zero_copy_only=False).astype(float),
                                       online[name].to_numpy(zero_copy_only=False).astype(float), err_msg=name)
    assert np.nansum(table["job_impressions_7d"].to_numpy(zero_copy_only=False).astype(float)) > 0


def test_latest_values_before_any_event_has_no_keys_and_wrong_entity_is_clear(market):
    ws, end = market
    early = ws.features.latest_values("job", ["job_impressions_7d"], as_of=end - dt.timedelta(days=10_000))
    assert early.num_rows == 0 and early.column_names == ["job_id", "job_impressions_7d"]
    with pytest.raises(FeatureError, match="member_seniority do not belong to entity 'job'"):
        ws.features.latest_values("job", ["member_seniority"])
