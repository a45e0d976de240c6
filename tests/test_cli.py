"""The `proml` command as a user runs it: a real subprocess, real output, real exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROML = [sys.executable, "-m", "proml_lab.cli"]


def run(*args, home: Path, check=True, module=PROML):
    env = {**os.environ, "PROML_HOME": str(home), "COLUMNS": "400"}
    out = subprocess.run([*module, *args], capture_output=True, text=True, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_init_prints_where_everything_lives(tmp_path):
    out = run("init", home=tmp_path / "ws")
    assert "ProML Lab workspace" in out.stdout
    assert f"sqlite:///{tmp_path / 'ws' / 'online.db'}" in out.stdout
    assert (tmp_path / "ws" / "workspace.json").exists()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`proml demo --size tiny`, run once; later tests use its workspace."""
    home = tmp_path_factory.mktemp("demo") / "ws"
    return home, run("demo", "--size", "tiny", home=home)


def test_demo_generates_the_world_and_summarizes_it(demo):
    home, out = demo
    assert "Sample world" in out.stdout
    assert "impressions" in out.stdout and "20,000" in out.stdout
    assert "click-through rate" in out.stdout
    assert (home / "lake" / "world" / "world.json").exists()


def test_demo_applies_materializes_and_serves_the_world_features(demo):
    home, out = demo
    assert "Feature Marketplace" in out.stdout
    assert "created 5 anchors, 2 entities, 40 features, 4 sources" in out.stdout
    assert "online read, members 1-3" in out.stdout
    assert (home / "lake" / "features" / "member_activity").is_dir()


def test_demo_checks_and_draws_the_world_program(demo):
    home, out = demo
    assert "checked job_recommendations.quasar: 27 nodes, 11 marketplace features, trainable: glmix" in out.stdout
    assert 'data-node="glmix"' in (home / "programs" / "job_recommendations.svg").read_text()


def test_features_search_lists_title_features_first(demo):
    home, _ = demo
    hits = json.loads(run("features", "search", "title", "--json", home=home).stdout)
    assert len(hits) >= 6
    assert all("title" in h["name"].lower() for h in hits[:6])
    jobs = json.loads(run("features", "search", "title", "--entity", "job", "--json", home=home).stdout)
    assert jobs and {h["entity"] for h in jobs} == {"job"}


def test_features_describe_shows_stats_and_freshness(demo):
    home, _ = demo
    info = json.loads(run("features", "describe", "member_jobViews_7d", "--json", home=home).stdout)
    assert info["definition"]["function"] == "sum" and info["definition"]["window"] == "7d"
    assert info["stats"] and info["stats"][0]["stats"]["count"] > 0
    assert info["online"]["group"].startswith("member_activity@")
    table = run("features", "describe", "member_jobViews_7d", home=home).stdout
    assert "member_jobViews_7d" in table


def test_features_errors_name_what_is_wrong(demo, tmp_path):
    home, _ = demo
    unknown = run("features", "describe", "member_jobViews_7day", home=home, check=False)
    assert unknown.returncode == 1 and "Did you mean: member_jobViews_7d" in unknown.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "anchors:\n  - name: broken\n    entity: member\n    source: world_members\n    owner: me\n"
        "    aggregations:\n      - {name: member_x_7d, expr: seniority, function: sum, window: 7 days}\n"
    )
    out = run("features", "apply", str(bad), home=home, check=False)
    assert out.returncode == 1
    assert "bad.yaml" in out.stderr and "aggregations[member_x_7d].window" in out.stderr


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


PROGRAM = """// Rank jobs by how close their seniority is to the member's.
INPUT MEMBER double member_seniority;
INPUT DOCUMENT double job_seniority;
double gap = job_seniority - member_seniority;
ranked = ORDER DOCUMENTS BY gap WITH ASC;
RETURN ranked;
"""


