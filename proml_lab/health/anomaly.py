"""Anomaly detectors over one metric time series (hourly or daily), modeled on ThirdEye's detectors.

Every detector turns a series into a *band* — ``expected ± width × sensitivity`` for each timestamp —
and flags the points outside it:

- :class:`PercentChange` — change against the same time ``baseline`` earlier (week over week);
- :class:`MeanVariance` — z-score against the mean and standard deviation of the same seasonal slot
  (hour of day, hour of week, day of week) over a trailing window;
- :class:`SeasonalModel` — robust STL (or MSTL for several periods) from statsmodels; z-score of the
  residual against a robust per-slot scale.

``sensitivity`` multiplies the threshold (``threshold`` or ``k``): 1 is the detector as configured, 2
alerts only on deviations twice as large, 0.5 on half as large. The alert store tunes it per metric from
feedback (:meth:`proml_lab.health.alerts.AnomalyStore.tune`). ``detect`` returns one row per anomaly
(``ts, value, expected, lower, upper, score, direction, severity``); ``band`` returns every point, for
plots. All arithmetic is on whole arrays: the series is put on a regular grid and reshaped into
``(cycles, period)`` so that each seasonal slot is a column.

>>> import numpy as np, pandas as pd
>>> idx = pd.date_range("2026-01-05", periods=24 * 14, freq="h", tz="UTC")
>>> y = pd.Series(100 + 50 * np.sin(np.arange(len(idx)) * 2 * np.pi / 24), index=idx)
>>> y = y + np.random.default_rng(0).normal(0, 2, len(y))
>>> y.iloc[24 * 10 + 5] += 40
>>> MeanVariance(k=4).detect(y)[["ts", "direction"]].to_dict("records")
[{'ts': Timestamp('2026-01-15 05:00:00+0000', tz='UTC'), 'direction': 'up'}]
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from proml_lab.errors import MissingDependencyError
from proml_lab.health import HealthError

__all__ = ["COLUMNS", "MeanVariance", "PercentChange", "SeasonalModel"]

COLUMNS = ["ts", "value", "expected", "lower", "upper", "score", "direction", "severity"]


# -- helpers ------------------------------------------------------------------------------------------
def _regular(series: Any, name: str) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, pd.Timedelta]:
    """The series on a regular grid: grid index, values (NaN where missing), observed mask, step."""
    if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
        raise HealthError(
            f"{name}.detect needs a pandas Series indexed by timestamps (a DatetimeIndex). "
            f"Got {type(series).__name__} instead."
        )
    s = pd.to_numeric(series, errors="coerce").astype(float)
    s = s[~s.index.duplicated(keep="last")].sort_index()
    if len(s) < 3:
        raise HealthError(f"{name}.detect needs at least 3 points; the series has {len(s)}.")
    step = pd.Series(s.index).diff().dropna().min()
    if not step > pd.Timedelta(0):
        raise HealthError(f"{name}.detect could not infer the series' time step.")
    grid = pd.date_range(s.index[0], s.index[-1], freq=step)
    observed = grid.isin(s.index)
    return grid, s.reindex(grid).to_numpy(), observed, step


def _default_period(step: pd.Timedelta) -> int:
    """Hour of day for hourly series, day of week for daily ones, none otherwise."""
    if step == pd.Timedelta(hours=1):
        return 24
    if step == pd.Timedelta(days=1):
        return 7
    return 1


def _cycles(values: np.ndarray, period: int) -> np.ndarray:
    """``values`` padded with NaN and reshaped to ``(cycles, period)``: each column is one seasonal slot."""
    n_cycles = -(-len(values) // period)
    padded = np.full(n_cycles * period, np.nan)
    padded[: len(values)] = values
    return padded.reshape(n_cycles, period)


def _check(owner: str, param: str, value: Any, *, low: float = 0.0, integer: bool = False) -> None:
    """One error template for every parameter: 'The 'k' parameter of MeanVariance must be ...'."""
    kind = "an int" if integer else "a number"
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok or not np.isfinite(value) or value <= low:
        raise HealthError(
            f"The {param!r} parameter of {owner} must be {kind} in ({low:g}, inf). Got {value!r} instead."
        )


def _small_sample_k(k: float, n: np.ndarray) -> np.ndarray:
    """``k`` widened for a mean and deviation estimated from ``n`` past values (a prediction interval).

    A new value's z-score against ``n`` past ones follows Student's t with ``n - 1`` degrees of freedom,
    scaled by ``sqrt(1 + 1/n)``; keeping the normal tail probability of ``k`` keeps the false-alarm rate
    of ``k`` when only a few weeks of history are there (k=3 → 4.6 with 8 values, 9.2 with 3).
    """
    from scipy.stats import norm, t

    with np.errstate(invalid="ignore"):
        return t.ppf(norm.cdf(k), n - 1) * np.sqrt(1 + 1 / n)


class _Detector:
    """Shared verbs: subclasses give the expected value, the band half-width at sensitivity 1, a score."""

    sensitivity: float

    def _model(self, values: np.ndarray, step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _validate(self) -> None:
        _check(type(self).__name__, "sensitivity", self.sensitivity)

    def band(self, series: pd.Series, *, sensitivity: float | None = None) -> pd.DataFrame:
        """Every observed point with its expected value, band, score and whether it is an anomaly.

        Parameters
        ----------
        series : pandas.Series
            Metric values indexed by timestamp (hourly or daily; gaps are allowed).
        sensitivity : float, optional
            Multiplier on the threshold for this call (default: the detector's ``sensitivity``).

        Returns
        -------
        pandas.DataFrame
            ``ts, value, expected, lower, upper, score, direction, severity, anomaly``; ``severity`` is
            the distance from ``expected`` in band half-widths (> 1 outside the band).
        """
        name = type(self).__name__
        mult = self.sensitivity if sensitivity is None else sensitivity
        self._validate()
        _check(name, "sensitivity", mult)
        grid, values, observed, step = _regular(series, name)
        expected, width, score = self._model(values, step)
        half = width * mult
        lower, upper = expected - half, expected + half
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = values - expected
            severity = np.where(half > 0, np.abs(dev) / np.where(half > 0, half, 1.0),
                                np.where(dev != 0, np.inf, 0.0))
            outside = np.isfinite(values) & np.isfinite(expected) & ((values > upper) | (values < lower))
        frame = pd.DataFrame({
            "ts": grid, "value": values, "expected": expected, "lower": lower, "upper": upper,
            "score": score, "direction": np.where(dev > 0, "up", "down"), "severity": severity,
            "anomaly": outside,
        })[observed].reset_index(drop=True)
        frame.attrs["sensitivity"] = float(mult)
        frame.attrs["detector"] = name
        return frame

    def detect(self, series: pd.Series, *, sensitivity: float | None = None) -> pd.DataFrame:
        """The anomalies of ``series``: one row per point outside the band (columns :data:`COLUMNS`).

        ``frame.attrs`` carries the ``sensitivity`` used and the ``detector`` name, which
        :meth:`~proml_lab.health.alerts.AnomalyStore.record` stores with each anomaly.
        """
        full = self.band(series, sensitivity=sensitivity)
        out = full.loc[full["anomaly"], COLUMNS].reset_index(drop=True)
        out.attrs.update(full.attrs)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


# -- detectors ----------------------------------------------------------------------------------------
class PercentChange(_Detector):
    """Anomaly when the value changes by more than ``threshold`` (a fraction) against a baseline.

    The baseline is the value ``baseline`` earlier (default one week: same hour, same weekday), or the
    median over the last ``periods`` such offsets (ThirdEye's "median of the last n weeks").
    ``score`` is the relative change ``(value - expected) / |expected|``.

    Parameters
    ----------
    threshold : float, default 0.2
        Relative change that raises an anomaly (0.2 = ±20%).
    baseline : str, default "1w"
        Offset of the baseline, any pandas Timedelta string ("1w", "1d", "24h").
    periods : int, default 1
        Number of past offsets whose median is the baseline.
    sensitivity : float, default 1.0
        Multiplier on ``threshold``.

    Examples
    --------
    >>> idx = pd.date_range("2026-01-01", periods=21, freq="D")
    >>> y = pd.Series(100.0, index=idx); y.iloc[15] = 150
    >>> PercentChange().detect(y)[["ts", "score", "direction"]].to_dict("records")
    [{'ts': Timestamp('2026-01-16 00:00:00'), 'score': 0.5, 'direction': 'up'}]
    """

    def __init__(self, threshold: float = 0.2, *, baseline: str = "1w", periods: int = 1,
                 sensitivity: float = 1.0) -> None:
        self.threshold = threshold
        self.baseline = baseline
        self.periods = periods
        self.sensitivity = sensitivity

    def _validate(self) -> None:
        super()._validate()
        _check("PercentChange", "threshold", self.threshold)
        _check("PercentChange", "periods", self.periods, integer=True)

    def _model(self, values: np.ndarray, step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            offset = pd.Timedelta(self.baseline)
        except ValueError as exc:
            raise HealthError(
                f"The 'baseline' parameter of PercentChange must be a Timedelta string such as '1w' or "
                f"'1d'. Got {self.baseline!r} instead."
            ) from exc
        lag = offset / step
        if lag < 1 or lag != int(lag):
            raise HealthError(
                f"The 'baseline' parameter of PercentChange must be a whole number of the series' steps "
                f"({step}). Got {self.baseline!r} instead."
            )
        lag = int(lag)
        n = len(values)
        lagged = np.full((self.periods, n), np.nan)
        for j in range(1, self.periods + 1):  # one shifted copy per past period, not per point
            lagged[j - 1, j * lag:] = values[: max(n - j * lag, 0)]
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first week
            expected = np.nanmedian(lagged, axis=0)
            width = self.threshold * np.abs(expected)
            score = (values - expected) / np.abs(expected)
        return expected, width, score


class MeanVariance(_Detector):
    """Anomaly when the value is more than ``k`` standard deviations from its seasonal slot's mean.

    For each point, the slot's past values (same hour of day / hour of week / day of week, within the
    trailing ``window``, the point itself excluded) give a mean and a standard deviation; ``score`` is
    the z-score ``(value - mean) / std``. The band is ``k`` standard deviations widened for the small
    sample (Student's t prediction interval with the normal tail probability of ``k``), so a short
    history does not turn into false alarms.

    Parameters
    ----------
    window : int or str, default 8
        How many past values of the same slot to use (an int), or a time span ("14d", "4w").
    k : float, default 3.0
        Number of standard deviations that raises an anomaly.
    seasonal_period : int, optional
        Points per season: 24 (hour of day) or 168 (hour of week) for hourly series, 7 for daily ones.
        Default: 24 for hourly series, 7 for daily, 1 (no seasonality) otherwise.
    min_periods : int, default 3
        Fewer past values than this give no expectation (and no anomaly).
    sensitivity : float, default 1.0
        Multiplier on ``k``.
    """

    def __init__(self, window: int | str = 8, *, k: float = 3.0, seasonal_period: int | None = None,
                 min_periods: int = 3, sensitivity: float = 1.0) -> None:
        self.window = window
        self.k = k
        self.seasonal_period = seasonal_period
        self.min_periods = min_periods
        self.sensitivity = sensitivity

    def _validate(self) -> None:
        super()._validate()
        _check("MeanVariance", "k", self.k)
        _check("MeanVariance", "min_periods", self.min_periods, integer=True, low=1)
        if self.seasonal_period is not None:
            _check("MeanVariance", "seasonal_period", self.seasonal_period, integer=True)

    def _window_cycles(self, period: int, step: pd.Timedelta) -> int:
        if isinstance(self.window, str):
            try:
                span = pd.Timedelta(self.window)
            except ValueError as exc:
                raise HealthError(
                    f"The 'window' parameter of MeanVariance must be an int or a Timedelta string such as "
                    f"'14d'. Got {self.window!r} instead."
                ) from exc
            return max(int(span / (step * period)), 1)
        _check("MeanVariance", "window", self.window, integer=True)
        return int(self.window)

    def _model(self, values: np.ndarray, step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        period = self.seasonal_period or _default_period(step)
        w = self._window_cycles(period, step)
        x = _cycles(values, period)
        ok = np.isfinite(x)
        zero = np.zeros((1, period))
        # Cumulative sums down each slot's column: the trailing window is a difference of two rows.
        cn = np.vstack([zero, np.cumsum(ok, axis=0)])
        cs = np.vstack([zero, np.cumsum(np.where(ok, x, 0.0), axis=0)])
        cq = np.vstack([zero, np.cumsum(np.where(ok, x * x, 0.0), axis=0)])
        rows = np.arange(x.shape[0])
        lo = np.maximum(rows - w, 0)
        n, s, q = cn[rows] - cn[lo], cs[rows] - cs[lo], cq[rows] - cq[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            var = np.maximum(q - s * s / n, 0.0) / (n - 1)
        enough = n >= max(self.min_periods, 2)
        mean = np.where(enough, mean, np.nan).ravel()[: len(values)]
        std = np.sqrt(np.where(enough, var, np.nan)).ravel()[: len(values)]
        std = np.maximum(std, 1e-12)  # a constant slot still flags any change
        count = np.where(enough, n, np.nan).ravel()[: len(values)]
        return mean, _small_sample_k(self.k, count) * std, (values - mean) / std


class SeasonalModel(_Detector):
    """Anomaly when the residual of a robust seasonal decomposition exceeds ``k`` robust deviations.

    Fits statsmodels' robust STL (one period) or MSTL (several, e.g. ``(24, 168)`` for hour-of-day and
    hour-of-week, given at least 8 cycles of the longest) on the whole series, so it suits retrospective
    detection over a window. ``expected``
    is trend + seasonal; the residual's scale is the median absolute deviation of its seasonal slot
    (×1.4826), floored at half the overall one, so quiet night hours and busy peaks get their own band.
    ``score`` is the residual over that scale.

    Parameters
    ----------
    period : int or tuple of int, optional
        Seasonal period(s) in points; default 24 for hourly series, 7 for daily.
    k : float, default 4.0
        Number of robust standard deviations that raises an anomaly.
    seasonal : int, default 13
        Length (in cycles, odd) of STL's seasonal smoother; longer windows keep a one-off outlier out of
        the seasonal component (statsmodels' default 7 lets a deep dip drag its slot down).
    sensitivity : float, default 1.0
        Multiplier on ``k``.
    """

    def __init__(self, period: int | tuple[int, ...] | None = None, *, k: float = 4.0, seasonal: int = 13,
                 sensitivity: float = 1.0) -> None:
        self.period = period
        self.k = k
        self.seasonal = seasonal
        self.sensitivity = sensitivity

    def _validate(self) -> None:
        super()._validate()
        _check("SeasonalModel", "k", self.k)
        _check("SeasonalModel", "seasonal", self.seasonal, integer=True, low=6)
        if self.seasonal % 2 == 0:
            raise HealthError(
                f"The 'seasonal' parameter of SeasonalModel must be odd. Got {self.seasonal} instead."
            )
        for p in np.atleast_1d(self.period if self.period is not None else []):
            _check("SeasonalModel", "period", p, integer=True, low=1)

    def _model(self, values: np.ndarray, step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            from statsmodels.tsa.seasonal import MSTL, STL
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise MissingDependencyError("statsmodels") from exc
        periods = [int(p) for p in np.atleast_1d(self.period or _default_period(step))]
        if len(values) < 2 * max(periods) + 1:
            raise HealthError(
                f"SeasonalModel needs at least two full periods ({2 * max(periods) + 1} points) to fit; "
                f"the series has {len(values)}. Use MeanVariance or PercentChange on shorter series."
            )
        if len(periods) > 1 and len(values) < 8 * max(periods):
            # with few cycles the longest seasonal component fits the noise itself (4 weeks of hourly
            # data: residuals 6x smaller than the noise, so alerts everywhere)
            raise HealthError(
                f"SeasonalModel with several periods needs at least 8 cycles of the longest "
                f"({8 * max(periods)} points); the series has {len(values)}. Use one period instead."
            )
        filled = pd.Series(values).interpolate(limit_direction="both").to_numpy()
        if len(periods) == 1:
            fit = STL(filled, period=periods[0], seasonal=self.seasonal, robust=True).fit()
        else:
            fit = MSTL(filled, periods=periods, windows=[self.seasonal] * len(periods),
                       stl_kwargs={"robust": True}).fit()
        expected = np.asarray(fit.trend) + np.asarray(fit.seasonal).reshape(len(values), -1).sum(axis=1)
        resid = values - expected
        overall = 1.4826 * np.nanmedian(np.abs(resid))
        slots = _cycles(np.abs(resid), min(periods))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a slot with no observed value
            per_slot = 1.4826 * np.nanmedian(slots, axis=0)
        scale = np.tile(np.maximum(per_slot, 0.5 * overall), slots.shape[0])[: len(values)]
        scale = np.maximum(scale, 1e-12)
        return expected, self.k * scale, resid / scale
