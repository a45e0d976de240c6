"""SIGKILL a deployment at every step and at random moments: the alias always serves one complete version.

A long-lived worker process imports the library once and, per trial, forks a child that runs
``Deployer.deploy``; the child is killed either by itself at a named checkpoint
(``PROML_DEPLOY_CRASH_AT``) or by the worker after a random delay. After each kill the test checks what
serving would see and then deploys again in-process, which must succeed and clean up.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from proml_lab.deploy.deployer import CHECKPOINTS, CRASH_ENV, Deployer, coefficient_key, resolve
from proml_lab.deploy.forward_index import ForwardIndex
from proml_lab.deploy.registry import ModelRegistry

NAME = "kill_test_model"
RANDOM_TRIALS = 10

WORKER = r"""
import json, os, signal, sys, time, traceback
from proml_lab.deploy.deployer import Deployer, CRASH_ENV  # imported once; every child is a fork
from proml_lab.deploy.registry import ModelRegistry
from proml_lab.workspace import Workspace
import mlflow, pyarrow.dataset, proml_lab.features.store, proml_lab.features.online.sqlite  # noqa: F401

root, name = sys.argv[1], sys.argv[2]
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if job.get("crash_at"):
                os.environ[CRASH_ENV] = job["crash_at"]
            trace = []
            Deployer(Workspace.open(root)).deploy(
                name, job["version"], keep=2,
                progress=lambda step, i, n: trace.append((step, time.perf_counter() - started)))
            if job.get("trace"):
                with open(job["trace"], "w") as fh:
                    json.dump(trace, fh)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    if job.get("kill_after") is not None:
        time.sleep(job["kill_after"])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
                      "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                      "seconds": time.perf_counter() - started}), flush=True)
