"""JupyterLab in a real browser: the ProML extension loads, the marketplace searches, %%quasar cells highlight."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

pytestmark = [pytest.mark.slow, pytest.mark.spark]

TIMEOUT = 60_000  # ms; the first JupyterLab load on a 2-core machine takes a while

CELL_MIMES = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    out.push({type: c.type, mime: c.mimeType, source: c.sharedModel.getSource()});
  }
  return {default: panel.content.codeMimetype, cells: out};
}"""


def _open(page, lab, path: str = "lab") -> None:
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{lab['url']}/{path}?token={lab['token']}")
    page.wait_for_selector("#jp-main-dock-panel", state="visible")


def test_lab_starts_with_the_extension(page, lab, artifacts):
    _open(page, lab)
    tabs = page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-marketplace']")
    tabs.wait_for(state="visible")
    assert page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-models']").count() == 1
    page.screenshot(path=str(artifacts / "lab-start.png"))


def test_marketplace_searches_and_shows_a_feature(page, lab, artifacts):
    _open(page, lab)
    page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-marketplace']").click()
    panel = page.locator("#proml-marketplace")
    panel.locator(".proml-search").fill("title")
    panel.locator(".proml-search").press("Enter")
    hits = panel.locator(".proml-hit")
    hits.first.wait_for(state="visible")
    names = hits.evaluate_all("els => els.map(e => e.dataset.name)")
    assert names and any("title" in n.lower() for n in names)

    panel.locator(".proml-entity").fill("member")
    panel.locator(".proml-go").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#proml-marketplace .proml-hit')]"
        ".every(e => e.dataset.name.startsWith('member'))")
    first = panel.locator(".proml-hit").first
    name = first.get_attribute("data-name")
    first.click()
    panel.locator(".proml-detail h4").wait_for(state="visible")
    assert panel.locator(".proml-detail h4").inner_text() == name
    reference = panel.locator(".proml-reference").inner_text()
    assert reference.startswith("INPUT MEMBER ") and reference.endswith(f" {name};")
    assert "Stats:" in panel.locator(".proml-stats").inner_text()
    page.screenshot(path=str(artifacts / "marketplace.png"))


def test_quasar_cells_get_their_mime_type_and_markdown_is_untouched(page, lab, artifacts):
    _open(page, lab, "lab/tree/quasar.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", state="visible")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.content?.model?.cells.length === 3")
    # the kernel's language info resets code cells' mime types: ours must survive it
    page.wait_for_function("() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;"
                           " return k && k.connectionStatus === 'connected' && k.status === 'idle'; }")
    page.wait_for_function(f"() => ({CELL_MIMES})().cells[1].mime === 'text/x-quasar'")
    state = page.evaluate(CELL_MIMES)
    cells = state["cells"]
    assert state["default"] == "text/x-ipython"
    assert [c["type"] for c in cells] == ["markdown", "code", "code"]
    assert cells[1]["mime"] == "text/x-quasar"
    assert cells[0]["mime"] == "text/x-ipythongfm"  # Markdown keeps its own (the magic text is in it too)
    assert cells[2]["mime"] == "text/x-ipython"
    # CodeMirror tokenizes keywords of the Quasar cell (highlighted text sits in spans)
    quasar_cell = page.locator(".jp-Notebook .jp-CodeCell").nth(0)
    spans = quasar_cell.locator(".cm-line span").all_inner_texts()
    assert "MODEL" in spans and "INPUT" in spans
    page.screenshot(path=str(artifacts / "quasar-cell.png"))

    # the magic removed -> the notebook's default; typed again -> Quasar again
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.cells.get(1)"
                  ".sharedModel.setSource('MODEL demo;')")
    page.wait_for_function(f"() => ({CELL_MIMES})().cells[1].mime === 'text/x-ipython'")
    page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model.cells.get(2)"
                  ".sharedModel.setSource('%%quasar\\nMODEL other;')")
    page.wait_for_function(f"() => ({CELL_MIMES})().cells[2].mime === 'text/x-quasar'")
    assert page.evaluate(CELL_MIMES)["cells"][0]["mime"] == "text/x-ipythongfm"


