"""Applying definitions to the catalog: cross-reference checks, versioning, and the writes.

:func:`apply_batch` reads what the catalog holds, checks the batch against it (entities, sources,
feature-name uniqueness, derived inputs), works out what is created, updated, unchanged or no longer
declared, and writes all of it in one ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue up
and a failure leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from proml_lab.errors import DefinitionError, FeatureInUseError
from proml_lab.features._catalog_schema import (
    FTS_INSERT,
    chunks,
    close_names,
    fts_row,
    now_iso,
    seconds,
    to_json,
)
from proml_lab.features.loader import LoadedDefinition, as_loaded, default_locator, raise_first
from proml_lab.features.spec import Anchor, Definition, DerivedFeature, Feature

REQUEST_ENTITY = "request"
_PLURAL = {"entity": "entities", "source": "sources", "anchor": "anchors", "feature": "features"}


class Change(NamedTuple):
    """One definition or feature and its version before and after (``None`` where it did not exist)."""

    kind: str  # "entity", "source", "anchor" or "feature" (every feature row: anchored, window, derived)
    name: str
    old_version: int | None
    new_version: int | None


@dataclass
class ApplyResult:
    """What an :meth:`~proml_lab.features.catalog.Catalog.apply` (or a delete) changed.

    ``updated`` entries carry ``(kind, name, old_version, new_version)``; ``deleted`` lists features an
    anchor no longer declares (and what a delete removed). :meth:`of_kind` selects one kind.
    """

    created: list[Change] = field(default_factory=list)
    updated: list[Change] = field(default_factory=list)
    unchanged: list[Change] = field(default_factory=list)
    deleted: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def of_kind(self, kind: str) -> ApplyResult:
        """Only the changes to one kind (``"feature"``, ``"anchor"``, ``"source"``, ``"entity"``)."""
        pick = lambda xs: [c for c in xs if c.kind == kind]  # noqa: E731
        return ApplyResult(pick(self.created), pick(self.updated), pick(self.unchanged), pick(self.deleted))

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"created": {"feature": 12, "anchor": 1}, "updated": {}, ...}``."""
        out: dict[str, dict[str, int]] = {}
        for what in ("created", "updated", "unchanged", "deleted"):
            per: dict[str, int] = {}
            for c in getattr(self, what):
                per[c.kind] = per.get(c.kind, 0) + 1
            out[what] = per
        return out

    def __str__(self) -> str:
        parts = []
        for what, per in self.counts().items():
            if per:
                kinds = ", ".join(
                    f"{n} {k if n == 1 else _PLURAL.get(k, k + 's')}" for k, n in sorted(per.items())
                )
                parts.append(f"{what} {kinds}")
        return "; ".join(parts) or "nothing to apply"


@dataclass
class _Row:
    """A feature row as the catalog stores it."""

    name: str
    entity: str
    kind: str
    type: str
    dimension: int | None
    description: str
    owner: str | None
    tags: list[str]
    anchor: str | None
    source: str | None
    ttl_s: int | None
    sla_s: int | None
    online: bool
    definition: dict[str, Any]
    file: str | None
    locator: str
    fingerprint: str = ""
    definition_json: str = ""

    def __post_init__(self) -> None:
        # the definition plus what the row inherits from its anchor (a derived row's online flag is
        # computed from its inputs, so it is not part of the definition)
        self.definition_json = to_json(self.definition)
        inherited = repr((self.entity, self.kind, self.anchor, self.source, self.owner, self.tags,
                          self.ttl_s, self.sla_s, self.online if self.kind != "derived" else None))
        digest = hashlib.sha256(f"{self.definition_json}\x1f{inherited}".encode())
        self.fingerprint = digest.hexdigest()[:16]

    def values(self) -> tuple[Any, ...]:
        return (self.entity, self.kind, self.type, self.dimension, self.description, self.owner,
                json.dumps(self.tags), self.anchor, self.source, self.ttl_s, self.sla_s, int(self.online),
                self.fingerprint, self.definition_json, self.file)

    def fts(self, fid: int) -> tuple[Any, ...]:
        return fts_row(fid, self.name, self.description, self.tags, self.entity)


