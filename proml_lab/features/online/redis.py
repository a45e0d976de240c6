"""The scale-out online store: Redis (``redis://host:port/db``, ``rediss://`` for TLS).

Each row is one string key ``{prefix}:{entity}:{group}:{key}`` holding the packed blob (whose first 8
bytes are the event timestamp). Reads are one ``MGET`` per 10 000 keys, pipelined into one round trip.
Writes run a Lua script that stores a row only if its timestamp is at least the stored one; a batch
is one ``EVALSHA`` per chunk inside one ``MULTI``/``EXEC``, so readers never see half a batch. Group
schemas live in the hash ``{prefix}::groups``. The prefix (default ``proml``) is set with
``?prefix=name`` in the URL; other query options go to the redis client (``socket_timeout=5``).

Not for Redis Cluster as is: a batch touches keys in many hash slots.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from proml_lab.errors import MissingDependencyError, OnlineStoreError
from proml_lab.features.online.base import OnlineStore, SchemaMismatchError, GroupMeta

_CHUNK = 10_000
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+$")

# KEYS[1] = schema hash, KEYS[2..] = rows; ARGV[1] = hash field, ARGV[2] = meta JSON, ARGV[3..] = blobs.
# Timestamps are compared as (high int32, low uint32) because Lua numbers are doubles and would lose
# precision on a whole int64.
_WRITE_LUA = """
local meta = redis.call('HGET', KEYS[1], ARGV[1])
if meta and meta ~= ARGV[2] then
  return redis.error_reply('PROML_SCHEMA_MISMATCH')
end
if not meta then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local written = 0
for i = 2, #KEYS do
  local new = ARGV[i + 1]
  local cur = redis.call('GETRANGE', KEYS[i], 0, 7)
  local newer = true
  if #cur == 8 then
    local clo, chi = struct.unpack('<I4i4', cur)
    local nlo, nhi = struct.unpack('<I4i4', new)
    newer = nhi > chi or (nhi == chi and nlo >= clo)
  end
  if newer then
    redis.call('SET', KEYS[i], new)
    written = written + 1
  end
