"""The experiment store as a user meets it: define, start, ramp, stop, delete; layers and their free space;
errors that say what to do; concurrent definitions; the change token the service watches; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proml_lab.errors import ExperimentError
from proml_lab.experiments import Arm, ExperimentRouter, ExperimentStore

ARMS = [Arm("control", "champion"), Arm("treatment", "challenger")]


def deploy_pointer(root: Path, model: str, aliases: list[str]) -> None:
    """The deployer's pointer file (``deployments/<model>/aliases.json``) naming these aliases."""
    folder = root / "deployments" / model
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"version": "1", "generation": "1-abc", "bundle_path": "bundles/1", "deployed_at": "2026-01-01"}
    (folder / "aliases.json").write_text(json.dumps({"aliases": {a: entry for a in aliases}, "history": {}}))


def test_create_reserves_disjoint_slices_first_fit_and_survives_a_new_store(tmp_path):
    store = ExperimentStore(tmp_path)
    a = store.create("a", "jobs", ARMS, share=30, traffic=5, description="new ranker")
    b = store.create("b", "jobs", ["control=champion", "treatment=challenger:3"], share=50)
    assert (a.bucket_range, b.bucket_range) == ((0, 3000), (3000, 8000))
    assert a.status == "draft" and a.traffic == 5 and a.salt and a.salt != b.salt
    again = ExperimentStore(tmp_path).get("b")
    assert again == b and again.arms[1] == Arm("treatment", "challenger", 3.0)
    assert (tmp_path / "experiments.db").exists()
    store.delete("a")
    assert store.create("c", "jobs", ARMS, share=20).bucket_range == (0, 2000)  # the freed slice is reused
    assert store.layers()["default"]["free"] == [[2000, 3000], [8000, 10000]]


def test_a_layer_without_room_is_refused_with_its_experiments_and_free_space(tmp_path):
    store = ExperimentStore(tmp_path)
    store.create("big", "jobs", ARMS, share=70)
    store.create("small", "jobs", ARMS, share=20)
    with pytest.raises(ExperimentError) as err:
        store.create("late", "jobs", ARMS, share=25)
    message = str(err.value)
    assert "needs 25% of layer 'default'" in message and "largest free: 10%" in message
    assert "big (buckets 0-6999, 70%)" in message and "small (buckets 7000-8999, 20%)" in message
    assert "Free buckets: 9000-9999 (10%)" in message and "--layer" in message
    assert store.create("other", "jobs", ARMS, layer="ui", share=25).bucket_range == (0, 2500)
    assert [e.name for e in store.list()] == ["big", "small", "other"]


@pytest.mark.parametrize(("arms", "kwargs", "expected"), [
    (ARMS[:1], {}, "at least two arms"),
    ([ARMS[0], Arm("control", "challenger")], {}, "arm names must be unique; repeated: control"),
    ([ARMS[0], Arm("t", "challenger", 0)], {}, "arm 't' must have a weight > 0"),
    ([ARMS[0], Arm("t", "latest")], {}, "alias 'latest', which is not a serving alias"),
    (ARMS, {"traffic": 30, "share": 20}, "traffic' of experiment 'x' (30%) cannot exceed its share"),
    (ARMS, {"share": 0}, "'share' parameter of ExperimentStore.create must be a percent in (0, 100]"),
    (ARMS, {"layer": "no spaces"}, "'layer' parameter of ExperimentStore.create must be a name"),
])
def test_invalid_definitions_are_refused_with_what_is_wrong(tmp_path, arms, kwargs, expected):
    store = ExperimentStore(tmp_path)
    with pytest.raises(ExperimentError) as err:
        store.create("x", "jobs", arms, **kwargs)
    assert expected in str(err.value)
    assert store.list() == []  # nothing half-created


def test_duplicate_and_unknown_names_say_what_exists(tmp_path):
    store = ExperimentStore(tmp_path)
    store.create("jobs-ab", "jobs", ARMS, share=10)
    with pytest.raises(ExperimentError, match="'jobs-ab' already exists"):
        store.create("jobs-ab", "jobs", ARMS, share=10)
    with pytest.raises(ExperimentError, match=r"Unknown experiment 'jobs-abb'. Did you mean: jobs-ab\?"):
        store.get("jobs-abb")


def test_start_needs_every_arm_alias_deployed_and_names_the_fix(tmp_path):
    store = ExperimentStore(tmp_path)
    store.create("ab", "jobs", ARMS, share=50, traffic=5)
    deploy_pointer(tmp_path, "jobs", ["champion"])
    with pytest.raises(ExperimentError) as err:
        store.start("ab")
    assert "arm 'treatment' routes to alias 'challenger'" in str(err.value)
    assert "proml deploy jobs --version <version> --alias challenger" in str(err.value)
    assert store.get("ab").status == "draft"
    deploy_pointer(tmp_path, "jobs", ["champion", "challenger"])
    started = store.start("ab")
    assert started.status == "running" and started.started_at and started.ramp == [
        {"at": started.started_at, "traffic": 5.0}]
    assert [e.name for e in store.running("jobs")] == ["ab"] and store.running("other") == []


