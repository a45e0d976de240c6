"""The report of one A/B experiment: its definition, its per-member units and their analysis, in one object.

:func:`experiment_report` is the one function the notebook side calls: the ``%experiment`` magic, the
JupyterLab server's ``GET proml/experiments/<name>``, the Voila dashboard and its widget all render an
:class:`ExperimentReport` and compute nothing themselves. :func:`experiments_frame` is the list they show.

>>> report = experiment_report(ws, "jobs-ab")                          # doctest: +SKIP
>>> report.decision, report.srm["flagged"]                             # doctest: +SKIP
('ramp up', False)
>>> report.to_dict()["analysis"]["metrics"][0]["arm"]                  # doctest: +SKIP
'control'
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proml_lab.experiments.model import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from proml_lab.experiments.analysis import ExperimentAnalysis

__all__ = ["METRICS", "DefinitionView", "ExperimentReport", "experiment_report", "experiments_frame"]

METRICS = {"ctr": "ratio:clicks/exposures", "clicked": "proportion", "applied": "proportion"}
"""The metrics of a report, primary first: click-through rate per exposure, then per-member 0/1 outcomes."""
PRE = {"ctr": "pre_ctr"}
"""CUPED covariates: the pre-period column of each metric (used when the units hold it)."""
LIST_COLUMNS = ["name", "model", "status", "traffic", "share", "layer", "arms", "created_at", "started_at",
                "stopped_at", "description"]


@dataclass(eq=False)
class ExperimentReport:
    """An experiment's definition, its units (one row per exposed member) and their analysis.

    ``analysis`` is ``None`` until some member was exposed (``message`` then says why there is nothing to
    analyze yet).

    Attributes
    ----------
    experiment
        The :class:`~proml_lab.experiments.model.Experiment` as stored.
    units
        ``experiment_units(...)``: one row per exposed member with its arm, exposures, clicks, applies.
    analysis
        :func:`~proml_lab.experiments.analysis.analyze` of the units (``ctr``, ``clicked``, ``applied``).
    """

    experiment: Experiment
    units: pd.DataFrame = field(repr=False)
    analysis: ExperimentAnalysis | None
    alpha: float = 0.05
    message: str = ""

    # -- what every view shows -----------------------------------------------------------------------
    @property
    def decision(self) -> str | None:
        """``"ramp up"``, ``"hold"`` or ``"roll back"`` (``None`` before any exposure)."""
        return None if self.analysis is None else self.analysis.decision

    @property
    def srm(self) -> dict[str, Any] | None:
        """The sample-ratio-mismatch check: ``arms, counts, expected, chi2, p, flagged``."""
        return None if self.analysis is None else self.analysis.srm

    @property
    def srm_line(self) -> str:
        """The SRM check in one line of text (what the magic, the dashboard and the lab view print)."""
        srm = self.srm
        if srm is None:
            return "SRM: no exposures yet"
        counts = ", ".join(f"{a} {c:,}" for a, c in zip(srm["arms"], srm["counts"]))
        expected = ", ".join(f"{e:,.1f}" for e in srm["expected"])
        verdict = "FLAGGED (p < 0.001): fix the assignment before reading results" if srm["flagged"] else "ok"
        return (f"SRM {verdict}: units {counts} vs expected {expected}, chi2 = {srm['chi2']:.2f}, "
                f"p = {srm['p']:.3g}")

    def arm_units(self) -> dict[str, int]:
        """Exposed members per arm, every arm of the definition included (0 when none)."""
        counts = self.units["arm"].value_counts() if len(self.units) else {}
        return {a.name: int(counts.get(a.name, 0)) for a in self.experiment.arms}

    # -- renderings ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (no NaN, no numpy scalars, ISO times): ``GET proml/experiments/<name>``'s body."""
        units = self.arm_units()
        doc = {
            "experiment": self.experiment.to_dict(),
            "arms": [{"name": a.name, "alias": a.alias, "weight": a.weight, "units": units[a.name]}
                     for a in self.experiment.arms],
            "units": int(len(self.units)),
            "alpha": self.alpha,
            "decision": self.decision,
            "srm": self.srm,
            "srm_line": self.srm_line,
            "message": self.message,
            "analysis": None if self.analysis is None else self.analysis.to_dict(),
        }
        return _plain(doc)

    def definition_html(self) -> str:
        """The definition as an HTML table (arms with alias, weight and exposed members; ramp history)."""
        return DefinitionView(self.experiment, units=self.arm_units())._repr_html_()

    def analysis_html(self) -> str:
        """Decision, reasons, SRM line and the per-metric, per-arm table (or why there is none yet)."""
        if self.analysis is None:
            return f"<p class='proml-experiment-empty'>{html.escape(self.message)}</p>"
        return self.analysis._repr_html_()

    def _repr_html_(self) -> str:
        return (f"<div class='proml-experiment-report'>{self.definition_html()}{self.analysis_html()}"
                f"<p class='proml-srm'>{html.escape(self.srm_line)}</p></div>")

    def __repr__(self) -> str:
        head = str(self.experiment)
        if self.analysis is None:
            return f"{head}\n{self.message}"
        return f"{head}\ndecision: {self.decision} ({'; '.join(self.analysis.reasons)})\n{self.srm_line}"

    def plot(self) -> Any:
        """The lift chart with confidence intervals (a matplotlib figure; see ``ExperimentAnalysis.plot``)."""
        if self.analysis is None:
            from proml_lab.errors import ExperimentError

            raise ExperimentError(f"Nothing to plot for experiment {self.experiment.name!r}: {self.message}",
                                  experiment=self.experiment.name)
        return self.analysis.plot()


