"""A/B experiments in the ranking service: each request is served by the member's arm, the response and the
exposure log say which experiment and arm, an explicit alias bypasses experiments, and ramps and stops
reach a running service without a restart.

The tests use their own model (AB, the world model published again and deployed as champion and
challenger), so the other serving tests' model never has an experiment running."""

from __future__ import annotations

import time

import pytest

AB = "ab_jobs"
MEMBERS = list(range(1, 61))


@pytest.fixture(scope="module")
def ab(deployed):
    """``(workspace, version)``: AB published and deployed under both champion and challenger."""
    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry

    ws, trained, _ = deployed
    version = str(ModelRegistry(ws).publish(trained, name=AB).version)
    for alias in ("champion", "challenger"):
        Deployer(ws).deploy(AB, version=version, alias=alias)
    return ws, version


def _experiment(ws, name, *, traffic, layer):
    from proml_lab.experiments import Arm, ExperimentStore

    store = ExperimentStore(ws)
    store.create(name, AB, [Arm("control", "champion"), Arm("treatment", "challenger")], layer=layer,
                 share=100, traffic=traffic, salt=f"{name}-salt")
    return store, store.start(name)


def _rank(client, member, **extra):
    response = client.post("/v1/rank", json={"model": AB, "member_id": member, "k": 3, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_requests_are_served_by_the_members_arm_and_logged_with_it(ab):
    from fastapi.testclient import TestClient

    from proml_lab.experiments import assign
    from proml_lab.serving import ServiceConfig, create_app, read_exposures

    ws, version = ab
    store, experiment = _experiment(ws, "route-ab", traffic=50, layer="route")
    try:
        want = assign(experiment, MEMBERS)
        assert {"control", "treatment", None} <= set(want.tolist())  # the 60 members cover every case
        alias_of = {"control": "champion", "treatment": "challenger", None: "champion"}
        with TestClient(create_app(ws, config=ServiceConfig(exposure_flush_s=0.2))) as client:
            bodies = [_rank(client, m) for m in MEMBERS]
            for body, arm in zip(bodies, want):
                assert (body["experiment"], body["arm"]) == (("route-ab", arm) if arm else (None, None))
                assert body["alias"] == alias_of[arm] and body["version"] == version and len(body["items"]) == 3

            # an explicit alias bypasses the experiment, even for a treatment member
            treated = MEMBERS[list(want).index("treatment")]
            pinned = _rank(client, treated, alias="champion")
            assert (pinned["alias"], pinned["experiment"], pinned["arm"]) == ("champion", None, None)

            # scoring one member's pairs follows the member's arm; members of different arms cannot share
            pairs = [{"member_id": treated, "document_id": d} for d in (3, 17)]
            scored = client.post("/v1/score", json={"model": AB, "pairs": pairs}).json()
            assert (scored["experiment"], scored["arm"], scored["alias"]) == ("route-ab", "treatment", "challenger")
            control = MEMBERS[list(want).index("control")]
            mixed = client.post("/v1/score", json={"model": AB, "pairs": [
                {"member_id": treated, "document_id": 3}, {"member_id": control, "document_id": 3}]})
            assert mixed.status_code == 422 and "different A/B experiment arms" in mixed.json()["detail"]

            ids = {b["request_id"]: b for b in bodies}
            deadline = time.monotonic() + 10
            while (read_exposures(ws, AB).num_rows < 3 * len(MEMBERS) + 3
                   and time.monotonic() < deadline):
                time.sleep(0.1)
        log = read_exposures(ws, AB).to_pandas()
        mine = log[log["request_id"].isin(ids)]
        assert len(mine) == 3 * len(MEMBERS)
        for request_id, rows in mine.groupby("request_id"):
            body = ids[request_id]
            assert set(rows["experiment"].fillna("-")) == {body["experiment"] or "-"}
            assert set(rows["arm"].fillna("-")) == {body["arm"] or "-"}
            assert set(rows["alias"]) == {body["alias"]} and set(rows["version"]) == {version}
        pinned_rows = log[log["request_id"] == pinned["request_id"]]
        assert pinned_rows["experiment"].isna().all() and set(pinned_rows["alias"]) == {"champion"}
    finally:
        store.stop("route-ab")


def test_ramps_and_stops_reach_the_running_service_without_a_restart(ab):
    from fastapi.testclient import TestClient

    from proml_lab.experiments import assign
    from proml_lab.serving import create_app

    ws, _ = ab
    store, experiment = _experiment(ws, "ramp-ab", traffic=0, layer="ramp")
    try:
        with TestClient(create_app(ws)) as client:
            assert {_rank(client, m)["experiment"] for m in MEMBERS[:20]} == {None}

            store.ramp("ramp-ab", 25)
            ramped = store.get("ramp-ab")
            at25 = [(b["experiment"], b["arm"]) for b in (_rank(client, m) for m in MEMBERS)]
            want = assign(ramped, MEMBERS)
            assert at25 == [("ramp-ab", a) if a else (None, None) for a in want]
            assert 0 < sum(a is not None for a in want) < len(MEMBERS)

            store.ramp("ramp-ab", 100)
            at100 = [_rank(client, m)["arm"] for m in MEMBERS]
            assert None not in at100
            kept = [i for i, a in enumerate(want) if a is not None]
            assert [at100[i] for i in kept] == [want[i] for i in kept]  # nobody changed arm on the ramp

            store.stop("ramp-ab")
            after = [_rank(client, m) for m in MEMBERS[:20]]
            assert {(b["experiment"], b["arm"], b["alias"]) for b in after} == {(None, None, "champion")}
    finally:
        if store.get("ramp-ab").status == "running":  # a failed check must not leave it routing
            store.stop("ramp-ab")
    # the stopped definition still says who was in which arm (what the analysis re-derives)
    assert assign(store.get("ramp-ab"), MEMBERS).tolist() == at100
