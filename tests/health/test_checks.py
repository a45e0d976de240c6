"""Authoring checks on the tiny lab world: what a modeler is told before training, publishing or serving."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from proml_lab.cli import app
from proml_lab.health import HealthError
from proml_lab.health.checks import CheckFailedError, CheckReport, authoring_checks
from proml_lab.lab import jobs
from tests.lab.test_jobs import RANKER, lab_workspace

UTC = dt.timezone.utc
# member_activity (the activity windows) is in the catalog but never materialized in the lab world
ACTIVE = RANKER.replace("INPUT MEMBER double member_seniority;",
                        "INPUT MEMBER double member_seniority;\nINPUT MEMBER double member_jobViews_7d;").replace(
    "[gap, job_remote]", "[gap, job_remote, member_jobViews_7d]")
TYPO = RANKER.replace("member_seniority", "member_senority")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return lab_workspace(tmp_path_factory)


@pytest.fixture(scope="module")
def materialized(ws) -> dt.datetime:
    """When the profile anchors were pushed online (freshness is judged against it)."""
    stamp = ws.features.catalog.describe("job_seniority")["online"]["materialized_at"]
    return dt.datetime.fromisoformat(stamp)


def by(report: CheckReport) -> dict[tuple[str, str], object]:
    return {(p.feature, p.check): p for p in report.problems}


def test_a_program_over_online_fresh_covered_features_passes(ws, materialized):
    report = authoring_checks(ws, RANKER, now=materialized + dt.timedelta(minutes=5))
    assert report.ok and report.problems == [], str(report)
    assert report.features == ["job_seniority", "job_remote", "member_seniority"]
    start, end = report.window  # the label table's time range (TRAINING CONFIG training_data)
    assert start.date() == dt.date(2026, 1, 5) and end.date() == dt.date(2026, 1, 18)
    assert report.to_frame().empty and "pass the exists, online, freshness, coverage checks" in report._repr_html_()
    assert report.raise_for_errors() is report


def test_a_missing_feature_is_an_error_with_did_you_mean_and_the_rest_is_still_checked(ws, materialized):
    report = authoring_checks(ws, TYPO, now=materialized)
    problem = by(report)[("member_senority", "exists")]
    assert problem.severity == "error" and "Did you mean: member_seniority?" in problem.message
    assert problem.fix == "use 'member_seniority'"
    assert not report.ok and report.features == ["job_seniority", "job_remote", "member_senority"]
    assert [p.feature for p in report.problems] == ["member_senority"]  # the known ones pass
    with pytest.raises(CheckFailedError, match="member_senority: not in the feature catalog") as err:
        report.raise_for_errors()
    assert isinstance(err.value, HealthError) and err.value.report is report


def test_a_feature_never_materialized_online_names_the_anchor_to_materialize(ws, materialized):
    report = authoring_checks(ws, ACTIVE, now=materialized)
    online = by(report)[("member_jobViews_7d", "online")]
    assert online.severity == "error" and "not materialized to the online store" in online.message
    assert online.fix == "run `proml features materialize --online --anchor member_activity`"
    coverage = by(report)[("member_jobViews_7d", "coverage")]  # nor offline: no table to join
    assert coverage.severity == "error" and "never materialized" in coverage.message
    assert {p.feature for p in report.errors} == {"member_jobViews_7d"}
    frame = report.to_frame()
    assert list(frame.columns) == ["feature", "check", "severity", "message", "fix"] and len(frame) == 2


def test_a_feature_past_its_freshness_sla_is_a_warning_naming_the_anchor(ws, materialized):
    report = authoring_checks(ws, RANKER, now=materialized + dt.timedelta(hours=3),
                              checks=("exists", "online", "freshness"))
    stale = {p.feature: p for p in report.problems}
    assert set(stale) == {"job_seniority", "job_remote"}  # job_profile's SLA is 1h; member_profile's 1d
    assert all(p.check == "freshness" and p.severity == "warning" for p in stale.values())
    assert "past its freshness SLA of 1h" in stale["job_seniority"].message
    assert "--anchor job_profile" in stale["job_seniority"].fix and report.ok  # the model still runs
    later = authoring_checks(ws, RANKER, now=materialized + dt.timedelta(days=3), checks=("freshness",))
    assert {p.feature for p in later.problems} == {"job_seniority", "job_remote", "member_seniority"}


def test_a_training_window_outside_the_offline_tables_is_caught(ws):
    before = authoring_checks(ws, RANKER, training_window=(dt.datetime(2015, 1, 1), dt.datetime(2016, 1, 1)),
                              checks=("coverage",))
    errors = by(before)
    assert {f for f, _ in errors} == {"job_seniority", "job_remote", "member_seniority"} and not before.ok
    assert "starts at 2025-11-06 00:00, after the training window" in errors[("job_seniority", "coverage")].message
    assert errors[("job_seniority", "coverage")].fix.startswith("run `proml features materialize --anchor job_profile")
    partial = authoring_checks(ws, RANKER, training_window=(dt.datetime(2025, 10, 1, tzinfo=UTC),
                                                            dt.datetime(2026, 1, 10, tzinfo=UTC)),
                               checks=("coverage",))
    assert partial.ok and {p.feature for p in partial.warnings} == {"job_seniority", "job_remote"}
    assert "labels before it get null" in partial.warnings[0].message


def test_the_checks_take_an_ir_a_feature_list_and_reject_unknown_checks(ws, materialized):
    from proml_lab.quasar import compile as compile_program

    ir = compile_program(RANKER, catalog=ws.features.catalog)
    assert authoring_checks(ws, ir, now=materialized).ok
    listed = authoring_checks(ws, ["job_seniority", "job_senority"], now=materialized)
    assert [p.feature for p in listed.errors] == ["job_senority"] and listed.window is None
    with pytest.raises(HealthError, match="The 'checks' parameter of authoring_checks must be a subset"):
        authoring_checks(ws, ir, checks=("spelling",))


def test_proml_health_check_prints_the_problems_and_fails_on_errors(ws, tmp_path):
    home = ["--home", str(ws.root)]
    good, bad = tmp_path / "good.quasar", tmp_path / "bad.quasar"
    good.write_text(RANKER)
    bad.write_text(ACTIVE)
    runner = CliRunner()
    ok = runner.invoke(app, ["health", "check", str(good), "--json", *home])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True
    failed = runner.invoke(app, ["health", "check", str(bad), *home])
    assert failed.exit_code == 1
    assert "member_jobViews_7d" in failed.stdout and "--anchor member_activity" in failed.stdout


def test_a_training_job_over_a_missing_feature_fails_before_joining_with_the_fix(ws):
    job = jobs.submit(ws, TYPO, filename="typo.quasar", name="typo")
    with pytest.raises(jobs.JobFailedError, match="Did you mean: member_seniority") as err:
        job.wait(timeout=120)
    assert err.value.error_type == "CheckFailedError"
    events = job.events()
    assert [e["event"] for e in events] == ["checks"] and events[0]["ok"] is False


def test_publishing_a_model_over_features_not_online_is_refused_unless_forced(ws, tmp_path):
    import numpy as np
    import pandas as pd
    from tests.shell import ipython_shell
    from IPython.utils.capture import capture_output

    from proml_lab.lab import unload_ipython_extension
    from proml_lab.lab.magics import ProMLMagicError
    from proml_lab.training.connect import train
    from tests.health.test_consistency import copy_of

    private = copy_of(ws, tmp_path / "ws")  # its own registry: the shared lab world stays unpublished
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"member_id": rng.integers(0, 20, n), "job_id": rng.integers(0, 10, n),
                          "job_seniority": rng.integers(1, 7, n).astype(float), "job_remote": rng.integers(0, 2, n),
                          "member_seniority": rng.integers(1, 7, n).astype(float),
                          "member_jobViews_7d": rng.poisson(3, n).astype(float)})
    frame["clicked"] = (rng.random(n) < 0.3).astype(float)
    model = train(ACTIVE, frame, label="clicked", catalog=private.features.catalog)
    ip = ipython_shell()
    ip.run_line_magic("load_ext", "proml_lab")
    try:
        ip.run_line_magic("config", f'ProMLMagics.workspace = "{private.root}"')
        ip.run_line_magic("config", 'ProMLMagics.widgets = "off"')
        ip.user_ns["active"] = model
        with capture_output() as out:
            refused = ip.run_cell("%publish active --name health_active")
        assert not refused.success and isinstance(refused.error_in_exec, ProMLMagicError)
        message = str(refused.error_in_exec)
        assert "member_jobViews_7d" in message and "--anchor member_activity" in message and "--force" in message
        assert "member_jobViews_7d" in out.outputs[0].data["text/plain"]  # the report is shown
        with capture_output():
            forced = ip.run_cell("%publish active --name health_active --force")
        assert forced.success and forced.result.version == "1"
        run_id = forced.result.run_id
    finally:
        unload_ipython_extension(ip)
        ip.extension_manager.loaded.discard("proml_lab")
    runner = CliRunner()
    cli = runner.invoke(app, ["publish", run_id, "--name", "health_active", "--home", str(private.root)])
    assert cli.exit_code == 1 and "not published" in cli.output and "member_jobViews_7d" in cli.output
    forced_cli = runner.invoke(app, ["publish", run_id, "--name", "health_active", "--force", "--json",
                                     "--home", str(private.root)])
    assert forced_cli.exit_code == 0 and json.loads(forced_cli.stdout)["version"] == "2"


def test_proml_train_refuses_a_program_over_a_missing_feature_before_joining(ws, tmp_path):
    program = tmp_path / "typo.quasar"
    program.write_text(TYPO)
    out = CliRunner().invoke(app, ["train", str(program), "--home", str(ws.root)])
    assert isinstance(out.exception, CheckFailedError) and "Did you mean: member_seniority?" in str(out.exception)
    assert "member_senority (exists)" in out.stderr
