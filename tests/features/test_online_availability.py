"""Online availability: which features a model can read online, and how fresh they are."""

from __future__ import annotations

import datetime as dt

import pytest

from proml_lab.errors import UnknownFeatureError
from proml_lab.features.catalog import Catalog
from tests.features.test_catalog import definitions, profile

MATERIALIZED = dt.datetime(2026, 2, 1, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def catalog(workspace) -> Catalog:
    cat = Catalog(workspace.connect_catalog)
    cat.apply(definitions())
    return cat


def materialize(catalog: Catalog, *anchors: str) -> None:
    for anchor in anchors:
        catalog.record_online(anchor, store_url="sqlite:///online.db", group=f"{anchor}@v1", rows=10,
                              max_event_ts=dt.datetime(2026, 2, 1), materialized_at=MATERIALIZED)


def test_an_anchored_feature_is_available_once_its_anchor_is_materialized(catalog):
    names = ["job_title", "member_seniority"]
    before = catalog.online_availability(names)
    assert list(before) == names  # in the order asked
    assert before["member_seniority"] == {"entity": "member", "type": "numeric", "serves_online": True,
                                          "freshness": "unknown", "materialized_at": None, "available": False}
    assert before["job_title"]["serves_online"] is False

    materialize(catalog, "member_profile", "job_posting")
    after = catalog.online_availability(names, now=MATERIALIZED + dt.timedelta(hours=6))
    assert after["member_seniority"]["available"] is True
    assert after["member_seniority"]["freshness"] == "fresh"
    assert after["member_seniority"]["materialized_at"] == MATERIALIZED.isoformat()
    assert after["job_title"]["available"] is False  # materialized, but its anchor does not serve online
    late = catalog.online_availability(names, now=MATERIALIZED + dt.timedelta(days=2))
    assert late["member_seniority"]["freshness"] == "stale"  # the anchor's SLA is one day


def test_a_derived_feature_is_available_when_all_its_inputs_are_and_stale_when_one_is(catalog):
    derived = "member_viewsPerSeniority"
    materialize(catalog, "member_profile", "member_activity")
    soon = MATERIALIZED + dt.timedelta(hours=6)
    assert catalog.online_availability([derived], now=soon)[derived]["available"] is False  # request_context
    materialize(catalog, "request_context")
    got = catalog.online_availability([derived, "member_seniority"], now=soon)
    assert got[derived]["available"] is True and got[derived]["freshness"] == "unknown"
    assert catalog.online_availability([derived], now=MATERIALIZED + dt.timedelta(days=2))[derived][
        "freshness"] == "stale"  # member_seniority's SLA has passed
    catalog.apply([profile(online=False)])
    assert catalog.online_availability([derived], now=soon)[derived]["available"] is False


def test_an_unknown_feature_is_an_error(catalog):
    with pytest.raises(UnknownFeatureError):
        catalog.online_availability(["member_senority"])
