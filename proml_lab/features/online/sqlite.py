"""The embedded online store: one SQLite file in WAL mode (the default, zero set-up).

Rows live in one ``WITHOUT ROWID`` table clustered on (group id, key), so a read is a b-tree seek per
key. Each thread gets its own connection (SQLite connections must not be shared across threads
without a lock, and a lock would serialize the serving path); WAL lets readers run while a
materialization job writes.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from proml_lab.features.online import FieldSpec, GroupSchema, open_online_store
>>> store = open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "online.db"))
>>> type(store).__name__
'SQLiteOnlineStore'
"""

from __future__ import annotations

import sqlite3
import threading
from itertools import repeat
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from proml_lab.errors import OnlineStoreError
from proml_lab.features.online.base import OnlineStore, SchemaMismatchError, GroupMeta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_groups (
    gid    INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    grp    TEXT NOT NULL,
    meta   TEXT,                -- NULL once deleted; the gid stays, so cached gids never go stale
    UNIQUE (entity, grp)
);
CREATE TABLE IF NOT EXISTS online_rows (
    gid   INTEGER NOT NULL,
    key   NOT NULL,             -- no declared type: int keys stay INTEGER, str keys TEXT
    ts    INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (gid, key)
) WITHOUT ROWID;
"""
_UPSERT = (
    "INSERT INTO online_rows (gid, key, ts, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (gid, key) DO UPDATE SET ts = excluded.ts, value = excluded.value "
    "WHERE excluded.ts >= online_rows.ts"
)
_GET_ONE = "SELECT key, value FROM online_rows WHERE gid = ? AND key = ?"
# SQLite >= 3.32 allows 32766 bound parameters; one is the gid.
_MAX_IN = 16384


class SQLiteOnlineStore(OnlineStore):
    """Online store in one SQLite file: ``sqlite:///abs/path/online.db``.

    Parameters
    ----------
    url
        ``sqlite:///`` followed by an absolute path (``sqlite:////abs/path`` works too). The
        directory is created if missing.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = _path_from_url(url)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._gids: dict[tuple[str, str], int] = {}
        self._closed = False

    # -- connections -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self._connect()
        return con

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise OnlineStoreError("This online store was closed; open it again", url=self.url)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is one transaction.
            # check_same_thread=False only so close() may close other threads' connections.
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False,
                                  cached_statements=256)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            # Reads are random b-tree seeks: map the file (pages shared by every connection through
            # the OS cache) and give each connection a larger private cache than the 2 MiB default.
            con.execute("PRAGMA mmap_size=1073741824")
            con.execute("PRAGMA cache_size=-32768")
            con.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OnlineStoreError(
                f"Cannot open the SQLite online store file {self.path}: {exc}. Check that the directory "
                "exists or can be created and is writable, and that the file is a SQLite database",
                url=self.url,
            ) from None
        with self._lock:
            self._connections.append(con)
        return con

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for con in self._connections:
                con.close()
            self._connections.clear()
        self._local = threading.local()

    # -- blobs ---------------------------------------------------------------------------------------

    def _gid(self, con: sqlite3.Connection, entity: str, group: str) -> int | None:
        gid = self._gids.get((entity, group))
        if gid is None:
            row = con.execute("SELECT gid FROM online_groups WHERE entity = ? AND grp = ?",
                              (entity, group)).fetchone()
            if row is None:
                return None
            gid = self._gids[(entity, group)] = row[0]
        return gid

    def _put(self, entity: str, group: str, meta: GroupMeta, keys: np.ndarray, ts: np.ndarray,
             blobs: list[bytes]) -> int:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")  # take the write lock now, not half-way through the batch
        try:
            row = con.execute(
                "SELECT gid, meta FROM online_groups WHERE entity = ? AND grp = ?", (entity, group)
            ).fetchone()
            if row is None:
                cur = con.execute("INSERT INTO online_groups (entity, grp, meta) VALUES (?, ?, ?)",
                                  (entity, group, meta.json))
                gid = int(cur.lastrowid or 0)
            else:
                gid, stored = row
                if stored is not None and stored != meta.json:  # another writer got there first
                    raise SchemaMismatchError(
                        f"Group {group!r} of entity {entity!r} was just written with another schema",
                        url=self.url)
                if stored is None:
                    con.execute("UPDATE online_groups SET meta = ? WHERE gid = ?", (meta.json, gid))
            before = con.total_changes
            con.executemany(_UPSERT, zip(repeat(gid), keys.tolist(), ts.tolist(), blobs))
            written = con.total_changes - before
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._gids[(entity, group)] = gid
        return written

    def _get(self, entity: str, group: str, keys: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        con = self._conn()
        gid = self._gid(con, entity, group)
        if gid is None:
            return keys[:0], []
        if len(keys) == 1:
            rows = con.execute(_GET_ONE, (gid, keys[0].item())).fetchall()
        else:
            rows = []
            values = keys.tolist()
            for start in range(0, len(values), _MAX_IN):
                chunk = values[start : start + _MAX_IN]
                # Pad to a power of two so a handful of statements cover every size (and stay cached).
                size = 1 << (len(chunk) - 1).bit_length()
                chunk += [chunk[-1]] * (size - len(chunk))
                sql = f"SELECT key, value FROM online_rows WHERE gid = ? AND key IN ({','.join('?' * size)})"
                rows += con.execute(sql, (gid, *chunk)).fetchall()
        if not rows:
            return keys[:0], []
        found, blobs = zip(*rows)
        return np.array(found, dtype=keys.dtype if keys.dtype.kind == "i" else None), list(blobs)

    def _load_meta(self, entity: str, group: str) -> str | None:
        row = self._conn().execute(
            "SELECT meta FROM online_groups WHERE entity = ? AND grp = ?", (entity, group)
        ).fetchone()
        return None if row is None else row[0]

    # -- groups ----------------------------------------------------------------------------------------

    def groups(self) -> list[tuple[str, str]]:
        rows = self._conn().execute(
            "SELECT entity, grp FROM online_groups WHERE meta IS NOT NULL ORDER BY entity, grp"
        ).fetchall()
        return [(e, g) for e, g in rows]

    def delete_group(self, entity: str, group: str) -> int:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            gid = self._gid(con, entity, group)
            deleted = 0
            if gid is not None:
                deleted = con.execute("DELETE FROM online_rows WHERE gid = ?", (gid,)).rowcount
                con.execute("UPDATE online_groups SET meta = NULL WHERE gid = ?", (gid,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._meta.pop((entity, group), None)
        return deleted

    def _ping(self, counts: bool = False) -> dict[str, Any]:
        con = self._conn()
        try:
            con.execute("SELECT 1 FROM online_groups LIMIT 1").fetchall()
            if not counts:
                return {}
            groups = con.execute("SELECT count(*) FROM online_groups WHERE meta IS NOT NULL").fetchone()[0]
            rows = con.execute("SELECT count(*) FROM online_rows").fetchone()[0]
        except sqlite3.Error as exc:
            raise OnlineStoreError(f"The SQLite online store {self.path} cannot be read: {exc}",
                                   url=self.url) from None
        return {"groups": groups, "rows": rows, "path": str(self.path)}


def _path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc or not parts.path.strip("/"):
        raise OnlineStoreError(
            "A SQLite online store URL looks like sqlite:///absolute/path/online.db", url=url
        )
    return Path("/" + unquote(parts.path).lstrip("/"))
