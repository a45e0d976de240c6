"""The online store interface and the logic every implementation shares.

An :class:`OnlineStore` keeps the latest values of each feature group per entity key, packed into one
blob per (entity, group, key) with the event timestamp (:mod:`.codec`). Implementations only move
blobs; the code here validates and encodes batches, decodes reads into request order, and keeps model
coefficient tables as feature groups. :func:`~proml_lab.features.online.open_online_store` picks the
implementation by URL scheme.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from proml_lab.errors import OnlineStoreError
from proml_lab.features.online import codec
from proml_lab.features.online.codec import Column, FieldSpec, GroupSchema

COEFFICIENT_PREFIX = "__coef__"

_ENTITY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# ':' separates the parts of a Redis key and glob characters would make SCAN patterns ambiguous.
_GROUP = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=/-]*$")
_MODEL_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$")


class UnknownGroupError(OnlineStoreError, KeyError):
    """Nothing was ever written to this (entity, group) in the store, so there is no schema to read it."""

    def __init__(self, entity: str, group: str, *, url: str, known: Sequence[str] = (),
                 what: str = "") -> None:
        listing = f" Groups of {entity!r} in this store: {', '.join(sorted(known))}." if known else ""
        what = what or f"feature group {group!r} of entity {entity!r}"
        super().__init__(f"No {what} has been written to this store.{listing}", url=url)
        self.entity = entity
        self.group = group

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class SchemaMismatchError(OnlineStoreError):
    """A batch's schema (or key type) differs from the one the group was written with."""


@dataclass
class OnlineRead:
    """The result of :meth:`OnlineStore.read`: one row per requested key, in request order.

    ``columns`` maps feature names to ``float64`` arrays (numeric, binary), ``float32`` ``(n, dim)``
    arrays (vectors) or nullable :class:`pyarrow.StringArray` (categorical, text). A key the store does
    not hold has ``found`` False, null values and ``event_ts_us`` :data:`~.codec.MISSING_TS`.
    """

    columns: dict[str, Column]
    event_ts_us: np.ndarray
    found: np.ndarray

    def __len__(self) -> int:
        return len(self.found)


@dataclass(frozen=True)
class GroupMeta:
    schema: GroupSchema
    key_type: str  # "int64" or "string"
    json: str

    @classmethod
    def of(cls, schema: GroupSchema, key_type: str) -> GroupMeta:
        text = json.dumps({"key_type": key_type, "schema": schema.to_dict()}, sort_keys=True,
                          separators=(",", ":"))
        return cls(schema, key_type, text)

    @classmethod
    def parse(cls, text: str | bytes) -> GroupMeta:
        data = json.loads(text)
        return cls.of(GroupSchema.from_json(json.dumps(data["schema"])), data["key_type"])


