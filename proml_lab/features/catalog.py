"""The feature catalog: definitions, versions, full-text search, lineage, statistics, online state.

The catalog is the Feature Marketplace's memory. Providers :meth:`~Catalog.apply` definitions (from
:func:`~proml_lab.features.loader.load_definitions` or built in Python); modelers :meth:`~Catalog.search`
and :meth:`~Catalog.describe` features and :meth:`~Catalog.resolve` the names a model uses; the
offline pipeline records statistics and online materializations; publishing records lineage, which
protects a feature in use from deletion.

Storage is one SQLite database (the workspace's ``catalog.db``, WAL mode) with an FTS5 index for
ranked search. Every write call is one transaction: concurrent writers queue, readers never block,
and a failed call leaves nothing half-written.

Examples
--------
>>> import sqlite3
>>> from proml_lab.features.spec import Anchor, Entity, Feature, Source
>>> cat = Catalog(lambda: sqlite3.connect(":memory:"))
>>> print(cat.apply([
...     Entity(name="member", join_key="member_id"),
...     Source(name="members", path="world/members", timestamp_column="joined_date"),
...     Anchor(name="member_profile", entity="member", source="members", owner="profile-team",
...            features=[Feature(name="member_primaryTitle", expr="title", type="categorical")]),
... ]))
created 1 anchor, 1 entity, 1 feature, 1 source
>>> [h.name for h in cat.search("titl")]
['member_primaryTitle']
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from proml_lab.errors import UnknownFeatureError
from proml_lab.features._catalog_apply import (
    ApplyResult,
    Change,
    apply_batch,
    delete_in_catalog,
)
from proml_lab.features._catalog_records import FeatureRecord, SearchHit, UnknownFeaturesError
from proml_lab.features._catalog_schema import (
    FEATURE_COLUMNS,
    FTS_WEIGHTS,
    chunks,
    close_names,
    ensure_schema,
    fts_match,
    iso,
    name_words,
    now_iso,
    parse_iso,
    query_terms,
    to_json,
)
from proml_lab.features.loader import LoadedDefinition
from proml_lab.features.spec import (
    Anchor,
    Definition,
    DerivedFeature,
    Entity,
    Source,
    format_duration,
)

__all__ = ["ApplyResult", "Catalog", "Change", "FeatureRecord", "SearchHit", "UnknownFeaturesError"]


_RANK_CAP = 2000  # hits ranked exactly; broader queries rank a name-first sample (see Catalog._ranked)
_HIT_COLUMNS = "f.name, f.entity, f.type, f.description, f.owner, f.tags, f.online"
_SELECT_FEATURES = "SELECT " + ", ".join(FEATURE_COLUMNS) + " FROM features"


class Catalog:
    """The feature catalog over one SQLite database.

    Parameters
    ----------
    connect
        Opens a connection to the catalog database, e.g. ``workspace.connect_catalog``. Called once
        per thread and process (so threads sharing a catalog need a file database, not
        ``:memory:``); the schema is created on first use.

    Examples
    --------
    >>> import sqlite3
    >>> cat = Catalog(lambda: sqlite3.connect(":memory:"))
    >>> cat.summary()["features"]
    0
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.connect = connect
        self._local = threading.local()

    @classmethod
    def for_workspace(cls, workspace: Any) -> Catalog:
        """The catalog of a :class:`~proml_lab.workspace.Workspace`."""
        return cls(workspace.connect_catalog)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None or self._local.pid != os.getpid():
            con = self.connect()
            con.isolation_level = None  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            con.execute("PRAGMA cache_size = -131072")  # up to 128 MiB: search joins hits to rows
            ensure_schema(con)
            self._local.con, self._local.pid = con, os.getpid()
        return con

    def close(self) -> None:
        """Close this thread's connection (a later call opens a new one)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- writing definitions ---------------------------------------------------------------------
    def apply(self, definitions: Sequence[Definition | LoadedDefinition]) -> ApplyResult:
        """Add or update definitions, all or nothing.

        Checks the batch together with what the catalog holds: entities and sources that anchors
        and derived features name exist; feature names are unique across all anchors and derived
        features (a feature moves between anchors when both are applied together); derived inputs
        exist and belong to the same entity (or to ``request``). A changed definition becomes the
        next version (earlier ones stay in the history); an identical one changes nothing. Features
        an applied anchor no longer declares are deleted (refused while a model uses them).

        Returns
        -------
        ApplyResult
            ``created``, ``updated``, ``unchanged``, ``deleted``: :class:`Change` entries for
            entities, sources, anchors and features.

        Raises
        ------
        DefinitionError
            A reference is unknown (with "did you mean") or a name clashes; names file and field.
        FeatureInUseError
            The batch drops a feature that a recorded model uses.
        """
        return apply_batch(self._con(), definitions)

    def delete(
        self, name: str, *, kind: Literal["feature", "anchor", "source", "entity"] | None = None
    ) -> ApplyResult:
        """Delete a feature, or an anchor with all its features (history keeps a deletion marker).

        A feature is looked up first, then an anchor; sources and entities need ``kind``. Deleting one
        feature of an anchor writes a new version of the anchor without it (the anchor goes when its
        last feature does).

        Raises
        ------
        FeatureInUseError
            A model uses the feature (or one of the anchor's); the error lists the models.
        FeatureError
            Derived features use it (or anchors use the source/entity); delete those first.
        UnknownFeatureError
            No such name.
        """
        return delete_in_catalog(self._con(), name, kind)

    # -- reading -----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        entity: str | None = None,
        type: str | None = None,
        owner: str | None = None,
        online: bool | None = None,
        limit: int = 20,
    ) -> list[SearchHit]:
        """Ranked full-text search over feature names, descriptions, tags and entities.

        Every word of ``query`` must match, as a word or the start of one (``"titl"`` finds
        ``title``); camelCase and snake_case names are split into words, and name words weigh most
        (bm25). Punctuation and FTS operators in ``query`` are ignored, never errors. If no feature
        matches all words, features matching any of them are returned. An empty query lists the
        features passing the filters by name.

        Examples
        --------
        >>> import sqlite3
        >>> Catalog(lambda: sqlite3.connect(":memory:")).search('"AND(')
        []
        """
        filters, params = [], []
        for column, value in (("entity", entity), ("type", type), ("owner", owner), ("online", online)):
            if value is not None:
                filters.append(f"f.{column} = ?")
                params.append(int(value) if column == "online" else value)
        con, limit = self._con(), max(0, int(limit))
        terms = query_terms(query)
        if terms:
            rows = self._ranked(fts_match(terms), filters, params, limit, entity)
            if not rows and len(terms) > 1:  # nothing has every word: fall back to any word
                rows = self._ranked(fts_match(terms, "OR"), filters, params, limit, entity)
        else:
            where = f"WHERE {' AND '.join(filters)}" if filters else ""
            rows = con.execute(
                f"SELECT {_HIT_COLUMNS}, 0.0 FROM features AS f {where} ORDER BY f.name LIMIT ?",
                (*params, limit)).fetchall()
        return [SearchHit(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), bool(r[6]), float(r[7]))
                for r in rows]

    def _ranked(self, words: str, filters: list[str], params: list[Any], limit: int,
                entity: str | None) -> list[tuple[Any, ...]]:
        """bm25-ranked hits of the MATCH expression ``words`` that pass ``filters``.

        Ranking costs about a microsecond per hit, so a broad query (more than ``_RANK_CAP`` hits,
        e.g. "member") ranks a sample: the first ``_RANK_CAP`` features whose *name* matches (of the
        filtered entity, when there is one), then, if too few pass the filters, any field.
        """
        con = self._con()
        weights = ", ".join(map(str, FTS_WEIGHTS))

        def ranked(match: str, cap: int | None) -> list[tuple[Any, ...]]:
            hits = (f"SELECT s.rowid AS id, bm25(features_fts, {weights}) AS score FROM features_fts AS s "
                    "WHERE features_fts MATCH ?" + (f" LIMIT {cap}" if cap else ""))
            # with filters, each hit's row is checked (CROSS JOIN keeps the index driving): inline when
            # all hits are ranked (bm25 runs only for rows that pass), after the cap when sampling
            if filters and cap is None:
                hits = hits.replace("AS s WHERE", "AS s CROSS JOIN features AS f ON f.id = s.rowid WHERE") \
                    + "".join(f" AND {c}" for c in filters)
            elif filters:
                hits = (f"SELECT c.id, c.score FROM ({hits}) AS c CROSS JOIN features AS f ON f.id = c.id "
                        f"WHERE {' AND '.join(filters)}")
            # rank, then read only the rows shown (equal scores: by name among them)
            top = f"SELECT id, score FROM ({hits}) ORDER BY score, id LIMIT ?"
            return con.execute(
                f"SELECT {_HIT_COLUMNS}, -r.score FROM ({top}) AS r CROSS JOIN features AS f ON f.id = r.id "
                "ORDER BY r.score, f.name", (match, *params, limit)).fetchall()

        probe = ("SELECT count(*) FROM (SELECT 1 FROM features_fts WHERE features_fts MATCH ? "
                 f"LIMIT {_RANK_CAP + 1})")
        if con.execute(probe, (words,)).fetchone()[0] <= _RANK_CAP:
            return ranked(words, None)
        of_entity = f' AND entity : "{name_words(entity)}"' if entity and name_words(entity) else ""
        rows = ranked(f"name_words : ({words}){of_entity}", _RANK_CAP)
        if len(rows) < limit:
            seen = {r[0] for r in rows}
            more = [r for r in ranked(f"({words}){of_entity}", _RANK_CAP) if r[0] not in seen]
            rows += more[: limit - len(rows)]
        return rows

    def feature(self, name: str) -> FeatureRecord:
        """The feature called ``name``; :class:`UnknownFeatureError` with the closest names if none."""
        row = self._con().execute(_SELECT_FEATURES + " WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownFeatureError(name, self._suggest(name))
        return FeatureRecord._from_row(row)

    def features(self, entity: str | None = None) -> list[FeatureRecord]:
        """All features (of one entity), by name."""
        if entity is None:
            rows = self._con().execute(_SELECT_FEATURES + " ORDER BY name")
        else:
            rows = self._con().execute(_SELECT_FEATURES + " WHERE entity = ? ORDER BY name", (entity,))
        return [FeatureRecord._from_row(r) for r in rows]

    def resolve(self, names: Sequence[str]) -> list[FeatureRecord]:
        """The records of ``names``, in order; every unknown name is reported in one error.

        Raises
        ------
        UnknownFeatureError
            One unknown name; :class:`UnknownFeaturesError` (a subclass) for several.
        """
        found: dict[str, FeatureRecord] = {}
        wanted = list(dict.fromkeys(names))
        for part in chunks(wanted):
            for row in self._con().execute(
                _SELECT_FEATURES + f" WHERE name IN ({','.join('?' * len(part))})", part):
                found[row[0]] = FeatureRecord._from_row(row)
        unknown = {n: self._suggest(n) for n in wanted if n not in found}
        if len(unknown) == 1:
            (n, s), = unknown.items()
            raise UnknownFeatureError(n, s)
        if unknown:
            raise UnknownFeaturesError(unknown)
        return [found[n] for n in names]

    def entity(self, name: str) -> Entity:
        """The entity definition called ``name``."""
        return self._definition("entity", name, Entity)

    def source(self, name: str) -> Source:
        """The source definition called ``name``."""
        return self._definition("source", name, Source)

    def anchor(self, name: str) -> Anchor:
        """The anchor definition called ``name``."""
        return self._definition("anchor", name, Anchor)

    def derived(self, name: str) -> DerivedFeature:
        """The derived-feature definition called ``name``."""
        return self._definition("derived", name, DerivedFeature)

    def definitions(self, kind: Literal["entity", "source", "anchor", "derived"]) -> list[Definition]:
        """Every definition of one kind, by name."""
        model: Any = {"entity": Entity, "source": Source, "anchor": Anchor, "derived": DerivedFeature}[kind]
        rows = self._con().execute("SELECT definition FROM definitions WHERE kind = ? ORDER BY name", (kind,))
        return [model.model_validate_json(blob) for (blob,) in rows]

    def entity_names(self) -> list[str]:
        """Names of all entities, sorted."""
        return self._names("entity")

    def source_names(self) -> list[str]:
        """Names of all sources, sorted."""
        return self._names("source")

    def anchor_names(self) -> list[str]:
        """Names of all anchors, sorted."""
        return self._names("anchor")

    def _names(self, kind: str) -> list[str]:
        return [n for (n,) in self._con().execute(
            "SELECT name FROM definitions WHERE kind = ? ORDER BY name", (kind,))]

    def _definition(self, kind: str, name: str, model: type[Any]) -> Any:
        con = self._con()
        row = con.execute("SELECT definition FROM definitions WHERE kind = ? AND name = ?",
                          (kind, name)).fetchone()
        if row is None:
            pool = [n for (n,) in con.execute("SELECT name FROM definitions WHERE kind = ?", (kind,))]
            what = "derived feature" if kind == "derived" else kind
            raise UnknownFeatureError(name, close_names(name, pool), what=what)
        return model.model_validate_json(row[0])

    def _suggest(self, name: str) -> list[str]:
        """Closest feature names; large catalogs pre-select candidates by words and prefix."""
        con = self._con()
        if con.execute("SELECT count(*) FROM features").fetchone()[0] <= 5000:
            return close_names(name, [n for (n,) in con.execute("SELECT name FROM features")])
        pool = {n for (n,) in con.execute("SELECT name FROM features WHERE name >= ? AND name < ? LIMIT 2000",
                                          (name[:4], name[:4] + "\U0010ffff"))}
        terms = query_terms(name)
        if terms:
            pool.update(n for (n,) in con.execute(
                "SELECT f.name FROM features_fts AS s CROSS JOIN features AS f ON f.id = s.rowid "
                "WHERE features_fts MATCH ? ORDER BY s.rank LIMIT 2000", (fts_match(terms, "OR"),)))
        return close_names(name, sorted(pool))

    # -- describe ----------------------------------------------------------------------------------
    def describe(self, name: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """Everything known about a feature, as JSON-ready data.

        Keys: ``feature`` (the record), ``definition``, ``anchor`` and ``source`` (their definitions,
        ``None`` for derived features), ``versions`` (oldest first, deletions included), ``lineage``
        (``"model:version"`` using it), ``stats`` (newest first) and ``online``: the store URL, group,
        rows, newest event time and materialization time of the feature's anchor, and ``freshness``:
        ``"fresh"`` when it was materialized within the freshness SLA before ``now``, ``"stale"``
        after it, ``"unknown"`` without an SLA or a materialization.
        """
        rec = self.feature(name)
        con = self._con()
        versions = [
            {"version": v, "change": c, "recorded_at": t, "fingerprint": fp, "file": f,
             "definition": json.loads(d) if d else None}
            for v, c, t, fp, f, d in con.execute(
                "SELECT version, change, recorded_at, fingerprint, file, definition FROM history "
                "WHERE kind = 'feature' AND name = ? ORDER BY id", (name,))
        ]
        return {
            "feature": rec.to_dict(),
            "definition": rec.definition,
            "anchor": self.anchor(rec.anchor).canonical() if rec.anchor else None,
            "source": self.source(rec.source).canonical() if rec.source else None,
            "versions": versions,
            "lineage": self.models_using(name),
            "stats": self.stats_history(name),
            "online": self._online_status(rec, now or dt.datetime.now(dt.timezone.utc)),
        }

    def _online_status(self, rec: FeatureRecord, now: dt.datetime) -> dict[str, Any]:
        row = None
        if rec.anchor:
            row = self._con().execute(
                "SELECT store_url, grp, rows, max_event_ts, materialized_at FROM online_state "
                "WHERE anchor = ?",
                (rec.anchor,)).fetchone()
        out: dict[str, Any] = {
            "online": rec.online, "store_url": None, "group": None, "rows": None, "max_event_ts": None,
            "materialized_at": None, "age_s": None,
            "freshness_sla": format_duration(rec.freshness_sla) if rec.freshness_sla else None,
            "freshness": "unknown",
        }
        if row is None:
            return out
        out.update(store_url=row[0], group=row[1], rows=row[2], max_event_ts=row[3], materialized_at=row[4])
        now = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
        age = now - (parse_iso(row[4]) or now)
        out["age_s"] = age.total_seconds()
        if rec.freshness_sla is not None:
            out["freshness"] = "fresh" if age <= rec.freshness_sla else "stale"
        return out

    def online_availability(self, names: Sequence[str], *, now: dt.datetime | None = None
                            ) -> dict[str, dict[str, Any]]:
        """Per feature: can a model read it online? ``{name: {entity, type, serves_online, available,
        freshness, materialized_at}}`` in the order of *names*.

        An anchored feature is ``available`` once it serves online and its anchor was materialized to
        the online store; a derived feature once it serves online and every input is available (it is
        computed from them at read time), and it is ``"stale"`` when an input is.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        out: dict[str, dict[str, Any]] = {}

        def status(name: str) -> dict[str, Any]:
            if name not in out:
                rec = self.feature(name)
                online = self._online_status(rec, now)
                entry = {"entity": rec.entity, "type": rec.type, "serves_online": rec.online,
                         "freshness": online["freshness"], "materialized_at": online["materialized_at"]}
                if rec.kind == "derived":
                    out[name] = entry  # guards against a (rejected at apply) cycle
                    inputs = [status(i) for i in (rec.definition or {}).get("inputs", [])]
                    entry["available"] = rec.online and all(i["available"] for i in inputs)
                    if any(i["freshness"] == "stale" for i in inputs):
                        entry["freshness"] = "stale"
                else:
                    entry["available"] = rec.online and online["materialized_at"] is not None
                out[name] = entry
            return out[name]

        for name in names:
            status(name)
        return {n: out[n] for n in names}

    # -- lineage -----------------------------------------------------------------------------------
    def record_lineage(self, model: str, version: str, features: Sequence[str]) -> None:
        """Record that ``model`` version ``version`` uses ``features`` (replacing what was recorded)."""
        self.resolve(features)
        rows = [(model, str(version), f, now_iso()) for f in dict.fromkeys(features)]
        self._write(lambda con: (
            con.execute("DELETE FROM lineage WHERE model = ? AND version = ?", (model, str(version))),
            con.executemany(
                "INSERT INTO lineage (model, version, feature, recorded_at) VALUES (?, ?, ?, ?)", rows),
        ))

    def remove_lineage(self, model: str, version: str | None = None) -> None:
        """Forget a retired model (one version, or all of them), so its features may be deleted."""
        if version is None:
            self._write(lambda con: con.execute("DELETE FROM lineage WHERE model = ?", (model,)))
        else:
            self._write(lambda con: con.execute("DELETE FROM lineage WHERE model = ? AND version = ?",
                                                (model, str(version))))

    def models_using(self, name: str) -> list[str]:
        """``["model:version", ...]`` of the recorded models that use feature ``name``."""
        return [m for (m,) in self._con().execute(
            "SELECT model || ':' || version FROM lineage WHERE feature = ? ORDER BY model, version", (name,))]

    # -- statistics and online state ---------------------------------------------------------------
    def record_stats(self, feature: str, stats: dict[str, Any], *, batch: int | None = None,
                     range_start: Any = None, range_end: Any = None) -> None:
        """Store one materialization's statistics of ``feature`` (a JSON blob; numpy values are fine)."""
        self.feature(feature)
        row = (feature, batch, iso(range_start), iso(range_end), now_iso(), to_json(stats))
        self._write(lambda con: con.execute(
            "INSERT INTO feature_stats (feature, batch, range_start, range_end, recorded_at, stats) "
            "VALUES (?, ?, ?, ?, ?, ?)", row))

    def stats_history(self, feature: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded statistics of ``feature``, newest first."""
        rows = self._con().execute(
            "SELECT batch, range_start, range_end, recorded_at, stats FROM feature_stats WHERE feature = ? "
            "ORDER BY id DESC LIMIT ?", (feature, -1 if limit is None else limit))
        return [{"batch": b, "range_start": s, "range_end": e, "recorded_at": t, "stats": json.loads(j)}
                for b, s, e, t, j in rows]

    def record_online(self, anchor: str, *, store_url: str, group: str, rows: int, max_event_ts: Any,
                      materialized_at: Any = None) -> None:
        """Record that ``anchor``'s latest values are in the online store (as feature group ``group``)."""
        self.anchor(anchor)
        row = (anchor, store_url, group, int(rows), iso(max_event_ts), iso(materialized_at) or now_iso())
        self._write(lambda con: con.execute(
            "INSERT OR REPLACE INTO online_state "
            "(anchor, store_url, grp, rows, max_event_ts, materialized_at) VALUES (?, ?, ?, ?, ?, ?)", row))

    def online_group(self, anchor: str) -> str | None:
        """The online feature group ``anchor`` was materialized as, or ``None`` if it was not."""
        row = self._con().execute("SELECT grp FROM online_state WHERE anchor = ?", (anchor,)).fetchone()
        return row[0] if row else None

    def summary(self) -> dict[str, Any]:
        """Counts: features by entity, value type and kind; entities, sources, anchors; online features."""
        con = self._con()
        count = lambda sql: dict(con.execute(sql).fetchall())  # noqa: E731
        defs = count("SELECT kind, count(*) FROM definitions GROUP BY kind")
        return {
            "features": con.execute("SELECT count(*) FROM features").fetchone()[0],
            "by_entity": count("SELECT entity, count(*) FROM features GROUP BY entity ORDER BY entity"),
            "by_type": count("SELECT type, count(*) FROM features GROUP BY type ORDER BY type"),
            "by_kind": count("SELECT kind, count(*) FROM features GROUP BY kind ORDER BY kind"),
            "online": con.execute("SELECT count(*) FROM features WHERE online = 1").fetchone()[0],
            "entities": defs.get("entity", 0),
            "sources": defs.get("source", 0),
            "anchors": defs.get("anchor", 0),
            "derived": defs.get("derived", 0),
        }

    def _write(self, body: Callable[[sqlite3.Connection], Any]) -> None:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            body(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
