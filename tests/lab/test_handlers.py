"""The server extension's REST handlers, on a real Jupyter server (pytest-jupyter) under a JupyterHub-like base URL."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

pytest.importorskip("pytest_jupyter")

from tornado.httpclient import AsyncHTTPClient, HTTPClientError  # noqa: E402

from tests.ui.world import world_workspace  # noqa: E402

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):
    return world_workspace(tmp_path_factory)  # tiny world's features + runs "baseline" and "glmix"


@pytest.fixture
def jp_base_url() -> str:
    return "/user/test/"  # JupyterHub serves single-user servers under /user/<name>/


@pytest.fixture
def jp_server_config(world):
    return {
        "ServerApp": {"jpserver_extensions": {"proml_lab.lab.server": True}},
        "ProMLServerExtension": {"workspace": str(world.root)},
    }


async def _get(jp_fetch, *parts, **params):
    response = await jp_fetch("proml", *parts, params=params)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def test_search(jp_fetch, world):
    data = await _get(jp_fetch, "features", q="title", limit="5")
    names = [f["name"] for f in data["features"]]
    assert names == [h.name for h in world.features.search("title", limit=5)]
    assert {"name", "entity", "type", "description", "online", "score", "reference"} <= set(data["features"][0])
    assert all(f["reference"].startswith("INPUT ") and f["reference"].endswith(f" {f['name']};")
               for f in data["features"])


async def test_search_filters(jp_fetch, world):
    data = await _get(jp_fetch, "features", q="title", entity="job", limit="50")
    assert data["features"] and all(f["entity"] == "job" for f in data["features"])
    hit = data["features"][0]
    typed = await _get(jp_fetch, "features", q="title", entity="job", type=hit["type"])
    assert all(f["type"] == hit["type"] for f in typed["features"])


async def test_bad_limit_is_400(jp_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("proml", "features", params={"limit": "many"})
    assert err.value.code == 400


async def test_describe(jp_fetch, world):
    name = world.features.search("title", limit=1)[0].name
    data = await _get(jp_fetch, "features", name)
    assert data["feature"]["name"] == name
    assert {"definition", "versions", "lineage", "stats", "online"} <= set(data)
    assert data["stats"]  # materialized, so statistics were recorded


async def test_describe_unknown_is_404_json(jp_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("proml", "features", "member_primaryTitel")
    assert err.value.code == 404
    body = json.loads(err.value.response.body)
    assert "Unknown feature 'member_primaryTitel'" in body["message"]


async def test_models(jp_fetch, world):
    data = await _get(jp_fetch, "models")
    by_name = {m["name"]: m for m in data["models"]}
    assert {"baseline", "glmix"} <= set(by_name)
    assert by_name["glmix"]["metrics"]["auc"] == pytest.approx(0.77)
    assert by_name["glmix"]["status"] == "FINISHED" and by_name["glmix"]["id"]


async def test_compare(jp_fetch, world):
    models = {m["name"]: m["id"] for m in (await _get(jp_fetch, "models"))["models"]}
    data = await _get(jp_fetch, "models", "compare", a=models["baseline"], b=models["glmix"])
    assert data["names"] == ["baseline", "glmix"]
    metrics = {m["metric"]: m for m in data["metrics"]}
    assert set(metrics) == {"auc", "logloss", "ndcg@10"}  # train_seconds has no direction: left out
    assert metrics["auc"]["lift"] == pytest.approx(10.0)
    assert metrics["logloss"]["lift"] == pytest.approx(10.0)  # lower is better: a drop is a gain
    assert data["rows"][0][0] == "auc"


async def test_compare_errors(jp_fetch):
    for params, code in (({"a": "x"}, 400), ({"a": "nope", "b": "nada"}, 404)):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("proml", "models", "compare", params=params)
        assert err.value.code == code
        assert json.loads(err.value.response.body)["message"]


async def test_templates(jp_fetch):
    data = await _get(jp_fetch, "templates")
    assert isinstance(data["templates"], list)
    for t in data["templates"]:
        assert {"name", "kind", "description", "text"} <= set(t)
    quasar = [t for t in data["templates"] if t["kind"] == "quasar"]
    if quasar:
        assert "INPUT" in quasar[0]["text"]


async def test_unauthenticated_is_refused(jp_fetch, jp_http_port):
    with pytest.raises(HTTPClientError) as err:  # jp_fetch without the token
        await jp_fetch("proml", "features", headers={"Authorization": ""})
    assert err.value.code in (401, 403)
    # and a raw client that never had the token
    url = f"http://localhost:{jp_http_port}/user/test/proml/models"
    response = await AsyncHTTPClient().fetch(url, raise_error=False)
    assert response.code in (401, 403)


async def test_routes_follow_base_url(jp_fetch, jp_http_port, jp_auth_header):
    # jp_fetch starts the HTTP server (pytest-jupyter's http_server fixture); the raw client then checks paths
    client = AsyncHTTPClient()
    ok = await client.fetch(f"http://localhost:{jp_http_port}/user/test/proml/templates",
                            headers=jp_auth_header, raise_error=False)
    assert ok.code == 200
    outside = await client.fetch(f"http://localhost:{jp_http_port}/proml/templates",
                                 headers=jp_auth_header, raise_error=False)
    assert outside.code == 404


class TestWorkspaceFromEnvironment:
    """Without the ``ProMLServerExtension.workspace`` trait the handlers serve ``PROML_HOME``."""

    @pytest.fixture
    def jp_server_config(self):
        return {"ServerApp": {"jpserver_extensions": {"proml_lab.lab.server": True}}}

    async def test_proml_home(self, jp_fetch, world, monkeypatch):
        from proml_lab.settings import get_settings

        monkeypatch.setenv("PROML_HOME", str(world.root))
        get_settings.cache_clear()
        data = await _get(jp_fetch, "features", q="seniority", entity="member")
        assert [f["name"] for f in data["features"]] == [
            h.name for h in world.features.search("seniority", entity="member")]

    async def test_no_workspace_is_503_json(self, jp_fetch, tmp_path, monkeypatch):
        from proml_lab.settings import get_settings

        monkeypatch.setenv("PROML_HOME", str(tmp_path / "nothing-here"))
        get_settings.cache_clear()
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("proml", "models")
        assert err.value.code == 503
        assert "No ProML Lab workspace" in json.loads(err.value.response.body)["message"]


@pytest.fixture(scope="module")
def small_ws(tmp_path_factory: pytest.TempPathFactory):
    """A fresh workspace (no world): run ``tiny`` holds a tiny trained model's bundle, run ``bare`` none."""
    from proml_lab.deploy.bundle import log_bundle
    from proml_lab.training.tracking import Tracker
    from proml_lab.workspace import Workspace
    from tests.ui.world import train_tiny

    ws = Workspace.init(tmp_path_factory.mktemp("registry") / "ws")
    tracker = Tracker(ws)
    with tracker.start_run("tiny") as run:
        model = train_tiny(run=run)
    assert model.run_id == run.run_id
    log_bundle(ws, model)
    with tracker.start_run("bare") as bare:
        bare.log_metrics({"auc": 0.6})
    return SimpleNamespace(root=ws.root, runs={"tiny": run.run_id, "bare": bare.run_id})


