"""The magics in a real IPython shell, on the tiny world: what a notebook user sees and what fails."""

from __future__ import annotations

import _thread
import os
import threading

import nbformat
import pytest
from IPython.core.completer import provisionalcompleter

from proml_lab.lab import jobs
from proml_lab.lab.magics import ProMLMagicError, QuasarModel
from proml_lab.quasar.errors import QuasarSyntaxError
from proml_lab.settings import get_settings
from proml_lab.workspace import Workspace
from tests.lab.test_jobs import BASELINE, RANKER, lab_workspace
from tests.shell import magic_shell, run_cell

BAD = "MODEL broken;\nINPUT DOCUMENT double job_seniority\nRETURN DOCUMENTS;\n"
NEEDS_ONLINE = """MODEL needs_online;
INPUT MEMBER double member_jobViews_7d;
INPUT DOCUMENT double job_seniority;
double s = member_jobViews_7d + job_seniority;
ranked = ORDER DOCUMENTS BY s WITH DESC;
RETURN ranked;
"""


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return lab_workspace(tmp_path_factory)


@pytest.fixture(scope="module")
def ip(ws):
    with magic_shell(ws) as shell:
        yield shell


run = run_cell


# -- %%quasar ---------------------------------------------------------------------------------------


def test_quasar_binds_the_model_and_shows_its_dag_and_features(ip):
    result, out = run(ip, "%%quasar ranker\n" + RANKER)
    assert result.success, out.stdout
    model = ip.user_ns["ranker"]
    assert isinstance(model, QuasarModel) and result.result is model
    assert model.source == RANKER and model.ir.name == "lab_ranker" and model.filename == "<ranker>"
    html = model._repr_html_()
    assert 'src="data:image/svg+xml;base64,' in html
    table = model.features.set_index("Feature")
    assert list(table.index) == ["job_seniority", "job_remote", "member_seniority"]
    assert table.loc["member_seniority", "Scope"] == "member" and table.loc["job_remote", "Entity"] == "job"
    assert set(table["Online"]) == {"yes"} and set(table["Freshness"]) <= {"fresh", "stale"}


def test_a_quasar_error_shows_the_caret_message_without_a_traceback_and_fails_the_cell(ip):
    result, out = run(ip, "%%quasar broken\n" + BAD)
    assert not result.success
    assert isinstance(result.error_in_exec, ProMLMagicError)
    assert isinstance(result.error_in_exec.error, QuasarSyntaxError)
    assert "<broken>:2:36: syntax error: missing ';' at end of statement" in out.stdout
    assert "    INPUT DOCUMENT double job_seniority\n" + " " * 39 + "^" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr and "File " not in out.stdout
    assert "broken" not in ip.user_ns


def test_quasar_does_not_expand_variables(ip):
    ip.user_ns["name"] = "expanded"
    result, out = run(ip, "%%quasar $name\n" + RANKER)
    assert not result.success and "Got '$name' instead" in out.stdout
    assert "expanded" not in ip.user_ns


def test_check_online_names_the_missing_features_and_the_fix(ip):
    result, out = run(ip, "%%quasar needs_online --check-online\n" + NEEDS_ONLINE)
    assert not result.success
    message = str(result.error_in_exec)
    assert "member_jobViews_7d" in message and "job_seniority" not in message
    assert "proml features materialize --online" in message
    assert out.outputs and "member_jobViews_7d" in out.outputs[0].data["text/html"]  # the table still shows
    ok, _ = run(ip, "%%quasar ranker --check-online\n" + RANKER)
    assert ok.success


# -- %features, %feature, completion ------------------------------------------------------------------


def test_features_returns_a_dataframe_of_hits_without_widgets(ip):
    result, _ = run(ip, "%features title --entity job")
    hits = result.result
    assert len(hits) >= 3 and set(hits["entity"]) == {"job"}
    assert all("title" in name.lower() for name in hits["name"][:3])


def test_features_returns_the_marketplace_browser_with_widgets(ip):
    ip.run_line_magic("config", 'ProMLMagics.widgets = "on"')
    try:
        result, _ = run(ip, "%features seniority")
    finally:
        ip.run_line_magic("config", 'ProMLMagics.widgets = "off"')
    browser = result.result
    assert {"job_seniority", "member_seniority"} <= set(browser.results.options)