def test_ramp_records_history_up_to_the_share_and_stop_keeps_the_range_reserved(tmp_path):
    store = ExperimentStore(tmp_path)
    deploy_pointer(tmp_path, "jobs", ["champion", "challenger"])
    store.create("ab", "jobs", ARMS, share=50, traffic=5)
    store.start("ab")
    store.ramp("ab", 20)
    ramped = store.ramp("ab", 50)
    assert ramped.traffic == 50 and [r["traffic"] for r in ramped.ramp] == [5, 20, 50]
    with pytest.raises(ExperimentError, match="at most its share of layer 'default', 50%; got 60%"):
        store.ramp("ab", 60)
    with pytest.raises(ExperimentError, match="is running; stop it before deleting it"):
        store.delete("ab")
    stopped = store.stop("ab")
    assert stopped.status == "stopped" and stopped.stopped_at and store.running("jobs") == []
    with pytest.raises(ExperimentError, match="no free range that large"):  # still reserved
        store.create("next", "jobs", ARMS, share=60)
    for verb in (store.start, store.stop):
        with pytest.raises(ExperimentError, match="is stopped"):
            verb("ab")
    with pytest.raises(ExperimentError, match="stopped and cannot be ramped"):
        store.ramp("ab", 10)
    assert store.get("ab").bucket_range == (0, 5000)  # the analysis can re-derive who was in which arm
    store.delete("ab")
    assert store.create("next", "jobs", ARMS, share=60).bucket_range == (0, 6000)


_CREATE_MANY = """
import sys
from proml_lab.experiments import ExperimentStore
store = ExperimentStore(sys.argv[1])
for i in range(6):
    store.create(f"{sys.argv[2]}-{i}", "jobs", ["control=champion", "treatment=challenger"], share=4, traffic=4)
"""


def test_concurrent_creates_in_one_layer_never_overlap(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _CREATE_MANY, str(tmp_path), f"p{p}"],
                              stderr=subprocess.PIPE, text=True) for p in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    ranges = sorted(e.bucket_range for e in ExperimentStore(tmp_path).list())
    assert len(ranges) == 24
    assert all(hi - lo == 400 for lo, hi in ranges)
    assert all(prev[1] <= nxt[0] for prev, nxt in zip(ranges, ranges[1:]))


def test_the_change_token_moves_on_every_write_only_and_the_router_follows_it(tmp_path):
    store = ExperimentStore(tmp_path)
    router = ExperimentRouter(tmp_path)
    assert store.change_token() is None and router.route("jobs", [1, 2]) == [(None, None, "champion")] * 2
    deploy_pointer(tmp_path, "jobs", ["champion", "challenger"])
    store.create("ab", "jobs", ARMS, share=100, traffic=100)
    token = store.change_token()
    store.list(), store.get("ab"), router.running("jobs")
    assert store.change_token() == token  # reads (the router's included) change nothing
    store.start("ab")
    assert store.change_token() != token
    routes = router.route("jobs", list(range(1000)))
    assert {r.experiment for r in routes} == {"ab"} and {r.alias for r in routes} == {"champion", "challenger"}
    reloads = router.reloads
    for _ in range(50):
        router.route_one("jobs", 7)
    assert router.reloads == reloads  # cached while nothing changed
    store.ramp("ab", 0)
    assert router.route_one("jobs", 7) == (None, None, "champion") and router.reloads == reloads + 1
    assert store.changes() == 3


def test_the_earliest_started_experiment_of_a_model_routes_members_in_several_layers(tmp_path):
    store = ExperimentStore(tmp_path)
    deploy_pointer(tmp_path, "jobs", ["champion", "challenger", "arm-b"])
    store.create("first", "jobs", ARMS, layer="ranking", traffic=100)
    store.create("second", "jobs", [Arm("control", "champion"), Arm("b", "arm-b")], layer="ui", traffic=100)
    store.start("second")
    store.start("first")  # started later: takes nobody from "second"
    assert {r.experiment for r in ExperimentRouter(tmp_path).route("jobs", range(500))} == {"second"}


# ----------------------------------------------------------------------------------------------------- CLI


def proml(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROML_HOME": str(home), "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-m", "proml_lab.cli", "experiment", *args], capture_output=True,
                         text=True, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_cli_create_ramp_show_list(tmp_path):
    from typer.testing import CliRunner

    from proml_lab.cli import app

    home = str(tmp_path / "ws")
    runner = CliRunner(env={"PROML_HOME": home, "COLUMNS": "300"})
    out = runner.invoke(app, ["experiment", "create", "jobs-ab", "--model", "jobs", "--arm", "control=champion",
                              "--arm", "treatment=challenger:2", "--share", "40", "--traffic", "5",
                              "--description", "GLMix [v2] vs v1"])
    assert out.exit_code == 0, out.output
    assert "created experiment jobs-ab of jobs [draft]" in out.output and "buckets 0-3999" in out.output
    assert runner.invoke(app, ["experiment", "ramp", "jobs-ab", "20"]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["experiment", "show", "jobs-ab", "--json"]).output)
    assert shown["traffic"] == 20 and shown["share"] == 40 and shown["bucket_range"] == [0, 4000]
    assert shown["arms"][1] == {"name": "treatment", "alias": "challenger", "weight": 2.0}
    table = runner.invoke(app, ["experiment", "show", "jobs-ab"]).output
    assert "20% of the layer (share reserved: 40%)" in table and "GLMix [v2] vs v1" in table
    listed = json.loads(runner.invoke(app, ["experiment", "list", "--json"]).output)
    assert [e["name"] for e in listed] == ["jobs-ab"]
    assert "jobs-ab" in runner.invoke(app, ["experiment", "list", "--status", "draft"]).output


def test_cli_errors_are_one_line_with_the_fix_and_exit_1(tmp_path):
    home = tmp_path / "ws"
    proml("create", "ab", "--model", "jobs", "--arm", "control=champion", "--arm", "treatment=challenger",
          home=home)
    out = proml("start", "ab", home=home, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "error: Experiment 'ab' cannot start" in out.stderr and "--alias champion" in out.stderr
    bad = proml("create", "x", "--model", "jobs", "--arm", "control", home=home, check=False)
    assert bad.returncode == 1 and "is not NAME=ALIAS[:WEIGHT]" in bad.stderr