def test_insert_feature_into_the_active_cell(page, lab):
    _open(page, lab, "lab/tree/quasar.ipynb")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.content?.model?.cells.length === 3")
    page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = 2; }")
    page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-marketplace']").click()
    panel = page.locator("#proml-marketplace")
    panel.locator(".proml-search").fill("seniority")
    panel.locator(".proml-search").press("Enter")
    panel.locator(".proml-hit").first.click()
    panel.locator(".proml-insert").click()
    reference = panel.locator(".proml-reference").inner_text()
    page.wait_for_function(
        "ref => window.jupyterapp.shell.currentWidget.content.model.cells.get(2).sharedModel.getSource()"
        ".includes(ref)", arg=reference)


def test_models_panel_compares_two_runs(page, lab, artifacts):
    _open(page, lab)
    page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-models']").click()
    panel = page.locator("#proml-models")
    boxes = panel.locator(".proml-runs input[type=checkbox]")
    boxes.first.wait_for(state="visible")
    assert boxes.count() == 2 and "auc" in panel.locator(".proml-runs th").all_inner_texts()
    assert panel.locator(".proml-compare").is_disabled()
    boxes.nth(1).check()  # runs are newest first: baseline is the second row
    boxes.nth(0).check()
    panel.locator(".proml-compare").click()
    panel.locator(".proml-comparison table").wait_for(state="visible")
    header = panel.locator(".proml-comparison th").all_inner_texts()
    assert header == ["Metric", "baseline", "glmix", "Lift"]
    rows = panel.locator(".proml-comparison tbody tr")
    assert rows.nth(0).locator("td").all_inner_texts() == ["auc", "0.7000", "0.7700", "+10.00%"]
    page.screenshot(path=str(artifacts / "models.png"))


def test_new_model_from_template_adds_a_quasar_cell(page, lab):
    _open(page, lab, "lab/tree/quasar.ipynb")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.content?.model?.cells.length >= 3")
    before = page.evaluate(CELL_MIMES)["cells"]
    page.evaluate("() => { window.jupyterapp.commands.execute('proml:new-model-from-template'); }")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").wait_for(state="visible")
    dialog.locator(".jp-mod-accept").click()
    dialog.locator("input").wait_for(state="visible")
    dialog.locator("input").fill("ranker_v2")
    dialog.locator(".jp-mod-accept").click()
    page.wait_for_function(
        f"n => ({CELL_MIMES})().cells.length === n + 1", arg=len(before))
    added = [c for c in page.evaluate(CELL_MIMES)["cells"] if "ranker_v2" in c["source"]]
    assert len(added) == 1 and added[0]["source"].startswith("%%quasar\n")
    assert "MODEL ranker_v2;" in added[0]["source"] and "{{name}}" not in added[0]["source"]
    page.wait_for_function(
        f"() => ({CELL_MIMES})().cells.some(c => c.source.includes('ranker_v2') && c.mime === 'text/x-quasar')")