def test_feature_shows_definition_lineage_and_a_stats_history_plot(ip):
    result, _ = run(ip, "%feature job_seniority")
    view = result.result
    html = view._repr_html_()
    assert "Seniority level the job asks for" in html and "Lineage: source <code>world_jobs</code>" in html
    assert 'src="data:image/png;base64,' in html and view.png.startswith(b"\x89PNG")
    assert view.info["stats"][0]["stats"]["count"] > 0
    wrong, out = run(ip, "%feature job_senority")
    assert not wrong.success and "Did you mean: job_seniority" in out.stdout and "Traceback" not in out.stdout


def test_tab_completes_feature_and_entity_names(ip):
    with provisionalcompleter():
        names = [c.text for c in ip.Completer.completions("%feature job_sen", 16)]
        search = [c.text for c in ip.Completer.completions("%features member_sen", 20)]
        entities = [c.text for c in ip.Completer.completions("%features --entity me", 21)]
    assert names == ["job_seniority"] and search == ["member_seniority"] and entities == ["member"]


def test_options_are_set_with_config(ip, ws, monkeypatch, tmp_path):
    monkeypatch.setenv("PROML_SPARK_MASTER", "local[2]")  # restored after the test
    ip.run_line_magic("config", 'ProMLMagics.spark_master = "local[3]"')
    assert os.environ["PROML_SPARK_MASTER"] == "local[3]" and get_settings().spark_master == "local[3]"
    other = Workspace.init(tmp_path / "other")
    ip.run_line_magic("config", f'ProMLMagics.workspace = "{other.root}"')
    try:
        empty, _ = run(ip, "%features title")
        assert empty.result.empty
    finally:
        ip.run_line_magic("config", f'ProMLMagics.workspace = "{ws.root}"')
        ip.run_line_magic("config", 'ProMLMagics.spark_master = ""')


def test_a_profile_config_reaches_the_magics(ip, ws):
    from proml_lab.lab import load_ipython_extension

    ip.config.ProMLMagics.workspace = str(ws.root)  # what c.ProMLMagics.workspace = ... in a profile does
    ip.config.ProMLMagics.widgets = "off"
    try:
        load_ipython_extension(ip)  # what c.InteractiveShellApp.extensions = ["proml_lab"] does
        magics = ip.magics_manager.registry["ProMLMagics"]
        assert magics.workspace == str(ws.root) and magics.widgets == "off"
        assert sum(isinstance(c, type(magics)) for c in ip.configurables) == 1  # loading twice is harmless
    finally:
        del ip.config["ProMLMagics"]


# -- %train, %job, %jobs, %compare -----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(ip):
    """Two jobs run side by side: the baseline waited on, the ranker detached then re-attached."""
    assert run(ip, "%%quasar baseline\n" + BASELINE)[0].success
    assert run(ip, "%%quasar ranker\n" + RANKER)[0].success
    started, _ = run(ip, "%train ranker --no-wait")
    ranker_job = started.result
    threading.Timer(1.0, _thread.interrupt_main).start()  # the user interrupts the kernel
    detached, detached_out = run(ip, f"%job {ranker_job.id}")
    state_after_detach = ranker_job.state
    baseline, baseline_out = run(ip, "%train baseline")
    reattached, _ = run(ip, f"%job {ranker_job.id}")
    again, again_out = run(ip, f"%job {ranker_job.id}")
    return {"job": ranker_job, "detached": (detached, detached_out), "state": state_after_detach,
            "baseline": (baseline, baseline_out), "reattached": reattached, "again": (again, again_out)}


def test_train_runs_a_tracked_job_to_completion(ip, trained):
    result, out = trained["baseline"]
    assert result.success, out.stdout
    done = result.result
    assert isinstance(done, jobs.JobResult) and done.program == "lab_baseline"
    assert 0.5 < done.metrics["auc"] <= 1.0 and done.run_id
    assert "re-attach with %job " + done.job_id in out.stdout
    assert "100%" in out.stderr  # the progress bar reached its end
    assert ip.user_ns["baseline"].result is done
    assert done.model().metrics == done.metrics
    assert f"Job {done.job_id}" in done._repr_html_() and done.run_id in done._repr_html_()


