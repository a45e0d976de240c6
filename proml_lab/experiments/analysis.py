"""The analysis a user reads: per-arm metrics, lifts with CIs, SRM, CUPED, sequential bounds and a decision.

``analyze(units)`` takes one row per randomization unit (member) and runs a pipeline of named steps:
``validate → srm → per-metric moments → fixed-horizon tests → CUPED → confidence sequence → decide``.
Every metric is reduced to per-unit ``(num, den)`` pairs (``den = 1`` for means and proportions), so one
vectorized moment computation serves all three kinds; nothing loops over units in Python.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from proml_lab.errors import ExperimentError
from proml_lab.experiments import stats

__all__ = ["ExperimentAnalysis", "analyze"]

KINDS = ("proportion", "mean", "ratio:<num>/<den>")
DECISIONS = ("ramp up", "hold", "roll back")
SRM_REASON = "hold: sample ratio mismatch — fix assignment before reading results"
LOOKS = 20


@dataclass
class ExperimentAnalysis:
    """The result of :func:`analyze`: a table per (metric, arm), the SRM check and a decision hint.

    ``table`` has one row per metric and arm (the control row carries only ``n`` and ``mean``);
    ``sequence`` (when ``time`` was given) the confidence sequence of every metric at each look.
    """

    table: pd.DataFrame
    srm: dict[str, Any]
    decision: str
    reasons: list[str]
    primary: str
    control: str
    alpha: float
    sequential: bool
    sequence: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: decision, reasons, SRM and the table's rows (NaN becomes ``None``)."""
        rows = self.table.astype(object).where(self.table.notna(), None).to_dict(orient="records")
        out = {"control": self.control, "primary": self.primary, "alpha": self.alpha,
               "sequential": self.sequential, "decision": self.decision, "reasons": list(self.reasons),
               "srm": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.srm.items()},
               "metrics": rows}
        if self.sequence is not None:
            out["sequence"] = self.sequence.astype(object).where(self.sequence.notna(), None).to_dict(
                orient="records")
        return out

    def _repr_html_(self) -> str:
        colour = {"ramp up": "#1a7f37", "hold": "#9a6700", "roll back": "#cf222e"}[self.decision]
        srm = self.srm
        srm_line = (f"SRM: counts {srm['counts']} vs expected {srm['expected']}, χ² = {srm['chi2']:.2f}, "
                    f"p = {srm['p']:.3g}" + (" — <b>FLAGGED</b>" if srm["flagged"] else " — ok"))
        shown = self.table.copy()
        for col in shown.columns:
            if col.startswith("rel") or col.endswith("_rel_lift") or col == "var_reduction":
                shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:+.2%}")
            elif shown[col].dtype.kind == "f" and col != "n":
                shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        return (f"<div><p><b style='color:{colour}'>Decision: {html.escape(self.decision)}</b> "
                f"(primary metric: {html.escape(self.primary)}, control: {html.escape(str(self.control))}, "
                f"α = {self.alpha})</p><ul>{reasons}</ul><p>{srm_line}</p>"
                f"{shown.to_html(index=False, na_rep='')}</div>")

    def plot(self):
        """A matplotlib figure: relative lift per metric with CI bars; the confidence sequence when known."""
        import matplotlib.pyplot as plt

        rows = self.table[self.table["arm"] != self.control]
        panels = 2 if self.sequence is not None else 1
        fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 0.6 * len(rows) + 1.8), squeeze=False)
        ax = axes[0, 0]
        y = np.arange(len(rows))[::-1]
        labels = [f"{m} ({a})" for m, a in zip(rows["metric"], rows["arm"])]
        lift, low, high = (100 * rows[c].to_numpy() for c in ("rel_lift", "rel_low", "rel_high"))
        xerr = np.abs(np.vstack([lift - low, high - lift]))
        ax.errorbar(lift, y, xerr=xerr, fmt="o", capsize=4,
                    label=f"{1 - self.alpha:.0%} CI")
        if "cuped_rel_lift" in rows:
            ax.plot(100 * rows["cuped_rel_lift"], y - 0.15, "s", label="CUPED")
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(y, labels)
        ax.set_xlabel("relative lift vs control (%)")
        ax.set_title(f"decision: {self.decision}")
        ax.legend(loc="best", fontsize="small")
        if self.sequence is not None:
            ax = axes[0, 1]
            seq = self.sequence[self.sequence["metric"] == self.primary]
            for arm, part in seq.groupby("arm", sort=False):
                line, = ax.plot(part["n"], part["diff"], label=f"{arm} − {self.control}")
                ax.fill_between(part["n"], part["cs_low"], part["cs_high"], alpha=0.2, color=line.get_color())
            ax.axhline(0, color="grey", lw=1)
            ax.set_xlabel("units so far")
            ax.set_ylabel(f"{self.primary}: difference")
            ax.set_title(f"always-valid {1 - self.alpha:.0%} confidence sequence")
            ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        return fig