def _anchor_rows(item: LoadedDefinition) -> list[_Row]:
    a: Anchor = item.definition  # type: ignore[assignment]
    canonical = a.canonical()
    dumped = [*canonical.get("features", []), *canonical.get("aggregations", [])]
    rows = []
    for f, d in zip(a.all_features, dumped):
        is_feature = isinstance(f, Feature)
        group = "features" if is_feature else "aggregations"
        rows.append(_Row(
            f.name, a.entity, "feature" if is_feature else "window", f.type,
            f.dimension if isinstance(f, Feature) else None, f.description, f.owner or a.owner,
            list(dict.fromkeys((*f.tags, *a.tags))), a.name, a.source, seconds(f.ttl or a.ttl),
            seconds(f.freshness_sla or a.freshness_sla), a.online, d, item.file,
            f"{item.locator}.{group}[{f.name}]",
        ))
    return rows


def _derived_row(item: LoadedDefinition) -> _Row:
    d: DerivedFeature = item.definition  # type: ignore[assignment]
    return _Row(d.name, d.entity, "derived", d.type, d.dimension, d.description, d.owner, list(d.tags),
                None, None, seconds(d.ttl), seconds(d.freshness_sla), True, d.canonical(), item.file,
                item.locator)


def _err(message: str, item: LoadedDefinition, suffix: str = "") -> DefinitionError:
    return DefinitionError(message, file=item.file, field=item.locator + suffix)


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = close_names(name, known)
    if close:
        return f"unknown {what} {name!r} (did you mean: {', '.join(close)}?)"
    listed = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
    return f"unknown {what} {name!r} (known: {listed or 'none yet'})"


def _dedupe(items: Sequence[LoadedDefinition]) -> list[LoadedDefinition]:
    seen: dict[tuple[str, str], LoadedDefinition] = {}
    errors = []
    for item in items:
        key = (item.definition.kind, item.definition.name)
        first = seen.get(key)
        if first is None:
            seen[key] = item
        elif first.definition.fingerprint() != item.definition.fingerprint():
            where = f" in {first.file}" if first.file else ""
            errors.append(_err(f"{key[0]} {key[1]!r} is defined twice, differently (also at "
                               f"{first.locator}{where})", item))
    raise_first(errors)
    return list(seen.values())


