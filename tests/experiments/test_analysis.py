"""analyze(): the table, the SRM check and the decision a user reads, on constructed experiments."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from proml_lab.errors import ExperimentError
from proml_lab.experiments import analysis
from proml_lab.experiments.analysis import SRM_REASON, analyze

METRICS = {"ctr": "ratio:clicks/exposures", "clicked": "proportion", "dwell": "mean"}


def units(n=40_000, *, seed=0, ctr_lift=0.0, dwell_lift=0.0, p_treatment=0.5):
    """Members with heterogeneous click propensity, Poisson exposures and a correlated pre-period."""
    rng = np.random.default_rng(seed)
    bias = rng.normal(scale=0.8, size=n)
    ctr = 1 / (1 + np.exp(2.6 - bias))
    treated = rng.random(n) < p_treatment
    exposures = 1 + rng.poisson(3.0, n)
    clicks = rng.binomial(exposures, np.minimum(ctr * np.where(treated, 1 + ctr_lift, 1.0), 1))
    dwell = 30 + 20 * bias + rng.normal(scale=10, size=n) + dwell_lift * treated
    return pd.DataFrame({"arm": np.where(treated, "treatment", "control"), "clicks": clicks,
                         "exposures": exposures, "clicked": (clicks > 0).astype(int), "dwell": dwell,
                         "pre_clicks": rng.binomial(rng.poisson(6.0, n), ctr),
                         "pre_dwell": 30 + 20 * bias + rng.normal(scale=10, size=n), "t": rng.random(n)})


def test_docstring_examples_run():
    assert doctest.testmod(analysis, raise_on_error=False).failed == 0


def test_table_matches_direct_computations():
    df = units(seed=1, ctr_lift=0.05, dwell_lift=0.5)
    a = analyze(df, metrics=METRICS, sequential=False)
    t = a.table.set_index(["metric", "arm"])
    c, tr = df[df.arm == "control"], df[df.arm == "treatment"]
    ref = sps.ttest_ind(tr.dwell, c.dwell, equal_var=False)
    assert t.loc[("dwell", "treatment"), "p_value"] == pytest.approx(ref.pvalue)
    assert t.loc[("dwell", "treatment"), "lift"] == pytest.approx(tr.dwell.mean() - c.dwell.mean())
    assert t.loc[("ctr", "control"), "mean"] == pytest.approx(c.clicks.sum() / c.exposures.sum())
    p_c, p_t = c.clicked.mean(), tr.clicked.mean()
    pooled = df.clicked.mean()
    z = (p_t - p_c) / np.sqrt(pooled * (1 - pooled) * (1 / len(c) + 1 / len(tr)))
    assert t.loc[("clicked", "treatment"), "p_value"] == pytest.approx(2 * sps.norm.sf(abs(z)))
    assert t.loc[("clicked", "treatment"), "test"] == "z"
    assert t.loc[("ctr", "treatment"), "rel_lift"] == pytest.approx(
        t.loc[("ctr", "treatment"), "mean"] / t.loc[("ctr", "control"), "mean"] - 1)
    assert list(t.loc[("ctr", "treatment"), ["rel_low", "rel_high"]]) == sorted(
        t.loc[("ctr", "treatment"), ["rel_low", "rel_high"]])
    assert "cs_low" not in a.table and a.primary == "ctr" and a.control == "control"


def test_cuped_columns_narrow_the_interval():
    a = analyze(units(seed=2, dwell_lift=0.5), metrics={"dwell": "mean", "ctr": METRICS["ctr"]},
                pre={"dwell": "pre_dwell", "ctr": "pre_clicks"})
    row = a.table[a.table.arm == "treatment"].set_index("metric")
    for m in ("dwell", "ctr"):
        assert row.at[m, "var_reduction"] > 0.02
        width, cuped_width = row.at[m, "lift_high"] - row.at[m, "lift_low"], row.at[m, "cuped_high"] - row.at[
            m, "cuped_low"]
        assert cuped_width < width
    assert row.at["dwell", "var_reduction"] > 0.5  # pre-period dwell shares the member effect


def test_sequential_bounds_are_wider_than_fixed_and_valid_p_is_larger():
    a = analyze(units(seed=3, ctr_lift=0.05), metrics=METRICS, time="t", looks=10)
    row = a.table[a.table.arm == "treatment"].iloc[0]
    assert row.cs_low < row.lift_low < row.lift_high < row.cs_high
    assert row.p_always_valid >= row.p_value
    seq = a.sequence[a.sequence.metric == "ctr"]
    assert list(seq.look) == list(range(1, 11)) and seq.n.iloc[-1] == 40_000
    assert (np.diff(seq.cs_high) <= 1e-15).all() and (np.diff(seq.p_always_valid) <= 0).all()


def test_srm_flags_a_505_495_split_on_200k_units_and_holds():
    rng = np.random.default_rng(4)
    n = 200_000
    arms = rng.permutation(np.repeat(["treatment", "control"], [101_000, 99_000]))  # exactly 50.5/49.5
    df = pd.DataFrame({"arm": arms, "clicked": (rng.random(n) < 0.1).astype(int)})
    a = analyze(df)
    assert a.srm["flagged"] and a.srm["p"] < 0.001
    assert a.decision == "hold" and a.reasons == [SRM_REASON]
    fair = df.assign(arm=rng.permutation(np.repeat(["treatment", "control"], [100_150, 99_850])))
    assert not analyze(fair).srm["flagged"]
    planned = df.assign(arm=np.where(rng.random(n) < 0.8, "treatment", "control"))
    assert not analyze(planned, expected={"control": 0.2, "treatment": 0.8}).srm["flagged"]


def test_decisions_on_constructed_experiments():
    up = analyze(units(seed=5, ctr_lift=0.15), metrics=METRICS)
    assert up.decision == "ramp up" and up.reasons[0].startswith("ramp up: ctr improved in treatment")
    down = analyze(units(seed=6, ctr_lift=-0.15), metrics=METRICS)
    assert down.decision == "roll back" and "ctr is significantly worse" in down.reasons[0]
    flat = analyze(units(seed=7), metrics=METRICS)
    assert flat.decision == "hold" and "no significant difference on ctr" in flat.reasons[0]
    harm = analyze(units(seed=8, ctr_lift=0.15, dwell_lift=-3.0), metrics=METRICS)
    assert harm.decision == "hold" and "dwell is significantly worse" in harm.reasons[0]


def test_multiple_arms_and_explicit_control():
    df = units(seed=9)
    rng = np.random.default_rng(9)
    df["arm"] = rng.choice(["a", "b", "c"], len(df))
    a = analyze(df, control="b", metrics={"clicked": "proportion"}, expected={"a": 1, "b": 1, "c": 1})
    assert list(a.table.arm) == ["b", "a", "c"] and a.control == "b"
    assert a.srm["arms"] == ["b", "a", "c"] and len(a.srm["counts"]) == 3


def test_outputs_render():
    a = analyze(units(seed=10, ctr_lift=0.1), metrics=METRICS, pre={"ctr": "pre_clicks"}, time="t")
    d = a.to_dict()
    json.dumps(d)
    assert d["decision"] == a.decision and len(d["metrics"]) == 6 and "sequence" in d
    html = a._repr_html_()
    assert "Decision:" in html and "SRM" in html and "<table" in html
    import matplotlib

    matplotlib.use("Agg")
    fig = a.plot()
    assert len(fig.axes) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"metrics": {"ctr": "median"}}, "must be one of"),
    ({"metrics": {"ctr": "ratio:clicks/views"}}, "needs columns"),
    ({"metrics": {"dwell": "proportion"}}, "must be 0 or 1"),
    ({"control": "nobody"}, "Control arm 'nobody'"),
    ({"expected": {"control": 1}}, "not in expected"),
    ({"pre": {"clicked": "nope"}}, "pre maps"),
])
def test_bad_requests_raise_experiment_errors(kwargs, message):
    with pytest.raises(ExperimentError, match=message):
        analyze(units(n=1000), **{"metrics": METRICS, **kwargs})
