"""Publishing on the real MLflow Model Registry of the world workspace: versions, aliases, lineage, loading,
and the `proml publish` / `proml models` commands and the %publish magic that wrap it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from proml_lab.deploy import ModelRegistry, ModelVersion, log_bundle
from proml_lab.errors import DeployError
from proml_lab.training.connect import train
from proml_lab.training.tracking import Tracker
from tests.deploy.test_bundle import MULTI

NAME = "publish_test_jobs"  # its own registered names: other deploy tests publish the world model too


@pytest.fixture(scope="module")
def published(world):
    """The world model's run holds its bundle; the registry of the world workspace."""
    ws, trained = world
    log_bundle(ws, trained)
    return ws, trained, ModelRegistry(ws)


def test_publish_versions_aliases_tags_lineage_and_load(published):
    ws, trained, registry = published
    v1 = registry.publish(trained.run_id, name=NAME, alias="champion", description="first")
    assert isinstance(v1, ModelVersion) and (v1.version, v1.aliases) == ("1", ("champion",))
    assert v1.run_id == trained.run_id and v1.source == f"runs:/{trained.run_id}/bundle"
    assert v1.tags["metric.auc"] == repr(trained.metrics["auc"])
    assert float(v1.tags["metric.ndcg_at_10"]) == trained.metrics["ndcg@10"]
    assert v1.tags["features"].split(",") == trained.features and "job_seniority" in v1.features
    assert v1.tags["data_fingerprint"] == trained.data_fingerprint
    assert v1.tags["program"] == "world_job_recommendations" and v1.tags["run_id"] == trained.run_id
    assert v1.description == "first"

    v2 = registry.publish(trained, name=NAME, alias="challenger")  # a TrainedModel: bundle logged to its run
    assert (v2.version, v2.aliases, v2.run_id) == ("2", ("challenger",), trained.run_id)
    assert registry.set_alias(NAME, "champion", 2).aliases == ("challenger", "champion")
    assert [(v.version, v.aliases) for v in registry.versions(NAME)] == [("1", ()), ("2", ("challenger", "champion"))]
    registry.delete_alias(NAME, "challenger")
    assert registry.resolve(NAME, "champion").version == "2" and registry.resolve(NAME).version == "2"

    using = ws.features.catalog.models_using("job_seniority")
    assert f"{NAME}:1" in using and f"{NAME}:2" in using

    listed = {m["name"]: m for m in registry.models()}[NAME]
    assert listed["latest_version"] == "2" and listed["aliases"] == {"champion": "2"}
    assert [v["version"] for v in listed["versions"]] == ["2", "1"]
    assert listed["versions"][0]["metrics"]["auc"] == trained.metrics["auc"]

    bundle = registry.load(NAME, alias="champion")
    assert bundle.path == ws.root / "models" / NAME / "2"
    assert (bundle.name, bundle.version, bundle.run_id) == (NAME, "2", trained.run_id)
    from proml_lab.training.data import training_frame

    rows = training_frame(ws, trained.ir).validation.iloc[:2000]
    np.testing.assert_array_equal(bundle.score(rows), trained.score(rows))
    stamp = (bundle.path / "manifest.json").stat().st_mtime_ns
    again = registry.load(NAME, 2)  # cached: read from the same copy, not downloaded again
    assert again.path == bundle.path and (again.path / "manifest.json").stat().st_mtime_ns == stamp
    assert [p.name for p in bundle.path.parent.iterdir()] == ["2"]  # no temporary directory left behind
    assert registry.load(NAME, 1).version == "1"


def test_a_changed_model_published_from_the_same_run_never_alters_an_earlier_version(published):
    import dataclasses

    ws, trained, registry = published
    first = registry.publish(trained, name=f"{NAME}_changed")
    glmix = {**trained.state["glmix"], "fixed": {**trained.state["glmix"]["fixed"], "intercept": 5.0}}
    changed = dataclasses.replace(trained, state={**trained.state, "glmix": glmix})  # same run id
    second = registry.publish(changed, name=f"{NAME}_changed")
    assert second.source != first.source and second.source.startswith(f"runs:/{trained.run_id}/bundle-")
    from proml_lab.training.data import training_frame

    rows = training_frame(ws, trained.ir).validation.iloc[:500]
    np.testing.assert_array_equal(registry.load(f"{NAME}_changed", first.version).score(rows), trained.score(rows))
    np.testing.assert_array_equal(registry.load(f"{NAME}_changed", second.version).score(rows), changed.score(rows))
    assert registry.publish(trained, name=f"{NAME}_changed").source == first.source  # same model: no upload