def test_interrupting_the_wait_detaches_and_leaves_the_job_running(trained):
    result, out = trained["detached"]
    job = trained["job"]
    assert result.success and result.result is None
    assert f"Detached from job {job.id}; it keeps running" in out.stdout and f"%job {job.id}" in out.stdout
    assert trained["state"] in ("queued", "running")


def test_job_reattaches_until_done_and_to_a_finished_job(ip, trained):
    job = trained["job"]
    first = trained["reattached"].result
    again, out = trained["again"]
    assert isinstance(first, jobs.JobResult) and first.program == "lab_ranker" and job.state == "succeeded"
    assert again.result.metrics == first.metrics and "100%" in out.stderr
    assert ip.user_ns["ranker"].result.metrics == first.metrics  # the model that started it knows its result
    listing, _ = run(ip, "%jobs")
    rows = listing.result.set_index("id")
    assert rows.loc[job.id, "state"] == "succeeded" and rows.loc[job.id, "name"] == "ranker"
    assert rows.loc[job.id, "metrics"].startswith("auc=")


def test_compare_shows_the_lift_table_and_plot(ip, trained):
    result, out = run(ip, f"%compare baseline {trained['job'].id}")
    assert result.success, out.stdout
    view = result.result
    assert list(view.table.columns) == ["Metric", "Baseline", "NewModel", "Lift"]
    assert view.table["Metric"].tolist() == ["auc"]
    html = view._repr_html_()
    assert "<th>Baseline</th><th>NewModel</th><th>Lift</th>" in html and "data:image/png;base64," in html
    assert f"NewModel = job {trained['job'].id} (lab_ranker)" in repr(view)
    ip.run_line_magic("config", 'ProMLMagics.widgets = "on"')
    try:
        widget, _ = run(ip, f"%compare baseline {trained['job'].id}")
        followed, shown = run(ip, f"%job {trained['job'].id}")
    finally:
        ip.run_line_magic("config", 'ProMLMagics.widgets = "off"')
    assert "<th>NewModel</th>" in widget.result.table.value
    assert followed.result.metrics == view.comparison.table.set_index("Metric")["NewModel"].to_dict()
    assert any("VBox" in o.data["text/plain"] for o in shown.outputs)  # the widget progress bar
    assert run(ip, "%%quasar fresh\n" + RANKER)[0].success
    untrained, out = run(ip, "%compare fresh baseline")
    assert not untrained.success and "'fresh' has not been trained yet; run %train fresh" in out.stdout


def test_a_failed_job_fails_the_train_cell_with_the_job_error(ip, trained):
    result, out = run(ip, "%train ranker --data world/nowhere")
    assert not result.success and isinstance(result.error_in_exec.error, jobs.JobFailedError)
    assert "failed: DataNotFoundError: training data 'world/nowhere' not found" in out.stdout
    assert "Traceback" not in out.stdout
    failed_id = ip.user_ns["ranker"].job_id
    again, out = run(ip, f"%job {failed_id}")
    assert not again.success and "world/nowhere" in out.stdout


def test_train_refuses_what_is_not_a_quasar_model(ip):
    ip.user_ns["number"] = 3
    result, out = run(ip, "%train number")
    assert not result.success and "'number' is a int" in out.stdout and "Traceback" not in out.stdout


# -- papermill ----------------------------------------------------------------------------------------


def test_a_papermill_run_with_a_bad_quasar_cell_fails(tmp_path, monkeypatch):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    home = Workspace.init(tmp_path / "ws").root
    monkeypatch.setenv("PROML_HOME", str(home))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext proml_lab"),
                nbformat.v4.new_code_cell("%%quasar broken\n" + BAD),
                nbformat.v4.new_code_cell("print('never runs')")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                   kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    assert err.value.ename == "ProMLMagicError" and "missing ';' at end of statement" in err.value.evalue
    cells = [c for c in nbformat.read(tmp_path / "out.ipynb", as_version=4).cells if c.cell_type == "code"]
    error = next(o for o in cells[1].outputs if o.output_type == "error")
    assert any("^" in line for line in error.traceback)
    assert not any("Traceback" in line or "File " in line for line in error.traceback)
    assert not cells[2].outputs