def analyze(units: pd.DataFrame, *, arm: str = "arm", control: Any = None,
            metrics: dict[str, str] | None = None, pre: dict[str, str] | None = None,
            expected: dict[Any, float] | None = None, alpha: float = 0.05, sequential: bool = True,
            planned_n: int | None = None, time: str | None = None, looks: int = LOOKS) -> ExperimentAnalysis:
    """Analyze an A/B test from one row per randomization unit.

    Parameters
    ----------
    units : DataFrame with the ``arm`` column and one column per metric input.
    control : the control arm (default: ``"control"`` if present, else the first arm of ``expected``,
        else the first arm in sorted order).
    metrics : metric name -> kind: ``"proportion"`` (0/1 per unit, two-proportion z-test), ``"mean"`` (Welch)
        or ``"ratio:<num>/<den>"`` (per-unit sums, delta method, Welch); the name is the column for the
        first two kinds. Default: every numeric column, 0/1 ones as proportions. The first is the primary.
    pre : metric name -> pre-period covariate column; CUPED columns are added for those metrics (a ratio
        metric is CUPED-adjusted through its per-unit delta-method linearization).
    expected : planned traffic share per arm for the SRM check (default: equal).
    sequential : add always-valid confidence-sequence bounds and p-values (for peeking).
    planned_n : the planned number of units; fixes the sequential mixture (default: the units present).
    time : a column ordering units by arrival; with it ``sequence`` holds the confidence sequence of every
        metric at ``looks`` equally spaced looks (running intersection, running minimum p).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> arms = rng.choice(["control", "treatment"], 20_000)
    >>> clicked = rng.random(20_000) < np.where(arms == "treatment", 0.12, 0.10)
    >>> a = analyze(pd.DataFrame({"arm": arms, "clicked": clicked.astype(int)}))
    >>> a.decision, bool(a.srm["flagged"])
    ('ramp up', False)
    """
    alpha = stats._alpha(alpha)
    frame, codes, names, control = _validate(units, arm, control, expected)
    metrics = _metrics(frame, {arm, time, *(pre or {}).values()}, metrics)
    for m in pre or {}:
        if m not in metrics or pre[m] not in frame:
            raise ExperimentError(f"pre maps {m!r} to {pre[m]!r}, but the metric or the column is missing. "
                                  f"Metrics: {sorted(metrics)}; columns: {sorted(map(str, frame.columns))}.")
    srm = _srm(codes, names, expected)
    n_total = len(frame)
    rho = stats.rho_for(planned_n or n_total, alpha) if sequential else math.nan
    order = None
    if time is not None:
        if time not in frame:
            raise ExperimentError(f"The time column {time!r} is not in units.")
        order = np.argsort(frame[time].to_numpy(), kind="stable")
    tables, sequences = [], []
    for name, kind in metrics.items():
        num, den = _num_den(frame, name, kind)
        x_pre = None if not pre or name not in pre else frame[pre[name]].to_numpy(dtype=np.float64)
        tables.append(_metric_table(name, kind, num, den, codes, names, alpha, x_pre,
                                    rho if sequential else None))
        if sequential and order is not None:
            sequences.append(_sequence(name, num[order], den[order], codes[order], names, alpha, rho, looks))
    table = pd.concat(tables, ignore_index=True)
    sequence = pd.concat(sequences, ignore_index=True) if sequences else None
    primary = next(iter(metrics))
    decision, reasons = _decide(table, primary, names[0], srm["flagged"], sequential, alpha)
    return ExperimentAnalysis(table, srm, decision, reasons, primary, names[0], alpha, sequential, sequence)