def test_unknown_names_aliases_and_versions_list_what_exists(published):
    _, trained, registry = published
    registry.publish(trained.run_id, name=f"{NAME}_errors", alias="champion")
    with pytest.raises(DeployError, match=rf"no published model 'nope'; published models: .*{NAME}_errors"):
        registry.resolve("nope")
    with pytest.raises(DeployError, match=r"no alias 'gold'; its aliases: champion; its versions: 1"):
        registry.load(f"{NAME}_errors", alias="gold")
    with pytest.raises(DeployError, match=r"has no version 9; its versions: 1"):
        registry.set_alias(f"{NAME}_errors", "champion", 9)
    with pytest.raises(DeployError, match=r"alias 'top model' is not allowed"):
        registry.publish(trained.run_id, name=f"{NAME}_errors", alias="top model")
    with pytest.raises(DeployError, match=r"has no alias 'gold'; its aliases: champion"):
        registry.delete_alias(f"{NAME}_errors", "gold")
    assert [v.version for v in registry.versions(f"{NAME}_errors")] == ["1"]  # the refused publish added none


def test_a_run_without_a_bundle_or_an_unknown_run_is_refused(published):
    ws, _, registry = published
    with Tracker(ws).start_run("no bundle") as run:
        run.log_metrics({"auc": 0.5})
    with pytest.raises(DeployError, match=rf"run {run.run_id} has no model bundle.*proml train"):
        registry.publish(run.run_id, name=f"{NAME}_empty")
    with pytest.raises(DeployError, match=r"no MLflow run 'feedbeef'"):
        registry.publish("feedbeef", name=f"{NAME}_empty")
    with pytest.raises(DeployError, match=r"no published model"):
        registry.versions(f"{NAME}_empty")


def test_a_model_trained_without_tracking_is_published_from_a_new_run(published):
    ws, _, registry = published
    rng = np.random.default_rng(5)
    n = 800
    frame = pd.DataFrame({"member_id": rng.integers(0, 30, n), "job_id": rng.integers(0, 20, n),
                          "m1": rng.normal(size=n), "x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-frame["x1"]))).astype(float)
    model = train(MULTI, frame)
    assert model.run_id is None
    version = registry.publish(model, name=f"{NAME}_untracked")
    run = Tracker(ws).client.get_run(version.run_id)
    assert run.data.tags["proml.kind"] == "publish" and version.aliases == ()
    np.testing.assert_array_equal(registry.load(f"{NAME}_untracked").score(frame), model.score(frame))


def test_cli_publish_and_models(published):
    from proml_lab.cli import app

    ws, trained, _ = published
    runner = CliRunner()
    home = ["--home", str(ws.root)]
    out = runner.invoke(app, ["publish", trained.run_id, "--name", f"{NAME}_cli", "--alias", "champion",
                              "--json", *home])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["name"], data["version"], data["aliases"]) == (f"{NAME}_cli", "1", ["champion"])
    assert data["metrics"]["auc"] == trained.metrics["auc"]

    out = runner.invoke(app, ["publish", trained.run_id, "--name", f"{NAME}_cli", *home])
    assert out.exit_code == 0 and f"published {NAME}_cli version 2" in out.stdout and "auc" in out.stdout

    out = runner.invoke(app, ["models", f"{NAME}_cli", *home], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    lines = [line for line in out.stdout.splitlines() if f"{NAME}_cli" in line]
    assert len(lines) == 2 and "champion" in lines[1] and "auc" in lines[0]  # newest version first

    listed = json.loads(runner.invoke(app, ["models", "--json", *home]).stdout)
    assert f"{NAME}_cli" in {m["name"] for m in listed}
    out = runner.invoke(app, ["models", "nope", *home])
    assert isinstance(out.exception, DeployError) and f"{NAME}_cli" in str(out.exception)


def test_publish_magic_publishes_a_namespace_model_or_a_run(published):
    from tests.shell import ipython_shell
    from IPython.utils.capture import capture_output

    from proml_lab.lab import unload_ipython_extension
    from proml_lab.lab.magics import ProMLMagicError

    ws, trained, _ = published
    ip = ipython_shell()
    ip.run_line_magic("load_ext", "proml_lab")
    try:
        ip.run_line_magic("config", f'ProMLMagics.workspace = "{ws.root}"')
        ip.run_line_magic("config", 'ProMLMagics.widgets = "off"')
        ip.user_ns["ranker_model"] = trained
        version = ip.run_line_magic("publish", f"ranker_model --name {NAME}_magic --alias champion")
        assert (version.name, version.version, version.aliases) == (f"{NAME}_magic", "1", ("champion",))
        html = version._repr_html_()
        assert "champion" in html and "auc" in html and ">1<" in html

        with capture_output():
            result = ip.run_cell(f"%publish {trained.run_id} --name {NAME}_magic")
        assert result.success and result.result.version == "2"
        with capture_output():
            failed = ip.run_cell("%publish no_such_run --name x")
        assert not failed.success and isinstance(failed.error_in_exec, ProMLMagicError)
        assert "no MLflow run 'no_such_run'" in str(failed.error_in_exec)
    finally:
        ip.user_ns.pop("ranker_model", None)
        unload_ipython_extension(ip)
        ip.extension_manager.loaded.discard("proml_lab")
