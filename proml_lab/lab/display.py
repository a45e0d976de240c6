"""Renderings for the magics: HTML and text views of programs, features, jobs and comparisons.

Everything shown comes from the core (the IR, the catalog's ``describe``, a job's ``result.json``,
:class:`~proml_lab.training.compare.Comparison`); this module only lays it out. Figures are embedded
as PNG so they show the same in JupyterLab, papermill outputs and plain IPython. matplotlib and tqdm
are imported inside the functions that need them.

>>> print(metrics_text({"auc": 0.79123, "ndcg@10": 0.78}))
auc=0.7912, ndcg@10=0.7800
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "ComparisonView", "FeatureView", "TextProgress", "WidgetProgress", "feature_html", "figure_png",
    "job_result_html", "metrics_text", "program_features", "stats_history_figure",
]


def metrics_text(metrics: Mapping[str, float]) -> str:
    """``auc=0.7912, ndcg@10=0.7800`` (four decimals)."""
    return ", ".join(f"{k}={float(v):.4f}" for k, v in metrics.items())


def figure_png(fig: Figure, *, close: bool = True) -> bytes:
    """The figure as PNG bytes (closed afterwards, so the inline backend does not show it again).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> figure_png(plt.figure())[:4]
    b'\\x89PNG'
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    if close:
        plt.close(fig)
    return buf.getvalue()


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


# -- programs ---------------------------------------------------------------------------------------


def program_features(ir: Any, catalog: Any) -> pd.DataFrame:
    """One row per marketplace feature *ir* reads: scope, entity, type and online availability."""
    import pandas as pd

    from proml_lab.quasar import ir as irm

    inputs = [n for n in ir.nodes if isinstance(n, irm.Input)]
    online = catalog.online_availability([n.feature for n in inputs])
    rows = [{"Feature": n.feature, "Scope": n.scope, "Entity": online[n.feature]["entity"],
             "Type": online[n.feature]["type"], "Online": "yes" if online[n.feature]["available"] else "no",
             "Freshness": online[n.feature]["freshness"],
             "Materialized": online[n.feature]["materialized_at"] or ""} for n in inputs]
    return pd.DataFrame(rows, columns=["Feature", "Scope", "Entity", "Type", "Online", "Freshness", "Materialized"])


def program_html(name: str | None, ir: Any, features: pd.DataFrame, svg: str | None) -> str:
    """Header, the DAG picture (an ``<img>`` of the SVG, so no script can ride along) and the features."""
    trainable = ", ".join(n.id for n in ir.trainables()) or "none"
    head = (f"<b>{html.escape(name or ir.name or 'quasar')}</b>: model {html.escape(str(ir.name))}, "
            f"{len(ir.nodes)} nodes, {len(features)} marketplace features, trainable: {html.escape(trainable)}")
    picture = ""
    if svg:
        picture = (f'<div><img alt="DAG of {html.escape(str(ir.name))}" '
                   f'src="data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}"/></div>')
    return f"<div class='proml-program'><p>{head}</p>{picture}{features.to_html(index=False)}</div>"


# -- features ---------------------------------------------------------------------------------------