def test_models_panel_lists_registered_models_and_publishes_a_run(page, lab, artifacts):
    _open(page, lab)
    page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-models']").click()
    panel = page.locator("#proml-models")
    model = panel.locator(".proml-registered[data-model='glmix']")
    model.wait_for(state="visible")  # the world published run glmix as model glmix, version 1, champion
    assert model.locator(".proml-version[data-version='1'] .proml-badge").all_inner_texts() == ["champion"]
    assert "auc" in model.locator("th").all_inner_texts()
    versions_before = model.locator(".proml-version").count()

    panel.locator(".proml-publish").first.wait_for(state="visible")
    assert panel.locator(".proml-publish").count() == 2  # one per run
    panel.locator(".proml-runs tbody tr", has_text="glmix").locator(".proml-publish").click()
    dialog = page.locator(".jp-Dialog")
    name = dialog.locator(".proml-publish-name")
    name.wait_for(state="visible")
    assert name.input_value() == "glmix"  # default: the run's name
    dialog.locator(".proml-publish-alias").fill("challenger")
    dialog.locator(".jp-mod-accept").click()

    new = str(int(model.locator(".proml-version").first.get_attribute("data-version")) + 1)
    status = panel.locator(".proml-publish-status")
    page.wait_for_function("() => document.querySelector('#proml-models .proml-publish-status')"
                           ".textContent.startsWith('Published')")
    assert status.inner_text() == f"Published glmix version {new} (challenger)"
    row = model.locator(f".proml-version[data-version='{new}']")
    row.wait_for(state="visible")
    assert model.locator(".proml-version").count() == versions_before + 1
    assert model.locator(".proml-version").first.get_attribute("data-version") == new  # newest first
    assert row.locator(".proml-badge").all_inner_texts() == ["challenger"]
    assert model.locator(".proml-version[data-version='1'] .proml-badge").all_inner_texts() == ["champion"]
    page.screenshot(path=str(artifacts / "models-registry.png"))

    # a run without a bundle: the server's message shows, nothing is registered
    panel.locator(".proml-runs tbody tr", has_text="baseline").locator(".proml-publish").click()
    dialog.locator(".proml-publish-name").wait_for(state="visible")
    dialog.locator(".jp-mod-accept").click()
    page.wait_for_function("() => document.querySelector('#proml-models .proml-publish-status')"
                           ".textContent.startsWith('Error')")
    assert "has no model bundle" in status.inner_text()
    assert panel.locator(".proml-registered[data-model='baseline']").count() == 0


def test_experiments_view_shows_the_decision_and_the_srm_check(page, lab, artifacts):
    page.set_viewport_size({"width": 1400, "height": 1100})
    _open(page, lab)
    page.locator(".jp-SideBar.jp-mod-left li[data-id='proml-experiments']").click()
    panel = page.locator("#proml-experiments")
    row = panel.locator(".proml-experiment[data-name='ranker-ab']")  # the world's synthetic A/B test
    row.wait_for(state="visible")
    assert row.locator(".proml-hit-name").inner_text() == "ranker-ab"
    assert row.locator(".proml-status").inner_text() == "running"
    assert row.locator(".proml-experiment-traffic").inner_text() == "ab_ranker · traffic 100% of 100%"
    assert row.locator(".proml-experiment-arms-text").inner_text() == \
        "control→champion 50%, treatment→challenger 50%"
    row.click()
    decision = panel.locator(".proml-decision")
    decision.wait_for(state="visible")
    assert decision.inner_text() == "Decision: ramp up"  # the synthetic +30% click lift
    reason = panel.locator(".proml-reasons li").first.inner_text()
    assert reason.startswith("ramp up: ctr improved in treatment")
    srm = panel.locator(".proml-srm")
    assert "proml-srm-ok" in srm.get_attribute("class")
    assert srm.inner_text().startswith("SRM ok: units control ")
    arms = panel.locator(".proml-experiment-arms tbody td").all_inner_texts()
    assert arms[:3] == ["control (control)", "champion", "50%"] and arms[4] == "treatment"
    metrics = panel.locator(".proml-experiment-metrics tbody tr")
    assert metrics.count() == 6  # ctr, clicked, applied x control, treatment
    ctr = metrics.nth(1).locator("td").all_inner_texts()
    assert ctr[:2] == ["ctr", "treatment"] and ctr[4].startswith("+") and ctr[5].startswith("[+")
    assert panel.locator(".proml-lift-chart circle").count() == 3  # one lift with its CI per metric
    assert "jp-mod-selected" in row.get_attribute("class")
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:visible").first.bounding_box()
    if handle:  # widen the sidebar for the picture
        page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + 200)
        page.mouse.down()
        page.mouse.move(handle["x"] + 420, handle["y"] + 200, steps=5)
        page.mouse.up()
    page.screenshot(path=str(artifacts / "experiments.png"))
