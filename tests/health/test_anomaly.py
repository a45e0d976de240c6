"""Detectors on a synthetic seasonal series: they find injected spikes and dips, not the seasonality;
the sensitivity knob; errors that say what is wrong."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from proml_lab.health import HealthError, MeanVariance, PercentChange, SeasonalModel
from proml_lab.health import anomaly
from proml_lab.health.anomaly import COLUMNS

def test_docstring_examples_run():
    assert doctest.testmod(anomaly, raise_on_error=False).failed == 0


SPIKE, DIP = 24 * 17 + 9, 24 * 23 + 14  # a Tuesday 09:00 (a peak hour) and a Monday 14:00


@pytest.fixture(scope="module")
def series() -> pd.Series:
    """Four weeks of hourly traffic: a strong daily cycle, noise, one spike, one dip."""
    idx = pd.date_range("2026-01-05", periods=24 * 28, freq="h", tz="UTC")
    level = 1000 + 600 * np.sin((idx.hour.to_numpy() - 6) * 2 * np.pi / 24)
    y = level + np.random.default_rng(7).normal(0, 20, len(idx))
    y[SPIKE] *= 1.8
    y[DIP] *= 0.35
    return pd.Series(y, index=idx, name="impressions")


def injected(s: pd.Series) -> set[pd.Timestamp]:
    return {s.index[SPIKE], s.index[DIP]}


@pytest.mark.parametrize(
    "detector",
    [PercentChange(0.3), MeanVariance(k=4.0, seasonal_period=24), SeasonalModel(k=5.0)],
    ids=["percent_change", "mean_variance", "seasonal_model"],
)
def test_detectors_find_the_spike_and_the_dip_not_the_seasonality(detector, series):
    found = detector.detect(series)
    assert list(found.columns) == COLUMNS
    flagged = set(found["ts"])
    assert injected(series) <= flagged
    # the daily cycle swings ±60%: that is not an anomaly
    extra = flagged - injected(series)
    if isinstance(detector, PercentChange):  # a spike a week ago makes today look like a dip
        extra -= {t + pd.Timedelta("7D") for t in injected(series)}
    assert len(extra) <= 2, sorted(extra)  # STL smooths a spike into its neighbour at most
    by_ts = found.set_index("ts")
    assert by_ts.loc[series.index[SPIKE], "direction"] == "up"
    assert by_ts.loc[series.index[DIP], "direction"] == "down"
    row = by_ts.loc[series.index[SPIKE]]
    assert row["lower"] <= row["expected"] <= row["upper"] < row["value"]
    assert row["severity"] > 1


def test_mean_variance_slot_statistics_are_the_trailing_ones():
    idx = pd.date_range("2026-01-01", periods=10, freq="D")
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 30.0])
    band = MeanVariance(window=4, seasonal_period=1, min_periods=3).band(pd.Series(values, index=idx))
    last = band.iloc[-1]
    assert last["expected"] == pytest.approx(values[5:9].mean())
    assert last["score"] == pytest.approx((30 - values[5:9].mean()) / values[5:9].std(ddof=1))
    assert bool(last["anomaly"]) and np.isnan(band["expected"].iloc[:3]).all()


def test_percent_change_compares_with_a_week_ago_and_the_median_of_several():
    idx = pd.date_range("2026-01-01", periods=29, freq="D")
    y = pd.Series(100.0, index=idx)
    y.iloc[14] = 300.0  # week-ago baseline of day 21 is this spike
    one = PercentChange().detect(y)
    assert list(one["ts"]) == [idx[14], idx[21]]
    assert list(one["direction"]) == ["up", "down"]
    assert one["score"].tolist() == pytest.approx([2.0, -2 / 3])
    assert list(PercentChange(periods=3).detect(y)["ts"]) == [idx[14]]  # the median ignores one bad week


def test_sensitivity_is_a_multiplier_on_the_threshold(series):
    det = MeanVariance(k=2.5, seasonal_period=24)
    default, relaxed = det.detect(series), det.detect(series, sensitivity=2.0)
    assert set(relaxed["ts"]) < set(default["ts"])
    assert relaxed.attrs["sensitivity"] == 2.0
    assert len(MeanVariance(k=2.5, seasonal_period=24, sensitivity=50.0).detect(series)) == 0
    assert len(det.detect(series, sensitivity=0.5)) > len(default)


def test_gaps_and_unsorted_input_are_handled(series):
    holed = series.drop(series.index[100:130]).sample(frac=1.0, random_state=1)
    found = MeanVariance(k=4.0).detect(holed)
    assert injected(series) <= set(found["ts"])
    assert not found["ts"].isin(series.index[100:130]).any()


def test_errors_say_what_is_wrong(series):
    with pytest.raises(HealthError, match=r"The 'k' parameter of MeanVariance must be a number in "
                       r"\(0, inf\)\. Got -1 instead\."):
        MeanVariance(k=-1).detect(series)
    with pytest.raises(HealthError, match="pandas Series indexed by timestamps"):
        PercentChange().detect([1, 2, 3])
    with pytest.raises(HealthError, match="whole number of the series' steps"):
        PercentChange(baseline="90min").detect(series)
    with pytest.raises(HealthError, match="at least two full periods"):
        SeasonalModel(period=168 * 4).detect(series)
    with pytest.raises(HealthError, match="at least 8 cycles of the longest"):
        SeasonalModel(period=(24, 168)).detect(series)