def _validate(units, arm, control, expected):
    """Check the frame; return it, arm codes with control = 0, arm names (control first) and the control."""
    if not isinstance(units, pd.DataFrame) or arm not in units:
        raise ExperimentError(f"units must be a pandas DataFrame with an {arm!r} column (one row per unit).")
    present = pd.unique(units[arm])
    if pd.isna(present).any():
        raise ExperimentError(f"The {arm!r} column has missing values; every unit needs an arm.")
    arms = list(expected) if expected else sorted(present, key=str)
    extra = [a for a in present if a not in arms]
    if extra:
        raise ExperimentError(f"Arms {extra} are not in expected; expected arms: {arms}.")
    if control is None:
        control = "control" if "control" in arms else arms[0]
    if control not in arms:
        raise ExperimentError(f"Control arm {control!r} is not among the arms {arms}.")
    names = [control] + [a for a in arms if a != control]
    if len(names) < 2:
        raise ExperimentError(f"An experiment needs at least two arms. Got {names}.")
    codes = pd.Categorical(units[arm], categories=names).codes.astype(np.intp)
    return units, codes, names, control


def _metrics(frame, skip, metrics):
    """The metric -> kind mapping, checked (default: numeric columns not in ``skip``; 0/1 = proportion)."""
    if metrics is None:
        metrics = {}
        for col in frame.columns:
            if col in skip or not pd.api.types.is_numeric_dtype(frame[col]):
                continue
            values = frame[col].dropna()
            metrics[col] = "proportion" if values.isin([0, 1]).all() else "mean"
    if not metrics:
        raise ExperimentError("No metrics to analyze: pass metrics={'name': 'proportion' | 'mean' | ...}.")
    for name, kind in metrics.items():
        if kind in ("proportion", "mean"):
            cols = [name]
        elif isinstance(kind, str) and kind.startswith("ratio:") and kind.count("/") == 1:
            cols = kind[6:].split("/")
        else:
            raise ExperimentError(f"The kind of metric {name!r} must be one of {KINDS}. "
                                  f"Got {kind!r} instead.")
        missing = [c for c in cols if c not in frame]
        if missing:
            raise ExperimentError(f"Metric {name!r} needs columns {missing}, which units lacks.")
    return dict(metrics)


def _num_den(frame, name, kind):
    """Per-unit numerator and denominator (denominator 1 except for ratios); NaN counts as 0 events."""
    if kind.startswith("ratio:"):
        n_col, d_col = kind[6:].split("/")
        return (frame[n_col].fillna(0).to_numpy(dtype=np.float64),
                frame[d_col].fillna(0).to_numpy(dtype=np.float64))
    num = frame[name].fillna(0).to_numpy(dtype=np.float64)
    if kind == "proportion" and not np.isin(num, (0.0, 1.0)).all():
        raise ExperimentError(f"Metric {name!r} is a proportion, so its values must be 0 or 1.")
    return num, np.ones_like(num)


