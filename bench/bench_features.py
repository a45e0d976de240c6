"""Feature Marketplace vs Feast 0.67, same data, one run.

Measures, for ProML Lab (SQLite and Redis online stores) and Feast (its default SQLite online store and
file offline store):

- online read of 1 entity x 20 features and 1,000 entities x 20 features (p50 / p99);
- online materialization (rows/s) of 100k entities x 20 features from the offline table;
- point-in-time join of 1M label rows with 3 anchors / feature views (300k rows each, TTL 30 days) on
  local Spark, pandas in and pandas out on both sides, and how many label rows come back;
- catalog search over 100k feature definitions (p50 / p99; Feast has no search, the reference is the
  published Pro-ML marketplace figure, 25 ms over 13,413 features).

    python bench/bench_features.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import feast_peer  # noqa: E402  (sets FEAST_USAGE before feast is imported)
import feature_data  # noqa: E402
from _common import save  # noqa: E402

QUERIES = ["title", "member views", "job", "embedding", "company follower", "skills 30d", "seniority",
           "click", "region", "apply rate", "headline", "industry", "titl", "contacts imported", "salary"]


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] * 1000,
        "repeats": len(ordered),
    }


def _workspace(root: Path, online_url: str | None = None) -> Any:
    from proml_lab.settings import Settings
    from proml_lab.workspace import Workspace

    settings = Settings(home=root, online_store=online_url, spark_master="local[2]")
    return Workspace.init(root, settings=settings)


def _entity_definitions(path: Path, n_features: int) -> list[Any]:
    from proml_lab.features.spec import Anchor, Entity, Feature, Source

    return [
        Entity(name="entity", join_key="entity_id"),
        Source(name="entities", path=str(path), timestamp_column="event_timestamp"),
        Anchor(name="entity_profile", entity="entity", source="entities", owner="bench",
               features=[Feature(name=f"f{i:02d}", type="numeric") for i in range(n_features)]),
    ]


def _redis() -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc


def proml_online(entity_path: Path, root: Path, online_url: str | None, *, repeats: int, batch_repeats: int) -> dict:
    import numpy as np

    ws = _workspace(root, online_url)
    store = ws.features
    store.apply(_entity_definitions(entity_path, 20), validate=False)
    store.materialize()  # offline feature table (Spark); not part of the timed materialization
    start = time.perf_counter()
    rows = store.materialize_online()["entity_profile"]
    materialize_s = time.perf_counter() - start
    read = store.online_reader("entity", [f"f{i:02d}" for i in range(20)])
    rng = np.random.default_rng(0)
    keys = rng.integers(0, rows, 20_000)
    for k in keys[:50]:
        read([k])
    single = []
    for k in keys[:repeats]:
        t = time.perf_counter()
        read([k])
        single.append(time.perf_counter() - t)
    batch = []
    for i in range(batch_repeats):
        chunk = rng.choice(rows, 1000, replace=False)
        t = time.perf_counter()
        out = read(chunk)
        batch.append(time.perf_counter() - t)
    assert len(out["f00"]) == 1000 and not np.isnan(out["f00"]).any()
    store.online_store.close()
    return {
        "store": store.workspace.online_store_url.split(":")[0],
        "materialize": {"rows": rows, "wall_s": materialize_s, "rows_per_s": rows / materialize_s},
        "online_single": _ms(single),
        "online_batch": _ms(batch),
    }


def proml_pit(labels_path: Path, view_paths: list[Path], root: Path) -> dict:
    import pandas as pd

    from proml_lab.features.spec import Anchor, Entity, Feature, Source

    ws = _workspace(root)
    definitions: list[Any] = [Entity(name="entity", join_key="entity_id")]
    features: list[str] = []
    for i, path in enumerate(view_paths):
        names = [f"v{i}_{c}" for c in "abc"]
        features += names
        definitions += [
            Source(name=f"view_{i}", path=str(path), timestamp_column="event_timestamp"),
            Anchor(name=f"view_{i}", entity="entity", source=f"view_{i}", owner="bench", ttl="30d",
                   online=False, features=[Feature(name=n, type="numeric") for n in names]),
        ]
    ws.features.apply(definitions, validate=False)
    ws.features.materialize()  # feature tables (Spark); the join below is what is timed
    labels = pd.read_parquet(labels_path)
    labels["label_id"] = range(len(labels))
    spark = ws.spark()
    spark.range(1).count()  # session warm
    start = time.perf_counter()
    out = ws.features.get_training_data(labels, features, timestamp_column="event_timestamp").toPandas()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "label_rows": len(labels), "rows_returned": len(out),
            "distinct_label_ids": int(out["label_id"].nunique())}


def proml_search(root: Path, n: int) -> dict:
    from proml_lab.features.catalog import Catalog
    from proml_lab.features.synthetic import synthetic_definitions

    ws = _workspace(root)
    catalog = Catalog(ws.connect_catalog)
    definitions = synthetic_definitions(n, seed=0)
    start = time.perf_counter()
    catalog.apply(definitions)
    apply_s = time.perf_counter() - start
    count = sum(catalog.summary()["features_by_entity"].values()) if "features_by_entity" in catalog.summary() else n
    for q in QUERIES:
        catalog.search(q)
    samples = []
    for _ in range(20):
        for q in QUERIES:
            t = time.perf_counter()
            catalog.search(q, limit=20)
            samples.append(time.perf_counter() - t)
    return {"features": count, "apply_s": apply_s, "search": _ms(samples)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats (smoke run)")
    args = parser.parse_args()
    n_entities, n_labels, n_rows, n_catalog = (
        (10_000, 100_000, 30_000, 10_000) if args.quick else (100_000, 1_000_000, 300_000, 100_000)
    )
    repeats, batch_repeats = (100, 10) if args.quick else (300, 50)
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    results: dict[str, Any] = {}
    redis_url, redis_proc = _redis()
    try:
        entity_path = feature_data.entity_table(tmp / "data", n_entities=n_entities)
        labels_path, view_paths = feature_data.pit_tables(
            tmp / "data", n_labels=n_labels, n_feature_rows=n_rows, n_entities=n_entities
        )
        print("feast online ...", flush=True)
        results["feast_online"] = feast_peer.feast_online_read(entity_path, repeats=repeats, batch_repeats=batch_repeats)
        print("proml online (sqlite, redis) ...", flush=True)
        results["proml_sqlite"] = proml_online(entity_path, tmp / "ws-sqlite", None, repeats=repeats, batch_repeats=batch_repeats)
        results["proml_redis"] = proml_online(entity_path, tmp / "ws-redis", redis_url, repeats=repeats, batch_repeats=batch_repeats)
        print("point-in-time joins ...", flush=True)
        results["feast_pit"] = feast_peer.feast_historical(labels_path, view_paths, check=False)
        results["proml_pit"] = proml_pit(labels_path, view_paths, tmp / "ws-pit")
        print("catalog search ...", flush=True)
        results["proml_search"] = proml_search(tmp / "ws-search", n_catalog)
    finally:
        redis_proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    f_on, sq, rd = results["feast_online"], results["proml_sqlite"], results["proml_redis"]
    f_pit, p_pit, srch = results["feast_pit"], results["proml_pit"], results["proml_search"]
    rows = [
        ["online read, 1 entity x 20 features, p50 / p99",
         f"SQLite {sq['online_single']['p50_ms']:.3f} / {sq['online_single']['p99_ms']:.3f} ms; "
         f"Redis {rd['online_single']['p50_ms']:.3f} / {rd['online_single']['p99_ms']:.3f} ms",
         f"{f_on['online_single']['p50_ms']:.3f} / {f_on['online_single']['p99_ms']:.3f} ms",
         f"{f_on['online_single']['p50_ms'] / sq['online_single']['p50_ms']:.1f}x (SQLite p50)",
         "p50 <= 0.1 ms"],
        ["online read, 1,000 entities x 20 features, p50 / p99",
         f"SQLite {sq['online_batch']['p50_ms']:.2f} / {sq['online_batch']['p99_ms']:.2f} ms; "
         f"Redis {rd['online_batch']['p50_ms']:.2f} / {rd['online_batch']['p99_ms']:.2f} ms",
         f"{f_on['online_batch']['p50_ms']:.1f} / {f_on['online_batch']['p99_ms']:.1f} ms",
         f"{f_on['online_batch']['p50_ms'] / sq['online_batch']['p50_ms']:.0f}x (SQLite), "
         f"{f_on['online_batch']['p50_ms'] / rd['online_batch']['p50_ms']:.0f}x (Redis)",
         ">= 10x Feast"],
        [f"online materialization, {sq['materialize']['rows']:,} entities x 20 features",
         f"SQLite {sq['materialize']['rows_per_s']:,.0f} rows/s; Redis {rd['materialize']['rows_per_s']:,.0f} rows/s",
         f"{f_on['materialize']['rows_per_s']:,.0f} rows/s",
         f"{sq['materialize']['rows_per_s'] / f_on['materialize']['rows_per_s']:.0f}x (SQLite), "
         f"{rd['materialize']['rows_per_s'] / f_on['materialize']['rows_per_s']:.0f}x (Redis)",
         ">= 30x Feast"],
        [f"point-in-time join, {p_pit['label_rows']:,} labels x 3 anchors (local Spark)",
         f"{p_pit['wall_s']:.1f} s, {p_pit['rows_returned']:,} rows ({p_pit['distinct_label_ids']:,} distinct labels)",
         f"{f_pit['wall_s']:.1f} s, {f_pit['rows_returned']:,} rows",
         f"{f_pit['wall_s'] / p_pit['wall_s']:.2f}x Feast's speed; Feast returns "
         f"{f_pit['rows_returned'] / p_pit['label_rows']:.0%} of the label rows",
         "every label row once"],
        [f"catalog search over {srch['features']:,} features, p50 / p99",
         f"{srch['search']['p50_ms']:.2f} / {srch['search']['p99_ms']:.2f} ms",
         "Pro-ML marketplace UI: 25 ms over 13,413 features (published)",
         f"{25 / srch['search']['p50_ms']:.0f}x faster than the published figure",
         "p50 <= 5 ms"],
    ]
    save(
        "features" if not args.quick else "features-quick",
        title="Feature Marketplace vs Feast 0.67 (same data, one run)",
        command="python bench/bench_features.py" + (" --quick" if args.quick else ""),
        columns=["measure", "ProML Lab", "Feast 0.67 / reference", "ratio", "target"],
        rows=rows,
        notes=(
            "Feast: local provider, file (dask) offline store, SQLite online store, `get_online_features` with "
            "column-mapping entity rows, `get_historical_features(...).to_df()`. ProML Lab: "
            "`FeatureStore.online_reader` (catalog look-ups once per reader), `materialize_online` from the "
            "offline feature table, `get_training_data(...).toPandas()` from a pandas label frame. Feast's "
            "historical retrieval drops label rows whose entity has feature rows but none inside the TTL "
            "window (its TTL filter runs after a join on the entity key), so it returns fewer rows than labels."
        ),
        extra={"raw": results, "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    )
    for row in rows:
        print(" | ".join(row))


if __name__ == "__main__":
    os.environ.setdefault("PROML_SPARK_LOG_LEVEL", "ERROR")
    main()
