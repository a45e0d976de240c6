"""Experiments: calibration of the A/B analysis on simulated traffic (false positives, power, SRM).

    python bench/bench_experiments.py [--experiments 500] [--units 40000]

Members are the randomization units, drawn like the synthetic world's ground truth
(``proml_lab.worlds.config.GroundTruth``): a member click bias ``N(0, 0.8²)`` loaded 0.35 on an activity
factor, ``logit(CTR) = -2.6 + bias`` (about 9.6% clicks per exposure), ``1 + Poisson`` exposures during the
experiment with an activity-driven rate (mean 4), and a pre-period twice as long for CUPED (the member's
pre-period clicks). Metrics: clicks per exposure (ratio metric, delta method + Welch) and "clicked at all"
(proportion, two-proportion z-test). Every experiment goes through ``analyze()`` — the code a user reads —
with 20 looks for the sequential test (always-valid p below alpha at any look = a rejection).

1. A/A: false-positive rates, fixed horizon and sequential, next to naive peeking at the fixed-horizon p.
2. An injected +5% relative CTR lift: detection rate vs the normal-approximation power, with CUPED.
3. SRM: fair splits (false alarms) and biased assignments (50.5/49.5, 1% of treatment units lost).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from proml_lab.experiments import stats  # noqa: E402
from proml_lab.experiments.analysis import analyze  # noqa: E402
from proml_lab.worlds.config import GroundTruth  # noqa: E402

ALPHA = 0.05
LOOKS = 20
LIFT = 0.05
METRICS = {"ctr": "ratio:clicks/exposures", "clicked": "proportion"}
PRE = {"ctr": "pre_clicks", "clicked": "pre_clicks"}


def members(rng: np.random.Generator, n: int, *, lift: float = 0.0, p_treatment: float = 0.5) -> pd.DataFrame:
    """``n`` simulated members: arm, in-experiment clicks/exposures, pre-period clicks, arrival time."""
    truth = GroundTruth()
    activity = rng.normal(size=n)
    load = truth.member_activity_loading
    bias = truth.member_bias_sd * (load * activity + np.sqrt(1 - load ** 2) * rng.normal(size=n))
    ctr = 1.0 / (1.0 + np.exp(2.6 - bias))
    rate = 3.0 * np.exp(0.5 * activity - 0.125)
    treated = rng.random(n) < p_treatment
    exposures = 1 + rng.poisson(rate)
    clicks = rng.binomial(exposures, np.minimum(ctr * np.where(treated, 1.0 + lift, 1.0), 1.0))
    pre_clicks = rng.binomial(rng.poisson(2.0 * rate), ctr)
    return pd.DataFrame({"arm": np.where(treated, "treatment", "control"), "clicks": clicks,
                         "exposures": exposures, "clicked": (clicks > 0).astype(np.int8),
                         "pre_clicks": pre_clicks, "t": np.arange(n)})


def run_many(seed: int, count: int, n: int, *, lift: float = 0.0) -> pd.DataFrame:
    """Analyze ``count`` simulated experiments (a loop per experiment; everything inside is vectorized)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a = analyze(members(rng, n, lift=lift), metrics=METRICS, pre=PRE, alpha=ALPHA, time="t",
                    planned_n=n, looks=LOOKS)
        tr = a.table.set_index("metric")
        tr = tr[tr["arm"] == "treatment"]
        seq = a.sequence.groupby("metric")
        out.append({
            **{f"{m}_p": tr.at[m, "p_value"] for m in METRICS},
            **{f"{m}_cuped_p": tr.at[m, "cuped_p"] for m in METRICS},
            **{f"{m}_seq_p": v for m, v in seq["p_always_valid"].min().items()},
            **{f"{m}_peek_p": v for m, v in seq["p_fixed"].min().items()},
            "ctr_var_reduction": tr.at["ctr", "var_reduction"],
            "clicked_var_reduction": tr.at["clicked", "var_reduction"],
            "srm": a.srm["flagged"], "decision": a.decision})
    return pd.DataFrame(out)


def rate(hits: np.ndarray) -> tuple[float, float, float, int]:
    """Observed rate with its exact (Clopper–Pearson) 95% interval."""
    k, n = int(np.sum(hits)), len(hits)
    ci = sps.binomtest(k, n).proportion_ci(0.95, method="exact")
    return k / n, ci.low, ci.high, n


def fmt(r: tuple[float, float, float, int]) -> str:
    d = 4 if r[2] < 0.01 else 3
    return f"{r[0]:.{d}f} [{r[1]:.{d}f}, {r[2]:.{d}f}]"


