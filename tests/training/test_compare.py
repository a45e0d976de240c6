"""Comparing two models: the lift table, its renderings and the plots."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from proml_lab.errors import TrainingError
from proml_lab.training.compare import Comparison, compare, plot_roc


# -- compare and plots ------------------------------------------------------------------------------


def test_compare_table_values_and_lift_signs():
    base = {"auc": 0.80, "logloss": 0.50, "rmse": 1.0, "ndcg@10": 0.40}
    new = {"auc": 0.82, "logloss": 0.55, "rmse": 0.9, "ndcg@10": 0.38}
    cmp = compare(base, new)
    assert isinstance(cmp, Comparison)
    assert list(cmp.table.columns) == ["Metric", "Baseline", "NewModel", "Lift"]
    assert cmp.table["Metric"].tolist() == ["auc", "logloss", "rmse", "ndcg@10"]
    # auc up 2.5% (better), logloss up 10% (worse), rmse down 10% (better), ndcg down 5% (worse)
    np.testing.assert_allclose(cmp.table["Lift"], [2.5, -10.0, 10.0, -5.0])
    assert cmp.to_dict()["metrics"][1] == {
        "metric": "logloss",
        "baseline": 0.5,
        "new": 0.55,
        "lift": pytest.approx(-10.0),
        "higher_is_better": False,
    }


def test_compare_renders_as_text_and_html():
    cmp = compare({"auc": 0.8, "logloss": 0.5}, {"auc": 0.82, "logloss": 0.45}, names=("GLM", "GLMix"))
    assert str(cmp) == cmp.to_markdown() == (
        "| Metric  |    GLM |  GLMix |    Lift |\n"
        "|---------|-------:|-------:|--------:|\n"
        "| auc     | 0.8000 | 0.8200 |  +2.50% |\n"
        "| logloss | 0.5000 | 0.4500 | +10.00% |"
    )
    html = cmp._repr_html_()
    assert "<th>GLMix</th>" in html and "+10.00%" in html and "#1a7f37" in html


def test_compare_needs_direction_of_unknown_metric_and_handles_missing():
    with pytest.raises(TrainingError, match=r"pass higher_is_better=\{'mae': True\} \(or False\)"):
        compare({"mae": 1.0}, {"mae": 0.9})
    cmp = compare({"mae": 1.0, "auc": 0.7}, {"mae": 0.9}, higher_is_better={"mae": False})
    assert cmp.table["Lift"].iloc[0] == pytest.approx(10.0)
    assert np.isnan(cmp.table["Lift"].iloc[1]) and "n/a" in str(cmp)


def test_compare_plot_has_one_coloured_bar_per_metric():
    cmp = compare({"auc": 0.8, "logloss": 0.5, "rmse": 1.0}, {"auc": 0.82, "logloss": 0.55, "rmse": 1.0})
    fig = cmp.plot()
    bars = fig.axes[0].patches
    assert len(bars) == 3
    colors = [matplotlib.colors.to_hex(b.get_facecolor()) for b in bars]
    assert colors == ["#2da44e", "#cf222e", "#8c959f"]


def test_plot_roc_draws_one_curve_per_model_and_the_diagonal(binary):
    y, score, _ = binary
    fig, ax = plt.subplots()
    out = plot_roc(y, {"glmix": score, "noise": np.random.default_rng(0).normal(size=y.size)}, ax=ax)
    assert out is fig
    assert len(ax.get_lines()) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"glmix (AUC = {roc_auc_score(y, score):.3f})"
    # the curve's trapezoid area is the AUC
    fpr, tpr = ax.get_lines()[0].get_data()
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, score))
