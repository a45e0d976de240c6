"""Deploying published versions: online coefficients, a forward-index generation, an atomic alias switch."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from proml_lab.deploy.deployer import Deployer, coefficient_key, resolve
from proml_lab.deploy.forward_index import ForwardIndex
from proml_lab.deploy.registry import ModelRegistry
from proml_lab.errors import DeploymentError
from proml_lab.features.online.base import UnknownGroupError

NAME = "deploy_test_model"  # its own registered names: other deploy tests use the world workspace too


def _scaled(trained, factor):
    state = copy.deepcopy(trained.state)
    for part in ("per_member", "per_document"):
        state["glmix"][part]["coefficients"] = np.asarray(state["glmix"][part]["coefficients"]) * factor
    return dataclasses.replace(trained, state=state, run_id=None)  # run_id=None: its own run, its own bundle


@pytest.fixture(scope="module")
def published(world):
    """Three versions of NAME (different coefficients) and one of NAME_cli."""
    ws, trained = world
    registry = ModelRegistry(ws)
    if not any(m["name"] == NAME for m in registry.models()):
        registry.publish(trained, name=NAME)
        registry.publish(_scaled(trained, 2.0), name=NAME, alias="challenger")
        registry.publish(_scaled(trained, 3.0), name=NAME)
        registry.publish(trained, name=f"{NAME}_cli")
    return ws, registry


def _member_table(bundle):
    return next(t for t in bundle.coefficient_tables() if t.entity == "member")


def test_deploy_switch_and_rollback(published):
    ws, registry = published
    deployer, store = Deployer(ws), ws.features.online_store
    assert resolve(ws, NAME) is None

    steps = []
    first = deployer.deploy(NAME, "1", progress=lambda step, i, n: steps.append(step))
    assert steps[-1] == "collected" and "pointer_switched" in steps
    assert resolve(ws, NAME) == first and first.version == "1"
    assert first.bundle_path == ws.root / "models" / NAME / "1" and first.index_path.is_dir()
    v1 = _member_table(registry.load(NAME, 1))
    matrix, found = store.read_coefficients(coefficient_key(NAME, v1.node), "1", "member", v1.ids)
    assert found.all() and len(found) == len(v1.ids)
    np.testing.assert_array_equal(matrix, v1.coefficients)
    assert registry.resolve(NAME, "champion").version == "1"  # the registry alias mirrors the pointer

    second = deployer.deploy(NAME, from_alias="challenger")  # the version the challenger alias names
    assert resolve(ws, NAME).version == "2" == second.version
    v2 = _member_table(registry.load(NAME, 2))
    matrix2, _ = store.read_coefficients(coefficient_key(NAME, v2.node), "2", "member", v2.ids)
    np.testing.assert_array_equal(matrix2, v2.coefficients)
    still, _ = store.read_coefficients(coefficient_key(NAME, v1.node), "1", "member", v1.ids)
    np.testing.assert_array_equal(still, v1.coefficients)  # v1 stays readable until collected

    back = deployer.rollback(NAME)
    assert back.version == "1" and back.generation == first.generation and resolve(ws, NAME) == back
    assert registry.resolve(NAME, "champion").version == "1"
    with pytest.raises(DeploymentError, match="Nothing to roll back to: alias 'champion' .* serves version 1"):
        deployer.rollback(NAME)
    with pytest.raises(DeploymentError, match="no deployment under alias 'arm-b'; aliases: champion"):
        deployer.rollback(NAME, alias="arm-b")

    arm = deployer.deploy(NAME, "2", alias="arm-b")  # an experiment arm is one more alias
    assert resolve(ws, NAME, "arm-b") == arm and resolve(ws, NAME).version == "1"
    status = deployer.status(NAME)
    assert {a: e["version"] for a, e in status["aliases"].items()} == {"arm-b": "2", "champion": "1"}
    assert status["versions"] == ["1", "2"] and all(g["bytes"] > 0 for g in status["generations"])


def test_keep_collects_old_generations_and_their_online_coefficients(published):
    ws, registry = published
    deployer, store, name = Deployer(ws), ws.features.online_store, f"{NAME}"
    table = _member_table(registry.load(name, 3))
    key = coefficient_key(name, table.node)
    for version in ("3", "1", "3"):
        deployer.deploy(name, version, alias="keep-test", keep=1)
    status = deployer.status(name)
    assert status["history"]["keep-test"][0]["version"] == "1"  # one earlier entry kept for rollback
    used = {e["generation"] for es in status["history"].values() for e in es} | {
        e["generation"] for e in status["aliases"].values()}
    assert {g["generation"] for g in status["generations"]} == used
    deployer.deploy(name, "2", alias="keep-test", keep=0)
    deployer.deploy(name, "2", keep=0)  # champion: 1 -> 2; nothing uses versions 1 and 3 any more
    status = deployer.status(name)
    assert status["versions"] == ["2"] and len(status["generations"]) == 3  # champion, arm-b, keep-test
    for version in ("1", "3"):
        with pytest.raises(UnknownGroupError):
            store.read_coefficients(key, version, "member", table.ids)
    assert not any(f"/{name}@" in g and not g.endswith("/2") for _, g in store.groups())


def test_document_features_in_the_index_are_the_latest_offline_and_online_values(published):
    ws, registry = published
    deployment = Deployer(ws).deploy(NAME, "3", alias="features-test")
    index = ForwardIndex.open(deployment.index_path)
    bundle = registry.load(NAME, 3)
    features = index.meta["features"]
    assert features == ["job_titleFamily", "job_region", "job_companyId", "job_seniority", "job_remote",
                        "job_companySizeLog", "job_impressions_7d"]  # the program's DOCUMENT inputs
    import datetime as dt

    latest = ws.features.latest_values("job", features, as_of=dt.datetime.fromisoformat(index.meta["as_of"]))
    online = ws.features.get_online_features("job", index.ids, features)
    positions, found = index.rows(latest["job_id"].to_numpy())
    assert found.all() and len(index) == latest.num_rows == 200
    for name in features:
        column = index.column(name)
        if column.dtype == object:
            assert column[positions].tolist() == latest[name].to_pylist()
            assert column.tolist() == online[name].to_pylist()
        else:
            np.testing.assert_array_equal(column[positions], latest[name].to_numpy(zero_copy_only=False).astype(float))
            np.testing.assert_array_equal(column, online[name].to_numpy(zero_copy_only=False).astype(float))
    doc = next(t for t in bundle.coefficient_tables() if t.entity == "document")
    ids, matrix = index.coefficients(doc.node, doc.part)
    order = np.argsort(ids)
    np.testing.assert_array_equal(ids[order], np.sort(doc.ids))
    np.testing.assert_array_equal(matrix[order], doc.coefficients[np.argsort(doc.ids)])


def test_unknown_versions_and_aliases_list_what_exists(published):
    ws, _ = published
    deployer = Deployer(ws)
    with pytest.raises(DeploymentError, match=rf"model '{NAME}' has no version 9; its versions: 1, 2, 3"):
        deployer.deploy(NAME, "9")
    with pytest.raises(DeploymentError, match=r"has no alias 'gold'; its aliases: .*challenger.*; its versions: 1, 2, 3"):
        deployer.deploy(NAME, from_alias="gold")
    with pytest.raises(DeploymentError, match=rf"no published model 'nope'; published models: .*{NAME}"):
        deployer.deploy("nope")
    with pytest.raises(DeploymentError, match="Alias 'latest' is not allowed"):
        deployer.deploy(NAME, "1", alias="latest")
    assert resolve(ws, "nope") is None


def test_a_damaged_generation_is_refused_by_rollback(published):
    ws, _ = published
    deployer, name = Deployer(ws), NAME
    deployer.deploy(name, "1", alias="damage-test")
    deployer.deploy(name, "2", alias="damage-test")
    previous = deployer.status(name)["history"]["damage-test"][0]
    shard = ws.root / "deployments" / name / "generations" / previous["generation"] / "shard-1.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DeploymentError, match="Version 1 .* is not intact: Shard shard-1.arrow .* is corrupt"):
        deployer.rollback(name, alias="damage-test")
    assert resolve(ws, name, "damage-test").version == "2"


def test_cli_deploy_deployments_and_rollback(published):
    from proml_lab.cli import app

    ws, _ = published
    runner, home, name = CliRunner(), ["--home", str(ws.root)], f"{NAME}_cli"
    out = runner.invoke(app, ["deploy", name, "--version", "1", "--json", *home])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["name"], data["alias"], data["version"]) == (name, "champion", "1")
    out = runner.invoke(app, ["deploy", name, "--alias", "arm-b", *home])
    assert out.exit_code == 0 and f"deployed {name} version 1 as 'arm-b'" in out.stdout

    listed = json.loads(runner.invoke(app, ["deployments", name, "--json", *home]).stdout)
    assert sorted(listed["aliases"]) == ["arm-b", "champion"]
    out = runner.invoke(app, ["deployments", name, *home], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "champion" in out.stdout and "2 generation(s) on disk" in out.stdout

    out = runner.invoke(app, ["rollback", name, *home])
    assert isinstance(out.exception, DeploymentError) and "Nothing to roll back to" in str(out.exception)
    out = runner.invoke(app, ["deploy", name, "--version", "7", *home])
    assert isinstance(out.exception, DeploymentError) and "its versions: 1" in str(out.exception)
