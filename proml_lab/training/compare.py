"""Comparing two models: a Metric | Baseline | NewModel | Lift table, its renderings, and plots.

Lift is the relative change in %, signed so that an improvement is positive for every metric (a drop in
``logloss`` is a positive lift); directions come from :data:`~proml_lab.training.metrics.HIGHER_IS_BETTER`.
matplotlib is imported inside the plotting functions only.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from proml_lab.errors import TrainingError
from proml_lab.training.metrics import _ALIASES, HIGHER_IS_BETTER, _labels01, _vector, auc

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Comparison", "comparable_metrics", "compare", "compare_runs", "plot_roc"]


# -- comparing models -------------------------------------------------------------------------------


def _higher_is_better(metric: str, overrides: Mapping[str, bool]) -> bool:
    if metric in overrides:
        return bool(overrides[metric])
    base = _ALIASES.get(metric.partition("@")[0], metric.partition("@")[0])
    if base in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[base]
    raise TrainingError(
        f"compare does not know whether a larger {metric!r} is better; pass "
        f"higher_is_better={{{metric!r}: True}} (or False)."
    )


def _fmt(value: float, pattern: str = "{:.4f}") -> str:
    return "n/a" if value is None or math.isnan(value) else pattern.format(value)


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames, which has no single truth value
class Comparison:
    """Two models' metrics side by side; ``table`` has columns ``Metric, <base>, <new>, Lift``.

    ``Lift`` is the relative change in percent, signed so that an improvement is positive: for a
    lower-is-better metric (``logloss``, ``rmse``) a decrease gives a positive lift.
    """

    table: pd.DataFrame
    names: tuple[str, str]
    higher_is_better: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"names": [...], "metrics": [{"metric", "baseline", "new", "lift", ...}]}``."""
        base, new = self.names
        rows = [
            {
                "metric": r["Metric"],
                "baseline": float(r[base]),
                "new": float(r[new]),
                "lift": float(r["Lift"]),
                "higher_is_better": self.higher_is_better[r["Metric"]],
            }
            for r in self.table.to_dict(orient="records")
        ]
        return {"names": list(self.names), "metrics": rows}

    def rows(self) -> list[list[str]]:
        """The table as formatted text cells, one list per metric (what the renderings show)."""
        return self._cells()

    def _cells(self) -> list[list[str]]:
        base, new = self.names
        return [
            [str(r["Metric"]), _fmt(r[base]), _fmt(r[new]), _fmt(r["Lift"], "{:+.2f}%")]
            for r in self.table.to_dict(orient="records")
        ]

    def to_markdown(self) -> str:
        """The table as Markdown (readable as plain text; numbers right-aligned)."""
        header = ["Metric", *self.names, "Lift"]
        rows = self._cells()
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

        def line(cells: list[str]) -> str:
            parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "| " + " | ".join(parts) + " |"

        rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
        return "\n".join([line(header), rule, *(line(r) for r in rows)])

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ["Metric", *self.names, "Lift"])
        body = []
        for cells, lift in zip(self._cells(), self.table["Lift"]):
            color = "#1a7f37" if lift > 0 else "#cf222e" if lift < 0 else "inherit"
            tds = "".join(f'<td style="text-align:right">{html.escape(c)}</td>' for c in cells[1:3])
            body.append(
                f"<tr><td>{html.escape(cells[0])}</td>{tds}"
                f'<td style="text-align:right;color:{color}">{html.escape(cells[3])}</td></tr>'
            )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def plot(self, ax: Axes | None = None) -> Figure:
        """Horizontal bars of the lifts: green for improvements, red for regressions."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(self.table)))
        else:
            fig = ax.get_figure()
        lifts = self.table["Lift"].fillna(0.0).to_numpy()
        colors = ["#2da44e" if v > 0 else "#cf222e" if v < 0 else "#8c959f" for v in lifts]
        ax.barh(self.table["Metric"].astype(str).tolist(), lifts, color=colors)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.invert_yaxis()  # first metric on top, as in the table
        ax.set_xlabel(f"Lift of {self.names[1]} over {self.names[0]} (%)")
        return fig


def compare(
    baseline: Mapping[str, float],
    new: Mapping[str, float],
    *,
    names: tuple[str, str] = ("Baseline", "NewModel"),
    higher_is_better: Mapping[str, bool] | None = None,
) -> Comparison:
    """Compare two models' metrics (as returned by :func:`evaluate`).

    Parameters
    ----------
    baseline, new : mapping of str to float
        Metric values; a metric missing on one side shows as n/a with no lift.
    names : (str, str), default ("Baseline", "NewModel")
        Column headers for the two models.
    higher_is_better : mapping of str to bool, optional
        Directions of metrics not in :data:`HIGHER_IS_BETTER` (or overrides).

    Returns
    -------
    Comparison
        ``.table`` (``Metric | Baseline | NewModel | Lift``), ``.to_markdown()``, ``.plot()``.

    Examples
    --------
    >>> c = compare({"auc": 0.75, "logloss": 0.5}, {"auc": 0.78, "logloss": 0.45})
    >>> c.table["Lift"].round(2).tolist()
    [4.0, 10.0]
    """
    if len(names) != 2 or len(set(names)) != 2 or {"Metric", "Lift"} & set(names):
        raise TrainingError(
            f"names must be two distinct labels other than Metric/Lift. Got {names!r} instead."
        )
    overrides = dict(higher_is_better or {})
    metrics = list(baseline) + [m for m in new if m not in baseline]
    directions = {m: _higher_is_better(m, overrides) for m in metrics}
    b = np.array([float(baseline.get(m, np.nan)) for m in metrics])
    n = np.array([float(new.get(m, np.nan)) for m in metrics])
    sign = np.array([1.0 if directions[m] else -1.0 for m in metrics])
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = np.where(b != 0, sign * (n - b) / np.abs(b) * 100.0, np.nan)
    table = pd.DataFrame({"Metric": metrics, names[0]: b, names[1]: n, "Lift": lift})
    return Comparison(table=table, names=(names[0], names[1]), higher_is_better=directions)


def plot_roc(y: Any, scores: Mapping[str, Any], *, ax: Axes | None = None) -> Figure:
    """ROC curves of several models on the same labels, with each AUC in the legend.

    Draws one line per model plus the dashed chance diagonal.

    Examples
    --------
    >>> fig = plot_roc([0, 1, 1, 0], {"glmix": [0.2, 0.7, 0.6, 0.4], "trees": [0.3, 0.5, 0.6, 0.6]})
    """
    import matplotlib.pyplot as plt

    yy = _labels01(y, "plot_roc")
    if not scores:
        raise TrainingError("plot_roc needs at least one model in scores ({name: score array}).")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.get_figure()
    for name, score in scores.items():
        s = _vector(score, f"scores[{name!r}]", yy.shape[0])
        order = np.argsort(-s, kind="stable")
        s_sorted, y_sorted = s[order], yy[order]
        last_of_threshold = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # one ROC point per distinct score
        tp = np.cumsum(y_sorted)[last_of_threshold]
        fp = np.cumsum(1.0 - y_sorted)[last_of_threshold]
        tpr = np.r_[0.0, tp / max(tp[-1], 1.0)]
        fpr = np.r_[0.0, fp / max(fp[-1], 1.0)]
        ax.plot(fpr, tpr, label=f"{name} (AUC = {auc(yy, s):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.legend(loc="lower right")
    return fig


def comparable_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The tracked metrics :func:`compare` knows a direction for, named as it names them (``ndcg@10``
    for MLflow's ``ndcg_at_10``); bookkeeping such as ``train_seconds`` is left out."""
    out = {}
    for key, value in metrics.items():
        name = key.replace("_at_", "@")
        base = name.partition("@")[0]
        if _ALIASES.get(base, base) in HIGHER_IS_BETTER:
            out[name] = value
    return out


def compare_runs(records: list[Mapping[str, Any]], baseline: str, new: str) -> Comparison:
    """Compare two tracked runs by id (*records* from :meth:`Tracker.run_records`), named by run name."""
    runs = {r["id"]: r for r in records}
    missing = [x for x in (baseline, new) if x not in runs]
    if missing:
        raise TrainingError(f"unknown run id(s): {', '.join(missing)}")
    a, b = runs[baseline], runs[new]
    names = (a["name"] or baseline, b["name"] or new)
    if names[0] == names[1] or {"Metric", "Lift"} & set(names):  # e.g. two runs of one program
        names = (f"{names[0]} ({baseline[:8]})", f"{names[1]} ({new[:8]})")
    if names[0] == names[1]:  # one run against itself
        names = ("Baseline", "NewModel")
    return compare(comparable_metrics(a["metrics"]), comparable_metrics(b["metrics"]), names=names)
