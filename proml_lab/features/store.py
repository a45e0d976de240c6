"""The Feature Marketplace as one object: ``Workspace.features``.

It ties the parts together — definitions are *applied* to the catalog, anchors are *materialized*
offline on Spark (with statistics recorded per run), training data is a *point-in-time join*, and the
latest values are *pushed online* and *read* by name in request order. Every method is a short pipeline
of calls into the module that owns the concern.

Examples
--------
>>> ws = Workspace.init()                                                  # doctest: +SKIP
>>> ws.features.apply("features/")                                         # doctest: +SKIP
>>> ws.features.search("title")[0].name                                    # doctest: +SKIP
'member_primaryTitle'
>>> ws.features.get_online_features("member", [1, 2], ["member_seniority"])  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from proml_lab.errors import FeatureError
from proml_lab.features.spec import Anchor, Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from proml_lab.features.catalog import ApplyResult, Catalog, SearchHit
    from proml_lab.features.online.base import OnlineStore
    from proml_lab.workspace import Workspace

Progress = Callable[[str, int, int], None]
_ONLINE_CHUNK = 50_000


@dataclass
class MaterializeReport:
    """What one ``materialize`` call did, anchor by anchor."""

    offline_rows: dict[str, int] = field(default_factory=dict)
    online_rows: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)


class FeatureStore:
    """Define, discover, materialize, join and serve features by name (one per workspace)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._online: OnlineStore | None = None
        self._readers: dict[tuple[str, tuple[str, ...]], Callable[[Any], OnlineFeatures]] = {}

    # -- catalog -----------------------------------------------------------------------------------
    @functools.cached_property
    def catalog(self) -> Catalog:
        from proml_lab.features.catalog import Catalog

        return Catalog(self.workspace.connect_catalog)

    def apply(self, definitions: Any, *, validate: bool = True) -> ApplyResult:
        """Apply definitions: paths to YAML/Python files or folders, or definition objects.

        Identical definitions change nothing; a changed one becomes a new version (history kept).
        With ``validate``, anchors over Parquet sources are checked against the data's schema first.
        """
        from proml_lab.features.loader import load_definitions, parquet_schema, validate_against_sources

        items = definitions if isinstance(definitions, (list, tuple)) else [definitions]
        paths = [d for d in items if isinstance(d, (str, Path))]
        objects = [d for d in items if not isinstance(d, (str, Path))]
        loaded = [*(load_definitions(paths) if paths else []), *objects]
        if validate:
            lake = self.workspace.lake
            known = [*self.catalog.definitions("source"), *self.catalog.definitions("entity")]
            validate_against_sources(loaded, resolve_source_schema=lambda s: parquet_schema(s, lake), known=known)
        self._readers.clear()
        return self.catalog.apply(loaded)

    def search(self, query: str, **filters: Any) -> list[SearchHit]:
        """Full-text search over names, descriptions and tags (filters: entity, type, owner, online)."""
        return self.catalog.search(query, **filters)

    def describe(self, name: str) -> dict[str, Any]:
        """Definition, anchor, versions, lineage, statistics history and online freshness."""
        return self.catalog.describe(name)

    def delete(self, name: str) -> None:
        """Delete a feature, refused while a published model uses it."""
        self.catalog.delete(name)

    # -- offline -----------------------------------------------------------------------------------
    def _anchors(self, names: Sequence[str] | None) -> list[Anchor]:
        return [self.catalog.anchor(n) for n in (names or self.catalog.anchor_names())]

    def _sources(self) -> dict[str, Source]:
        return {name: self.catalog.source(name) for name in self.catalog.source_names()}

    def materialize(
        self,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        anchors: Sequence[str] | None = None,
        online: bool = False,
        as_of: dt.datetime | None = None,
        progress: Progress | None = None,
    ) -> MaterializeReport:
        """Materialize anchors into feature tables on Spark, record statistics, optionally push online.

        ``as_of`` is the moment the online store should reflect (default: now); see
        :meth:`materialize_online`.
        """
        from proml_lab.features.offline import materialize_anchor
        from proml_lab.features.stats import summarize

        report, todo = MaterializeReport(), self._anchors(anchors)
        spark, sources = self.workspace.spark(), self._sources()
        for i, anchor in enumerate(todo):
            entity = self.catalog.entity(anchor.entity)
            done = materialize_anchor(
                spark, anchor, entity, sources[anchor.source], lake=self.workspace.lake, sources=sources,
                start=start, end=end,
            )
            types = {f.name: getattr(f, "type", "numeric") for f in anchor.all_features}
            for name, stats in summarize(done.frame, types).items():
                self.catalog.record_stats(name, stats, batch=done.batch, range_start=start, range_end=end)
            report.offline_rows[anchor.name] = done.rows
            report.batches[anchor.name] = done.batch
            if progress:
                progress("materialize offline", i + 1, len(todo))
        if online:
            report.online_rows = self.materialize_online([a.name for a in todo], as_of=as_of, progress=progress)
        return report

    def get_training_data(
        self, labels: Any, features: Sequence[str], *, timestamp_column: str = "timestamp"
    ) -> DataFrame:
        """Point-in-time join: each label row gets each feature's latest value at or before its timestamp.

        ``labels`` is a Spark or pandas DataFrame with the entity keys, ``timestamp_column`` and any
        other columns (kept as they are). Every label row comes back exactly once.
        """
        from proml_lab.features.offline import FeatureRequest
        from proml_lab.features.pit import add_derived, get_training_data

        spark = self.workspace.spark()
        if not hasattr(labels, "sparkSession"):
            labels = spark.createDataFrame(labels)
        records = self.catalog.resolve(features)
        derived = [self.catalog.derived(r.name) for r in records if r.kind == "derived"]
        needed = [r for r in records if r.kind != "derived"]
        extra = [n for d in derived for n in d.inputs if n not in {r.name for r in needed}]
        needed += self.catalog.resolve(list(dict.fromkeys(extra))) if extra else []
        requests = [
            FeatureRequest(
                feature=r.name,
                anchor=r.anchor,
                table_path=self.workspace.lake / "features" / r.anchor,
                join_key=self.catalog.entity(r.entity).join_key,
                ttl=r.ttl,
            )
            for r in needed
        ]
        joined = get_training_data(spark, labels, requests, timestamp_column=timestamp_column)
        if derived:
            joined = add_derived(joined, derived)
        return joined.drop(*[n for n in extra if n not in features])

    # -- online ------------------------------------------------------------------------------------
    @property
    def online_store(self) -> OnlineStore:
        """The online store at ``PROML_ONLINE_STORE`` (SQLite in the workspace by default)."""
        if self._online is None:
            from proml_lab.features.online import open_online_store

            self._online = open_online_store(self.workspace.online_store_url)
        return self._online

    def materialize_online(
        self, anchors: Sequence[str] | None = None, *, as_of: dt.datetime | None = None,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Push each online anchor's value per key as of ``as_of`` (default: now) to the online store.

        Sliding windows have change points in the future (when events leave a window), so the value
        pushed is the one in force at ``as_of``, not the last row of the feature table. Replaying a
        historical data set (such as the sample world) passes the end of its time range.

        Batches are atomic and idempotent; an older value never overwrites a newer one. The group
        name carries the anchor's definition fingerprint, so a changed definition never mixes with
        values written under the old one.
        """
        import pyarrow.compute as pc

        from proml_lab.features.online.codec import FieldSpec, GroupSchema

        written: dict[str, int] = {}
        moment = _moment(as_of)
        self._readers.clear()
        todo = [a for a in self._anchors(anchors) if a.online]
        for i, anchor in enumerate(todo):
            entity = self.catalog.entity(anchor.entity)
            latest = self._latest_rows(anchor, entity.join_key, moment)
            schema = GroupSchema(tuple(
                FieldSpec(f.name, getattr(f, "type", "numeric"), getattr(f, "dimension", None))
                for f in anchor.all_features
            ))
            group = online_group(anchor)
            store, keys = self.online_store, latest[entity.join_key].to_numpy(zero_copy_only=False)
            ts = latest["event_ts"].cast(pa.int64()).to_numpy()
            for lo in range(0, latest.num_rows, _ONLINE_CHUNK):
                part = latest.slice(lo, _ONLINE_CHUNK)
                store.write_batch(
                    anchor.entity, group, schema, keys[lo : lo + _ONLINE_CHUNK],
                    {f.name: part[f.name] for f in schema.fields}, ts[lo : lo + _ONLINE_CHUNK],
                )
            self.catalog.record_online(
                anchor.name, store_url=store.url, group=group, rows=latest.num_rows,
                max_event_ts=None if latest.num_rows == 0 else pc.max(latest["event_ts"]).as_py(),
            )
            written[anchor.name] = latest.num_rows
            if progress:
                progress("materialize online", i + 1, len(todo))
        return written

    def _latest_rows(self, anchor: Anchor, join_key: str, moment: dt.datetime) -> pa.Table:
        """The row in force at ``moment`` for every key of an anchor's offline feature table."""
        import pyarrow.dataset as ds

        path = self.workspace.lake / "features" / anchor.name
        if not path.exists():
            raise FeatureError(
                f"Anchor {anchor.name!r} has not been materialized offline yet; run "
                "`proml features materialize` (or FeatureStore.materialize) first."
            )
        table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
        table = table.filter(ds.field("event_ts") <= pa.scalar(moment, pa.timestamp("us", tz="UTC")))
        return _latest_per_key(table, join_key)

    def latest_values(self, entity: str, features: Sequence[str], *,
                      as_of: dt.datetime | None = None) -> pa.Table:
        """The value in force at ``as_of`` (default: now) of ``features`` for every key of ``entity``.

        Read from the offline feature tables with the same rule as :meth:`materialize_online`; derived
        features are computed by the same function as online. Returns the entity's key column (sorted)
        then one column per feature; a key missing from one anchor has nulls for its features.
        """
        from proml_lab.features.derived import compute_derived

        derived, stored = self._stored_and_derived(entity, features)
        by_anchor: dict[str, list[str]] = {}
        for r in stored:
            by_anchor.setdefault(str(r.anchor), []).append(r.name)
        key, moment = self.catalog.entity(entity).join_key, _moment(as_of)
        parts = [self._latest_rows(self.catalog.anchor(a), key, moment).select([key, *names])
                 for a, names in by_anchor.items()]
        key_parts = [p[key].to_numpy(zero_copy_only=False) for p in parts]
        all_keys = np.unique(np.concatenate(key_parts)) if key_parts else np.empty(0, dtype=np.int64)
        columns: dict[str, Any] = {}
        for part in parts:  # align every anchor on the union of keys (null where an anchor lacks a key)
            part_keys = part[key].to_numpy(zero_copy_only=False)
            at = np.minimum(np.searchsorted(part_keys, all_keys), max(len(part_keys) - 1, 0))
            missing = part_keys[at] != all_keys if len(part_keys) else np.ones(len(all_keys), dtype=bool)
            taken = part.take(pa.array(at, mask=missing))
            columns.update({name: taken[name] for name in part.column_names if name != key})
        for name, d in derived.items():
            values = compute_derived(d.function, {n: _numeric(columns[n]) for n in d.inputs}, d.params)
            columns[name] = _arrow(values)
        return pa.table({key: pa.array(all_keys), **{name: columns[name] for name in features}})

    def _stored_and_derived(self, entity: str, features: Sequence[str]) -> tuple[dict[str, Any], list[Any]]:
        """The derived features among *features* (name -> definition) and the stored features to read:
        the others plus the derived ones' inputs. Raises if a feature belongs to another entity."""
        records = self.catalog.resolve(list(features))
        wrong = [r.name for r in records if r.entity != entity]
        if wrong:
            raise FeatureError(f"Features {', '.join(wrong)} do not belong to entity {entity!r}.")
        derived = {r.name: self.catalog.derived(r.name) for r in records if r.kind == "derived"}
        stored = [r for r in records if r.kind != "derived"]
        inputs = [n for d in derived.values() for n in d.inputs if n not in {r.name for r in stored}]
        stored += self.catalog.resolve(list(dict.fromkeys(inputs))) if inputs else []
        return derived, stored

    def get_online_features(self, entity: str, keys: Any, features: Sequence[str]) -> pa.Table:
        """Feature values for ``keys`` (request order; missing keys give nulls) as an Arrow table.

        Derived features are computed by the same function as offline.
        """
        return self.online_reader(entity, features)(keys).to_arrow()

    def online_reader(self, entity: str, features: Sequence[str]) -> Callable[[Any], OnlineFeatures]:
        """A reader bound to one feature list: catalog look-ups happen once, not per request.

        The reader returns :class:`OnlineFeatures` (numpy columns, the form the ranking engine
        consumes). Readers are cached until the next ``apply`` or ``materialize_online``.
        """
        cache_key = (entity, tuple(features))
        if cache_key not in self._readers:
            self._readers[cache_key] = self._make_reader(entity, cache_key[1])
        return self._readers[cache_key]

    def _make_reader(self, entity: str, features: tuple[str, ...]) -> Callable[[Any], OnlineFeatures]:
        from proml_lab.features.derived import compute_derived

        derived, stored = self._stored_and_derived(entity, features)
        by_group: dict[str, list[str]] = {}
        for r in stored:
            group = self.catalog.online_group(r.anchor)
            if group is None:
                raise FeatureError(
                    f"Feature {r.name!r} is not online yet; run `proml features materialize --online`."
                )
            by_group.setdefault(group, []).append(r.name)
        store = self.online_store

        def read(keys: Any) -> OnlineFeatures:
            key_array = np.asarray(keys)
            columns: dict[str, Any] = {}
            for group, names in by_group.items():
                columns.update(store.read(entity, group, key_array, names).columns)
            for name, d in derived.items():
                columns[name] = compute_derived(d.function, {n: _numeric(columns[n]) for n in d.inputs}, d.params)
            return OnlineFeatures((name, columns[name]) for name in features)

        return read


class OnlineFeatures(dict):
    """Feature name → column for one online read, in request order.

    Numeric and binary features are float64 arrays (NaN where missing), vectors float32 arrays of
    shape (n, dimension), categorical and text features Arrow string arrays (null where missing).
    """

    def to_arrow(self) -> pa.Table:
        return pa.table({name: _arrow(column) for name, column in self.items()})

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()


def online_group(anchor: Anchor) -> str:
    """Online group of an anchor: its name plus the fingerprint of its definition."""
    return f"{anchor.name}@{anchor.fingerprint()[:8]}"


def _latest_per_key(table: pa.Table, key: str) -> pa.Table:
    """The last row per key by (event_ts, _batch), columnar (one sort, one boundary mask)."""
    if table.num_rows == 0:
        return table
    order = table.sort_by([(key, "ascending"), ("event_ts", "ascending"), ("_batch", "ascending")])
    keys = order[key].to_numpy(zero_copy_only=False)
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = keys[1:] != keys[:-1]
    return order.filter(pa.array(last))


def _moment(as_of: dt.datetime | None) -> dt.datetime:
    moment = as_of or dt.datetime.now(dt.timezone.utc)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _numeric(column: Any) -> np.ndarray:
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(column, dtype=np.float64)


def _arrow(column: Any) -> pa.Array:
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return column
    array = np.asarray(column)
    if array.ndim == 2:  # dense vectors: a fixed-size list per row, null where every element is NaN
        flat = pa.array(array.reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, array.shape[1], mask=pa.array(np.isnan(array).all(axis=1)))
    if array.dtype.kind == "f":
        return pa.array(array, mask=np.isnan(array))
    return pa.array(array)


__all__ = ["FeatureStore", "MaterializeReport", "OnlineFeatures", "online_group"]