def experiment_report(workspace: Any, name: str, *, alpha: float = 0.05, start: Any = None,
                      end: Any = None) -> ExperimentReport:
    """Read an experiment, its exposed members and their outcomes, and analyze them.

    Parameters
    ----------
    workspace
        A :class:`~proml_lab.workspace.Workspace`.
    name
        The experiment (an unknown name raises :class:`~proml_lab.errors.ExperimentError` listing the
        known ones).
    alpha
        Significance level of the tests and intervals.
    start, end
        Only exposures in ``[start, end)`` (see :func:`~proml_lab.experiments.outcomes.experiment_units`).

    Returns
    -------
    ExperimentReport
        Metrics ``ctr`` (clicks per exposure, the primary), ``clicked`` and ``applied`` (members with at
        least one), CUPED on ``ctr`` when the units carry a pre-period, SRM against the arms' weights.

    Examples
    --------
    >>> r = experiment_report(ws, "jobs-ab")                           # doctest: +SKIP
    >>> print(r.srm_line)                                              # doctest: +SKIP
    SRM ok: units control 2,011, treatment 1,989 vs expected 2,000.0, 2,000.0, chi2 = 0.12, p = 0.729
    """
    from proml_lab.experiments.analysis import analyze
    from proml_lab.experiments.outcomes import experiment_units
    from proml_lab.experiments.store import ExperimentStore

    experiment = ExperimentStore(workspace).get(name)
    units = experiment_units(workspace, experiment, start=start, end=end)
    if not len(units):
        return ExperimentReport(experiment, units, None, alpha, _no_units(experiment))
    pre = {m: c for m, c in PRE.items() if c in units and units[c].notna().any()}
    analysis = analyze(units, arm="arm", control=experiment.control.name, metrics=dict(METRICS),
                       pre=pre or None, expected={a.name: a.weight for a in experiment.arms}, alpha=alpha,
                       sequential=True)
    return ExperimentReport(experiment, units, analysis, alpha)


def experiments_frame(workspace: Any, *, model: str | None = None, status: str | None = None) -> pd.DataFrame:
    """The workspace's experiments as a table (one row each, by creation time; arms as ``name->alias``).

    Examples
    --------
    >>> experiments_frame(ws)[["name", "status", "traffic"]]           # doctest: +SKIP
    """
    import pandas as pd

    from proml_lab.experiments.store import ExperimentStore

    rows = [{**{k: v for k, v in e.to_dict().items() if k in LIST_COLUMNS}, "arms": _arms_text(e)}
            for e in ExperimentStore(workspace).list(model=model, status=status)]
    return pd.DataFrame(rows, columns=LIST_COLUMNS)


class DefinitionView:
    """An experiment's definition as a notebook shows it (HTML table); attributes are the experiment's.

    ``action`` (e.g. ``"ramped"``) heads the table; ``units`` (exposed members per arm) adds a column.
    """

    def __init__(self, experiment: Experiment, *, action: str | None = None,
                 units: dict[str, int] | None = None) -> None:
        self.experiment = experiment
        self.action = action
        self.units = units

    def __getattr__(self, name: str) -> Any:  # name, status, traffic, arms ... of the Experiment
        if name.startswith("_") or name == "experiment":
            raise AttributeError(name)
        return getattr(self.experiment, name)

    def _rows(self) -> list[tuple[str, str]]:
        e = self.experiment
        ramp = " → ".join(f"{r['traffic']:g}% ({str(r['at'])[:16]})" for r in e.ramp) or "not started"
        return [("Model", e.model), ("Status", e.status),
                ("Traffic", f"{e.traffic:g}% of layer {e.layer!r} (share {e.share:g}%, buckets "
                            f"{e.bucket_range[0]}-{e.bucket_range[1] - 1})"),
                ("Ramp", ramp), ("Created", str(e.created_at or "")), ("Started", str(e.started_at or "")),
                ("Stopped", str(e.stopped_at or "")), ("Description", e.description)]

    def _repr_html_(self) -> str:
        e = self.experiment
        esc = html.escape
        head = f"{esc(self.action.capitalize())} experiment" if self.action else "Experiment"
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th>"
                       f"<td style='text-align:left'>{esc(v)}</td></tr>" for k, v in self._rows() if v)
        total = sum(a.weight for a in e.arms)
        unit_head = "<th>Members</th>" if self.units is not None else ""
        arms = "".join(
            f"<tr><td>{esc(a.name)}{' (control)' if i == 0 else ''}</td><td>{esc(a.alias)}</td>"
            f"<td>{a.weight / total:.0%}</td>"
            + (f"<td>{self.units.get(a.name, 0):,}</td>" if self.units is not None else "") + "</tr>"
            for i, a in enumerate(e.arms))
        return (f"<div class='proml-experiment'><p>{head} <b>{esc(e.name)}</b> [{esc(e.status)}]</p>"
                f"<table>{rows}</table><table><thead><tr><th>Arm</th><th>Alias</th><th>Allocation</th>"
                f"{unit_head}</tr></thead><tbody>{arms}</tbody></table></div>")

    def __repr__(self) -> str:
        return (f"{self.action} " if self.action else "") + str(self.experiment)


def _arms_text(e: Experiment) -> str:
    return ", ".join(f"{a.name}->{a.alias}" + (f" x{a.weight:g}" if a.weight != 1 else "") for a in e.arms)


def _no_units(e: Experiment) -> str:
    if e.status == "draft":
        return (f"Experiment {e.name!r} is a draft: nobody was exposed yet. Start it with "
                f"`proml experiment start {e.name}` (or %experiment {e.name} --start).")
    return (f"No exposures logged for experiment {e.name!r} yet: the ranking service logs them as it serves "
            f"{e.model!r}.")


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN / inf to None, datetimes to ISO text, tuples to lists."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.datetime, dt.date)) or hasattr(value, "isoformat"):
        return value.isoformat()
    return value