class OnlineStore(ABC):
    """Latest feature values per entity key, packed per feature group; see the module docstring.

    Subclasses implement the blob moves (``_put``, ``_get``, ``_load_meta``, ``_ping``), ``groups``,
    ``delete_group`` and ``close``; every other method is shared and covered by the conformance suite
    in ``tests/features/online``.
    """

    url: str

    def __init__(self, url: str) -> None:
        self.url = url
        self._meta: dict[tuple[str, str], GroupMeta] = {}

    # -- what an implementation provides ----------------------------------------------------------

    @abstractmethod
    def _put(self, entity: str, group: str, meta: GroupMeta, keys: np.ndarray, ts: np.ndarray,
             blobs: list[bytes]) -> int:
        """Atomically store rows whose ``ts`` >= the stored one (and the group's meta if absent);
        returns how many rows were stored. Keys are unique."""

    @abstractmethod
    def _get(self, entity: str, group: str, keys: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """The keys among the unique ``keys`` that are stored (any order) and their blobs."""

    @abstractmethod
    def _load_meta(self, entity: str, group: str) -> str | None:
        """The group's meta JSON, or None if the group was never written (or was deleted)."""

    @abstractmethod
    def _ping(self, counts: bool = False) -> dict[str, Any]:
        """Raise :class:`OnlineStoreError` if the store cannot be used; with ``counts``, return
        row / key / group counts for :meth:`health`."""

    @abstractmethod
    def groups(self) -> list[tuple[str, str]]:
        """The (entity, group) pairs this store holds, sorted."""

    @abstractmethod
    def delete_group(self, entity: str, group: str) -> int:
        """Delete every row of a group and its schema; returns the number of rows deleted."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""

    # -- shared verbs -------------------------------------------------------------------------------

    def write_batch(self, entity: str, group: str, schema: GroupSchema, keys: np.ndarray,
                    columns: Mapping[str, Any], event_ts_us: np.ndarray) -> int:
        """Store one batch of rows of a feature group, all or nothing.

        A row replaces the stored row of its key only if its event time is at least as new, so
        re-writing a batch is harmless and re-materializing an older range never overwrites newer
        values. Within the batch, the newest row of a repeated key wins (the last one on a tie).

        Parameters
        ----------
        entity, group
            Where the rows go (``member``, ``member_profile``).
        schema
            The group's fields; must equal the schema the group was first written with.
        keys, columns, event_ts_us
            ``int64`` or ``str`` keys (one kind per group); values of every field (see
            :func:`.codec.encode`); event times in µs since the epoch (or ``datetime64``).

        Returns
        -------
        int
            Rows stored (rows skipped because a newer value is stored are not counted).

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from proml_lab.features.online import open_online_store
        >>> store = open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "o.db"))
        >>> s = GroupSchema((FieldSpec("x", "numeric"),))
        >>> store.write_batch("member", "g", s, np.array([1]), {"x": [1.0]}, np.array([10]))
        1
        >>> store.write_batch("member", "g", s, np.array([1]), {"x": [0.0]}, np.array([5]))  # older
        0
        """
        _check_names(entity, group)
        stored = self._meta_or_none(entity, group, refresh=True)
        keys = _as_keys(keys, stored.key_type if stored else None)
        scalar = np.ndim(event_ts_us) == 0
        ts = codec.as_timestamps(np.broadcast_to(event_ts_us, keys.shape) if scalar else event_ts_us)
        if len(ts) != len(keys):
            raise ValueError(f"event_ts_us has {len(ts)} values for {len(keys)} keys")
        key_type = "int64" if keys.dtype.kind == "i" else "string"
        meta = GroupMeta.of(schema, key_type)
        if stored is not None and stored.json != meta.json:
            raise SchemaMismatchError(
                f"Group {group!r} of entity {entity!r} was written with schema "
                f"{stored.schema.fingerprint()} and {stored.key_type} keys; this batch has schema "
                f"{schema.fingerprint()} and {key_type} keys. Write to a new group name (e.g. with a "
                "version suffix) or delete_group() first",
                url=self.url,
            )
        blobs = codec.encode(schema, columns, ts)  # validates every column before anything is written
        keep = _newest_per_key(keys, ts)
        if keep is not None:
            packed = np.empty(len(blobs), dtype=object)
            packed[:] = blobs
            keys, ts, blobs = keys[keep], ts[keep], packed[keep].tolist()
        written = self._put(entity, group, meta, keys, ts, blobs)
        self._meta[(entity, group)] = meta
        return written

    def read(self, entity: str, group: str, keys: np.ndarray,
             features: Sequence[str] | None = None) -> OnlineRead:
        """The stored values of ``keys`` in request order (repeats allowed; unknown keys are missing).

        Parameters
        ----------
        entity, group
            The feature group to read (:class:`UnknownGroupError` if it was never written).
        keys
            Entity keys; converted to the group's key type (``int64`` or ``str``).
        features
            Fields to return, in this order; default: all fields of the group.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from proml_lab.features.online import open_online_store
        >>> store = open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "o.db"))
        >>> s = GroupSchema((FieldSpec("city", "categorical"),))
        >>> _ = store.write_batch("member", "g", s, np.array(["a"]), {"city": ["Oslo"]}, np.array([9]))
        >>> r = store.read("member", "g", np.array(["b", "a", "a"]))
        >>> r.columns["city"].to_pylist(), r.found.tolist()
        ([None, 'Oslo', 'Oslo'], [False, True, True])
        """
        meta = self._require_meta(entity, group)
        keys = _as_keys(keys, meta.key_type)
        try:
            return self._read(entity, group, meta, keys, features)
        except codec.SchemaTagMismatch:
            # Another process replaced the group (delete_group + new schema) since we cached it.
            self._meta.pop((entity, group), None)
            meta = self._require_meta(entity, group)
            try:
                return self._read(entity, group, meta, _as_keys(keys, meta.key_type), features)
            except codec.SchemaTagMismatch:
                raise OnlineStoreError(
                    f"Rows of group {group!r} of entity {entity!r} do not match its stored schema; "
                    "re-materialize the group (delete_group, then write it again)", url=self.url
                ) from None

    def _read(self, entity: str, group: str, meta: GroupMeta, keys: np.ndarray,
              features: Sequence[str] | None) -> OnlineRead:
        if len(keys) == 1:  # serving's common case: skip the sort and the gather
            found_keys, blobs = self._get(entity, group, keys)
            if blobs:
                columns, ts = codec.decode_present(meta.schema, blobs, features)
                return OnlineRead(columns, ts, np.ones(1, dtype=bool))
            columns, ts = codec.missing_rows(meta.schema, 1, features)
            return OnlineRead(columns, ts, np.zeros(1, dtype=bool))
        unique, inverse = np.unique(keys, return_inverse=True)
        found_keys, blobs = self._get(entity, group, unique) if len(unique) else (unique, [])
        columns, ts = codec.decode_present(meta.schema, blobs, features)
        # Row of each unique key among the returned rows (-1 = not stored), then per requested key.
        row_of_unique = np.full(len(unique), -1, dtype=np.int64)
        row_of_unique[np.searchsorted(unique, found_keys)] = np.arange(len(found_keys))
        index = row_of_unique[inverse.ravel()]
        columns, ts = codec.take_rows(meta.schema, columns, ts, index)
        return OnlineRead(columns, ts, index >= 0)

    def schema(self, entity: str, group: str) -> GroupSchema:
        """The schema a group was written with (raises :class:`UnknownGroupError` if none)."""
        return self._require_meta(entity, group).schema

    # -- model coefficient tables --------------------------------------------------------------------

    def write_coefficients(self, model: str, version: str, entity: str, keys: np.ndarray,
                           matrix: np.ndarray) -> int:
        """Store a model version's per-entity coefficient rows (``float64``, shape ``(n, d)``).

        Rows live under version-qualified keys, so writing version 2 never disturbs version 1 while
        it serves. Re-writing the same version replaces its rows.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from proml_lab.features.online import open_online_store
        >>> store = open_online_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "o.db"))
        >>> store.write_coefficients("jobs", "3", "member", np.array([1, 2]), np.eye(2))
        2
        >>> store.read_coefficients("jobs", "3", "member", np.array([2, 5]))[0].tolist()
        [[0.0, 1.0], [nan, nan]]
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-d (keys x coefficients); got shape {matrix.shape}")
        # d numeric fields (not one float32 vector) so online scores use the exact fitted values.
        schema = _coefficient_schema(matrix.shape[1])
        columns = dict(zip(schema.names, matrix.T))
        # Coefficients of a version never change meaning over time: a fixed timestamp makes a
        # re-deployment of the same version replace its rows (ts >= stored).
        return self.write_batch(entity, _coefficient_group(model, version), schema, keys, columns,
                                np.zeros(len(matrix), dtype=np.int64))

    def read_coefficients(self, model: str, version: str, entity: str,
                          keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficient rows of ``keys`` in request order (NaN rows for missing keys) and a found mask."""
        group = _coefficient_group(model, version)
        try:
            result = self.read(entity, group, keys)
        except UnknownGroupError:
            raise UnknownGroupError(
                entity, group, url=self.url,
                what=f"coefficients of model {model!r} version {version!r} for entity {entity!r}",
            ) from None
        columns = list(result.columns.values())
        matrix = np.column_stack(columns) if columns else np.empty((len(result), 0))
        return matrix, result.found

    def delete_version(self, model: str, version: str) -> int:
        """Delete a model version's coefficient rows (of every entity); returns rows deleted."""
        group = _coefficient_group(model, version)
        return sum(self.delete_group(e, g) for e, g in self.groups() if g == group)

    # -- health and lifetime -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"ok", "url", "backend", "latency_ms", ...counts}``; never raises for an unreachable store."""
        started = time.perf_counter()
        try:
            info = self._ping(counts=True)
            ok, error = True, None
        except OnlineStoreError as exc:
            info, ok, error = {}, False, str(exc)
        report: dict[str, Any] = {
            "ok": ok, "url": self.url, "backend": type(self).__name__,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3), **info,
        }
        if error:
            report["error"] = error
        return report

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- helpers --------------------------------------------------------------------------------------

    def _meta_or_none(self, entity: str, group: str, *, refresh: bool = False) -> GroupMeta | None:
        cached = None if refresh else self._meta.get((entity, group))
        if cached is not None:
            return cached
        text = self._load_meta(entity, group)
        if text is None:
            self._meta.pop((entity, group), None)
            return None
        meta = self._meta[(entity, group)] = GroupMeta.parse(text)
        return meta

    def _require_meta(self, entity: str, group: str) -> GroupMeta:
        _check_names(entity, group)
        meta = self._meta_or_none(entity, group)
        if meta is None:
            known = [g for e, g in self.groups() if e == entity and not g.startswith(COEFFICIENT_PREFIX)]
            raise UnknownGroupError(entity, group, url=self.url, known=known)
        return meta


