"""The world's model published and deployed for the service, a live server, and the trained model's own
ranking (what every answer of the service is checked against)."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from tests.deploy.world import trained_world

MODEL = "serving_jobs"  # the service tests' own registered model: the deploy tests move other pointers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory):
    """``(workspace, trained, version)``: the trained world model published as MODEL and deployed as
    champion."""
    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry

    ws, trained = trained_world(tmp_path_factory)
    version = ModelRegistry(ws).publish(trained, name=MODEL).version
    Deployer(ws).deploy(MODEL, version=version, alias="champion")
    return ws, trained, str(version)


def expected_ranking(ws: Any, state: Mapping[str, Any], ir: Any, member_id: int, *, model: str = MODEL,
                     alias: str = "champion") -> tuple[np.ndarray, np.ndarray]:
    """The (document ids, scores) the trained state gives for one member over every deployed document,
    with the member's features read online (what the service must answer)."""
    from proml_lab.deploy.deployer import resolve
    from proml_lab.deploy.forward_index import ForwardIndex
    from proml_lab.quasar import ir as irm
    from proml_lab.quasar.engine import LocalEngine, QueryBatch

    index = ForwardIndex.open(resolve(ws, model, alias).index_path)
    inputs = [n for n in ir.nodes if isinstance(n, irm.Input)]
    members = sorted({n.feature for n in inputs if n.scope == "member"})
    docs = sorted({n.feature for n in inputs if n.scope == "document"})
    online = ws.features.online_reader("member", members)(np.array([member_id]))
    batch = QueryBatch(documents={f: index.column(f) for f in docs},
                       query_index=np.zeros(len(index), dtype=np.int64),
                       member={f: np.asarray(c.to_numpy(zero_copy_only=False)) if hasattr(c, "to_numpy")
                               else np.asarray(c) for f, c in online.items()},
                       member_ids=np.array([member_id]), document_ids=index.ids, num_queries=1)
    result = LocalEngine(ir, state=state).rank(batch)
    return index.ids[result.document_rows], result.scores


@pytest.fixture
def client(deployed) -> Iterator[Any]:
    """A TestClient of a fresh app over the deployed workspace (its lifespan runs: writer, watcher)."""
    from fastapi.testclient import TestClient

    from proml_lab.serving import create_app

    ws, _, _ = deployed
    with TestClient(create_app(ws)) as c:
        yield c