def apply_batch(con: sqlite3.Connection, batch: Sequence[Definition | LoadedDefinition]) -> ApplyResult:
    """Check and write ``batch`` in one transaction (see :meth:`Catalog.apply`)."""
    items = _dedupe([as_loaded(x) for x in batch])
    con.execute("BEGIN IMMEDIATE")
    try:
        result = _apply(con, items)
        con.execute("COMMIT")
        return result
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _apply(con: sqlite3.Connection, items: list[LoadedDefinition]) -> ApplyResult:
    cur_defs = {(k, n): (v, fp) for k, n, v, fp in con.execute(
        "SELECT kind, name, version, fingerprint FROM definitions")}
    cur_feats = {r[0]: r[1:] for r in con.execute(
        "SELECT name, id, entity, kind, anchor, version, fingerprint FROM features")}
    by_kind: dict[str, dict[str, LoadedDefinition]] = {
        k: {} for k in ("entity", "source", "anchor", "derived")}
    for item in items:
        by_kind[item.definition.kind][item.definition.name] = item
    names_of = lambda kind: {n for k, n in cur_defs if k == kind} | set(by_kind[kind])  # noqa: E731
    entities, sources = names_of("entity"), names_of("source")
    errors: list[DefinitionError] = []

    fps: dict[tuple[str, str], str] = {
        (it.definition.kind, it.definition.name): it.definition.fingerprint() for it in items}
    rows: dict[str, _Row] = {}  # rows to compare with the catalog's
    kept: dict[str, None] = {}  # features of anchors applied unchanged: their rows are the catalog's
    declared_by: dict[str, LoadedDefinition] = {}
    for kind in ("anchor", "derived"):
        for item in by_kind[kind].values():
            d: Any = item.definition  # an Anchor or a DerivedFeature
            if d.entity not in entities:
                errors.append(_err(_unknown("entity", d.entity, entities), item, ".entity"))
            if kind == "anchor" and d.source not in sources:
                errors.append(_err(_unknown("source", d.source, sources), item, ".source"))
            if kind == "anchor" and cur_defs.get(("anchor", d.name), (0, ""))[1] == fps["anchor", d.name]:
                declared: list[tuple[str, str, _Row | None]] = [
                    (f.name, f"{item.locator}.{'features' if isinstance(f, Feature) else 'aggregations'}"
                     f"[{f.name}]", None) for f in d.all_features]
            else:
                built = _anchor_rows(item) if kind == "anchor" else [_derived_row(item)]
                declared = [(r.name, r.locator, r) for r in built]
            for name, locator, row in declared:
                if name in declared_by:
                    other = declared_by[name]
                    where = f" in {other.file}" if other.file else ""
                    errors.append(DefinitionError(
                        f"feature {name!r} is also declared at {other.locator}{where}; feature names "
                        "are unique across all anchors and derived features", file=item.file, field=locator))
                    continue
                declared_by[name] = item
                if row is None:
                    kept[name] = None
                    continue
                rows[name] = row
                cur = cur_feats.get(name)
                if cur is None:
                    continue
                cur_anchor, cur_kind = cur[3], cur[2]
                if cur_kind == "derived" and name not in by_kind["derived"]:
                    errors.append(DefinitionError(
                        f"feature {name!r} is already a derived feature in the catalog; delete it "
                        "first to declare it here", file=item.file, field=locator))
                elif cur_anchor not in (None, row.anchor) and cur_anchor not in by_kind["anchor"]:
                    errors.append(DefinitionError(
                        f"feature {name!r} is already declared by anchor {cur_anchor!r} in the catalog; "
                        f"to move it, apply {cur_anchor!r} without it in the same batch",
                        file=item.file, field=locator))
    # features of an applied anchor that nothing declares any more
    removed = sorted(n for n, cur in cur_feats.items()
                     if cur[3] in by_kind["anchor"] and n not in rows and n not in kept)
    final_entity = {n: cur[1] for n, cur in cur_feats.items() if n not in removed}
    final_entity.update({n: r.entity for n, r in rows.items()})
    errors.extend(_check_derived(con, by_kind, rows, removed, cur_feats, final_entity))
    raise_first(errors)
    _refuse_if_used(con, removed)
    return _write(con, items, fps, rows, kept, removed, cur_defs, cur_feats)


_Current = dict[str, tuple[Any, ...]]  # feature name -> (id, entity, kind, anchor, version, fingerprint)


