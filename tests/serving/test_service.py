"""The ranking service answering real HTTP over a deployed model: the same scores as the trained object,
candidates, filters, explain, errors, auth, metrics and the exposure log."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import MODEL, expected_ranking

MEMBER = 7


def test_rank_gives_the_trained_models_ranking_and_scores(deployed, client):
    ws, trained, version = deployed
    ids, scores = expected_ranking(ws, trained.state, trained.ir, MEMBER)
    body = client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER, "k": 25}).json()
    assert body["version"] == version and body["alias"] == "champion" and body["member_known"]
    assert [i["document_id"] for i in body["items"]] == ids[:25].tolist()
    np.testing.assert_allclose([i["score"] for i in body["items"]], scores[:25], rtol=0, atol=1e-12)
    assert [i["position"] for i in body["items"]] == list(range(1, 26))
    assert body["candidates"] == 200  # every job of the tiny world


def test_the_published_bundle_ranks_like_the_trained_object(deployed):
    from proml_lab.deploy.registry import ModelRegistry

    ws, trained, version = deployed
    bundle = ModelRegistry(ws).load(MODEL, version)
    want = expected_ranking(ws, trained.state, trained.ir, MEMBER)
    got = expected_ranking(ws, bundle.state, bundle.ir, MEMBER)
    assert got[0].tolist() == want[0].tolist()
    np.testing.assert_array_equal(got[1], want[1])


def test_score_of_pairs_equals_the_trained_models_score(deployed, client):
    ws, trained, _ = deployed
    jobs = [3, 17, 42, 99, 150]
    members = [MEMBER, MEMBER, 12, 12, 500]
    body = client.post("/v1/score", json={"model": MODEL, "pairs": [
        {"member_id": m, "document_id": j} for m, j in zip(members, jobs)]}).json()
    # the trained object's own scoring of the same pairs, features read from the same stores
    from proml_lab.deploy.deployer import resolve
    from proml_lab.deploy.forward_index import ForwardIndex
    from proml_lab.quasar import ir as irm

    index = ForwardIndex.open(resolve(ws, MODEL, "champion").index_path)
    rows, _ = index.rows(np.array(jobs))
    inputs = [n for n in trained.ir.nodes if isinstance(n, irm.Input)]
    frame = pd.DataFrame({"member_id": members, "job_id": jobs})
    for n in inputs:
        if n.scope == "document":
            frame[n.feature] = list(index.column(n.feature)[rows])
    member_features = sorted({n.feature for n in inputs if n.scope == "member"})
    online = ws.features.get_online_features("member", np.array(members), member_features).to_pandas()
    for f in member_features:
        frame[f] = online[f].to_numpy()
    want = trained.score(frame)
    np.testing.assert_allclose([s["score"] for s in body["scores"]], want, rtol=0, atol=1e-12)


def test_explain_returns_every_nodes_value_for_the_returned_documents(client):
    body = client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER, "k": 3, "explain": True}).json()
    item = body["items"][0]["explain"]
    assert {"family_match", "region_match", "cheap_score", "glmix", "score"} <= set(item)
    assert item["score"] == pytest.approx(body["items"][0]["score"])
    assert item["score"] == pytest.approx(1 / (1 + np.exp(-item["glmix"])))


def test_candidates_and_filters_restrict_what_is_ranked(deployed, client):
    from proml_lab.deploy.deployer import resolve
    from proml_lab.deploy.forward_index import ForwardIndex

    body = client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER, "k": 10,
                                         "candidates": [5, 6, 7, 100000, 8]}).json()
    assert sorted(i["document_id"] for i in body["items"]) == [5, 6, 7, 8]
    assert body["unknown_candidates"] == [100000] and body["candidates"] == 4
    body = client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER, "k": 200, "explain": True,
                                         "filters": {"job_seniority": {"gte": 4}, "job_remote": 1}}).json()
    index = ForwardIndex.open(resolve(deployed[0], MODEL, "champion").index_path)
    passing = (index.column("job_seniority") >= 4) & (index.column("job_remote") == 1)
    assert body["candidates"] == int(passing.sum()) > 0
    assert body["items"] and all(i["explain"]["job_seniority"] >= 4 and i["explain"]["job_remote"] == 1
                                 for i in body["items"])
    regions = client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER, "explain": True,
                                            "filters": {"job_region": ["london", "paris"]}}).json()
    assert {i["explain"]["job_region"] for i in regions["items"]} <= {"london", "paris"}


def test_a_member_the_store_does_not_know_is_ranked_cold(client):
    body = client.post("/v1/rank", json={"model": MODEL, "member_id": 99_999_999, "k": 5}).json()
    assert body["member_known"] is False and len(body["items"]) == 5


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"model": "nope", "member_id": 1}, 404, "model 'nope' has no deployment for alias 'champion'"),
    ({"model": MODEL, "member_id": 1, "alias": "staging"}, 404, "--alias staging"),
    ({"model": MODEL, "member_id": "abc"}, 422, "member_id must be integer ids for this model"),
    ({"model": MODEL, "member_id": 1, "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"model": MODEL, "member_id": 1, "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
    ({"model": MODEL, "member_id": 1, "filters": {"salary": 3}}, 422, "cannot filter on 'salary'"),
    ({"model": MODEL, "member_id": 1, "filters": {"job_seniority": "high"}}, 422,
     "'job_seniority' is numeric: filter it with a number"),
    ({"model": MODEL, "member_id": 1, "filters": {"job_region": {"gt": "london"}}}, 422,
     "'job_region' is categorical"),
])
def test_bad_requests_get_a_clear_4xx(client, payload, status, message):
    response = client.post("/v1/rank", json=payload)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_models_lists_the_deployment_and_what_is_loaded(deployed, client):
    _, _, version = deployed
    client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER})
    body = client.get("/v1/models").json()
    mine = [m for m in body["models"] if m.get("name") == MODEL]
    assert mine and version in str(mine[0])
    assert any(m["model"] == MODEL and m["version"] == version and m["documents"] == 200 for m in body["loaded"])


def test_health_and_prometheus_metrics(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    client.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER})
    client.post("/v1/rank", json={"model": "nope", "member_id": MEMBER})
    text = client.get("/metrics").text
    assert 'proml_requests_total{endpoint="/v1/rank",status="200"} 1.0' in text
    assert 'proml_requests_total{endpoint="/v1/rank",status="404"} 1.0' in text
    assert "proml_request_seconds_bucket" in text and f'proml_ranked_total{{alias="champion",model="{MODEL}"' in text


def test_a_bearer_token_guards_the_api_but_not_the_health_check(deployed):
    from fastapi.testclient import TestClient

    from proml_lab.serving import ServiceConfig, create_app

    ws, _, _ = deployed
    with TestClient(create_app(ws, config=ServiceConfig(token="s3cret"))) as c:
        refused = c.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER})
        assert refused.status_code == 401 and "Bearer" in refused.json()["detail"]
        assert c.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER},
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics").status_code == 401
        ok = c.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER},
                    headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.get("/healthz").status_code == 200


def test_exposures_are_logged_with_model_version_and_positions(deployed):
    from fastapi.testclient import TestClient

    from proml_lab.serving import ServiceConfig, create_app, read_exposures

    ws, _, version = deployed
    before = read_exposures(ws, MODEL).num_rows
    with TestClient(create_app(ws, config=ServiceConfig(exposure_flush_s=0.2))) as c:
        ids = [c.post("/v1/rank", json={"model": MODEL, "member_id": m, "k": 5}).json()["request_id"]
               for m in (1, 2, 3)]
        deadline = time.monotonic() + 10
        while read_exposures(ws, MODEL).num_rows < before + 15 and time.monotonic() < deadline:
            time.sleep(0.1)  # written in the background: the requests did not wait for it
    log = read_exposures(ws, MODEL).to_pandas()
    mine = log[log["request_id"].isin(ids)]
    assert len(mine) == 15
    assert set(mine["version"]) == {version} and set(mine["alias"]) == {"champion"}
    assert sorted(mine["member_id"].unique().tolist()) == [1, 2, 3]
    assert sorted(mine["position"].unique().tolist()) == [1, 2, 3, 4, 5]