class TestRegistry:
    """``proml/registry``: the Model Registry listed, runs published, aliases moved; on a small workspace."""

    @pytest.fixture
    def jp_server_config(self, small_ws):
        return {
            "ServerApp": {"jpserver_extensions": {"proml_lab.lab.server": True}},
            "ProMLServerExtension": {"workspace": str(small_ws.root)},
        }

    @staticmethod
    async def _post(jp_fetch, what: str, body: dict, code: int = 200):
        response = await jp_fetch("proml", "registry", what, method="POST", body=json.dumps(body))
        assert response.code == code
        return json.loads(response.body)

    @staticmethod
    async def _refused(jp_fetch, what: str, body: dict, code: int = 400) -> str:
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("proml", "registry", what, method="POST", body=json.dumps(body))
        assert err.value.code == code
        return json.loads(err.value.response.body)["message"]

    async def test_publish_then_list(self, jp_fetch, small_ws):
        run = small_ws.runs["tiny"]
        first = await self._post(jp_fetch, "publish", {"run_id": run, "name": "jobs", "alias": "champion"},
                                 201)
        assert (first["name"], first["version"], first["run_id"]) == ("jobs", "1", run)
        assert first["aliases"] == ["champion"]
        assert set(first["metrics"]) == {"auc", "logloss"} and 0.5 < first["metrics"]["auc"] <= 1
        assert first["features"] == ["m1", "x1"] and first["program"] == "tiny_ranker"
        second = await self._post(jp_fetch, "publish", {"run_id": run, "name": "jobs"}, 201)
        assert (second["version"], second["aliases"]) == ("2", [])

        models = {m["name"]: m for m in (await _get(jp_fetch, "registry"))["models"]}
        jobs = models["jobs"]
        assert jobs["latest_version"] == "2" and jobs["aliases"] == {"champion": "1"}
        assert [v["version"] for v in jobs["versions"]] == ["2", "1"]  # newest first
        assert jobs["versions"][1]["aliases"] == ["champion"]
        assert jobs["versions"][0]["metrics"] == first["metrics"]

    async def test_publish_takes_the_programs_name_by_default(self, jp_fetch, small_ws):
        version = await self._post(jp_fetch, "publish", {"run_id": small_ws.runs["tiny"], "name": ""}, 201)
        assert version["name"] == "tiny_ranker"

    async def test_alias_moves(self, jp_fetch, small_ws):
        run = small_ws.runs["tiny"]
        for _ in range(2):
            await self._post(jp_fetch, "publish", {"run_id": run, "name": "aliased", "alias": "champion"},
                             201)
        moved = await self._post(jp_fetch, "alias", {"name": "aliased", "alias": "champion", "version": "1"})
        assert (moved["version"], moved["aliases"]) == ("1", ["champion"])
        models = {m["name"]: m for m in (await _get(jp_fetch, "registry"))["models"]}
        assert models["aliased"]["aliases"] == {"champion": "1"}
        assert [v["aliases"] for v in models["aliased"]["versions"]] == [[], ["champion"]]

    async def test_errors_are_json_with_the_core_message(self, jp_fetch, small_ws):
        bare = small_ws.runs["bare"]
        message = await self._refused(jp_fetch, "publish", {"run_id": bare, "name": "nope"})
        assert message.startswith(f"run {bare} has no model bundle (no 'bundle' artifact)")
        assert "there is no MLflow run 'missing'" in await self._refused(
            jp_fetch, "publish", {"run_id": "missing"})
        assert "missing field(s): run_id" in await self._refused(jp_fetch, "publish", {"name": "x"})
        assert "alias 'latest' is not allowed" in await self._refused(
            jp_fetch, "publish", {"run_id": small_ws.runs["tiny"], "alias": "latest"})
        assert "missing field(s): alias, version" in await self._refused(jp_fetch, "alias", {"name": "x"})
        assert "no published model 'ghost'" in await self._refused(
            jp_fetch, "alias", {"name": "ghost", "alias": "champion", "version": "1"})
        names = [m["name"] for m in (await _get(jp_fetch, "registry"))["models"]]
        assert "nope" not in names  # a refused publish registers nothing

    async def test_unauthenticated_is_refused(self, jp_fetch, jp_http_port, small_ws):
        body = json.dumps({"run_id": small_ws.runs["tiny"], "name": "intruder"})
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("proml", "registry", "publish", method="POST", body=body,
                           headers={"Authorization": ""})
        assert err.value.code in (401, 403)
        client, base = AsyncHTTPClient(), f"http://localhost:{jp_http_port}/user/test/proml/registry"
        for url, kwargs in ((base, {}), (f"{base}/publish", {"method": "POST", "body": body}),
                            (f"{base}/alias", {"method": "POST", "body": "{}"})):
            response = await client.fetch(url, raise_error=False, **kwargs)
            assert response.code in (401, 403), url
        assert "intruder" not in [m["name"] for m in (await _get(jp_fetch, "registry"))["models"]]


