"""Drift measures: PSI and its edge cases, Jensen–Shannon distance, score drift, AUC per window, and the
report's statuses under default and per-feature thresholds."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from proml_lab.health import (
    DriftThresholds,
    HealthError,
    auc_decay,
    drift_report,
    js_distance,
    psi,
    score_drift,
)
from proml_lab.health import drift
from proml_lab.health.drift import Threshold
from proml_lab.training.metrics import auc

rng = np.random.default_rng(11)


def test_docstring_examples_run():
    assert doctest.testmod(drift, raise_on_error=False).failed == 0


def test_psi_of_identical_distributions_is_about_zero_and_of_a_shifted_one_above_alert():
    ref = rng.normal(0, 1, 20_000)
    assert psi(ref, rng.normal(0, 1, 20_000)) < 0.01
    assert psi(ref, ref) == 0.0
    assert psi(ref, rng.normal(0.5, 1, 20_000)) > 0.2
    assert 0.0 < psi(ref, rng.normal(0.1, 1, 20_000)) < 0.1


def test_psi_handles_ties_constants_nans_and_empty_bins():
    ties = np.repeat([0.0, 1.0, 5.0], [800, 150, 50])  # most quantiles coincide
    assert psi(ties, ties) == 0.0
    assert psi(ties, np.repeat([0.0, 1.0, 5.0], [50, 150, 800])) > 1
    assert psi(np.full(100, 3.0), np.full(50, 3.0)) == 0.0  # constant column
    assert psi(np.full(100, 3.0), np.full(50, 4.0)) == 0.0  # same bin (>= 3): PSI sees bins, not values
    assert psi(np.full(100, 3.0), np.full(50, 2.0)) > 5  # everything moved to the empty bin below
    with_nan = np.where(rng.random(1000) < 0.3, np.nan, rng.normal(0, 1, 1000))
    assert psi(with_nan, with_nan) == 0.0
    assert psi(rng.normal(0, 1, 1000), with_nan) > 0.2  # missing values are a bin of their own
    assert np.isfinite(psi(rng.normal(0, 1, 1000), rng.normal(100, 1, 1000)))  # empty bins: epsilon
    with pytest.raises(HealthError, match="current is empty"):
        psi([1.0, 2.0], [])
    with pytest.raises(HealthError, match=r"The 'bins' parameter of psi must be an int in \[1, inf\)"):
        psi([1.0], [1.0], bins=0)


def test_js_distance_of_disjoint_categories_is_one_and_unseen_ones_count():
    assert js_distance(["a", "b", "a"], ["c", "d"]) == 1.0
    assert js_distance(["a", "b"], ["b", "a"]) == 0.0
    assert 0 < js_distance(["a"] * 90 + ["b"] * 10, ["a"] * 80 + ["b"] * 10 + ["new"] * 10) < 0.3
    assert js_distance(["a", None, None], ["a", None, None]) == 0.0
    assert js_distance(["a", "a"], ["a", None]) > 0


def test_score_drift_reports_psi_and_ks():
    ref = rng.beta(2, 5, 5000)
    same, moved = score_drift(ref, rng.beta(2, 5, 5000)), score_drift(ref, rng.beta(5, 2, 5000))
    assert same["psi"] < 0.1 and same["ks"] < 0.05 and same["ks_pvalue"] > 0.001
    assert moved["psi"] > 0.2 and moved["ks"] > 0.5 and moved["ks_pvalue"] < 1e-6


def test_auc_decay_matches_auc_per_window():
    n = 6000
    ts = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(rng.integers(0, 3 * 86_400, n), unit="s")
    y = (rng.random(n) < 0.3).astype(int)
    day = np.asarray((ts - ts.min().floor("D")).days)
    signal = np.array([2.0, 1.0, 0.0])[day]  # the model decays day by day
    score = y * signal + rng.normal(0, 1, n)
    table = auc_decay(y, score, ts, "1d")
    assert table.columns.tolist() == ["window", "rows", "positives", "auc"]
    assert table["window"].tolist() == list(pd.date_range("2026-01-05", periods=3, freq="D", tz="UTC"))
    for d in range(3):
        assert table["auc"][d] == pytest.approx(auc(y[day == d], score[day == d]))
    assert table["auc"].is_monotonic_decreasing and table["auc"].iloc[-1] == pytest.approx(0.5, abs=0.05)
    one_class = auc_decay([1, 1], [0.2, 0.3], pd.to_datetime(["2026-01-05", "2026-01-06"]), "1d")
    assert one_class["auc"].isna().all() and one_class["rows"].tolist() == [1, 1]


def test_drift_report_statuses_with_default_and_per_feature_thresholds():
    n = 5000
    ref = pd.DataFrame({
        "stable": rng.normal(0, 1, n), "moved": rng.normal(0, 1, n), "slightly": rng.normal(0, 1, n),
        "region": rng.choice(["eu", "us", "asia"], n, p=[0.5, 0.3, 0.2]),
    })
    cur = pd.DataFrame({
        "stable": rng.normal(0, 1, n), "moved": rng.normal(1, 1, n), "slightly": rng.normal(0.4, 1, n),
        "region": rng.choice(["eu", "us", "asia"], n, p=[0.2, 0.3, 0.5]),
    })
    kinds = {"stable": "numeric", "moved": "numeric", "slightly": "numeric", "region": "categorical"}
    report = drift_report(ref, cur, kinds)
    assert report.columns.tolist() == ["feature", "kind", "measure", "value", "status"]
    status = dict(zip(report["feature"], report["status"], strict=True))
    assert status == {"stable": "ok", "moved": "alert", "slightly": "warn", "region": "alert"}
    assert dict(zip(report["feature"], report["measure"], strict=True))["region"] == "js"
    custom = drift_report(ref, cur, kinds, DriftThresholds(features={"moved": Threshold(warn=1, alert=2)}))
    assert dict(zip(custom["feature"], custom["status"], strict=True))["moved"] == "ok"
    as_dict = drift_report(ref, cur, kinds, {"psi": {"warn": 0.5, "alert": 0.9}})
    assert dict(zip(as_dict["feature"], as_dict["status"], strict=True))["slightly"] == "ok"
    with pytest.raises(HealthError, match="Unknown kind 'text' for feature 'region'"):
        drift_report(ref, cur, {"region": "text"})
    with pytest.raises(HealthError, match="'nope' is not a column of the reference frame"):
        drift_report(ref, cur, {"nope": "numeric"})