def predicted_power(n: int, lift: float) -> dict[str, float]:
    """Normal-approximation power from a 1M-member population (true variances and CUPED reduction)."""
    pop = members(np.random.default_rng(12345), 1_000_000)
    r = stats.ratio_metric(pop["clicks"].to_numpy(), pop["exposures"].to_numpy())
    vr = stats.cuped(r.linearized, pop["pre_clicks"].to_numpy(np.float64)).variance_reduction
    se = np.sqrt(r.unit_var / (n / 2) * 2)
    effect = lift * r.ratio
    p = float((pop["clicked"]).mean())
    # "clicked at all" under the lift: the population share with >=1 click when CTR is multiplied by 1+lift
    lifted = members(np.random.default_rng(12345), 1_000_000, lift=lift, p_treatment=1.0)
    p_t = float(lifted["clicked"].mean())
    se_p = np.sqrt(p * (1 - p) / (n / 2) + p_t * (1 - p_t) / (n / 2))
    pre = pop["pre_clicks"].to_numpy(np.float64)
    vr_p = stats.cuped(pop["clicked"].to_numpy(np.float64), pre).variance_reduction
    return {"ctr": float(stats.normal_power(effect, se, ALPHA)),
            "ctr_cuped": float(stats.normal_power(effect, se * np.sqrt(1 - vr), ALPHA)),
            "clicked": float(stats.normal_power(p_t - p, se_p, ALPHA)),
            "clicked_cuped": float(stats.normal_power(p_t - p, se_p * np.sqrt(1 - vr_p), ALPHA)),
            "ctr_true": float(r.ratio), "ctr_unit_var": float(r.unit_var), "ctr_var_reduction": float(vr),
            "clicked_true": p, "clicked_var_reduction": float(vr_p)}


