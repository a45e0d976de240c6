"""Shared data for the feature-store benchmarks, written as Parquet and deterministic by seed.

Both ProML Lab and its peer (Feast, see ``feast_peer.py``) read exactly these files, so their figures are
measured on the same bytes. Timestamps are anchored at a fixed instant (``ANCHOR``), not at "now", so the
same seed gives the same files on every run and machine.

- ``entity_table``: one row per entity (its latest feature values), for online reads and materialization.
- ``pit_tables``: label events plus feature views with random event times, for point-in-time joins.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Every timestamp in the generated data lies at or before this instant (UTC).
ANCHOR = datetime(2025, 1, 1, tzinfo=timezone.utc)
_ANCHOR_US = int(ANCHOR.timestamp() * 1_000_000)
_US_PER_DAY = 86_400 * 1_000_000
_TS = pa.timestamp("us", tz="UTC")


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype("int64"), type=pa.int64()).cast(_TS)


def _write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


def entity_table(dir: str | Path, n_entities: int = 100_000, n_features: int = 20, seed: int = 0) -> Path:
    """Write ``entities.parquet``: ``entity_id`` (int64), ``event_timestamp`` and ``created``
    (timestamp[us, UTC]), ``f00``..``f{n-1}`` float64 — one row per entity, its latest values.

    Event times are spread over the 7 days before ``ANCHOR``; ``created`` is one second after each.
    """
    rng = np.random.default_rng(seed)
    event_us = _ANCHOR_US - rng.integers(0, 7 * _US_PER_DAY, size=n_entities)
    columns: dict[str, pa.Array] = {
        "entity_id": pa.array(np.arange(n_entities, dtype=np.int64)),
        "event_timestamp": _timestamps(event_us),
        "created": _timestamps(np.minimum(event_us + 1_000_000, _ANCHOR_US)),
    }
    for j in range(n_features):
        columns[f"f{j:02d}"] = pa.array(rng.standard_normal(n_entities))
    return _write(pa.table(columns), Path(dir) / "entities.parquet")


def pit_tables(dir: str | Path, n_labels: int = 1_000_000, n_feature_rows: int = 300_000, n_views: int = 3,
               n_entities: int = 100_000, days: int = 60, seed: int = 0) -> tuple[Path, list[Path]]:
    """Write ``labels.parquet`` and ``view_{i}.parquet`` for a point-in-time join benchmark.

    labels: ``entity_id`` (int64), ``event_timestamp`` (timestamp[us, UTC]), ``label`` (int64, 0/1).
    view i: ``entity_id``, ``event_timestamp``, ``created`` (= event time + 0..60 s), ``v{i}_a``, ``v{i}_b``,
    ``v{i}_c`` float64. All event times are uniform over the ``days`` days before ``ANCHOR`` (microsecond
    resolution), entities uniform over ``n_entities``. The benchmarks use a TTL of 30 days: a label row whose
    entity has no view row in (t - TTL, t] must still come back, with nulls for that view.

    Returns ``(labels_path, [view paths])``.
    """
    dir = Path(dir)
    rng = np.random.default_rng(seed)
    span = days * _US_PER_DAY
    labels = pa.table({
        "entity_id": pa.array(rng.integers(0, n_entities, size=n_labels, dtype=np.int64)),
        "event_timestamp": _timestamps(_ANCHOR_US - rng.integers(0, span, size=n_labels)),
        "label": pa.array(rng.integers(0, 2, size=n_labels, dtype=np.int64)),
    })
    labels_path = _write(labels, dir / "labels.parquet")
    views = []
    for i in range(n_views):
        vrng = np.random.default_rng([seed, i + 1])
        event_us = _ANCHOR_US - vrng.integers(0, span, size=n_feature_rows)
        columns: dict[str, pa.Array] = {
            "entity_id": pa.array(vrng.integers(0, n_entities, size=n_feature_rows, dtype=np.int64)),
            "event_timestamp": _timestamps(event_us),
            "created": _timestamps(event_us + vrng.integers(0, 60_000_000, size=n_feature_rows)),
        }
        for suffix in "abc":
            columns[f"v{i}_{suffix}"] = pa.array(vrng.standard_normal(n_feature_rows))
        views.append(_write(pa.table(columns), dir / f"view_{i}.parquet"))
    return labels_path, views
