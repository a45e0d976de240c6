"""The rebuilt ground truth explains the world's logged clicks: calibrated overall, by position, by decile."""

from __future__ import annotations

import numpy as np
import pytest

from proml_lab.worlds.truth import GroundTruth


@pytest.fixture(scope="module")
def logged(tiny_world):
    truth = GroundTruth.open(tiny_world)
    columns = ["member_id", "job_id", "position", "clicked", "applied", "impression_ts"]
    imp = tiny_world.read("impressions", columns)
    drifted = truth.drifted_at(imp["impression_ts"].dt.tz_localize(None).to_numpy())
    pairs = imp["member_id"], imp["job_id"], imp["position"]
    imp["p_click"] = truth.click_probability(*pairs, drifted=drifted)
    imp["p_apply"] = truth.apply_probability(*pairs, drifted=drifted)
    imp["drifted"] = drifted
    return truth, imp


def _z(observed: np.ndarray, p: np.ndarray) -> float:
    """How many standard errors the observed count is from the predicted one (Bernoulli sum)."""
    return float((observed.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum()))


def test_mean_click_probability_matches_the_logged_ctr(logged):
    truth, imp = logged
    assert imp["drifted"].any() and not imp["drifted"].all()  # both regimes are in the log
    assert abs(_z(imp["clicked"].to_numpy(), imp["p_click"].to_numpy())) < 4
    assert abs(_z(imp["applied"].to_numpy(), imp["p_apply"].to_numpy())) < 4
    for _, part in imp.groupby("drifted"):
        assert abs(_z(part["clicked"].to_numpy(), part["p_click"].to_numpy())) < 4


def test_the_model_is_calibrated_by_decile_and_discriminates(logged):
    _, imp = logged
    decile = np.minimum((imp["p_click"].rank(pct=True) * 10).astype(int), 9)
    for _, part in imp.groupby(decile):
        assert abs(_z(part["clicked"].to_numpy(), part["p_click"].to_numpy())) < 4.5
    by = imp.groupby(decile)["clicked"].mean()
    assert by.iloc[-1] > 3 * by.iloc[0]


def test_ctr_decreases_with_position_as_in_the_log(logged):
    truth, imp = logged
    per = imp.groupby("position")[["p_click", "clicked"]].agg(["mean", "sum", "count"])
    observed = imp.groupby("position")["clicked"].mean()
    predicted = imp.groupby("position")["p_click"].mean()
    se = np.sqrt(predicted * (1 - predicted) / imp.groupby("position").size())
    assert (np.abs(observed - predicted) < 4 * se).all(), per
    slope_log = np.polyfit(observed.index, observed.to_numpy(), 1)[0]
    slope_truth = np.polyfit(predicted.index, predicted.to_numpy(), 1)[0]
    assert slope_log < 0 and slope_truth < 0
    # the same pairs moved down the list click strictly less at every step
    moved = [truth.click_probability(imp["member_id"], imp["job_id"], np.full(len(imp), k)).mean()
             for k in range(1, 11)]
    assert np.all(np.diff(moved) < 0)


def test_noise_is_integrated_not_dropped(logged):
    truth, imp = logged
    mu = truth.click_logit(imp["member_id"], imp["job_id"], imp["position"],
                           drifted=imp["drifted"].to_numpy())
    rows = np.random.default_rng(0).choice(len(mu), 200, replace=False)
    eps = np.random.default_rng(1).normal(0.0, truth.params.noise_sd, (20_000, 200))
    monte_carlo = (1 / (1 + np.exp(-(mu[rows] + eps)))).mean(axis=0)
    np.testing.assert_allclose(imp["p_click"].to_numpy()[rows], monte_carlo, atol=2e-3)
    # sigmoid(mu) alone is biased towards 0.5-away values: the logistic-normal mean differs from it
    assert not np.allclose(imp["p_click"], 1 / (1 + np.exp(-mu)), atol=1e-4)


def test_draw_reproduces_the_logged_rates(logged):
    truth, imp = logged
    rng = np.random.default_rng(1)
    clicked, applied = truth.draw(imp["member_id"], imp["job_id"], imp["position"], rng,
                                  drifted=imp["drifted"].to_numpy())
    assert not (applied & ~clicked).any()
    assert abs(_z(clicked, imp["p_click"].to_numpy())) < 4
    assert abs(clicked.mean() - imp["clicked"].mean()) < 5 * np.sqrt(2 * 0.14 * 0.86 / len(imp))
    assert abs(applied.mean() - imp["applied"].mean()) < 5 * np.sqrt(2 * 0.05 * 0.95 / len(imp))
    lifted, _ = truth.draw(imp["member_id"], imp["job_id"], imp["position"], np.random.default_rng(1),
                           drifted=imp["drifted"].to_numpy(), offset=0.5)
    assert lifted.mean() > clicked.mean() + 0.03


def test_unknown_ids_are_refused(logged):
    truth, _ = logged
    with pytest.raises(KeyError, match="Unknown job id"):
        truth.click_probability([1], [10_000], [1])
