"""A live service (uvicorn on a real socket): a new version deployed while requests flow is picked up
without dropping one, and no answer ever mixes the two versions."""

from __future__ import annotations

import dataclasses
import threading

import httpx
import numpy as np

from tests.serving.conftest import MODEL, expected_ranking

MEMBER = 11


def _changed_state(state):
    """A second version that ranks differently in every part (fixed, per-member, per-document)."""
    glmix = dict(state["glmix"])
    glmix["fixed"] = {**glmix["fixed"], "intercept": glmix["fixed"]["intercept"] + 0.3}
    glmix["per_member"] = {**glmix["per_member"], "coefficients": np.asarray(glmix["per_member"]["coefficients"]) * 3}
    glmix["per_document"] = {**glmix["per_document"],
                             "coefficients": np.asarray(glmix["per_document"]["coefficients"]) * -2}
    return {**state, "glmix": glmix}


def test_a_new_version_is_picked_up_without_dropping_requests(deployed):
    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.serving import BackgroundService

    ws, trained, v1 = deployed
    v2_model = dataclasses.replace(trained, state=_changed_state(trained.state), run_id=None)
    want = {v1: expected_ranking(ws, trained.state, trained.ir, MEMBER)}
    answers: list[tuple[int, dict]] = []
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                r = http.post("/v1/rank", json={"model": MODEL, "member_id": MEMBER, "k": 25})
                answers.append((r.status_code, r.json()))

    with BackgroundService(ws) as server:
        worker = threading.Thread(target=hammer, args=(server.url,))
        worker.start()
        try:
            v2 = str(ModelRegistry(ws).publish(v2_model, name=MODEL).version)
            Deployer(ws).deploy(MODEL, version=v2, alias="champion")
            want[v2] = expected_ranking(ws, v2_model.state, trained.ir, MEMBER)
            seen_v2 = threading.Event()
            for _ in range(600):
                if answers and answers[-1][1].get("version") == v2:
                    seen_v2.set()
                    break
                stop.wait(0.05)
            stop.wait(0.3)  # a few more answers from the new version
        finally:
            stop.set()
            worker.join(30)
            Deployer(ws).rollback(MODEL, alias="champion")  # leave v1 serving for the other tests
    assert seen_v2.is_set(), "the service never picked up the new version"
    assert all(status == 200 for status, _ in answers), {s for s, _ in answers}
    versions = [body["version"] for _, body in answers]
    assert versions[0] == v1 and versions[-1] == v2
    assert versions == sorted(versions, key=lambda v: v == v2)  # once switched, never back
    for _, body in answers:  # each answer is exactly one version's ranking: nothing mixed
        ids, scores = want[body["version"]]
        assert [i["document_id"] for i in body["items"]] == ids[:25].tolist()
        np.testing.assert_allclose([i["score"] for i in body["items"]], scores[:25], rtol=0, atol=1e-12)
    assert not np.allclose(want[v1][1][:25], want[v2][1][:25])
