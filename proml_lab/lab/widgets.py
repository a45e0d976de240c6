"""ipywidgets views over the core: the Feature Marketplace browser, training progress, model comparison,
A/B experiments, model health.

Thin adapters (STYLE habit 13): every number and list shown here comes from
:class:`~proml_lab.features.store.FeatureStore`, :class:`~proml_lab.training.compare.Comparison` or
:class:`~proml_lab.experiments.report.ExperimentReport`; the widgets only lay it out. ``ipywidgets`` and
``matplotlib`` are imported inside the functions.

>>> browser = marketplace_browser(ws.features, query="title")   # doctest: +SKIP
>>> browser                                                       # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["comparison_view", "experiment_view", "feature_reference", "health_view", "marketplace_browser",
           "training_progress"]

_ANY = "(any)"


def feature_reference(record: Any) -> str:
    """The Quasar ``INPUT`` line that reads a catalog feature (a ``FeatureRecord``) in a ``%%quasar`` cell.

    Scope and type are the ones the Quasar checker expects for the feature: member features are
    ``MEMBER``, request features ``REQUEST``, every other entity's ``DOCUMENT``; catalog types map to
    Quasar types (``numeric`` -> ``double``, ``categorical`` -> ``Categorical``, ...).
    """
    from proml_lab.quasar.check import _entity_scope, _feature_type

    return f"INPUT {_entity_scope(record.entity).upper()} {_feature_type(record)} {record.name};"


def _hits_table(hits: list[Any]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("Feature", "Entity", "Type", "Online", "Description"))
    rows = "".join(
        f"<tr><td>{html.escape(h.name)}</td><td>{html.escape(h.entity)}</td><td>{html.escape(h.type)}</td>"
        f"<td>{'yes' if h.online else 'no'}</td><td>{html.escape(h.description or '')}</td></tr>"
        for h in hits
    )
    return f'<table class="proml-hits"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _detail_html(info: Mapping[str, Any]) -> str:
    rec, online = info["feature"], info.get("online") or {}
    lineage = ", ".join(info.get("lineage") or []) or "no model uses it yet"
    versions = info.get("versions") or []
    items = [
        ("Entity", rec.get("entity")), ("Type", rec.get("type")), ("Owner", rec.get("owner")),
        ("Anchor", rec.get("anchor")), ("Versions", len(versions)),
        ("Online", f"{online.get('freshness', 'unknown')} ({online.get('rows') or 0} rows)"),
        ("Used by", lineage),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items)
    return (f"<h4>{html.escape(rec['name'])}</h4><p>{html.escape(rec.get('description') or '')}</p>"
            f'<table class="proml-detail">{rows}</table>')


def _plot_stats(stats: list[Mapping[str, Any]], name: str) -> Any:
    """The newest batch's distribution: a histogram for numbers, the top values for categories.

    ``None`` when the feature has no recorded statistics with a distribution (e.g. vectors).
    """
    import matplotlib.pyplot as plt

    newest = (stats[0].get("stats") or {}) if stats else {}
    if newest.get("histogram"):
        bins = newest["histogram"]
        fig, ax = plt.subplots(figsize=(4.5, 2.4))
        ax.bar([b["lo"] for b in bins], [b["count"] for b in bins],
               width=[max(b["hi"] - b["lo"], 1e-12) for b in bins], align="edge")
    elif newest.get("top"):
        top = newest["top"]
        fig, ax = plt.subplots(figsize=(4.5, 0.6 + 0.22 * len(top)))
        ax.barh([str(t["value"]) for t in top], [t["count"] for t in top])
        ax.invert_yaxis()
    else:
        return None
    ax.set_title(f"{name} (batch {stats[0].get('batch')}, {newest.get('null_rate', 0):.1%} null)", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def marketplace_browser(store: Any, query: str = "", entity: str | None = None,
                        type: str | None = None, *, limit: int = 50) -> Any:
    """A Feature Marketplace browser over ``store`` (a :class:`FeatureStore`).

    Parts, reachable as attributes of the returned ``VBox``: ``search`` (Text), ``entity`` and ``type``
    (Dropdowns), ``results`` (Select of feature names), ``grid`` (HTML table of hits), ``detail`` (HTML),
    ``plot`` (Output with the statistics plot), ``reference`` (Text) and ``copy`` (Button), which puts
    the selected feature's ``INPUT ...;`` line for a ``%%quasar`` cell into ``reference``.
    Changing the search text or a filter re-runs the search; selecting a result fills the detail pane.
    """
    import ipywidgets as w

    entities = [_ANY, *store.catalog.entity_names()]
    types = [_ANY, *sorted({f.type for f in store.catalog.features()})]
    search = w.Text(value=query, placeholder="search features", description="Search")
    ent = w.Dropdown(options=entities, value=entity if entity in entities else _ANY, description="Entity")
    typ = w.Dropdown(options=types, value=type if type in types else _ANY, description="Type")
    results = w.Select(options=[], rows=10, description="Results")
    grid, detail, plot = w.HTML(), w.HTML(), w.Output()
    reference = w.Text(description="Reference", placeholder="select a feature, then Copy")
    copy = w.Button(description="Copy reference", icon="copy", disabled=True)
    hits: dict[str, Any] = {}

    def run_search(_: Any = None) -> None:
        found = store.search(search.value, entity=None if ent.value == _ANY else ent.value,
                             type=None if typ.value == _ANY else typ.value, limit=limit)
        hits.clear()
        hits.update((h.name, h) for h in found)
        grid.value = _hits_table(found) if found else "<p>No feature matches.</p>"
        results.options = list(hits)
        results.value = found[0].name if found else None
        if not found:
            show(None)

    def show(change: Any) -> None:
        name = results.value
        copy.disabled = name is None
        plot.clear_output()
        if name is None:
            detail.value = ""
            return
        info = store.describe(name)
        detail.value = _detail_html(info)
        fig = _plot_stats(info.get("stats") or [], name)
        if fig is not None:
            _show_figure(plot, fig)

    def do_copy(_: Any) -> None:
        if results.value is not None:
            reference.value = feature_reference(store.catalog.feature(results.value))

    search.observe(run_search, names="value")
    ent.observe(run_search, names="value")
    typ.observe(run_search, names="value")
    results.observe(show, names="value")
    copy.on_click(do_copy)
    box = w.VBox([w.HBox([search, ent, typ]), grid, w.HBox([results, w.VBox([detail, plot])]),
                  w.HBox([reference, copy])])
    box.search, box.entity, box.type, box.results, box.grid = search, ent, typ, results, grid
    box.detail, box.plot, box.reference, box.copy = detail, plot, reference, copy
    box.add_class("proml-marketplace")
    run_search()
    return box


def _show_figure(output: Any, fig: Any) -> None:
    """Render ``fig`` as a PNG into the ``Output`` widget (works with or without a kernel), then close it."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    output.append_display_data(Image(data=buf.getvalue(), format="png"))