@pytest.fixture(scope="module")
def experiments_ws(tmp_path_factory: pytest.TempPathFactory):
    """A fresh workspace (no world) with a running experiment with logged traffic (+30% clicks in the
    treatment) and a draft."""
    from proml_lab.experiments import ExperimentStore
    from proml_lab.workspace import Workspace
    from tests.ui.world import synthetic_experiment

    ws = Workspace.init(tmp_path_factory.mktemp("experiments") / "ws")
    synthetic_experiment(ws, "ranker-ab", lift=0.30)
    ExperimentStore(ws).create("idea-ab", "ab_ranker", ["control=champion", "treatment=newcomer:3"], share=10,
                               layer="ideas", description="not started")
    return ws


class TestExperiments:
    """``proml/experiments``: the A/B experiments listed and one experiment's report, on a small workspace."""

    @pytest.fixture
    def jp_server_config(self, experiments_ws):
        return {
            "ServerApp": {"jpserver_extensions": {"proml_lab.lab.server": True}},
            "ProMLServerExtension": {"workspace": str(experiments_ws.root)},
        }

    async def test_list(self, jp_fetch):
        data = await _get(jp_fetch, "experiments")
        by_name = {e["name"]: e for e in data["experiments"]}
        assert list(by_name) == ["ranker-ab", "idea-ab"]  # by creation time
        running, draft = by_name["ranker-ab"], by_name["idea-ab"]
        assert (running["status"], running["traffic"], running["model"]) == ("running", 100.0, "ab_ranker")
        assert [(a["name"], a["alias"], a["weight"]) for a in draft["arms"]] == [
            ("control", "champion", 1.0), ("treatment", "newcomer", 3.0)]
        assert draft["status"] == "draft" and draft["description"] == "not started"
        only = await _get(jp_fetch, "experiments", status="draft")
        assert [e["name"] for e in only["experiments"]] == ["idea-ab"]

    async def test_report(self, jp_fetch, experiments_ws):
        from proml_lab.experiments.report import experiment_report

        data = await _get(jp_fetch, "experiments", "ranker-ab")
        assert data == json.loads(json.dumps(experiment_report(experiments_ws, "ranker-ab").to_dict()))
        assert data["decision"] == "ramp up" and data["srm"]["flagged"] is False
        assert data["srm_line"].startswith("SRM ok: units control ")
        assert sum(a["units"] for a in data["arms"]) == data["units"] == 4000
        rows = {(m["metric"], m["arm"]): m for m in data["analysis"]["metrics"]}
        assert set(rows) == {(m, a) for m in ("ctr", "clicked", "applied") for a in ("control", "treatment")}
        ctr = rows[("ctr", "treatment")]
        assert ctr["rel_low"] < ctr["rel_lift"] < ctr["rel_high"] and 0 < ctr["rel_low"]  # the +30% is found
        assert rows[("ctr", "control")]["lift"] is None  # NaN is null: the control has no lift
        assert data["analysis"]["reasons"][0].startswith("ramp up: ctr improved in treatment")
        tighter = await _get(jp_fetch, "experiments", "ranker-ab", alpha="0.001")
        assert tighter["alpha"] == 0.001

    async def test_a_draft_reports_no_analysis(self, jp_fetch):
        data = await _get(jp_fetch, "experiments", "idea-ab")
        assert data["analysis"] is None and data["decision"] is None and data["units"] == 0
        assert "is a draft: nobody was exposed yet" in data["message"]

    async def test_errors_are_json_with_the_core_message(self, jp_fetch):
        for parts, params, code, text in (
                (("ranker-abc",), {}, 404, "Unknown experiment 'ranker-abc'. Did you mean: ranker-ab"),
                (("ranker-ab",), {"alpha": "lots"}, 400, "alpha must be a number"),
                (("ranker-ab",), {"alpha": "2"}, 400, "alpha"),
                ((), {"status": "paused"}, 400, "must be one of draft, running, stopped")):
            with pytest.raises(HTTPClientError) as err:
                await jp_fetch("proml", "experiments", *parts, params=params)
            assert err.value.code == code
            assert text in json.loads(err.value.response.body)["message"]

    async def test_unauthenticated_is_refused(self, jp_fetch, jp_http_port):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("proml", "experiments", "ranker-ab", headers={"Authorization": ""})
        assert err.value.code in (401, 403)
        client, base = AsyncHTTPClient(), f"http://localhost:{jp_http_port}/user/test/proml/experiments"
        for url in (base, f"{base}/ranker-ab"):
            response = await client.fetch(url, raise_error=False)
            assert response.code in (401, 403), url
            assert b"ramp up" not in response.body

    async def test_routes_follow_base_url(self, jp_fetch, jp_http_port, jp_auth_header):
        await _get(jp_fetch, "experiments")  # starts the server
        outside = await AsyncHTTPClient().fetch(f"http://localhost:{jp_http_port}/proml/experiments",
                                                headers=jp_auth_header, raise_error=False)
        assert outside.code == 404

def test_installing_the_package_enables_both_extensions():
    """`make setup` leaves the lab extension and the server extension enabled in the environment."""
    import subprocess
    import sys
    from pathlib import Path

    jupyter = Path(sys.executable).with_name("jupyter")
    env = {**__import__("os").environ, "NO_COLOR": "1"}
    lab = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True, text=True, env=env)
    server = subprocess.run([str(jupyter), "server", "extension", "list"], capture_output=True, text=True,
                            env=env)
    lab_lines = [line for line in (lab.stdout + lab.stderr).splitlines() if "jupyterlab-proml" in line]
    assert lab_lines and "enabled" in lab_lines[0] and "OK" in lab_lines[0]
    assert any("proml_lab.lab.server" in line and "enabled" in line
               for line in (server.stdout + server.stderr).splitlines())