# ---------------------------------------------------------------------------------------------- helpers


def _check_names(entity: str, group: str) -> None:
    if not isinstance(entity, str) or not _ENTITY.match(entity):
        raise ValueError(f"an entity name must match {_ENTITY.pattern}; got {entity!r}")
    if not isinstance(group, str) or not _GROUP.match(group):
        raise ValueError(f"a group name must match {_GROUP.pattern}; got {group!r}")


def _coefficient_group(model: str, version: str) -> str:
    for what, value in (("model", model), ("version", version)):
        if not isinstance(value, str) or not _MODEL_PART.match(value):
            raise ValueError(f"a {what} name must match {_MODEL_PART.pattern}; got {value!r}")
    return f"{COEFFICIENT_PREFIX}/{model}/{version}"


def _coefficient_schema(d: int) -> GroupSchema:
    return GroupSchema(tuple(FieldSpec(f"c{i}", "numeric") for i in range(d)))


def _as_keys(keys: Any, key_type: str | None = None) -> np.ndarray:
    """Keys as a 1-d ``int64`` or ``str`` array (converted to the group's ``key_type`` when given)."""
    arr = np.asarray(keys)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"keys must be 1-d; got shape {arr.shape}")
    if len(arr) == 0:
        as_str = key_type == "string" or (key_type is None and arr.dtype.kind in "UO")
        return arr.astype(str if as_str else np.int64)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("keys exceed the int64 range")
    if arr.dtype.kind not in "iuU":
        raise ValueError(f"keys must be int64 or str; got dtype {arr.dtype}")
    if key_type == "string" or (key_type is None and arr.dtype.kind == "U"):
        return arr if arr.dtype.kind == "U" else arr.astype(str)
    try:  # int keys, or str keys of a group with int64 keys (e.g. ids that came in as JSON strings)
        return arr.astype(np.int64)
    except (ValueError, OverflowError):
        raise ValueError("this group has int64 keys; the keys given are not integers") from None


def _newest_per_key(keys: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """Positions of the rows to keep so that each key appears once (None if keys are already unique)."""
    unique, inverse = np.unique(keys, return_inverse=True)
    if len(unique) == len(keys):
        return None
    order = np.lexsort((np.arange(len(keys)), ts, inverse.ravel()))  # by key, then ts, then position
    last = np.ones(len(order), dtype=bool)
    last[:-1] = inverse.ravel()[order][1:] != inverse.ravel()[order][:-1]
    return np.sort(order[last])