def training_progress(total_nodes: int) -> tuple[Any, Callable[[Mapping[str, Any]], None]]:
    """A progress bar and label for a training job, and the callback that feeds them events.

    The callback takes the training events of :func:`proml_lab.training.connect.train`:
    ``{"event": "node", "node", "op", "index", "total"}`` when a trainable node starts (``index`` nodes
    are done; ``total`` replaces ``total_nodes``), the trainers' ``pass`` / ``coordinate`` / ``round``
    events (shown in the label), and ``{"event": "done", "metrics"}``, which fills the bar (or marks it
    failed when the event carries an ``error``). Other events (``data``, ``trial``) go to the label.
    """
    import ipywidgets as w

    bar = w.IntProgress(value=0, min=0, max=max(1, int(total_nodes)), description="Training", bar_style="info")
    label = w.HTML(value=f"0 / {bar.max} nodes")
    box = w.VBox([bar, label])
    box.bar, box.label = bar, label
    state = {"node": ""}

    def fmt(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    def details(event: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
        return html.escape(", ".join(f"{k}={fmt(v)}" for k, v in event.items() if k not in ("event", *skip)))

    def callback(event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "node":
            if event.get("total"):
                bar.max = max(1, int(event["total"]))
            bar.value = min(bar.max, int(event.get("index", bar.value)))
            state["node"] = html.escape(f"{event.get('node', '')} ({event.get('op', '')})")
            label.value = f"{bar.value} / {bar.max} nodes done; training {state['node']}"
        elif kind == "done":
            if event.get("error"):
                bar.bar_style = "danger"
                label.value = f"failed: {html.escape(str(event['error']))}"
            else:
                bar.value, bar.bar_style = bar.max, "success"
                metrics = details(event.get("metrics") or {})
                label.value = f"done: {bar.max} / {bar.max} nodes" + (f"; {metrics}" if metrics else "")
        elif kind in ("pass", "coordinate", "round"):
            label.value = f"{bar.value} / {bar.max} nodes done; {state['node']} {kind}: {details(event)}"
        elif kind:
            label.value = f"{bar.value} / {bar.max} nodes done; {html.escape(str(kind))}: {details(event)}"

    return box, callback


def comparison_view(comparison: Any) -> Any:
    """The comparison's table (HTML, lifts coloured) beside its lift plot; ``.table`` / ``.plot`` parts."""
    import ipywidgets as w

    table = w.HTML(value=comparison._repr_html_())
    plot = w.Output()
    _show_figure(plot, comparison.plot())
    box = w.HBox([table, plot])
    box.table, box.plot = table, plot
    return box


def experiment_view(workspace: Any, experiment: str | None = None, *, alpha: float = 0.05) -> Any:
    """The workspace's A/B experiments: a dropdown, and for the chosen one its report.

    Parts, reachable as attributes of the returned ``VBox``: ``picker`` (Dropdown of experiment names,
    labelled with model and status), ``definition`` (HTML: arms, allocation, members, ramp), ``analysis``
    (HTML: decision, reasons and the per-metric, per-arm table), ``srm`` (HTML: the sample-ratio check) and
    ``plot`` (Output: the lift chart with confidence intervals). Choosing another experiment reads its
    report again (:func:`~proml_lab.experiments.report.experiment_report`); ``experiment`` picks the first
    one shown (default: the newest).
    """
    import ipywidgets as w

    from proml_lab.experiments.report import experiment_report
    from proml_lab.experiments.store import ExperimentStore

    found = ExperimentStore(workspace).list()
    options = [(f"{e.name}  ({e.model}, {e.status})", e.name) for e in reversed(found)]
    names = [value for _, value in options]
    first = experiment if experiment in names else (names[0] if names else None)
    picker = w.Dropdown(options=options, value=first, description="Experiment",
                        layout=w.Layout(width="max-content"))
    definition, analysis, srm, plot = w.HTML(), w.HTML(), w.HTML(), w.Output()

    def show(_: Any = None) -> None:
        plot.outputs = ()  # clear_output() needs a front end to clear; this works with or without one
        if picker.value is None:
            definition.value = ("<p>No experiments yet: define one with <code>proml experiment create NAME "
                                "--model MODEL --arm control=champion --arm treatment=challenger</code>.</p>")
            analysis.value = srm.value = ""
            return
        report = experiment_report(workspace, picker.value, alpha=alpha)
        definition.value = report.definition_html()
        analysis.value = report.analysis_html()
        flagged = bool(report.srm and report.srm["flagged"])
        srm.value = (f"<p class='proml-srm' style='color:{'#cf222e' if flagged else 'inherit'}'>"
                     f"{html.escape(report.srm_line)}</p>")
        if report.analysis is not None:
            _show_figure(plot, report.plot())

    picker.observe(show, names="value")
    box = w.VBox([picker, definition, srm, analysis, plot])
    box.picker, box.definition, box.analysis, box.srm, box.plot = picker, definition, analysis, srm, plot
    box.add_class("proml-experiments")
    show()
    return box


def health_view(workspace: Any, model: str | None = None, *, alias: str = "champion", window: str = "1d",
                end: Any = None, anomalies: int = 20) -> Any:
    """A model's health: a model dropdown and window, the drift table with statuses, the charts (drift bars,
    daily online AUC against validation AUC) and the recent anomalies and drift alerts with their labels.

    Parts, reachable as attributes of the returned ``VBox``: ``picker`` (Dropdown of the models with an
    exposure log), ``window`` (Dropdown), ``report`` (HTML: :class:`~proml_lab.health.monitor.HealthReport`
    or why there is none), ``plot`` (Output), ``anomalies`` (HTML table). Changing the model or the window
    runs :func:`~proml_lab.health.monitor.monitor` again.
    """
    import ipywidgets as w

    from proml_lab.errors import ProMLError
    from proml_lab.health.alerts import AnomalyStore
    from proml_lab.health.monitor import logged_models, monitor

    names = logged_models(workspace)
    first = model if model in names else (names[0] if names else None)
    picker = w.Dropdown(options=names, value=first, description="Model", layout=w.Layout(width="max-content"))
    windows = list(dict.fromkeys([window, "1d", "7d", "30d"]))
    span = w.Dropdown(options=windows, value=window, description="Window", layout=w.Layout(width="max-content"))
    report_html, plot, recent = w.HTML(), w.Output(), w.HTML()

    def show(_: Any = None) -> None:
        plot.outputs = ()
        if picker.value is None:
            report_html.value = ("<p>No exposures logged yet: deploy a model (<code>proml deploy NAME</code>), "
                                 "serve it (<code>proml serve</code>) and send traffic.</p>")
            recent.value = ""
            return
        try:
            report = monitor(workspace, picker.value, alias=alias, window=span.value, end=end)
        except ProMLError as exc:
            report_html.value = f"<p class='proml-health-error'>{html.escape(str(exc))}</p>"
        else:
            report_html.value = report._repr_html_()
            _show_figure(plot, report.plot())
        recent.value = _anomalies_html(AnomalyStore(workspace), picker.value, anomalies)

    picker.observe(show, names="value")
    span.observe(show, names="value")
    box = w.VBox([w.HBox([picker, span]), report_html, plot, recent])
    box.picker, box.window, box.report, box.plot, box.anomalies = picker, span, report_html, plot, recent
    box.add_class("proml-health")
    show()
    return box


def _anomalies_html(store: Any, model: str, limit: int) -> str:
    """The model's recent metric anomalies and drift alerts, with their labels, as HTML tables."""
    found = store.list()
    found = found[found["metric"].str.startswith(f"{model}.")].head(limit)
    rows = "".join(
        f"<tr><td>{int(r.id)}</td><td>{html.escape(r.metric)}</td><td>{r.ts:%Y-%m-%d %H:%M}</td>"
        f"<td>{r.value:.4g}</td><td>{r.expected:.4g}</td><td>{r.direction}</td><td>{r.severity:.2f}</td>"
        f"<td>{html.escape(r.label)}</td></tr>" for r in found.itertuples(index=False))
    table = (f"<h4>Recent anomalies</h4><table><thead><tr><th>id</th><th>metric</th><th>time</th><th>value</th>"
             f"<th>expected</th><th>direction</th><th>severity</th><th>label</th></tr></thead><tbody>{rows}"
             f"</tbody></table>" if len(found) else "<h4>Recent anomalies</h4><p>None recorded.</p>")
    drift = store.list_alerts(kind="drift") if hasattr(store, "list_alerts") else None
    if drift is not None and len(drift):
        drift = drift[drift["subject"].str.startswith(f"{model}.")].head(limit)
        items = "".join(f"<li>{html.escape(str(r.created_at))}: {html.escape(r.message)}</li>"
                        for r in drift.itertuples(index=False))
        table += f"<h4>Drift alerts</h4><ul>{items}</ul>" if items else ""
    return table + ("<p><small>Label an anomaly: <code>proml health anomalies --label ID true_anomaly|expected|"
                    "new_trend|false_positive</code>.</small></p>")