def _check_derived(
    con: sqlite3.Connection,
    by_kind: dict[str, dict[str, LoadedDefinition]],
    rows: dict[str, _Row],
    removed: list[str],
    cur_feats: _Current,
    final_entity: dict[str, str],
) -> list[DefinitionError]:
    """Inputs exist, belong to the derived feature's entity (or to ``request``), and form no cycle."""
    checks: dict[str, tuple[Any, LoadedDefinition]] = {
        n: (it.definition, it) for n, it in by_kind["derived"].items()}
    entity_moved = any(n in cur_feats and cur_feats[n][1] != r.entity for n, r in rows.items())
    if removed or entity_moved:
        for name, blob, file in con.execute(
                "SELECT name, definition, file FROM definitions WHERE kind = 'derived'"):
            if name not in checks:
                d = DerivedFeature.model_validate_json(blob)
                checks[name] = (d, LoadedDefinition(d, file, default_locator(d)))
    errors = []
    for name, (d, item) in checks.items():
        for inp in d.inputs:
            if inp not in final_entity:
                reason = (f"input {inp!r} is no longer declared by any anchor" if inp in removed
                          else _unknown("feature", inp, final_entity))
                errors.append(_err(reason, item, ".inputs"))
            elif final_entity[inp] not in (d.entity, REQUEST_ENTITY):
                errors.append(_err(
                    f"input {inp!r} is a feature of entity {final_entity[inp]!r}, not {d.entity!r} "
                    "(a derived feature combines features of its own entity and request features)",
                    item, ".inputs"))
    graph = {n: [i for i in d.inputs if i in checks] for n, (d, _) in checks.items()}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> list[str] | None:
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                return [*path, n, m]
            if m not in state and (cycle := visit(m, [*path, n])):
                return cycle
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n, [])):
            start = cycle.index(cycle[-1])
            errors.append(_err("derived features form a cycle: " + " -> ".join(cycle[start:]),
                               checks[cycle[-1]][1], ".inputs"))
            break
    return errors


def _refuse_if_used(con: sqlite3.Connection, names: Sequence[str]) -> None:
    used: dict[str, list[str]] = {}
    for part in chunks(list(names)):
        for feature, model in con.execute(
            "SELECT feature, model || ':' || version FROM lineage "
            f"WHERE feature IN ({','.join('?' * len(part))}) ORDER BY model, version", part):
            used.setdefault(feature, []).append(model)
    if used:
        first = min(used)
        raise FeatureInUseError(first, sorted({m for ms in used.values() for m in ms}))


def _deleted_versions(con: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(k, n): v for k, n, v in con.execute(
        "SELECT kind, name, max(version) FROM history WHERE change = 'deleted' GROUP BY kind, name")}


