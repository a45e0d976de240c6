"""Feature statistics on Spark agree with pandas / numpy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from proml_lab.errors import UnknownFeatureError
from proml_lab.features.stats import HISTOGRAM_BINS, QUANTILES, summarize

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def frame(spark):
    rng = np.random.default_rng(5)
    n = 400
    x = np.round(rng.gamma(2.0, 3.0, n), 3)
    x[rng.random(n) < 0.1] = np.nan
    cats = rng.choice([f"c{i}" for i in range(14)], n, p=np.r_[np.full(4, 0.15), np.full(10, 0.04)])
    vectors = [None if i % 9 == 0 else rng.normal(size=3).astype(np.float32).tolist() for i in range(n)]
    pdf = pd.DataFrame({
        "x": x, "flag": (rng.random(n) < 0.3).astype(float),
        "cat": pd.Series(cats, dtype=object).where(rng.random(n) > 0.05, None),
        "emb": vectors, "const": 2.5, "empty": np.nan,
    })
    schema = "x double, flag double, cat string, emb array<float>, const double, empty double"
    return pdf, spark.createDataFrame(pdf.astype(object).where(pdf.notna(), None), schema)


FEATURES = {"x": "numeric", "flag": "binary", "cat": "categorical", "emb": "vector", "const": "numeric",
            "empty": "numeric"}


@pytest.fixture(scope="module")
def summary(frame):
    return summarize(frame[1], FEATURES)


def test_numbers_match_numpy(frame, summary):
    pdf, _ = frame
    x = pdf.x.dropna().to_numpy()
    s = summary["x"]
    assert (s["type"], s["rows"], s["count"]) == ("numeric", 400, len(x))
    assert s["null_rate"] == pytest.approx(1 - len(x) / 400)
    assert s["mean"] == pytest.approx(x.mean()) and s["std"] == pytest.approx(x.std(ddof=1))
    assert (s["min"], s["max"]) == (x.min(), x.max())
    for name, q in QUANTILES.items():  # exact for small data: the smallest value with rank >= q * n
        assert s["quantiles"][name] == np.quantile(x, q, method="inverted_cdf"), name
    counts, edges = np.histogram(x, bins=HISTOGRAM_BINS, range=(x.min(), x.max()))
    assert [b["count"] for b in s["histogram"]] == counts.tolist()
    assert [b["lo"] for b in s["histogram"]] == pytest.approx(edges[:-1].tolist())
    assert s["histogram"][-1]["hi"] == x.max()
    assert summary["flag"]["mean"] == pytest.approx(pdf.flag.mean())


def test_categories_vectors_and_edge_cases(frame, summary):
    pdf, _ = frame
    cat = summary["cat"]
    counts = pdf.cat.value_counts()
    assert cat["distinct"] == pdf.cat.nunique() and cat["count"] == pdf.cat.notna().sum()
    assert [t["count"] for t in cat["top"]] == sorted(counts.to_numpy(), reverse=True)[:10]
    assert all(counts[t["value"]] == t["count"] for t in cat["top"])
    norms = [np.linalg.norm(np.asarray(v, np.float32).astype(float)) for v in pdf.emb if v is not None]
    assert summary["emb"]["mean_norm"] == pytest.approx(np.mean(norms))
    assert summary["emb"]["null_rate"] == pytest.approx(pdf.emb.isna().mean())
    assert summary["const"]["histogram"] == [{"lo": 2.5, "hi": 2.5, "count": 400}]
    assert summary["const"]["std"] == 0.0
    empty = summary["empty"]
    assert (empty["count"], empty["null_rate"], empty["mean"], empty["histogram"]) == (0, 1.0, None, [])
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_unknown_column_is_named(frame):
    with pytest.raises(UnknownFeatureError, match="Unknown column to summarize 'nope'"):
        summarize(frame[1], {"nope": "numeric"})