def _srm(codes, names, expected):
    counts = np.bincount(codes, minlength=len(names))
    weights = np.array([expected[a] for a in names], dtype=np.float64) if expected else np.ones(len(names))
    r = stats.srm_test(counts, weights)
    return {"arms": list(names), "counts": counts.tolist(), "expected": np.round(r.expected, 1).tolist(),
            "chi2": float(r.chi2), "p": float(r.p_value), "flagged": bool(r.flagged)}


def _moments(num, den, codes, k):
    """Per-arm n, ratio R = Σnum/Σden and the linearized per-unit variance (delta method), by bincount."""
    n = np.bincount(codes, minlength=k).astype(np.float64)
    s_num, s_den = np.bincount(codes, num, k), np.bincount(codes, den, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = s_num / s_den
        resid = num - ratio[codes] * den
        mean_den = s_den / n
        unit_var = np.bincount(codes, resid * resid, k) / (n - 1) / mean_den ** 2
    return n, ratio, unit_var, mean_den


def _metric_table(name, kind, num, den, codes, names, alpha, x_pre, rho):
    """Rows of one metric: control first, then every treatment against it."""
    k = len(names)
    n, mean, var, mean_den = _moments(num, den, codes, k)
    if kind == "proportion":
        succ = np.bincount(codes, num, k)
        fixed = stats.two_proportion_test(succ[0], n[0], succ[1:], n[1:], alpha)
        var = mean * (1.0 - mean)
        test = "z"
    else:
        fixed = stats.welch_from_stats(mean[0], var[0], n[0], mean[1:], var[1:], n[1:], alpha)
        test = "welch"
    rel = stats.relative_lift(mean[0], var[0], n[0], mean[1:], var[1:], n[1:], alpha)
    pad = lambda v: np.r_[np.nan, np.atleast_1d(v)]  # noqa: E731 — the control row has no lift
    out = pd.DataFrame({
        "metric": name, "kind": kind, "arm": names, "n": n.astype(np.int64), "mean": mean,
        "lift": pad(fixed.estimate), "lift_low": pad(fixed.ci_low), "lift_high": pad(fixed.ci_high),
        "rel_lift": pad(rel.estimate), "rel_low": pad(rel.ci_low), "rel_high": pad(rel.ci_high),
        "p_value": pad(fixed.p_value), "test": [""] + [test] * (k - 1)})
    seq_y = None
    if x_pre is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            lin = mean[codes] + (num - mean[codes] * den) / mean_den[codes]
        x_pre = np.where(np.isnan(x_pre), np.nanmean(x_pre), x_pre)
        adj = stats.cuped(lin, x_pre, groups=codes)
        a_mean = np.bincount(codes, adj.adjusted, k) / n
        a_var = np.bincount(codes, (adj.adjusted - a_mean[codes]) ** 2, k) / (n - 1)
        c = stats.welch_from_stats(a_mean[0], a_var[0], n[0], a_mean[1:], a_var[1:], n[1:], alpha)
        c_rel = stats.relative_lift(a_mean[0], a_var[0], n[0], a_mean[1:], a_var[1:], n[1:], alpha)
        out = out.assign(cuped_lift=pad(c.estimate), cuped_low=pad(c.ci_low), cuped_high=pad(c.ci_high),
                         cuped_rel_lift=pad(c_rel.estimate), cuped_p=pad(c.p_value),
                         var_reduction=pad(np.full(k - 1, adj.variance_reduction)))
        seq_y = (c.estimate, a_var)
    if rho is not None:
        diff, v = seq_y if seq_y is not None else (np.atleast_1d(fixed.estimate), var)
        n_pair = n[0] + n[1:]
        cs = stats.confidence_sequence(diff, n_pair * (v[0] / n[0] + v[1:] / n[1:]), n_pair, alpha, rho)
        out = out.assign(cs_low=pad(cs.low), cs_high=pad(cs.high), p_always_valid=pad(cs.p_value))
    return out


def _sequence(name, num, den, codes, names, alpha, rho, looks):
    """The confidence sequence at ``looks`` equally spaced looks, from cumulative per-arm sums (no loop)."""
    k, total = len(names), len(codes)
    at = np.unique(np.linspace(0, total, looks + 1)[1:].round().astype(np.intp)) - 1
    onehot = codes[:, None] == np.arange(k)
    # cumulative sufficient statistics per arm: n, Σnum, Σden, Σnum², Σnum·den, Σden²
    per_unit = (np.ones_like(num), num, den, num * num, num * den, den * den)
    cums = [np.cumsum(onehot * v[:, None], axis=0)[at] for v in per_unit]
    n, s_n, s_d, s_nn, s_nd, s_dd = cums
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = s_n / s_d
        unit_var = (s_nn - 2 * ratio * s_nd + ratio ** 2 * s_dd) / (n - 1) / (s_d / n) ** 2
        diff = ratio[:, 1:] - ratio[:, :1]
        v_diff = unit_var[:, :1] / n[:, :1] + unit_var[:, 1:] / n[:, 1:]
        n_pair = n[:, :1] + n[:, 1:]
    fixed = stats.welch_from_stats(ratio[:, :1], unit_var[:, :1], n[:, :1], ratio[:, 1:], unit_var[:, 1:],
                                   n[:, 1:], alpha)
    cs = stats.confidence_sequence(diff.T, (n_pair * v_diff).T, n_pair.T, alpha, rho, running=True)
    looks_n = at + 1
    return pd.DataFrame({
        "metric": name, "arm": np.repeat(names[1:], len(at)),
        "look": np.tile(np.arange(1, len(at) + 1), k - 1),
        "n": np.tile(looks_n, k - 1), "diff": diff.T.ravel(), "cs_low": np.ravel(cs.low),
        "cs_high": np.ravel(cs.high), "p_always_valid": np.ravel(cs.p_value),
        "p_fixed": np.asarray(fixed.p_value).T.ravel()})


def _decide(table, primary, control, srm_flagged, sequential, alpha):
    """The decision hint and its reasons (all metrics are read as higher-is-better)."""
    if srm_flagged:
        return "hold", [SRM_REASON]
    rows = table[table["arm"] != control]
    est = rows["cuped_lift"].fillna(rows["lift"]) if "cuped_lift" in rows else rows["lift"]
    p = rows["p_always_valid"] if sequential else (
        rows["cuped_p"].fillna(rows["p_value"]) if "cuped_p" in rows else rows["p_value"])
    rows = rows.assign(d_est=est, d_p=p, d_sig=p < alpha)
    which = "always-valid p" if sequential else "p"
    reasons, decision = [], "hold"
    prim = rows[rows["metric"] == primary]
    worse = prim[prim["d_sig"] & (prim["d_est"] < 0)]
    if len(worse):
        for r in worse.itertuples():
            reasons.append(f"roll back: {primary} is significantly worse in {r.arm} "
                           f"({r.rel_lift:+.2%}, {which} = {r.d_p:.3g})")
        return "roll back", reasons
    for r in prim[prim["d_sig"] & (prim["d_est"] > 0)].itertuples():
        harm = rows[(rows["arm"] == r.arm) & rows["d_sig"] & (rows["d_est"] < 0)]
        if len(harm):
            reasons.append(f"hold: {primary} improved in {r.arm} ({r.rel_lift:+.2%}) but "
                           + ", ".join(f"{h.metric} is significantly worse ({h.rel_lift:+.2%})"
                                       for h in harm.itertuples()))
        else:
            decision = "ramp up"
            reasons.append(f"ramp up: {primary} improved in {r.arm} ({r.rel_lift:+.2%}, "
                           f"{which} = {r.d_p:.3g}) with no significant harm on other metrics")
    if decision == "ramp up":
        reasons = [r for r in reasons if r.startswith("ramp up")]
    elif not reasons:
        reasons.append(f"hold: no significant difference on {primary} yet ({which} >= {alpha})")
    return decision, reasons
