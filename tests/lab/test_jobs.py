"""Training jobs as a user meets them: a real detached process, its files, waiting, detaching, failing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from proml_lab.lab import jobs
from proml_lab.settings import Settings
from proml_lab.workspace import Workspace

FEATURES = Path(__file__).resolve().parents[2] / "proml_lab" / "worlds" / "feature_definitions"

# A small program over the two profile anchors (materializing the activity windows would triple set-up)
RANKER = """MODEL lab_ranker;
INPUT DOCUMENT double job_seniority;
INPUT DOCUMENT double job_remote;
INPUT MEMBER double member_seniority;
double gap = Abs(job_seniority - member_seniority);
TRAINABLE glmix = GLMix([gap, job_remote], {"per_member": [job_seniority, 1], "l2": 10.0});
double score = Sigmoid(glmix);
ranked = ORDER DOCUMENTS BY score WITH DESC;
RETURN ranked;
TRAINING CONFIG {label: clicked, training_data: "world/impressions", metrics: ["auc"]}
"""
BASELINE = RANKER.replace("lab_ranker", "lab_baseline").replace('"per_member": [job_seniority, 1], ', "")

_WORLD: dict[str, Workspace] = {}


def lab_workspace(factory: pytest.TempPathFactory) -> Workspace:
    """The tiny world in a workspace, its profile anchors materialized offline and online; built once
    per test session and shared by the lab tests."""
    if "ws" not in _WORLD:
        from proml_lab.worlds import generate_world

        root = factory.mktemp("lab") / "ws"
        ws = Workspace.init(root, settings=Settings(home=root, spark_master="local[2]"))
        world = generate_world("tiny", workspace=ws)
        ws.features.apply(str(FEATURES))
        end = dt.datetime.fromisoformat(world.info["end"]).replace(tzinfo=dt.timezone.utc)
        ws.features.materialize(anchors=["member_profile", "job_profile"], online=True, as_of=end)
        _WORLD["ws"] = ws
    return _WORLD["ws"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return lab_workspace(tmp_path_factory)


def test_a_failed_job_records_its_error_and_wait_raises_it(ws):
    job = jobs.submit(ws, RANKER, filename="ranker.quasar", name="ranker", source_table="world/nowhere")
    with pytest.raises(jobs.JobFailedError, match="training data 'world/nowhere' not found") as err:
        job.wait(timeout=120)
    assert err.value.job_id == job.id and err.value.error_type == "DataNotFoundError"
    assert job.state == "failed"
    error = json.loads((job.path / "error.json").read_text())
    assert "Traceback" in error["traceback"]
    assert not list(job.path.glob(".*.tmp"))  # atomic writes leave no temporary file behind
    assert [e["event"] for e in job.events()] == ["data"]


def test_interrupting_the_wait_detaches_and_the_job_runs_on_until_killed(ws):
    job = jobs.submit(ws, RANKER, filename="ranker.quasar", name="ranker", spark_master="local[2]")

    def interrupt(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.wait(callback=interrupt, timeout=120)
    status = job.status()
    assert status["state"] == "running" and jobs._pid_alive(status["pid"])
    job.kill()  # SIGTERM to its process group (the Spark JVM included); it records itself as failed
    seen = []
    with pytest.raises(jobs.JobFailedError, match="SystemExit: terminated"):
        job.wait(callback=seen.append, timeout=120)
    assert seen and seen[0]["event"] == "data"  # re-attaching replays the events from the start
    assert job.state == "failed"


def test_wait_times_out_without_stopping_the_job(ws):
    job = jobs.submit(ws, RANKER, filename="ranker.quasar", source_table="world/nowhere")
    with pytest.raises(TimeoutError, match=job.id):
        job.wait(timeout=0)
    with pytest.raises(jobs.JobFailedError):
        job.wait(timeout=120)


def test_jobs_are_listed_newest_first_and_found_by_prefix(ws):
    listed = jobs.list_jobs(ws)
    assert listed and [j.id for j in listed] == sorted((j.id for j in listed), reverse=True)
    newest = listed[0]
    assert jobs.open_job(ws, newest.id).path == newest.path
    assert newest.summary()["state"] == "failed"
    with pytest.raises(jobs.JobError, match="'nope' is not a job .* Recent jobs: "):
        jobs.open_job(ws, "nope")


def test_a_job_whose_process_died_is_lost(ws):
    path = jobs.jobs_dir(ws) / "19990101-000000-dead"
    path.mkdir(parents=True)
    (path / "spec.json").write_text(json.dumps({"id": path.name, "name": "x"}))
    (path / "status.json").write_text(json.dumps({"state": "running", "pid": 2 ** 22 + 17}))
    job = jobs.open_job(ws, path.name)
    assert job.state == "lost"
    with pytest.raises(jobs.JobFailedError, match="ended without a result"):
        job.result()


def test_the_job_module_runs_as_a_command():
    assert jobs.main(["bogus"]) == 2
