"""Shared fixtures of the training tests: labelled scores with many ties; no figure left open."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 2_000)
    score = np.round(y * 0.6 + rng.normal(size=2_000), 1)  # rounded: many ties
    weight = rng.uniform(0.1, 3.0, 2_000)
    return y, score, weight