def stats_history_figure(stats: Sequence[Mapping[str, Any]], name: str) -> Figure | None:
    """The feature's statistics over its materializations (oldest left) and its newest distribution.

    Numbers: mean with the p05-p95 band and the null rate per batch, beside the newest histogram.
    Categories: the null rate per batch beside the newest top values. ``None`` without statistics.

    Examples
    --------
    >>> fig = stats_history_figure([{"batch": 1, "stats": {"mean": 2.0, "null_rate": 0.0,
    ...     "quantiles": {"p05": 1.0, "p95": 3.0}, "histogram": [{"lo": 1, "hi": 3, "count": 5}]}}], "x")
    >>> len(fig.axes)
    3
    """
    import matplotlib.pyplot as plt

    history = [s for s in reversed(list(stats)) if s.get("stats")]
    if not history:
        return None
    batches = [str(s.get("batch") or i + 1) for i, s in enumerate(history)]
    fig, (trend, dist) = plt.subplots(1, 2, figsize=(9, 2.8))
    x = list(range(len(history)))
    means = [s["stats"].get("mean") for s in history]
    if any(m is not None for m in means):
        q = [s["stats"].get("quantiles") or {} for s in history]
        trend.fill_between(x, [v.get("p05", m) for v, m in zip(q, means)],
                           [v.get("p95", m) for v, m in zip(q, means)], alpha=0.25, label="p05-p95")
        trend.plot(x, means, marker="o", label="mean")
        trend.legend(fontsize=7, loc="upper left")
    nulls = trend.twinx()
    nulls.plot(x, [s["stats"].get("null_rate", 0.0) for s in history], color="grey", linestyle="--",
               marker=".", label="null rate")
    nulls.set_ylabel("null rate", fontsize=7)
    trend.set_xticks(x, batches)
    trend.set_xlabel("materialization batch", fontsize=7)
    trend.set_title(f"{name}: statistics history", fontsize=8)
    newest = history[-1]["stats"]
    if newest.get("histogram"):
        bins = newest["histogram"]
        dist.bar([b["lo"] for b in bins], [b["count"] for b in bins],
                 width=[max(b["hi"] - b["lo"], 1e-12) for b in bins], align="edge")
    elif newest.get("top"):
        top = newest["top"]
        dist.barh([str(t["value"]) for t in top], [t["count"] for t in top])
        dist.invert_yaxis()
    dist.set_title(f"newest batch ({batches[-1]}) distribution", fontsize=8)
    for ax in (trend, nulls, dist):
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def feature_html(info: Mapping[str, Any]) -> str:
    """Definition, lineage, versions and online state of one feature (the catalog's ``describe``)."""
    rec, online = info["feature"], info.get("online") or {}
    items = [("Entity", rec.get("entity")), ("Type", rec.get("type")), ("Kind", rec.get("kind")),
             ("Owner", rec.get("owner")), ("Anchor", rec.get("anchor")), ("Source", rec.get("source")),
             ("Tags", ", ".join(rec.get("tags") or [])), ("Version", rec.get("version")),
             ("Online", f"{online.get('freshness', 'unknown')}, materialized {online.get('materialized_at') or 'never'}"
                        f", {online.get('rows') or 0} rows"),
             ("Used by (lineage)", ", ".join(info.get("lineage") or []) or "no model yet")]
    rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                   for k, v in items)
    definition = html.escape(json.dumps(info.get("definition"), indent=2, sort_keys=True))
    source = info.get("source") or {}
    lineage = (f"<p>Lineage: source <code>{html.escape(str(source.get('name')))}</code> "
               f"({html.escape(str(source.get('path') or source.get('table') or source.get('sql') or ''))}) "
               f"&rarr; anchor <code>{html.escape(str(rec.get('anchor')))}</code> &rarr; "
               f"<code>{html.escape(rec['name'])}</code></p>" if source else "")
    return (f"<h4>{html.escape(rec['name'])}</h4><p>{html.escape(rec.get('description') or '')}</p>"
            f"<table>{rows}</table>{lineage}<details><summary>Definition</summary><pre>{definition}</pre></details>")


class FeatureView:
    """What ``%feature NAME`` shows: ``info`` (the catalog's describe) and ``figure`` (stats history PNG)."""

    def __init__(self, info: Mapping[str, Any], png: bytes | None) -> None:
        self.info = dict(info)
        self.png = png

    def _repr_html_(self) -> str:
        plot = _img(self.png, "statistics history") or "<p><i>No statistics recorded yet.</i></p>"
        return feature_html(self.info) + plot

    def __repr__(self) -> str:
        rec = self.info["feature"]
        return (f"{rec['name']} ({rec['entity']}, {rec['type']}): {rec.get('description') or ''}\n"
                f"lineage: {', '.join(self.info.get('lineage') or []) or 'no model yet'}; "
                f"{len(self.info.get('stats') or [])} statistics batch(es)")


