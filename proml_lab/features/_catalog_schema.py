"""The catalog's SQLite schema and the small pure helpers the catalog shares (names, search terms, JSON).

One row per feature (anchored, window aggregation or derived) in ``features``, mirrored into the FTS5
table ``features_fts`` (same rowid) for ranked search; one row per entity, source, anchor and derived
definition in ``definitions``; every version ever applied (and every deletion) in ``history``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from proml_lab.errors import WorkspaceError

SCHEMA_VERSION = 1

# Column weights for bm25, in the order of the FTS columns: the name's words count most, so that
# "title" lists features *named* after titles before ones that only mention titles.
FTS_WEIGHTS = (10.0, 2.0, 4.0, 1.0)

FEATURE_COLUMNS = (
    "name", "entity", "kind", "type", "dimension", "description", "owner", "tags", "anchor", "source",
    "ttl_s", "freshness_sla_s", "online", "version", "definition", "file", "created_at", "updated_at",
)

_DDL = f"""
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS definitions (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    definition TEXT NOT NULL,
    file TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS features (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('feature', 'window', 'derived')),
    type TEXT NOT NULL,
    dimension INTEGER,
    description TEXT NOT NULL,
    owner TEXT,
    tags TEXT NOT NULL,
    anchor TEXT,
    source TEXT,
    ttl_s INTEGER,
    freshness_sla_s INTEGER,
    online INTEGER NOT NULL,
    version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    definition TEXT NOT NULL,
    file TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS features_by_entity ON features (entity, name);
CREATE INDEX IF NOT EXISTS features_by_anchor ON features (anchor);
CREATE VIRTUAL TABLE IF NOT EXISTS features_fts USING fts5(
    name_words, description, tags, entity,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    change TEXT NOT NULL CHECK (change IN ('created', 'updated', 'deleted')),
    fingerprint TEXT,
    definition TEXT,
    file TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_name ON history (kind, name, version);
CREATE INDEX IF NOT EXISTS history_deletions ON history (change) WHERE change = 'deleted';
CREATE TABLE IF NOT EXISTS lineage (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    feature TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (model, version, feature)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lineage_by_feature ON lineage (feature);
CREATE TABLE IF NOT EXISTS feature_stats (
    id INTEGER PRIMARY KEY,
    feature TEXT NOT NULL,
    batch INTEGER,
    range_start TEXT,
    range_end TEXT,
    recorded_at TEXT NOT NULL,
    stats TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feature_stats_by_feature ON feature_stats (feature, id);
CREATE TABLE IF NOT EXISTS online_state (
    anchor TEXT PRIMARY KEY,
    store_url TEXT NOT NULL,
    grp TEXT NOT NULL,
    rows INTEGER NOT NULL,
    max_event_ts TEXT,
    materialized_at TEXT NOT NULL
);
INSERT INTO features_fts (features_fts, rank) VALUES ('rank', 'bm25({", ".join(map(str, FTS_WEIGHTS))})');
INSERT INTO schema_version (version) SELECT {SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM schema_version);
"""


def ensure_schema(con: sqlite3.Connection) -> None:
    """Create the tables on first use (safe when several processes do it at once); refuse newer ones."""
    try:
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None or row[0] is None:
        try:
            con.executescript("BEGIN IMMEDIATE;" + _DDL + "COMMIT;")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    if row[0] > SCHEMA_VERSION:
        raise WorkspaceError(
            f"The feature catalog has schema version {row[0]}, newer than this ProML Lab understands "
            f"({SCHEMA_VERSION}). Upgrade proml-lab."
        )


# -- names and search terms ------------------------------------------------------------------------
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+")


def name_words(name: str) -> str:
    """``member_primaryTitleEmbedding_v1`` → ``"member primary title embedding v1"``."""
    return " ".join(w.lower() for w in _WORD.findall(_CAMEL.sub(" ", name)))


def query_terms(query: str, *, limit: int = 16) -> list[str]:
    """Words of a free-text query (camelCase split, lowercase); FTS syntax characters are dropped."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(_CAMEL.sub(" ", query or "")):
        seen.setdefault(w.lower(), None)
    return list(seen)[:limit]


def fts_match(terms: Sequence[str], operator: str = "AND") -> str:
    """A MATCH expression that prefix-matches each term; terms are quoted, so nothing is FTS syntax."""
    return f" {operator} ".join(f'"{t}"*' for t in terms)


def fts_row(fid: int, name: str, description: str, tags: Sequence[str], entity: str) -> tuple[Any, ...]:
    """Values of one ``features_fts`` row (rowid first)."""
    return (fid, name_words(name), description, " ".join(tags), entity)


FTS_INSERT = "INSERT INTO features_fts (rowid, name_words, description, tags, entity) VALUES (?, ?, ?, ?, ?)"


def close_names(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    """The names closest to ``name`` (difflib), cheaply pre-filtered by length for large catalogs."""
    pool = list(names)
    if len(pool) > 2000:
        lo, hi = len(name) * 2 // 3, len(name) * 3 // 2 + 2
        pool = [p for p in pool if lo <= len(p) <= hi]
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.75)  # names share entity prefixes
    if not close:
        return close
    # keep only near-ties of the best: "member_senority" suggests member_seniority, not every *Seniority
    best = difflib.SequenceMatcher(None, close[0], name).ratio()
    return [c for c in close if difflib.SequenceMatcher(None, c, name).ratio() >= best - 0.1]


# -- values ----------------------------------------------------------------------------------------
def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def iso(value: Any) -> str | None:
    """A timestamp (datetime, date, ISO string or None) as an ISO string; naive datetimes are UTC."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas / numpy timestamps
        return iso(value.to_pydatetime() if hasattr(value, "to_pydatetime") else value.isoformat())
    raise TypeError(f"expected a datetime, date or ISO string; got {type(value).__name__}")


def parse_iso(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    out = dt.datetime.fromisoformat(value)
    return out if out.tzinfo else out.replace(tzinfo=dt.timezone.utc)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_json_default)


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON that also takes numpy values, datetimes and sets."""
    return _ENCODER.encode(value)


def seconds(value: dt.timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Slices small enough for ``IN (?, ?, ...)`` (SQLite limits bound parameters)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