"""


@pytest.fixture(scope="module")
def kill_world(world):
    """Two published versions of ``kill_test_model`` with different coefficients; version 1 deployed."""
    ws, trained = world
    registry = ModelRegistry(ws)
    if not any(m["name"] == NAME for m in registry.models()):
        registry.publish(trained, name=NAME)
        state = copy.deepcopy(trained.state)
        for part in ("per_member", "per_document"):  # a different model: a mixed version would show
            state["glmix"][part]["coefficients"] = np.asarray(state["glmix"][part]["coefficients"]) * 2.0 + 0.5
        registry.publish(dataclasses.replace(trained, state=state, run_id=None), name=NAME)
    Deployer(ws).deploy(NAME, "1", keep=2)
    return ws


class Worker:
    def __init__(self, ws):
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(ws.root), NAME], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def deploy(self, version, *, crash_at=None, kill_after=None, trace=None):
        job = {"version": version, "crash_at": crash_at, "kill_after": kill_after, "trace": trace and str(trace)}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        result = json.loads(self.proc.stdout.readline())
        if trace is not None and result["exit"] == 0:
            result["trace"] = dict(json.loads(trace.read_text()))
        return result

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def assert_serves_one_complete_version(ws, expected=None):
    """What serving sees: the pointer resolves to a version whose index, bundle and member coefficients all agree."""
    deployment = resolve(ws, NAME)
    assert deployment is not None
    if expected is not None:
        assert deployment.version in expected, (deployment.version, expected)
    index = ForwardIndex.open(deployment.index_path)
    index.verify()
    assert index.meta["version"] == deployment.version
    bundle = ModelRegistry(ws).load(NAME, deployment.version)
    assert bundle.path == deployment.bundle_path and bundle.version == deployment.version
    store = ws.features.online_store
    for table in bundle.coefficient_tables():
        if table.entity == "member":
            matrix, found = store.read_coefficients(coefficient_key(NAME, table.node), deployment.version, "member",
                                                    table.ids)
            assert found.all() and len(found) == len(table.ids)
            np.testing.assert_array_equal(matrix, table.coefficients)
        else:
            ids, matrix = index.coefficients(table.node, table.part)
            positions, found = index.rows(table.ids)
            assert found.all() and len(ids) == len(table.ids)
            np.testing.assert_array_equal(index.column(f"coef:{table.node}:{table.part}")[positions],
                                          table.coefficients)
    Deployer(ws).check(NAME, "champion")
    return deployment


def assert_clean(ws):
    """After a successful deploy: no staging leftovers; disk and online store hold only what entries use."""
    status = Deployer(ws).status(NAME)
    folder = ws.root / "deployments" / NAME / "generations"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert all(g["used_by"] for g in status["generations"]), status["generations"]
    groups = {g for _, g in ws.features.online_store.groups() if f"/{NAME}@" in g}
    assert {g.rsplit("/", 1)[1] for g in groups} == set(status["versions"])


def test_sigkill_at_every_step_and_at_random_moments_never_mixes_versions(kill_world, tmp_path):
    ws = kill_world
    started = time.perf_counter()
    rng = random.Random(7)
    worker = Worker(ws)
    try:
        serving = assert_serves_one_complete_version(ws).version
        # One uninterrupted run in a child: when (after the fork) each step ends. Random kills land between
        # the bundle being loaded and the end (before that, a child only opens the workspace and MLflow).
        timing = worker.deploy("2" if serving == "1" else "1", trace=tmp_path / "trace.json")
        assert not timing["killed"] and timing["exit"] == 0 and list(timing["trace"]) == list(CHECKPOINTS)
        lo, hi = timing["trace"]["bundle_loaded"], timing["trace"]["collected"]
        trials = [("step", step) for step in CHECKPOINTS]
        trials += [("delay", rng.uniform(lo, hi + 0.1 * (hi - lo))) for _ in range(RANDOM_TRIALS)]
        outcomes = []
        for kind, how in trials:
            before = assert_serves_one_complete_version(ws).version
            target = "2" if before == "1" else "1"
            if kind == "step":
                result = worker.deploy(target, crash_at=how)
                assert result["killed"], (how, result)
                after = assert_serves_one_complete_version(ws, {before, target})
                switched = CHECKPOINTS.index(how) >= CHECKPOINTS.index("pointer_switched")
                assert after.version == (target if switched else before), how
            else:
                result = worker.deploy(target, kill_after=how)
                after = assert_serves_one_complete_version(ws, {before, target})
                for _ in range(4):  # a faster machine than the timing run finished first: kill sooner
                    if result["killed"]:
                        break
                    outcomes.append((kind, how, False, after.version == target))
                    before, how = after.version, how / 2
                    target = "2" if before == "1" else "1"
                    result = worker.deploy(target, kill_after=how)
                    after = assert_serves_one_complete_version(ws, {before, target})
            outcomes.append((kind, how, result["killed"], after.version == target))
            # The next deployment (in this process) succeeds and cleans up after the crash.
            nxt = "2" if after.version == "1" else "1"
            assert Deployer(ws).deploy(NAME, nxt, keep=2).version == nxt
            assert_serves_one_complete_version(ws, {nxt})
            assert_clean(ws)
        assert len(outcomes) >= 20
        assert sum(killed for kind, _, killed, _ in outcomes if kind == "delay") >= RANDOM_TRIALS // 2
        assert sum(killed for _, _, killed, _ in outcomes) >= len(CHECKPOINTS) + RANDOM_TRIALS // 2
    finally:
        worker.close()
    # ~20-50 s on 2 busy cores (each child spends ~1.4 s opening MLflow); a guard, not a benchmark.
    assert time.perf_counter() - started < 180


def test_crash_env_hook_names_real_checkpoints():
    assert CRASH_ENV == "PROML_DEPLOY_CRASH_AT"
    assert CHECKPOINTS.index("pointer_staged") < CHECKPOINTS.index("pointer_switched") < CHECKPOINTS.index("collected")
    assert len(set(CHECKPOINTS)) == len(CHECKPOINTS)
    assert signal.SIGKILL  # the hook kills with SIGKILL: nothing (no finally, no atexit) runs after it