def _write(
    con: sqlite3.Connection,
    items: list[LoadedDefinition],
    fps: dict[tuple[str, str], str],
    rows: dict[str, _Row],
    kept: dict[str, None],
    removed: list[str],
    cur_defs: dict[tuple[str, str], tuple[int, str]],
    cur_feats: _Current,
) -> ApplyResult:
    """Write the changes (definitions, feature rows, search index, history) and report them."""
    result = ApplyResult()
    ts = now_iso()
    gone = _deleted_versions(con)
    def_upserts: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for item in items:
        d = item.definition
        key = (d.kind, d.name)
        fp = fps[key]
        cur = cur_defs.get(key)
        shown = "feature" if d.kind == "derived" else d.kind  # a derived feature reports as its feature row
        if cur and cur[1] == fp:
            if d.kind != "derived":
                result.unchanged.append(Change(shown, d.name, cur[0], cur[0]))
            continue
        version = cur[0] + 1 if cur else gone.get(key, 0) + 1
        if d.kind != "derived":
            (result.updated if cur else result.created).append(
                Change(shown, d.name, cur[0] if cur else None, version))
        blob = to_json(d.canonical())
        def_upserts.append((d.kind, d.name, version, fp, blob, item.file, ts, ts))
        history.append((d.kind, d.name, version, "updated" if cur else "created", fp, blob, item.file, ts))
    con.executemany(
        "INSERT INTO definitions (kind, name, version, fingerprint, definition, file, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (kind, name) DO UPDATE SET version = excluded.version, "
        "fingerprint = excluded.fingerprint, definition = excluded.definition, file = excluded.file, "
        "updated_at = excluded.updated_at", def_upserts)

    next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM features").fetchone()[0]
    inserts, updates, fts = [], [], []
    result.unchanged.extend(
        Change("feature", n, cur_feats[n][4], cur_feats[n][4]) for n in kept if n in cur_feats)
    for name, row in rows.items():
        old = cur_feats.get(name)
        if old and old[5] == row.fingerprint:
            result.unchanged.append(Change("feature", name, old[4], old[4]))
            continue
        if old:
            fid, version = old[0], old[4] + 1
            updates.append((*row.values(), version, ts, fid))
            result.updated.append(Change("feature", name, old[4], version))
        else:
            fid, next_id = next_id, next_id + 1
            version = gone.get(("feature", name), 0) + 1
            inserts.append((fid, name, *row.values(), version, ts, ts))
            result.created.append(Change("feature", name, None, version))
        fts.append(row.fts(fid))
        history.append(("feature", name, version, "updated" if old else "created", row.fingerprint,
                        row.definition_json, row.file, ts))
    cols = "entity, kind, type, dimension, description, owner, tags, anchor, source, ttl_s, " \
           "freshness_sla_s, online, fingerprint, definition, file, version"
    con.executemany(f"INSERT INTO features (id, name, {cols}, created_at, updated_at) "
                    f"VALUES ({', '.join('?' * 20)})", inserts)
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    con.executemany(f"UPDATE features SET {sets}, updated_at = ? WHERE id = ?", updates)
    con.executemany("DELETE FROM features_fts WHERE rowid = ?", [(u[-1],) for u in updates])
    con.executemany(FTS_INSERT, fts)
    result.deleted.extend(remove_features(
        con, [(n, cur_feats[n][0], cur_feats[n][4], cur_feats[n][2]) for n in removed], ts))
    con.executemany("INSERT INTO history (kind, name, version, change, fingerprint, definition, file, "
                    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", history)
    if fts or removed:
        refresh_derived_online(con)
    return result


def remove_features(
    con: sqlite3.Connection, doomed: Sequence[tuple[str, int, int, str]], ts: str
) -> list[Change]:
    """Delete feature rows ``(name, id, version, kind)`` (and derived definitions); history keeps a marker."""
    con.executemany("DELETE FROM features WHERE id = ?", [(d[1],) for d in doomed])
    con.executemany("DELETE FROM features_fts WHERE rowid = ?", [(d[1],) for d in doomed])
    derived = [(d[0],) for d in doomed if d[3] == "derived"]
    con.executemany("DELETE FROM definitions WHERE kind = 'derived' AND name = ?", derived)
    markers = [("feature", n, v, "deleted", ts) for n, _, v, _ in doomed]
    markers += [("derived", n, v, "deleted", ts) for n, _, v, k in doomed if k == "derived"]
    con.executemany("INSERT INTO history (kind, name, version, change, recorded_at) VALUES (?, ?, ?, ?, ?)",
                    markers)
    return [Change("feature", n, v, None) for n, _, v, _ in doomed]


def refresh_derived_online(con: sqlite3.Connection) -> None:
    """A derived feature is online when all its inputs are (request features always are)."""
    inputs_online = """NOT EXISTS (
        SELECT 1 FROM json_each(features.definition, '$.inputs') AS j JOIN features AS g ON g.name = j.value
        WHERE g.online = 0 AND g.entity != 'request')"""
    for _ in range(32):  # derived features of derived features settle in a few rounds
        if not con.execute(f"UPDATE features SET online = {inputs_online} "
                           f"WHERE kind = 'derived' AND online != {inputs_online}").rowcount:
            return


def upsert_definition(con: sqlite3.Connection, d: Definition, file: str | None, ts: str) -> Change:
    """Write one changed definition (used by deletes that rewrite an anchor)."""
    version = con.execute("SELECT max(version) FROM history WHERE kind = ? AND name = ?",
                          (d.kind, d.name)).fetchone()[0] or 0
    blob, fp = to_json(d.canonical()), d.fingerprint()
    con.execute("UPDATE definitions SET version = ?, fingerprint = ?, definition = ?, updated_at = ? "
                "WHERE kind = ? AND name = ?", (version + 1, fp, blob, ts, d.kind, d.name))
    con.execute("INSERT INTO history (kind, name, version, change, fingerprint, definition, file, "
                "recorded_at) VALUES (?, ?, ?, 'updated', ?, ?, ?, ?)",
                (d.kind, d.name, version + 1, fp, blob, file, ts))
    return Change(d.kind, d.name, version, version + 1)



def delete_in_catalog(con: sqlite3.Connection, name: str, kind: str | None) -> ApplyResult:
    """Delete a feature, an anchor (with its features), a source or an entity; see :meth:`Catalog.delete`."""
    from proml_lab.errors import FeatureError, UnknownFeatureError

    con.execute("BEGIN IMMEDIATE")
    try:
        result, ts = ApplyResult(), now_iso()
        feat = con.execute("SELECT name, id, version, kind, anchor FROM features WHERE name = ?",
                           (name,)).fetchone()
        exists = lambda k: con.execute(  # noqa: E731
            "SELECT 1 FROM definitions WHERE kind = ? AND name = ?", (k, name)).fetchone() is not None
        if kind in (None, "feature") and feat:
            doomed, anchor = [feat[:4]], feat[4]
        elif kind in (None, "anchor") and exists("anchor"):
            doomed = con.execute(
                "SELECT name, id, version, kind FROM features WHERE anchor = ? ORDER BY name", (name,)
            ).fetchall()
            anchor = name
        elif kind in ("source", "entity") and exists(kind):
            users = [n for (n,) in con.execute(
                "SELECT name FROM definitions WHERE kind IN ('anchor', 'derived') AND "
                f"json_extract(definition, '$.{kind}') = ? ORDER BY name", (name,))]
            if users:
                raise FeatureError(f"{kind} {name!r} is used by {', '.join(users)}; delete those first")
            _delete_definition(con, kind, name, ts, result)
            con.execute("COMMIT")
            return result
        else:
            what = kind or "feature"
            pool = [n for (n,) in con.execute("SELECT name FROM definitions WHERE kind = ?", (what,))] \
                if what != "feature" else [n for (n,) in con.execute("SELECT name FROM features")]
            raise UnknownFeatureError(name, close_names(name, pool), what=what)
        names = [d[0] for d in doomed]
        _refuse_if_used(con, names)
        users = sorted({n for part in chunks(names) for (n,) in con.execute(
            "SELECT DISTINCT f.name FROM features AS f, json_each(f.definition, '$.inputs') AS j "
            f"WHERE f.kind = 'derived' AND j.value IN ({','.join('?' * len(part))})", part)} - set(names))
        if users:
            raise FeatureError(f"derived feature(s) {', '.join(users)} use "
                               f"{', '.join(repr(n) for n in names)}; delete them first")
        result.deleted.extend(remove_features(con, doomed, ts))
        if anchor is not None:
            left = con.execute("SELECT count(*) FROM features WHERE anchor = ?", (anchor,)).fetchone()[0]
            if left == 0:
                _delete_definition(con, "anchor", anchor, ts, result)
                con.execute("DELETE FROM online_state WHERE anchor = ?", (anchor,))
            else:
                blob, file = con.execute("SELECT definition, file FROM definitions WHERE kind = 'anchor' "
                                         "AND name = ?", (anchor,)).fetchone()
                a = Anchor.model_validate_json(blob)
                kept = a.model_copy(update={
                    "features": tuple(f for f in a.features if f.name not in names),
                    "aggregations": tuple(f for f in a.aggregations if f.name not in names),
                })
                result.updated.append(upsert_definition(con, kept, file, ts))
        con.execute("COMMIT")
        return result
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _delete_definition(con: sqlite3.Connection, kind: str, name: str, ts: str, result: ApplyResult) -> None:
    (version,) = con.execute("DELETE FROM definitions WHERE kind = ? AND name = ? RETURNING version",
                             (kind, name)).fetchone()
    con.execute("INSERT INTO history (kind, name, version, change, recorded_at) "
                "VALUES (?, ?, ?, 'deleted', ?)", (kind, name, version, ts))
    result.deleted.append(Change(kind, name, version, None))
