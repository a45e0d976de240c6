"""The online store (a real redis-server) goes away while the service runs: requests get a clear 503,
the health check says so, and the service recovers by itself when the store is back."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from proml_lab.settings import Settings
from proml_lab.workspace import Workspace
from proml_lab.worlds.world import World
from tests.serving.conftest import free_port

MODEL = "outage_jobs"


class Redis:
    """A redis-server that keeps its data across a restart (append-only file), on a fixed port."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not on PATH; `make test` installs it (scripts/setup-system.sh)")
        self.exe, self.workdir, self.port = exe, workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def redis_world(deployed, tmp_path_factory):
    """A copy of the deployed world workspace whose online store is redis, with the model deployed there."""
    import datetime as dt

    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry

    ws, trained, _ = deployed
    server = Redis(tmp_path_factory.mktemp("redis-aof"))
    server.start()
    root = tmp_path_factory.mktemp("redis-world") / "ws"
    shutil.copytree(ws.root, root, ignore=shutil.ignore_patterns("deployments", "models", "logs", "online.db*"))
    rws = Workspace(root, settings=Settings(home=root, online_store=server.url))
    world = World.open(rws)
    rws.features.materialize_online(as_of=dt.datetime.fromisoformat(world.info["end"]).replace(tzinfo=dt.timezone.utc))
    version = ModelRegistry(rws).publish(trained, name=MODEL).version
    Deployer(rws).deploy(MODEL, version=version, alias="champion")
    yield rws, server
    server.stop()


def test_an_online_store_outage_is_a_clear_503_and_the_service_recovers(redis_world):
    from fastapi.testclient import TestClient

    from proml_lab.serving import create_app

    ws, server = redis_world
    request = {"model": MODEL, "member_id": 7, "k": 5}
    with TestClient(create_app(ws)) as client:
        before = client.post("/v1/rank", json=request)
        assert before.status_code == 200
        server.stop()
        down = client.post("/v1/rank", json=request)
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert "the online store is unavailable, retry shortly" in down.json()["detail"]
        assert server.url in down.json()["detail"]
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["online_store"]["ok"] is False
        assert "proml_online_store_errors_total 1.0" in client.get("/metrics").text
        server.start()  # the store comes back: no restart of the service, no intervention
        again = client.post("/v1/rank", json=request)
        assert again.status_code == 200 and again.json()["items"] == before.json()["items"]
        assert client.get("/healthz").status_code == 200
