"""The `proml` command as a user runs it: a real subprocess, real output, real exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROML = [sys.executable, "-m", "proml_lab.cli"]


def run(*args, home: Path, check=True, module=PROML):
    env = {**os.environ, "PROML_HOME": str(home), "COLUMNS": "120"}
    out = subprocess.run([*module, *args], capture_output=True, text=True, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_init_prints_where_everything_lives(tmp_path):
    out = run("init", home=tmp_path / "ws")
    assert "ProML Lab workspace" in out.stdout
    assert f"sqlite:///{tmp_path / 'ws' / 'online.db'}" in out.stdout
    assert (tmp_path / "ws" / "workspace.json").exists()


def test_demo_generates_the_world_and_summarizes_it(tmp_path):
    out = run("demo", "--size", "tiny", home=tmp_path / "ws")
    assert "Sample world" in out.stdout
    assert "impressions" in out.stdout and "20,000" in out.stdout
    assert "click-through rate" in out.stdout
    assert (tmp_path / "ws" / "lake" / "world" / "world.json").exists()


def test_worlds_generate_json_and_module_entry_point(tmp_path):
    out = run("worlds", "generate", "--size", "tiny", "--seed", "4", "--anomalies", "2", "--json", home=tmp_path / "ws")
    summary = json.loads(out.stdout)
    assert summary["rows"]["members"] == 1_000 and len(summary["anomalies"]) == 2 and summary["seed"] == 4
    again = run("summary", "--json", home=tmp_path / "ws", module=[sys.executable, "-m", "proml_lab.worlds"])
    assert json.loads(again.stdout)["rows"] == summary["rows"]


def test_user_errors_exit_1_with_one_clear_line(tmp_path):
    out = run("worlds", "generate", "--size", "medium", home=tmp_path / "ws", check=False)
    assert out.returncode == 1
    assert "error: Unknown world size 'medium'" in out.stderr
    assert "Traceback" not in out.stderr
    missing = run("worlds", "summary", home=tmp_path / "empty", check=False)
    assert missing.returncode == 1 and "proml init" in missing.stderr
