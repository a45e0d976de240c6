"""An A/B experiment run end to end on one machine: the world's members rank through the live service, click
by the ground truth, and the logs give one unit per exposed member in the arm the assignment gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.deploy.world import trained_world

MODEL = "sim_jobs"  # this module's own registered model: other tests move other models' aliases


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory: pytest.TempPathFactory):
    """The trained world model published as MODEL, the same version deployed as champion and challenger."""
    from proml_lab.deploy.deployer import Deployer
    from proml_lab.deploy.registry import ModelRegistry

    ws, trained = trained_world(tmp_path_factory)
    version = ModelRegistry(ws).publish(trained, name=MODEL).version
    Deployer(ws).deploy(MODEL, version=version, alias="champion")
    Deployer(ws).deploy(MODEL, version=version, alias="challenger")
    return ws


def _run(ws, name: str, *, seed: int, treatment_effect=None, members: int = 800):
    """Create and start ``name`` (50% traffic, its own layer and salt), simulate through HTTP, stop it."""
    from proml_lab.experiments.simulate import HttpRanker, simulate
    from proml_lab.experiments.store import ExperimentStore
    from proml_lab.serving import BackgroundService

    store = ExperimentStore(ws)
    store.create(name, MODEL, ["control=champion", "treatment=challenger"], layer=name, share=50, traffic=50,
                 salt=name)
    store.start(name)
    with BackgroundService(ws) as service, HttpRanker(service.url, MODEL, k=10, concurrency=8) as rank:
        result = simulate(ws, name, rank, members=members, requests_per_member=2.0, seed=seed,
                          treatment_effect=treatment_effect)
    store.stop(name)
    print(result)  # shown with -s: counts per arm and the wall time
    return result


@pytest.fixture(scope="module")
def runs(sim_ws):
    """An A/A run, then a run with an injected +0.8 click-logit lift on the treatment arm."""
    return {"aa": _run(sim_ws, "sim-aa", seed=1), "lift": _run(sim_ws, "sim-lift", seed=2,
                                                                treatment_effect={"treatment": 0.8})}


def _welch_t(units: pd.DataFrame) -> float:
    a, b = (units.loc[units["arm"] == arm, "ctr"] for arm in ("control", "treatment"))
    return float((b.mean() - a.mean()) / np.sqrt(a.var() / len(a) + b.var() / len(b)))


def test_exposures_and_outcomes_are_logged_with_the_arms(sim_ws, runs):
    from proml_lab.experiments.outcomes import read_outcomes
    from proml_lab.serving import read_exposures

    aa = runs["aa"]
    assert aa.exposures_logged and aa.requests >= aa.members == 800
    exposures = read_exposures(sim_ws, MODEL).to_pandas()
    mine = exposures[exposures["experiment"] == "sim-aa"]
    assert set(mine["arm"]) == {"control", "treatment"}
    assert (mine["alias"] == mine["arm"].map({"control": "champion", "treatment": "challenger"})).all()
    outside = exposures[exposures["experiment"].isna()]
    assert len(outside) and set(outside["alias"]) == {"champion"}  # 50% traffic: the rest see the default
    per_arm = aa.per_arm.set_index("arm")
    assert per_arm.loc["control", "exposures"] + per_arm.loc["treatment", "exposures"] == len(mine)

    outcomes = read_outcomes(sim_ws, MODEL)
    total = sum(r.clicks + r.applies for r in runs.values())
    assert len(outcomes) == total and set(outcomes["event"]) == {"click", "apply"}
    # every event refers to an item the service showed in that request
    joined = outcomes.merge(exposures, on=["request_id", "document_id"], how="left", suffixes=("", "_x"))
    assert joined["position"].notna().all() and (joined["member_id"] == joined["member_id_x"]).all()


def test_units_are_one_row_per_exposed_member_in_its_assigned_arm(sim_ws, runs):
    from proml_lab.experiments.assignment import assign
    from proml_lab.experiments.outcomes import experiment_units
    from proml_lab.experiments.store import ExperimentStore

    units = experiment_units(sim_ws, "sim-aa")
    experiment = ExperimentStore(sim_ws).get("sim-aa")
    assert units["member_id"].is_unique
    assert (units["arm"].to_numpy() == assign(experiment, units["member_id"].to_numpy())).all()
    per_arm = runs["aa"].per_arm.set_index("arm")
    assert len(units) == per_arm.loc[["control", "treatment"], "members"].sum()
    assert units["exposures"].sum() == per_arm.loc[["control", "treatment"], "exposures"].sum()
    assert units["clicks"].sum() == per_arm.loc[["control", "treatment"], "clicks"].sum()
    assert ((units["clicked"] == (units["clicks"] > 0)) & (units["applies"] <= units["clicks"])).all()
    np.testing.assert_allclose(units["ctr"], units["clicks"] / units["exposures"])
    # about half of the simulated members are in the experiment (50% traffic), split about 50/50
    assert abs(len(units) / 800 - 0.5) < 4 * np.sqrt(0.25 / 800)
    share = (units["arm"] == "treatment").mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(units))
    # pre-period columns from the world's impressions (all before the experiment started)
    assert {"pre_exposures", "pre_clicks", "pre_ctr"} <= set(units.columns)
    assert (units["pre_exposures"] > 0).mean() > 0.9
    assert (units["pre_clicks"] <= units["pre_exposures"]).all()


def test_an_aa_run_shows_similar_ctrs_and_an_injected_lift_shows(sim_ws, runs):
    from proml_lab.experiments.outcomes import experiment_units

    aa, lift = experiment_units(sim_ws, "sim-aa"), experiment_units(sim_ws, "sim-lift")
    print("welch t: A/A", _welch_t(aa), "lift", _welch_t(lift))
    assert abs(_welch_t(aa)) < 3
    assert _welch_t(lift) > 4
    ctr = lift.groupby("arm")["ctr"].mean()
    assert ctr["treatment"] > ctr["control"] + 0.05


def test_experiment_units_windows_and_unknown_experiments(sim_ws, runs):
    from proml_lab.errors import ExperimentError
    from proml_lab.experiments.outcomes import experiment_units

    units = experiment_units(sim_ws, "sim-aa", start="2100-01-01")
    assert units.empty and "pre_ctr" in units.columns
    with pytest.raises(ExperimentError, match="Unknown experiment"):
        experiment_units(sim_ws, "nope")


def test_simulate_checks_its_arguments(sim_ws, runs):
    from proml_lab.errors import ExperimentError
    from proml_lab.experiments.simulate import simulate

    with pytest.raises(ExperimentError, match="'members' parameter of simulate must be an int"):
        simulate(sim_ws, "sim-aa", lambda ids: [], members=0)
    with pytest.raises(ExperimentError, match="is stopped; start it"):
        simulate(sim_ws, "sim-aa", lambda ids: [])


def test_log_outcomes_writes_one_file_per_day_and_reads_back(workspace):
    from proml_lab.errors import ExperimentError
    from proml_lab.experiments.outcomes import log_outcomes, outcome_dir, read_outcomes

    events = pd.DataFrame({
        "ts": pd.to_datetime(["2026-03-01T23:59:59Z", "2026-03-02T00:00:01Z", "2026-03-02T00:00:09Z"]),
        "request_id": ["r1", "r1", "r2"], "member_id": [7, 7, 8], "document_id": [42, 42, 5],
        "event": ["click", "apply", "click"]})
    assert log_outcomes(workspace, "m", events) == 3
    root = outcome_dir(workspace) / "model=m"
    assert sorted(p.parent.name for p in root.rglob("*.parquet")) == ["date=2026-03-01", "date=2026-03-02"]
    assert not list(root.rglob("*.tmp"))
    back = read_outcomes(workspace, "m")
    assert back["event"].tolist() == ["click", "apply", "click"]
    assert back["member_id"].tolist() == [7, 7, 8] and str(back["ts"].dt.tz) == "UTC"
    assert read_outcomes(workspace, "other").empty
    with pytest.raises(ExperimentError, match="Unknown outcome event"):
        log_outcomes(workspace, "m", events.assign(event="view"))
    with pytest.raises(ExperimentError, match="missing: document_id"):
        log_outcomes(workspace, "m", events.drop(columns="document_id"))