# -- jobs and comparisons ---------------------------------------------------------------------------


def job_result_html(result: Any) -> str:
    """A finished job: program, metrics, rows and its MLflow run."""
    data = result.data
    metrics = "".join(f"<tr><td>{html.escape(k)}</td><td style='text-align:right'>{float(v):.4f}</td></tr>"
                      for k, v in result.metrics.items())
    return (f"<p><b>Job {html.escape(result.job_id)}</b>: {html.escape(str(data.get('program')))} trained on "
            f"{data.get('train_rows', 0):,} rows ({data.get('validation_rows', 0):,} validation) in "
            f"{data.get('seconds', 0):.1f} s; MLflow run <code>{html.escape(str(result.run_id))}</code></p>"
            f"<table><thead><tr><th>Metric</th><th>Validation</th></tr></thead><tbody>{metrics}</tbody></table>")


class ComparisonView:
    """What ``%compare A B`` shows: the Metric | Baseline | NewModel | Lift table and the lift plot."""

    def __init__(self, comparison: Any, caption: str, png: bytes | None) -> None:
        self.comparison = comparison
        self.caption = caption
        self.png = png

    @property
    def table(self) -> pd.DataFrame:
        return self.comparison.table

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.caption)}</p>{self.comparison._repr_html_()}"
                f"{_img(self.png, 'lift per metric')}")

    def __repr__(self) -> str:
        return f"{self.caption}\n{self.comparison.to_markdown()}"


# -- progress ---------------------------------------------------------------------------------------


def _describe_event(event: Mapping[str, Any]) -> str:
    kind = event.get("event")
    if kind == "data":
        return str(event.get("status", "reading data"))
    if kind == "node":
        return f"training {event.get('node')} ({event.get('op')})"
    if kind == "trial":
        return f"tuning trial {event.get('trial')}: best {event.get('best')}"
    if kind in ("pass", "coordinate", "round"):
        keep = {k: v for k, v in event.items() if k in ("node", "pass", "coordinate", "round", "validation_metric")}
        return f"{kind} " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in keep.items())
    if kind == "done":
        return "done: " + metrics_text(event.get("metrics") or {}) if not event.get("error") else "failed"
    return str(kind)


class TextProgress:
    """A tqdm progress bar (a notebook bar under a kernel, text in a terminal or when *plain*) over
    training steps: joining the data, each tuning trial, each trainable node.

    Examples
    --------
    >>> bar = TextProgress("demo", nodes=1, plain=True)
    >>> bar({"event": "done", "metrics": {"auc": 0.8}}); bar.bar.n
    2
    >>> bar.close()
    """

    def __init__(self, job_id: str, *, nodes: int, trials: int = 0, plain: bool = False) -> None:
        if plain:  # text even under a kernel (papermill outputs stay free of widget models)
            from tqdm import tqdm
        else:
            from tqdm.auto import tqdm

        self.trials = trials
        self.bar = tqdm(total=1 + trials + max(nodes, 1), desc=f"job {job_id}", unit="step", leave=True)

    def _to(self, n: int) -> None:
        self.bar.update(max(0, min(n, self.bar.total) - self.bar.n))

    def __call__(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "node":
            if event.get("total"):
                self.bar.total = 1 + self.trials + int(event["total"])
            self._to(1 + self.trials + int(event.get("index", 0)))
        elif kind == "trial":
            self._to(1 + int(event.get("trial", 0)))
        elif kind == "done":
            self._to(self.bar.total)
        self.bar.set_postfix_str(_describe_event(event)[:80], refresh=True)

    def close(self) -> None:
        self.bar.close()


class WidgetProgress:
    """The ipywidgets training progress of :mod:`proml_lab.lab.widgets`, displayed when created."""

    def __init__(self, factory: Any, *, nodes: int) -> None:
        from IPython.display import display

        self.box, self.callback = factory(nodes)
        display(self.box)

    def __call__(self, event: Mapping[str, Any]) -> None:
        self.callback(event)

    def close(self) -> None:
        pass