def test_quasar_check_and_ir_against_the_workspace_catalog(demo, tmp_path):
    home, _ = demo
    program = tmp_path / "seniority.quasar"
    program.write_text(PROGRAM)
    out = run("quasar", "check", str(program), home=home)
    assert "ok — 5 nodes, 2 features, 0 trainable" in out.stdout
    ir = json.loads(run("quasar", "ir", str(program), home=home).stdout)
    scopes = {n["id"]: n["scope"] for n in ir["nodes"]}
    assert scopes["member_seniority"] == "member" and scopes["gap"] == "document"
    svg = run("quasar", "render", str(program), "-o", str(tmp_path / "dag.svg"), "--engine", "python", home=home)
    assert "wrote" in svg.stdout and 'data-node="gap"' in (tmp_path / "dag.svg").read_text()
    typo = tmp_path / "typo.quasar"
    typo.write_text(PROGRAM.replace("double job_seniority;", "double job_senority;"))
    bad = run("quasar", "check", str(typo), home=home, check=False)
    assert bad.returncode == 1
    assert f"{typo}:3:23: name error: unknown feature 'job_senority'; did you mean 'job_seniority'?" in bad.stderr


def _row(stdout: str, first_cell: str) -> list[str]:
    line = next(l for l in stdout.splitlines() if l.strip("│┃ ").startswith(first_cell))
    return [c.strip() for c in line.strip().strip("│┃").replace("┃", "│").split("│") if c.strip()]


def test_demo_trains_the_program_and_beats_the_global_only_baseline(demo):
    home, out = demo
    assert "Training: GLMix by coordinate descent" in out.stdout
    header = _row(out.stdout, "Metric")
    assert header == ["Metric", "Baseline", "NewModel", "Lift"]
    metric, baseline, new, lift = _row(out.stdout, "auc")
    assert float(new) > float(baseline) + 0.02  # per-member and per-job effects pay off
    assert lift.startswith("+") and lift.endswith("%")
    assert "per-entity coefficient tables: per_member:" in out.stdout


def test_demo_logs_both_runs_to_mlflow(demo):
    from proml_lab.training.tracking import Tracker
    from proml_lab.workspace import Workspace

    home, _ = demo
    runs = Tracker(Workspace.open(home)).runs()
    trained = runs[runs["name"].isin(["world_job_recommendations", "world_job_recommendations_global"])]
    assert set(trained["name"]) == {"world_job_recommendations", "world_job_recommendations_global"}
    assert (trained["status"] == "FINISHED").all()
    assert (trained["metrics.auc"] > 0.6).all()
    assert trained["params.glmix.op"].eq("GLMix").all()


def test_demo_publishes_deploys_and_ranks_over_http(demo):
    from proml_lab.deploy.deployer import resolve
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.workspace import Workspace

    home, out = demo
    assert "5. Publish, deploy and serve" in out.stdout
    assert "published world_job_recommendations version 1 (alias champion)" in out.stdout
    for member in (1, 2, 3):
        assert f"member {member}: top 5 jobs (version 1, 200 candidates" in out.stdout
    assert _row(out.stdout, "1")[0] == "1" and 0 < float(_row(out.stdout, "1")[2]) < 1  # rank 1, a probability
    ws = Workspace.open(home)
    assert ModelRegistry(ws).resolve("world_job_recommendations", "champion").version == "1"
    assert resolve(ws, "world_job_recommendations").version == "1"


def test_publish_deploy_and_rollback_commands(demo):
    home, out = demo
    runs = json.loads(run("models", "world_job_recommendations", "--json", home=home).stdout)
    assert "1" in json.dumps(runs)
    deployed = json.loads(run("deploy", "world_job_recommendations", "--version", "1", "--alias", "arm-b",
                              "--json", home=home).stdout)
    assert deployed["version"] == "1" and deployed["alias"] == "arm-b"
    status = json.loads(run("deployments", "world_job_recommendations", "--json", home=home).stdout)
    assert {"champion", "arm-b"} <= set(json.dumps(status).split('"'))
    failed = run("rollback", "world_job_recommendations", "--alias", "arm-b", home=home, check=False)
    assert failed.returncode == 1 and "roll back" in failed.stderr.lower()


