"""Property-based requests generated from the service's own OpenAPI spec (valid and deliberately invalid
bodies) against the deployed model: none gets a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.serving.conftest import MODEL


@pytest.fixture(scope="module")
def api_schema(deployed):
    from proml_lab.serving import create_app

    ws, _, _ = deployed
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(ws))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_generated_request_gets_a_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/v1/rank"), ("POST", "/v1/score"),
                                                                   ("GET", "/v1/models"), ("GET", "/healthz")}
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # no parameters or body: nothing can be made invalid
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = MODEL  # the deployed model: generated ids, k, filters reach the ranking
            response = case.call()
            statuses.setdefault(operation.path, set()).add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text)

        call()
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses["/v1/rank"]  # the generated requests did reach the model, not only errors
    else:
        assert statuses["/v1/rank"] <= {400, 404, 422}  # a malformed body is refused, never a crash
