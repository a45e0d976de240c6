"""The online store of the Feature Marketplace: latest feature values per entity key, read in µs.

Values are packed per (entity, key, feature group) with their event timestamp (:mod:`.codec`). The
store is chosen by URL with :func:`open_online_store`: an embedded SQLite file by default
(``sqlite:///abs/path.db``), Redis to scale out (``redis://host:6379/0``), or a plugin registered with
:func:`register_online_store` or under the ``proml_lab.online_stores`` entry-point group (name = the
URL scheme, value = a callable taking the URL and returning an :class:`OnlineStore`).

Examples
--------
>>> import numpy as np, tempfile, os
>>> schema = GroupSchema((FieldSpec("member_seniority", "numeric"), FieldSpec("member_title", "text")))
>>> with open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "online.db")) as store:
...     store.write_batch("member", "member_profile", schema, np.array([1, 2]),
...                       {"member_seniority": [3.0, 4.0], "member_title": ["chef", None]},
...                       np.array([1_700_000_000_000_000] * 2))
...     store.read("member", "member_profile", np.array([2, 9, 1])).columns["member_title"].to_pylist()
2
[None, None, 'chef']
"""

from __future__ import annotations

from collections.abc import Callable

from proml_lab._registry import Registry
from proml_lab.errors import OnlineStoreError
from proml_lab.features.online.base import (
    OnlineRead,
    OnlineStore,
    SchemaMismatchError,
    UnknownGroupError,
)
from proml_lab.features.online.codec import MISSING_TS, FieldSpec, GroupSchema, decode, encode

__all__ = [
    "MISSING_TS",
    "FieldSpec",
    "GroupSchema",
    "OnlineRead",
    "OnlineStore",
    "SchemaMismatchError",
    "UnknownGroupError",
    "decode",
    "encode",
    "open_online_store",
    "register_online_store",
]

ENTRY_POINT_GROUP = "proml_lab.online_stores"
StoreFactory = Callable[[str], OnlineStore]

_REGISTRY: Registry[StoreFactory] = Registry(ENTRY_POINT_GROUP, "Online-store", normalize=str.lower)


def register_online_store(scheme: str, factory: StoreFactory) -> None:
    """Make :func:`open_online_store` use ``factory(url)`` for URLs ``scheme://...``.

    Examples
    --------
    >>> register_online_store("mystore", MyOnlineStore)  # doctest: +SKIP
    >>> open_online_store("mystore://host/db")  # doctest: +SKIP
    MyOnlineStore('mystore://host/db')
    """
    _REGISTRY.register(scheme, factory)


def open_online_store(url: str) -> OnlineStore:
    """Open the online store at ``url`` and check that it can be used (fails within about a second).

    Raises
    ------
    OnlineStoreError
        The scheme is unknown (the message lists the known ones), or the store cannot be reached
        (the message names the URL, without its password, and what to check).

    Examples
    --------
    >>> import tempfile, os
    >>> open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "o.db")).health()["ok"]
    True
    >>> open_online_store("nosuch://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    proml_lab.errors.OnlineStoreError: Unknown online store scheme 'nosuch'; known schemes: ...
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    factory = _REGISTRY.get(scheme)
    if factory is None:
        raise OnlineStoreError(
            f"Unknown online store scheme {scheme!r}; known schemes: {', '.join(_REGISTRY.names())}",
            url=url,
        )
    store = factory(url)
    try:
        store._ping()
    except BaseException:
        store.close()
        raise
    return store


def _sqlite_factory(url: str) -> OnlineStore:
    from proml_lab.features.online.sqlite import SQLiteOnlineStore

    return SQLiteOnlineStore(url)


def _redis_factory(url: str) -> OnlineStore:
    from proml_lab.features.online.redis import RedisOnlineStore

    return RedisOnlineStore(url)


# Built-ins register like plugins; their modules (and the redis client) load only when used.
register_online_store("sqlite", _sqlite_factory)
register_online_store("redis", _redis_factory)
register_online_store("rediss", _redis_factory)