def srm_rates(count: int) -> dict[str, tuple]:
    """SRM flag rates on arm counts only (binomial draws of per-unit assignment), many experiments at once."""
    rng = np.random.default_rng(7)

    out = {}
    cases = {"fair 50/50, 200k units": (200_000, 0.5, 1.0),
             "fair 50/50, 1M units": (1_000_000, 0.5, 1.0),
             "50.5/49.5 split, 200k units": (200_000, 0.505, 1.0),
             "1% of treatment units lost, 200k units": (200_000, 0.5, 0.99),
             "1% of treatment units lost, 1M units": (1_000_000, 0.5, 0.99)}
    for name, (n_total, p_t, keep) in cases.items():
        n_t = rng.binomial(n_total, p_t, size=count)
        counts = np.stack([n_total - n_t, rng.binomial(n_t, keep)], axis=1)
        flagged = stats.srm_test(counts, [0.5, 0.5]).flagged
        # expected detection: noncentral chi-square with the mismatch's noncentrality
        share_t = p_t * keep / (1 - p_t + p_t * keep)
        n_eff = n_total * (1 - p_t + p_t * keep)
        ncp = n_eff * 4 * (share_t - 0.5) ** 2  # Σ (p_k - w_k)²/w_k over two arms of weight 1/2
        crit = sps.chi2.isf(stats.SRM_THRESHOLD, 1)
        out[name] = (rate(flagged), float(sps.ncx2.sf(crit, 1, ncp)) if ncp > 0 else stats.SRM_THRESHOLD)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--units", type=int, default=40_000)
    args = parser.parse_args()
    e, n = args.experiments, args.units
    t0 = time.perf_counter()
    aa = run_many(1, e, n)
    t_aa = time.perf_counter() - t0
    print(f"A/A: {e} experiments in {t_aa:.1f} s", flush=True)
    ab = run_many(2, e, n, lift=LIFT)
    print(f"A/B: {e} experiments in {time.perf_counter() - t0 - t_aa:.1f} s", flush=True)
    pred = predicted_power(n, LIFT)
    srm = srm_rates(100_000)
    elapsed = time.perf_counter() - t0

    rows, extra = [], {"experiments": e, "units": n, "alpha": ALPHA, "looks": LOOKS, "lift": LIFT,
                       "predicted": pred, "seconds": elapsed}

    def row(check, r, expected, verdict):
        rows.append([check, fmt(r), expected, r[3], verdict])
        extra.setdefault("rates", {})[check] = {"rate": r[0], "low": r[1], "high": r[2], "runs": r[3]}

    def ok(r, target, *, at_most=False):
        """The exact interval is consistent with the target (or, for ``at_most``, with at most the target)."""
        if r[1] > target:
            return "too high"
        return "ok" if at_most or r[2] >= target else "conservative"

    labels = (("ctr", "clicks/exposure (Welch, delta method)"), ("clicked", "clicked at all (z-test)"))
    for m, label in labels:
        r = rate(aa[f"{m}_p"] < ALPHA)
        row(f"A/A false positives, {label}, fixed horizon", r, f"≈ {ALPHA}", ok(r, ALPHA))
        r = rate(aa[f"{m}_cuped_p"] < ALPHA)
        row(f"A/A false positives, {label}, CUPED", r, f"≈ {ALPHA}", ok(r, ALPHA))
        r = rate(aa[f"{m}_seq_p"] < ALPHA)
        row(f"A/A false positives, {label}, sequential, {LOOKS} looks", r, f"≤ {ALPHA}",
            ok(r, ALPHA, at_most=True))
        r = rate(aa[f"{m}_peek_p"] < ALPHA)
        row(f"A/A naive peeking at the fixed-horizon p, {label}, {LOOKS} looks (what the CS prevents)", r,
            "> alpha (inflated)", "(info)")
    r = rate(aa["srm"])
    row("A/A SRM false alarms (fair split, analyze())", r, "≈ 0.001", ok(r, 0.001))
    r = rate(aa["decision"] != "hold")
    row("A/A decision other than 'hold'", r, "≤ 0.05", "(info)")
    for m, label in (("ctr", "clicks/exposure"), ("clicked", "clicked at all")):
        kinds = (("p", "fixed horizon"), ("cuped_p", "CUPED"), ("seq_p", f"sequential, {LOOKS} looks"))
        for key, what in kinds:
            r = rate(ab[f"{m}_{key}"] < ALPHA)
            p_key = m + ("_cuped" if key == "cuped_p" else "")
            expected = f"{pred[p_key]:.3f} (normal approx.)" if key != "seq_p" else "below fixed horizon"
            verdict = "(info)" if key == "seq_p" else ("ok" if r[1] <= pred[p_key] <= r[2] else "off")
            row(f"power, +{LIFT:.0%} CTR, {label}, {what}", r, expected, verdict)
    extra["observed_var_reduction"] = {"ctr": float(aa["ctr_var_reduction"].mean()),
                                       "clicked": float(aa["clicked_var_reduction"].mean())}
    for name, (r, expected) in srm.items():
        fair = name.startswith("fair")
        verdict = ok(r, stats.SRM_THRESHOLD) if fair else ("ok" if r[1] <= expected <= r[2] else "off")
        row(f"SRM flag rate (p < 0.001), {name}", r, f"{expected:.3f}" + (" (false alarm)" if fair else
                                                                             " (noncentral χ²)"), verdict)
    rows.append([f"wall time, {2 * e} simulated experiments x {n:,} members through analyze() + SRM draws",
                 f"{elapsed:.0f} s", "—", "—", "(info)"])
    notes = (
        f"Units are members ({n:,} per experiment, Bernoulli 50/50 assignment), simulated like the world's "
        "ground truth: logit CTR = -2.6 + member bias (sd 0.8, loaded 0.35 on activity), 1 + Poisson "
        "exposures (mean 4), a pre-period twice as long for CUPED (covariate: the member's pre-period "
        "clicks; "
        f"observed variance reduction {extra['observed_var_reduction']['ctr']:.1%} on CTR, "
        f"{extra['observed_var_reduction']['clicked']:.1%} on clicked). Rates carry exact (Clopper–Pearson) "
        "95% intervals; 'ok' means the interval is consistent with the target. Sequential = the always-valid "
        "normal-mixture confidence sequence (Howard et al. 2021 / Waudby-Smith et al. 2023; = Johari et "
        "al.'s "
        f"mSPRT with a normal prior), mixture tuned at the planned n, rejecting if any of {LOOKS} equally "
        "spaced looks has always-valid p < alpha. Predicted power: two-sided normal approximation with the "
        "true per-unit variance of a 1M-member population (and 1 - CUPED's variance reduction); SRM "
        "detection predicted by the noncentral chi-square. SRM rows use 100,000 experiments of arm counts.")
    path = save("experiments", title="Experiments: A/B analysis calibration on simulated traffic",
                command="python bench/bench_experiments.py",
                columns=["check", "observed [95% CI]", "expected", "runs", "verdict"], rows=rows, notes=notes,
                extra=extra)
    for r in rows:
        print(" | ".join(str(c) for c in r))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