def test_demo_runs_an_ab_test_of_a_challenger_and_prints_its_analysis(demo):
    home, out = demo
    assert "6. A/B test: the champion against a challenger" in out.stdout
    assert "simulated" in out.stdout and "members in experiment demo_global_challenger" in out.stdout
    header = _row(out.stdout, "metric")
    assert header[:4] == ["metric", "arm", "members", "mean"]
    assert _row(out.stdout, "ctr")[1] == "control" and "decision: " in out.stdout
    assert "SRM ok: units control" in out.stdout
    report = json.loads(run("experiment", "analyze", "demo_global_challenger", "--json", home=home).stdout)
    assert report["units"] == 1000 and report["decision"] in ("ramp up", "hold", "roll back")
    assert {a["name"]: a["alias"] for a in report["arms"]} == {"control": "champion", "treatment": "challenger"}
    assert report["srm"]["flagged"] is False and report["experiment"]["status"] == "stopped"


def test_demo_monitors_the_drift_alerts_and_retrains_a_challenger(demo):
    from proml_lab.deploy.registry import ModelRegistry
    from proml_lab.health.alerts import AnomalyStore
    from proml_lab.health.retrain import retrain_history
    from proml_lab.workspace import Workspace

    home, out = demo
    assert "7. Health: drift, an alert, automatic retraining, a new challenger" in out.stdout
    stage = out.stdout.split("7. Health:", 1)[1]
    assert "published as world_job_recommendations_health version 1 (alias champion) and deployed" in stage
    assert "drawn with the drifted ground truth" in stage
    assert _row(stage, "score") == ["score", "score", "psi", _row(stage, "score")[3], "alert"]
    assert _row(stage, "calibration")[-1] == "alert"  # the stale model over-predicts the drifted clicks
    assert "retrain — triggered: " in stage
    assert "retrain via papermill (retrain.ipynb" in stage and ": published" in stage
    compared = stage.split("retrain via papermill", 1)[1]
    metric, champion, retrained, change = _row(compared, "auc")  # on the same post-drift validation rows
    assert float(retrained) > float(champion) and change.startswith("+")

    ws = Workspace.open(home)
    registry = ModelRegistry(ws)
    assert registry.resolve("world_job_recommendations_health", "champion").version == "1"
    assert registry.resolve("world_job_recommendations_health", "challenger").version == "2"
    assert registry.resolve("world_job_recommendations", "champion").version == "1"  # stages 5-6 untouched
    history = retrain_history(ws, "world_job_recommendations_health")
    assert len(history) == 1
    attempt = history.iloc[0]
    assert attempt["status"] == "published" and attempt["version"] == "2" and attempt["champion_version"] == "1"
    assert attempt["improvement"] > 0 and attempt["reason"].startswith("triggered: ")
    assert Path(attempt["output"]).is_file()  # the executed papermill notebook
    subjects = set(AnomalyStore(ws).list_alerts(kind="drift")["subject"])
    assert "world_job_recommendations_health.champion.score.psi" in subjects


def test_train_command_tunes_trains_and_reports_json(demo):
    home, _ = demo
    program = Path(__file__).resolve().parent.parent / "proml_lab" / "worlds" / "programs" / \
        "job_recommendations.quasar"
    out = run("train", str(program), "--tune", "4", "--json", home=home)
    result = json.loads(out.stdout)
    assert result["program"] == "world_job_recommendations"
    assert result["metrics"]["auc"] > 0.7 and 0 < result["metrics"]["ndcg@10"] <= 1
    assert result["tuning"]["trials"] == 4
    assert set(result["tuning"]["best_params"]) == {"glmix.l2", "glmix.per_member_l2", "glmix.per_document_l2"}
    assert result["train_rows"] + result["validation_rows"] == 20_000
    assert (home / "studies.db").exists()


def test_train_command_says_what_is_missing(demo, tmp_path):
    home, _ = demo
    program = tmp_path / "nolabel.quasar"
    program.write_text(PROGRAM)
    bad = run("train", str(program), home=home, check=False)
    assert bad.returncode == 1
    assert "no training data: pass --data" in bad.stderr


def test_eval_movielens_beats_the_published_gdmix_table():
    out = run("eval", "movielens", "--json", home=Path("/nonexistent-unused"))
    result = json.loads(out.stdout)
    auc = result["auc"]
    assert auc["global"] < auc["per_user"] < auc["per_user_per_movie"]
    assert auc["per_user_per_movie"] > result["gdmix_published"]["deep"]["per_user_per_movie"]  # 0.7680
    assert result["seed"] == 0 and result["rows"] == {"train": 80_000, "test": 20_000}
