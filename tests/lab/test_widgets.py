"""The ipywidgets views, driven programmatically over a real workspace with the tiny world's features."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from proml_lab.lab.widgets import (  # noqa: E402
    comparison_view,
    feature_reference,
    marketplace_browser,
    training_progress,
)
from proml_lab.training.compare import compare  # noqa: E402
from tests.ui.world import world_workspace  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory):
    import matplotlib

    matplotlib.use("Agg")
    return world_workspace(tmp_path_factory).features


def _has_png(output) -> bool:
    return any("image/png" in o.get("data", {}) for o in output.outputs)


def test_browser_searches_and_filters(store):
    browser = marketplace_browser(store)
    everything = list(browser.results.options)
    assert len(everything) > 5  # an empty query lists features by name

    browser.search.value = "title"
    names = list(browser.results.options)
    assert names and all(n in browser.grid.value for n in names)
    assert any("title" in n.lower() for n in names)
    expected = [h.name for h in store.search("title", limit=50)]
    assert names == expected  # the grid shows the core's ranking, unchanged

    browser.entity.value = "job"
    hits = store.search("title", entity="job", limit=50)
    assert list(browser.results.options) == [h.name for h in hits]
    assert all(n.startswith("job") for n in browser.results.options)


def test_browser_detail_plot_and_reference(store):
    browser = marketplace_browser(store, query="title", entity="member")
    name = browser.results.value
    assert name is not None and name == browser.results.options[0]
    info = store.describe(name)
    assert name in browser.detail.value
    assert info["feature"]["description"].split()[0] in browser.detail.value
    assert "Used by" in browser.detail.value  # lineage line
    assert _has_png(browser.plot)  # the stats plot of the materialized batch

    assert browser.reference.value == ""
    browser.copy.click()
    assert browser.reference.value == feature_reference(store.catalog.feature(name))
    assert browser.reference.value.startswith("INPUT MEMBER ") and browser.reference.value.endswith(f" {name};")


def test_browser_with_no_match_clears_detail(store):
    browser = marketplace_browser(store, query="title")
    browser.search.value = "zzzqqqxxnothing"
    assert list(browser.results.options) == []
    assert "No feature matches" in browser.grid.value
    assert browser.detail.value == "" and browser.copy.disabled


def test_feature_reference_checks_in_quasar(store):
    """The copied lines are what the Quasar checker accepts: scope from the entity, Quasar types."""
    refs = {n: feature_reference(store.catalog.feature(n)) for n in ("job_remote", "member_titleFamily")}
    assert refs == {"job_remote": "INPUT DOCUMENT double job_remote;",
                    "member_titleFamily": "INPUT MEMBER Categorical member_titleFamily;"}


def test_training_progress_consumes_events():
    """The events train() emits: node starts (index = nodes done), trainer events, done with metrics."""
    widget, callback = training_progress(5)
    assert widget.bar.max == 5 and widget.bar.value == 0
    callback({"event": "node", "node": "glmix", "op": "GLMix", "index": 0, "total": 2})
    assert widget.bar.max == 2 and widget.bar.value == 0 and "glmix (GLMix)" in widget.label.value
    callback({"event": "pass", "pass": 1, "auc": 0.712345})
    assert "pass" in widget.label.value and "auc=0.7123" in widget.label.value
    callback({"event": "coordinate", "coordinate": "per_member"})
    callback({"event": "round", "round": 2})
    assert "round" in widget.label.value
    callback({"event": "node", "node": "trees", "op": "TreeEnsemble", "index": 1, "total": 2})
    assert widget.bar.value == 1
    callback({"event": "trial", "trial": 3, "value": 0.7})
    assert "trial" in widget.label.value
    callback({"event": "done", "metrics": {"auc": 0.77}})
    assert widget.bar.value == 2 and widget.bar.bar_style == "success" and "auc=0.77" in widget.label.value


def test_training_progress_failure():
    widget, callback = training_progress(2)
    callback({"event": "done", "error": "boom <b>"})
    assert widget.bar.bar_style == "danger" and "boom &lt;b&gt;" in widget.label.value


def test_comparison_view():
    import matplotlib

    matplotlib.use("Agg")
    view = comparison_view(compare({"auc": 0.75, "logloss": 0.5}, {"auc": 0.78, "logloss": 0.45}))
    assert "<table>" in view.table.value and "+4.00%" in view.table.value and "+10.00%" in view.table.value
    assert _has_png(view.plot)
