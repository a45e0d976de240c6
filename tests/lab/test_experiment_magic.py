"""``%experiment`` in a real IPython shell, over logged exposures and outcomes: the list, a report with its
decision, SRM line and lift chart, ramp / start / stop, and errors that fail the cell."""

from __future__ import annotations

import pytest

from proml_lab.experiments import ExperimentStore
from proml_lab.experiments.report import experiment_report
from proml_lab.lab.magics import ExperimentView, ProMLMagicError
from proml_lab.workspace import Workspace
from tests.ui.world import synthetic_experiment
from tests.shell import magic_shell, run_cell


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace.init(tmp_path_factory.mktemp("experiment-magic") / "ws")
    synthetic_experiment(ws, "lift-ab", lift=0.30)  # +30% clicks in the treatment
    synthetic_experiment(ws, "biased-ab", lift=0.0, lost=0.15, seed=1)  # 15% of treatment logs lost
    ExperimentStore(ws).create("idea-ab", "ab_ranker", ["control=champion", "treatment=newcomer"], share=10,
                               layer="ideas")
    return ws


@pytest.fixture(scope="module")
def ip(ws):
    with magic_shell(ws) as shell:
        yield shell


run = run_cell


def failure(ip, cell) -> ProMLMagicError:
    """Run a cell that must fail (as a papermill run would) and return its error."""
    result, _ = run(ip, cell)
    assert not result.success
    assert isinstance(result.error_in_exec, ProMLMagicError)
    return result.error_in_exec


def test_lists_the_experiments_with_status_traffic_and_arms(ip):
    result, _ = run(ip, "%experiment")
    assert result.success
    table = result.result.set_index("name")
    assert list(table.index) == ["lift-ab", "biased-ab", "idea-ab"]  # by creation time
    assert table.loc["lift-ab", "status"] == "running" and table.loc["idea-ab", "status"] == "draft"
    assert table.loc["lift-ab", "traffic"] == 100 and table.loc["idea-ab", "share"] == 10
    assert table.loc["idea-ab", "arms"] == "control->champion, treatment->newcomer"
    only = run(ip, "%experiment --model nothing_here")[0].result
    assert only.empty and list(only.columns) == list(table.reset_index().columns)


def test_report_shows_the_decision_srm_table_and_lift_chart(ip, ws):
    result, out = run(ip, "%experiment lift-ab")
    assert result.success, out.stdout
    view = result.result
    assert isinstance(view, ExperimentView)
    assert view.decision == "ramp up" and view.srm["flagged"] is False
    html = view._repr_html_()
    assert "Decision: ramp up" in html and "SRM ok: units control" in html
    assert "ctr" in html and "treatment" in html and "control (control)" in html
    assert "data:image/png;base64," in html  # the lift chart
    ctr = view.analysis.table.set_index(["metric", "arm"]).loc[("ctr", "treatment")]
    assert 0.2 < ctr["rel_lift"] < 0.4 and ctr["rel_low"] > 0  # the injected +30% is found
    # the magic renders the core's report: same numbers as experiment_report
    assert view.to_dict() == experiment_report(ws, "lift-ab").to_dict()
    assert "decision: ramp up" in repr(view) and "SRM ok" in repr(view)


def test_a_biased_log_is_flagged_and_held(ip):
    view = run(ip, "%experiment biased-ab")[0].result
    assert view.srm["flagged"] is True and view.decision == "hold"
    assert view.srm_line.startswith("SRM FLAGGED (p < 0.001): fix the assignment before reading results")
    assert "SRM FLAGGED (p &lt; 0.001)" in view._repr_html_()
    assert view.analysis.reasons == ["hold: sample ratio mismatch — fix assignment before reading results"]


def test_a_draft_says_it_has_no_exposures(ip):
    view = run(ip, "%experiment idea-ab")[0].result
    assert view.analysis is None and view.png is None and view.decision is None
    assert "is a draft: nobody was exposed yet" in view._repr_html_()


def test_ramp_stop_and_start_show_the_updated_definition(ip, ws):
    shown = run(ip, "%experiment lift-ab --ramp 50")[0].result
    assert shown.action == "ramped" and shown.traffic == 50
    assert "Ramped experiment <b>lift-ab</b>" in shown._repr_html_()
    assert ExperimentStore(ws).get("lift-ab").traffic == 50
    stopped = run(ip, "%experiment lift-ab --stop")[0].result
    assert stopped.status == "stopped"
    assert [r["traffic"] for r in stopped.ramp] == [100, 50, 0]
    assert "→ 50% (" in stopped._repr_html_() and "→ 0% (" in stopped._repr_html_()  # the ramp history
    # a draft whose arm's alias is not deployed cannot start: the cell fails with the core's fix
    error = failure(ip, "%experiment idea-ab --start")
    assert "proml deploy ab_ranker --version <version> --alias newcomer" in str(error)
    assert ExperimentStore(ws).get("idea-ab").status == "draft"


def test_errors_fail_the_cell_with_the_core_message(ip):
    assert "Unknown experiment 'lift-abc'. Did you mean: lift-ab" in str(failure(ip, "%experiment lift-abc"))
    assert str(failure(ip, "%experiment --ramp 10")) == "%experiment --ramp needs an experiment NAME."
    assert "one of --ramp, --start, --stop" in str(failure(ip, "%experiment idea-ab --start --stop"))
    assert "can ramp to at most its share" in str(failure(ip, "%experiment idea-ab --ramp 20"))
