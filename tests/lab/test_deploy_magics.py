"""``%publish``, ``%deploy`` and ``%rank`` in a real IPython shell, on the trained tiny world: what a notebook
user sees, that the ranking is the service's, and what fails the cell."""

from __future__ import annotations

import numpy as np
import pytest

from proml_lab.deploy.deployer import resolve
from proml_lab.errors import DeploymentError
from proml_lab.lab.magics import DeploymentView, ProMLMagicError
from proml_lab.serving.models import NotDeployedError, ServingModel
from tests.deploy.world import trained_world
from tests.shell import magic_shell, run_cell

NAME = "magic_jobs"  # this module's own model: the deploy and serving tests share the workspace
MEMBER = 7


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return trained_world(tmp_path_factory)


@pytest.fixture(scope="module")
def ip(world):
    ws, trained = world
    with magic_shell(ws, trained=trained) as shell:
        yield shell


run = run_cell


@pytest.fixture(scope="module")
def deployed(ip):
    """Version 1 of NAME published with %publish and deployed with %deploy (the cells' results kept)."""
    published, _ = run(ip, f"%publish trained --name {NAME} --alias champion")
    assert published.success, published.error_in_exec
    result, out = run(ip, f"%deploy {NAME}")
    return published.result, result, out


def test_deploy_shows_the_deployment_and_its_progress(ip, world, deployed):
    ws, _ = world
    version, result, out = deployed
    assert result.success, out.stdout
    view = result.result
    assert isinstance(view, DeploymentView) and view.deployment == resolve(ws, NAME, "champion")
    assert view.version == version.version == "1" and view.alias == "champion" and view.documents == 200
    html = view._repr_html_()
    assert f"Deployed <b>{NAME}</b>: alias <b>champion</b> serves version <b>1</b>." in html
    assert "<th style='text-align:left'>Documents</th><td style='text-align:left'>200</td>" in html
    assert view.generation in html and view.deployed_at in html
    assert f"deployed {NAME}: 'champion' serves version 1" in repr(view)
    assert f"deploy {NAME}: 100%" in out.stderr and "collected" in out.stderr  # the steps' progress bar


def test_rank_gives_the_serving_models_ranking(ip, world, deployed):
    ws, _ = world
    result, out = run(ip, f"%rank {NAME} {MEMBER} -k 5")
    assert result.success, out.stdout
    table = result.result
    want = ServingModel(resolve(ws, NAME, "champion"), features=ws.features,
                        store=ws.features.online_store).rank(MEMBER, k=5)
    assert list(table.columns) == ["document_id", "position", "score"]
    assert table["document_id"].tolist() == want.document_ids.tolist()
    np.testing.assert_array_equal(table["score"].to_numpy(), want.scores)
    assert table["position"].tolist() == [1, 2, 3, 4, 5]
    assert f"{NAME} version 1 (champion) for member {MEMBER}: top 5 of 200 documents" in out.stdout


def test_rank_gives_the_trained_objects_ranking(ip, world, deployed):
    from tests.serving.conftest import expected_ranking

    ws, trained = world
    table = run(ip, f"%rank {NAME} {MEMBER}")[0].result
    ids, scores = expected_ranking(ws, trained.state, trained.ir, MEMBER, model=NAME)
    assert len(table) == 10 and table["document_id"].tolist() == ids[:10].tolist()
    np.testing.assert_allclose(table["score"], scores[:10], rtol=0, atol=1e-12)


def test_rank_explain_adds_the_nodes_values(ip, deployed):
    result, out = run(ip, f"%rank {NAME} {MEMBER} -k 3 --explain")
    assert result.success, out.stdout
    table = result.result
    assert list(table.columns[:3]) == ["document_id", "position", "score"]
    assert {"family_match", "region_match", "cheap_score", "glmix", "score (node)"} <= set(table.columns)
    np.testing.assert_allclose(table["score (node)"], table["score"])
    np.testing.assert_allclose(table["score"], 1 / (1 + np.exp(-table["glmix"].astype(float))))
    assert "<th>family_match</th>" in table._repr_html_()


def test_deploy_again_then_rollback(ip, world, deployed):
    ws, _ = world
    assert run(ip, f"%publish trained --name {NAME}")[0].success  # version 2
    second, out = run(ip, f"%deploy {NAME}")
    assert second.success, out.stdout
    assert second.result.version == "2" and second.result.previous == ["1"]
    back, out = run(ip, f"%deploy {NAME} --rollback")
    assert back.success, out.stdout
    view = back.result
    assert view.version == "1" and resolve(ws, NAME, "champion").version == "1" and view.previous == []
    assert f"Rolled back <b>{NAME}</b>: alias <b>champion</b> serves version <b>1</b>." in view._repr_html_()
    ranked, _ = run(ip, f"%rank {NAME} {MEMBER} -k 3")
    assert ranked.result.attrs["version"] == "1"


def test_deploy_from_a_registry_alias_under_another_serving_alias(ip, world, deployed):
    ws, _ = world
    result, out = run(ip, f"%deploy {NAME} --from-alias champion --alias arm-b")
    assert result.success, out.stdout
    assert result.result.alias == "arm-b" and resolve(ws, NAME, "arm-b").version == result.result.version
    ranked, out = run(ip, f"%rank {NAME} {MEMBER} -k 2 --alias arm-b")
    assert ranked.success and f"(arm-b) for member {MEMBER}" in out.stdout


# -- errors fail the cell with the core's message, no traceback ------------------------------------------


def _failed(ip, cell, error_type):
    result, out = run(ip, cell)
    assert not result.success
    assert isinstance(result.error_in_exec, ProMLMagicError)
    if error_type is not None:
        assert isinstance(result.error_in_exec.error, error_type)
    assert "Traceback" not in out.stdout + out.stderr and "File " not in out.stdout
    return str(result.error_in_exec), out.stdout


def test_deploying_an_unknown_model_fails_the_cell(ip, deployed):
    message, shown = _failed(ip, "%deploy no_such_model", DeploymentError)
    assert "no_such_model" in message and message.splitlines()[0] in shown


def test_nothing_to_roll_back_fails_the_cell(ip, deployed):
    assert run(ip, f"%deploy {NAME} --version 1 --alias solo")[0].success
    message, shown = _failed(ip, f"%deploy {NAME} --rollback --alias solo", DeploymentError)
    assert message.startswith(
        f"Nothing to roll back to: alias 'solo' of model '{NAME}' has no earlier deployment")
    assert message in shown
    message, _ = _failed(ip, f"%deploy {NAME} --rollback --alias never", DeploymentError)
    assert f"Model '{NAME}' has no deployment under alias 'never'" in message


def test_rollback_takes_no_version(ip, deployed):
    message, _ = _failed(ip, f"%deploy {NAME} --rollback --version 1", None)
    assert "takes no --version or --from-alias" in message


def test_ranking_what_is_not_deployed_fails_the_cell(ip, deployed):
    message, shown = _failed(ip, f"%rank {NAME} {MEMBER} --alias nowhere", NotDeployedError)
    assert f"model '{NAME}' has no deployment for alias 'nowhere'" in message and "nowhere" in shown
    message, _ = _failed(ip, f"%rank {NAME} not-a-number", None)
    assert "member_id must be integer ids" in message
    message, _ = _failed(ip, f"%rank {NAME} {MEMBER} -k 0", None)
    assert "-k must be at least 1" in message