end
return written
"""


class RedisOnlineStore(OnlineStore):
    """Online store in Redis: ``redis://[:password@]host:port/db[?prefix=proml]``.

    The connection is made on first use with a 1 s connect timeout, so an unreachable server fails
    fast with :class:`~proml_lab.errors.OnlineStoreError` (``open_online_store`` checks it at once).
    """

    def __init__(self, url: str) -> None:
        connect_url, self.prefix = _split_prefix(url)
        super().__init__(_redact(url))
        self._connect_url = connect_url
        self._client: Any = None
        self._script: Any = None
        self._groups_key = f"{self.prefix}::groups"
        self._closed = False

    # -- connection -----------------------------------------------------------------------------------

    def _redis(self) -> Any:
        if self._client is None:
            if self._closed:
                raise OnlineStoreError("This online store was closed; open it again", url=self.url)
            try:
                import redis
            except ImportError:
                raise MissingDependencyError("redis") from None
            # Fail fast instead of hanging: 1 s to connect, 5 s for any reply (a 1M-row batch runs in
            # about a second). URL query options win over these defaults.
            self._client = redis.Redis.from_url(self._connect_url, socket_connect_timeout=1, socket_timeout=5)
            self._script = self._client.register_script(_WRITE_LUA)
        return self._client

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the client's connection errors into OnlineStoreError that says what to check."""
        import redis.exceptions as rx

        try:
            yield
        except rx.AuthenticationError as exc:
            raise OnlineStoreError(f"Redis refused the credentials ({exc}); check the password in the URL",
                                   url=self.url) from None
        except (rx.ConnectionError, rx.TimeoutError) as exc:
            raise OnlineStoreError(
                f"Cannot reach Redis ({exc}); check that redis-server is running at that host and port "
                "and reachable from here, and the URL's db number", url=self.url) from None
        except rx.ResponseError as exc:
            if "PROML_SCHEMA_MISMATCH" in str(exc):
                raise SchemaMismatchError("The group was just written with another schema",
                                          url=self.url) from None
            raise OnlineStoreError(f"Redis error: {exc}", url=self.url) from None
        except rx.RedisError as exc:  # e.g. something else answers on that port
            raise OnlineStoreError(f"Unexpected answer from Redis ({exc}); check that the URL points at a "
                                   "Redis server", url=self.url) from None

    def close(self) -> None:
        self._closed = True
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()
            self._client = None

    # -- blobs ---------------------------------------------------------------------------------------------

    def _names(self, entity: str, group: str, keys: np.ndarray) -> list[bytes]:
        # Built as bytes in C (numpy): the client passes bytes through, where it would encode each str.
        raw = np.strings.encode(keys, "utf-8") if keys.dtype.kind == "U" else keys.astype("S20")
        return np.strings.add(f"{self.prefix}:{entity}:{group}:".encode(), raw).tolist()

    def _put(self, entity: str, group: str, meta: GroupMeta, keys: np.ndarray, ts: np.ndarray,
             blobs: list[bytes]) -> int:
        names = self._names(entity, group, keys)
        field = f"{entity}:{group}"
        with self._errors():
            client = self._redis()
            if len(names) <= _CHUNK:  # one script run is atomic by itself
                return int(self._script(keys=[self._groups_key, *names], args=[field, meta.json, *blobs]))
            pipe = client.pipeline(transaction=True)  # MULTI/EXEC: no reader sees part of the batch
            for start in range(0, len(names), _CHUNK):
                self._script(keys=[self._groups_key, *names[start : start + _CHUNK]],
                             args=[field, meta.json, *blobs[start : start + _CHUNK]], client=pipe)
            results = pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception):
                with self._errors():
                    raise result
        return int(sum(results))

    def _get(self, entity: str, group: str, keys: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        names = self._names(entity, group, keys)
        with self._errors():
            client = self._redis()
            if len(names) <= _CHUNK:
                values = client.mget(names)
            else:
                pipe = client.pipeline(transaction=False)
                for start in range(0, len(names), _CHUNK):
                    pipe.mget(names[start : start + _CHUNK])
                values = list(itertools.chain.from_iterable(pipe.execute()))
        objs = np.empty(len(values), dtype=object)
        objs[:] = values
        found = objs != None  # noqa: E711 - elementwise in C
        return keys[found], objs[found].tolist()

    def _load_meta(self, entity: str, group: str) -> str | None:
        with self._errors():
            value = self._redis().hget(self._groups_key, f"{entity}:{group}")
        return None if value is None else value.decode()

    # -- groups ------------------------------------------------------------------------------------------

    def groups(self) -> list[tuple[str, str]]:
        with self._errors():
            fields = self._redis().hkeys(self._groups_key)
        return sorted(tuple(f.decode().split(":", 1)) for f in fields)  # type: ignore[misc]

    def delete_group(self, entity: str, group: str) -> int:
        # Entity and group names cannot hold ':' or glob characters (checked by the base class), so the
        # pattern matches exactly this group's rows.
        pattern = f"{self.prefix}:{entity}:{group}:*"
        deleted = 0
        with self._errors():
            client = self._redis()
            client.hdel(self._groups_key, f"{entity}:{group}")  # first: readers stop seeing the group
            batch: list[bytes] = []
            for name in client.scan_iter(match=pattern, count=_CHUNK):
                batch.append(name)
                if len(batch) >= _CHUNK:
                    deleted += client.unlink(*batch)
                    batch = []
            if batch:
                deleted += client.unlink(*batch)
        self._meta.pop((entity, group), None)
        return deleted

    def _ping(self, counts: bool = False) -> dict[str, Any]:
        with self._errors():
            client = self._redis()
            client.ping()
            if not counts:
                return {}
            return {"keys": int(client.dbsize()), "groups": int(client.hlen(self._groups_key)),
                    "prefix": self.prefix}


def _split_prefix(url: str) -> tuple[str, str]:
    """The URL without our ``prefix`` option, and the prefix."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "proml")
    if not _PREFIX.match(prefix):
        raise OnlineStoreError(f"The key prefix must match {_PREFIX.pattern}; got {prefix!r}",
                               url=_redact(url))
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), prefix


def _redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (it ends up in error messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit((parts.scheme, f"{user}@{netloc[-1]}", parts.path, parts.query, parts.fragment))
