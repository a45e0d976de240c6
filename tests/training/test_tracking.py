"""MLflow tracking in the workspace: runs, metric histories, and a new store created by many processes."""

from __future__ import annotations

import subprocess
import sys

from proml_lab.training.tracking import Tracker, metric_key

RUN = """
from proml_lab.workspace import Workspace
from proml_lab.training.tracking import Tracker
ws = Workspace.init({root!r})
with Tracker(ws).start_run("parallel-{i}") as run:
    run.log_metrics({{"auc": 0.5 + {i} / 10}}, step=1)
"""


def test_processes_starting_at_once_share_one_new_tracking_store(tmp_path):
    """A new SQLite store is migrated once: without the workspace lock, concurrent migrations break it."""
    root = tmp_path / "ws"
    procs = [subprocess.Popen([sys.executable, "-c", RUN.format(root=str(root), i=i)], stderr=subprocess.PIPE,
                              text=True) for i in range(3)]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    from proml_lab.workspace import Workspace

    runs = Tracker(Workspace.open(root)).runs()
    assert sorted(runs["name"]) == ["parallel-0", "parallel-1", "parallel-2"]
    assert (runs["status"] == "FINISHED").all()


def test_a_failing_block_marks_the_run_failed_and_keys_are_made_safe(workspace):
    tracker = Tracker(workspace)
    try:
        with tracker.start_run("boom") as run:
            run.log_metrics({"ndcg@10": 0.4, "bad": float("nan"), "flag": True})
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    row = tracker.runs().iloc[0]
    assert row["status"] == "FAILED" and row["metrics.ndcg_at_10"] == 0.4
    assert "metrics.bad" not in row.index and "metrics.flag" not in row.index
    assert metric_key("precision@5 (x)") == "precision_at_5 _x_"
