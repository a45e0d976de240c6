"""Feast 0.67 as the peer of ProML Lab's feature store: same data (``feature_data.py``), local only.

Each function builds a throw-away Feast repo in a temp dir (provider ``local``, file/dask offline store,
SQLite online store, file registry), measures Feast, and returns a plain JSON-serializable dict, so that a
benchmark script can run it next to ProML Lab's own measurements in one process/run.

    python bench/feast_peer.py            # generates the data in a temp dir, runs both, prints JSON

Needs ``feast==0.67.0`` in the environment. Nothing here reaches the network.
"""

from __future__ import annotations

import os

os.environ.setdefault("FEAST_USAGE", "False")  # no usage telemetry (must be set before feast is imported)

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import feature_data  # noqa: E402

FEATURE_STORE_YAML = """\
project: bench
provider: local
registry: {registry}
online_store:
  type: sqlite
  path: {online}
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def _quiet() -> None:
    for name in ("feast", "dask", "distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _store(repo: Path):
    """A FeatureStore over a fresh local repo in ``repo``."""
    from feast import FeatureStore

    repo.mkdir(parents=True, exist_ok=True)
    (repo / "data").mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(
        registry=repo / "data" / "registry.db", online=repo / "data" / "online.db"))
    return FeatureStore(repo_path=str(repo))


def _view(name: str, entity, path: Path, features: list[str], ttl: timedelta):
    from feast import FeatureView, Field, FileSource
    from feast.types import Float64

    source = FileSource(name=f"{name}_source", path=str(path), timestamp_field="event_timestamp",
                        created_timestamp_column="created")
    return FeatureView(name=name, entities=[entity], ttl=ttl,
                       schema=[Field(name=f, dtype=Float64) for f in features], source=source, online=True)


def _entity():
    from feast import Entity, ValueType

    return Entity(name="entity", join_keys=["entity_id"], value_type=ValueType.INT64)


def _ms_stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "repeats": len(seconds)}


def feast_online_read(entity_path: str | Path, *, repeats: int = 300, batch_repeats: int = 50,
                      batch_size: int = 1_000, warmup: int = 20, seed: int = 0) -> dict[str, Any]:
    """Apply a feature view over ``entity_path`` (from ``feature_data.entity_table``), materialize it into
    the SQLite online store, then time ``get_online_features(...).to_dict()`` for one entity and for
    ``batch_size`` entities (all features of the view), after ``warmup`` untimed calls of each. Entity rows
    are passed as a column mapping (Feast's faster form); the batch read is also timed with a list of dicts.

    Returns ``{"feast_version", "n_entities", "n_features", "apply_s", "materialize": {rows, wall_s,
    rows_per_s}, "online_single": {p50_ms, p99_ms, ...}, "online_batch": {..., "entities"},
    "online_batch_list_of_dicts": {...}}``.
    """
    import feast

    _quiet()
    entity_path = Path(entity_path)
    schema = pq.read_schema(entity_path)
    features = [c for c in schema.names if c not in ("entity_id", "event_timestamp", "created")]
    ids = pq.read_table(entity_path, columns=["entity_id"]).column(0).to_numpy()

    with tempfile.TemporaryDirectory(prefix="feast_online_") as tmp:
        store = _store(Path(tmp) / "repo")
        entity = _entity()
        view = _view("entity_features", entity, entity_path, features, ttl=timedelta(0))  # 0 = no expiry
        start = time.perf_counter()
        store.apply([entity, view])
        apply_s = time.perf_counter() - start

        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; keep stdout for results
            store.materialize(start_date=feature_data.ANCHOR - timedelta(days=30),
                              end_date=feature_data.ANCHOR + timedelta(minutes=1))
        mat_s = time.perf_counter() - start

        refs = [f"entity_features:{f}" for f in features]
        rng = np.random.default_rng(seed)

        def read(batch: np.ndarray, columnar: bool = True) -> dict[str, list]:
            # Feast takes entity rows as a column mapping or as a list of dicts; the mapping is faster.
            rows = {"entity_id": batch.tolist()} if columnar else [{"entity_id": int(e)} for e in batch]
            return store.get_online_features(features=refs, entity_rows=rows).to_dict()

        # Sanity: materialized values are the Parquet values.
        probe = ids[:5]
        got = read(probe)
        expected = pq.read_table(entity_path).to_pandas().set_index("entity_id").loc[probe, features[0]]
        assert np.allclose(got[features[0]], expected.to_numpy()), "online values differ from the source"

        for _ in range(warmup):
            read(rng.choice(ids, 1))
            read(rng.choice(ids, batch_size, replace=False))
        single = []
        for _ in range(repeats):
            batch = rng.choice(ids, 1)
            t0 = time.perf_counter()
            read(batch)
            single.append(time.perf_counter() - t0)
        batched = []
        missing = 0
        for _ in range(batch_repeats):
            batch = rng.choice(ids, batch_size, replace=False)
            t0 = time.perf_counter()
            out = read(batch)
            batched.append(time.perf_counter() - t0)
            missing += sum(v is None for v in out[features[0]])
        batched_rows = []
        for _ in range(batch_repeats):
            batch = rng.choice(ids, batch_size, replace=False)
            t0 = time.perf_counter()
            read(batch, columnar=False)
            batched_rows.append(time.perf_counter() - t0)
        online_db_mb = (Path(tmp) / "repo" / "data" / "online.db").stat().st_size / 2**20

    return {
        "feast_version": feast.__version__,
        "n_entities": int(len(ids)),
        "n_features": len(features),
        "apply_s": apply_s,
        "materialize": {"rows": int(len(ids)), "wall_s": mat_s, "rows_per_s": len(ids) / mat_s,
                        "online_db_mb": online_db_mb},
        "online_single": _ms_stats(single),
        "online_batch": {**_ms_stats(batched), "entities": batch_size, "missing_values": int(missing)},
        "online_batch_list_of_dicts": {**_ms_stats(batched_rows), "entities": batch_size},
        "read_path": "FeatureStore.get_online_features(features, entity_rows={'entity_id': [...]}).to_dict() "
                     "(online_batch_list_of_dicts: entity_rows=[{'entity_id': ...}, ...])",
    }


def _reference_join(labels: pd.DataFrame, views: list[pd.DataFrame], feature_cols: list[list[str]],
                    ttl: timedelta) -> pd.DataFrame:
    """The correct point-in-time join (every label row once; nulls where no view row in [t - ttl, t]),
    with pandas ``merge_asof``; used to check Feast's answer, not timed against it."""
    out = labels.sort_values("event_timestamp")
    for view, cols in zip(views, feature_cols):
        right = (view.sort_values(["event_timestamp", "created"])
                 .drop_duplicates(["entity_id", "event_timestamp"], keep="last")
                 [["entity_id", "event_timestamp", *cols]])
        out = pd.merge_asof(out, right, on="event_timestamp", by="entity_id", direction="backward",
                            tolerance=pd.Timedelta(ttl), allow_exact_matches=True)
    return out.sort_values("label_id").reset_index(drop=True)


def feast_historical(labels_path: str | Path, view_paths: list[str | Path], ttl_days: int = 30,
                     *, check: bool = True) -> dict[str, Any]:
    """Apply one feature view per file in ``view_paths`` (TTL ``ttl_days``), then time
    ``get_historical_features(entity_df=<labels + label_id column>, features=<all>).to_df()``
    (default file/dask offline store).

    Counts rows returned, distinct ``label_id`` (an extra entity_df column numbering the label rows) and
    duplicates. With ``check``, compares against an exact pandas ``merge_asof`` point-in-time join: how many
    rows should have been returned, whether returned values match, and whether the dropped rows are exactly
    those whose entity has rows in some view but none inside that label's TTL window.
    """
    import feast

    _quiet()
    ttl = timedelta(days=ttl_days)
    labels = pq.read_table(labels_path).to_pandas()
    labels["label_id"] = np.arange(len(labels), dtype=np.int64)
    view_paths = [Path(p) for p in view_paths]

    with tempfile.TemporaryDirectory(prefix="feast_pit_") as tmp:
        store = _store(Path(tmp) / "repo")
        entity = _entity()
        views, refs, feature_cols = [], [], []
        for i, path in enumerate(view_paths):
            keys = ("entity_id", "event_timestamp", "created")
            cols = [c for c in pq.read_schema(path).names if c not in keys]
            views.append(_view(f"view_{i}", entity, path, cols, ttl=ttl))
            refs += [f"view_{i}:{c}" for c in cols]
            feature_cols.append(cols)
        store.apply([entity, *views])

        start = time.perf_counter()
        df = store.get_historical_features(entity_df=labels, features=refs).to_df()
        wall_s = time.perf_counter() - start

    all_cols = [c for cols in feature_cols for c in cols]
    result: dict[str, Any] = {
        "feast_version": feast.__version__,
        "label_rows": int(len(labels)),
        "feature_views": len(view_paths),
        "feature_rows_per_view": [int(pq.read_metadata(p).num_rows) for p in view_paths],
        "ttl_days": ttl_days,
        "wall_s": wall_s,
        "rows_returned": int(len(df)),
        "distinct_label_ids_returned": int(df["label_id"].nunique()),
        "duplicate_rows": int(len(df) - df["label_id"].nunique()),
        "label_rows_missing": int(len(labels) - df["label_id"].nunique()),
        "returned_fraction": df["label_id"].nunique() / len(labels),
        "returned_rows_with_all_features_null": int(df[all_cols].isna().all(axis=1).sum()),
    }
    if not check:
        return result

    view_dfs = [pq.read_table(p).to_pandas() for p in view_paths]
    t0 = time.perf_counter()
    ref = _reference_join(labels, view_dfs, feature_cols, ttl)
    ref_s = time.perf_counter() - t0
    returned = df.set_index("label_id").sort_index()
    ref_idx = ref.set_index("label_id")
    common = ref_idx.loc[returned.index, all_cols]
    got = returned[all_cols].astype("float64")
    same = np.isclose(got.to_numpy(), common.to_numpy(), equal_nan=True)
    # Hypothesis for the missing rows: for some view the entity has rows, yet none inside [t - ttl, t];
    # Feast's left merge + TTL filter then removes every candidate of that label row, and the row itself.
    has_rows = [ref["entity_id"].isin(v["entity_id"].unique()).to_numpy() for v in view_dfs]
    no_match = [ref[cols[0]].isna().to_numpy() for cols in feature_cols]
    predicted_drop = np.logical_or.reduce([h & n for h, n in zip(has_rows, no_match)])
    actually_dropped = ~ref["label_id"].isin(returned.index).to_numpy()
    result["reference"] = {
        "method": "pandas.merge_asof per view, by entity_id, backward, tolerance = TTL (not Feast)",
        "wall_s": ref_s,
        "rows": int(len(ref)),
        "rows_with_some_feature_null": int(ref[all_cols].isna().any(axis=1).sum()),
        "rows_with_all_features_null": int(ref[all_cols].isna().all(axis=1).sum()),
        "returned_values_match_reference": bool(same.all()),
        "returned_cells_mismatching": int((~same).sum()),
        "dropped_rows_explained_by_ttl_miss": int((predicted_drop & actually_dropped).sum()),
        "dropped_rows_not_explained": int((actually_dropped & ~predicted_drop).sum()),
        "predicted_drops_not_dropped": int((predicted_drop & ~actually_dropped).sum()),
    }
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="feast_peer_data_") as tmp:
        t0 = time.perf_counter()
        entity_path = feature_data.entity_table(tmp)
        labels_path, view_paths = feature_data.pit_tables(tmp)
        gen_s = time.perf_counter() - t0
        online = feast_online_read(entity_path)
        print(f"online done: {json.dumps(online)}", file=sys.stderr, flush=True)
        historical = feast_historical(labels_path, view_paths)
    print(json.dumps({"data_generation_s": gen_s, "online": online, "historical": historical}, indent=2))


if __name__ == "__main__":
    main()
