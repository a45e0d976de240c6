"""The forward index: a columnar document store for serving (Arrow IPC, memory-mapped, sharded by id).

A *generation* is one directory written once and never changed::

    <generation>/
      manifest.json    columns and types, rows and sha256 per shard, total rows, id column, meta
      shard-0.arrow    Arrow IPC files; a document lives in shard ``hash(id) % shards``
      shard-1.arrow
      ...

It is built in a hidden sibling directory and renamed into place, so a reader sees a complete
generation or none. Opening memory-maps the shards (no copy until a column is first read); each column
is assembled once and cached, read-only, because serving reads the same columns on every request.

Document coefficient tables of a model are stored as columns named
``coef:<node>:<part>`` (:func:`coefficient_column`): a fixed-size list of ``float64`` per document,
null for a document without coefficients.

Examples
--------
>>> import tempfile, pyarrow as pa
>>> table = pa.table({"job_id": [3, 1, 2], "job_seniority": [0.5, 1.0, None]})
>>> index = write_generation(tempfile.mkdtemp() + "/g1", table, id_column="job_id", shards=2)
>>> index.rows(np.array([2, 7]))[1].tolist()
[True, False]
>>> positions, _ = index.rows(np.array([1]))
>>> float(index.column("job_seniority")[positions[0]])
1.0
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from proml_lab.errors import ForwardIndexError

FORMAT = "proml-forward-index/1"
MANIFEST = "manifest.json"
COEFFICIENT_PREFIX = "coef:"
_HASH_BLOCK = 1 << 20

__all__ = ["ForwardIndex", "coefficient_column", "write_generation"]


def coefficient_column(node: str, part: str) -> str:
    """Name of the column holding a node's per-document coefficient table (``coef:<node>:<part>``)."""
    return f"{COEFFICIENT_PREFIX}{node}:{part}"


def write_generation(
    directory: str | Path, table: pa.Table, *, id_column: str, shards: int = 4,
    meta: dict[str, Any] | None = None,
) -> ForwardIndex:
    """Write ``table`` as a new forward-index generation at ``directory`` (which must not exist).

    Parameters
    ----------
    directory
        Where the generation goes; it appears there complete (atomic rename) or not at all.
    table
        One row per document; ``id_column`` holds unique integer or string ids.
    id_column
        The document id column.
    shards
        Number of shards; a row goes to shard ``id % shards`` (integer ids) or a stable FNV-1a hash of
        the id's UTF-8 bytes modulo ``shards`` (string ids).
    meta
        JSON-serializable information kept in the manifest (model, version, ...).

    Returns
    -------
    ForwardIndex
        The new generation, opened.
    """
    directory = Path(directory)
    if shards < 1:
        raise ValueError("The 'shards' parameter of write_generation must be an int in [1, inf). "
                         f"Got {shards} instead.")
    if id_column not in table.column_names:
        raise ForwardIndexError(
            f"The id column {id_column!r} is not in the table (columns: {', '.join(table.column_names)}).",
            path=str(directory),
        )
    if directory.exists():
        raise ForwardIndexError(f"A forward-index generation already exists at {directory}.",
                                path=str(directory))
    table = table.combine_chunks()
    ids = table[id_column]
    if ids.null_count:
        raise ForwardIndexError(f"The id column {id_column!r} has {ids.null_count} null ids.",
                                path=str(directory))
    table = table.sort_by(id_column)
    sorted_ids = _ids_numpy(table[id_column])
    if len(sorted_ids) > 1 and bool((sorted_ids[1:] == sorted_ids[:-1]).any()):
        raise ForwardIndexError(f"The id column {id_column!r} has repeated ids.", path=str(directory))
    shard_of = _shard_of(sorted_ids, shards)

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        entries = []
        for k in range(shards):
            part = table.filter(pa.array(shard_of == k))
            entries.append(_write_shard(staging / f"shard-{k}.arrow", part))
        manifest = {
            "format": FORMAT,
            "id_column": id_column,
            "columns": [{"name": f.name, "type": str(f.type), "kind": _kind(f.type)} for f in table.schema],
            "rows": table.num_rows,
            "shards": entries,
            "meta": meta or {},
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        _write_file(staging / MANIFEST, text.encode())
        _fsync_dir(staging)
        os.rename(staging, directory)  # fails if directory appeared meanwhile: never merge two generations
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ForwardIndex.open(directory)


class ForwardIndex:
    """One opened forward-index generation (read-only).

    Use :meth:`open`; columns are numpy arrays cached after their first read.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], tables: list[pa.Table]) -> None:
        self.path = path
        self.manifest = manifest
        self._tables = tables
        self._columns: dict[str, np.ndarray] = {}
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def open(cls, path: str | Path) -> ForwardIndex:
        """Memory-map a generation's shards and check them against its manifest (not the checksums)."""
        path = Path(path)
        manifest_path = path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ForwardIndexError(f"No forward index at {path} (no {MANIFEST}).", path=str(path)) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ForwardIndexError(f"Cannot read {manifest_path}: {exc}", path=str(path)) from exc
        if manifest.get("format") != FORMAT:
            raise ForwardIndexError(
                f"{manifest_path} has format {manifest.get('format')!r}; expected {FORMAT!r}.", path=str(path)
            )
        names = [c["name"] for c in manifest["columns"]]
        tables = []
        for entry in manifest["shards"]:
            file = path / entry["file"]
            try:
                with ipc.open_file(pa.memory_map(str(file), "r")) as reader:
                    shard = reader.read_all()
            except (OSError, pa.ArrowInvalid) as exc:
                raise ForwardIndexError(f"Shard {entry['file']} of {path} cannot be read: {exc}",
                                        path=str(path), shard=entry["file"]) from exc
            if shard.num_rows != entry["rows"] or shard.column_names != names:
                raise ForwardIndexError(
                    f"Shard {entry['file']} of {path} has {shard.num_rows} rows and columns "
                    f"{shard.column_names}; the manifest says {entry['rows']} rows and {names}.",
                    path=str(path), shard=entry["file"],
                )
            tables.append(shard)
        return cls(path, manifest, tables)

    # -- metadata -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.manifest["rows"])

    def __repr__(self) -> str:
        return f"ForwardIndex({str(self.path)!r}, rows={len(self)}, shards={len(self._tables)})"

    @property
    def id_column(self) -> str:
        return str(self.manifest["id_column"])

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.manifest.get("meta") or {})

    @property
    def column_names(self) -> list[str]:
        """Every column but the id column and the coefficient columns."""
        return [c["name"] for c in self.manifest["columns"]
                if c["name"] != self.id_column and not c["name"].startswith(COEFFICIENT_PREFIX)]

    @property
    def size_bytes(self) -> int:
        return sum(int(e["bytes"]) for e in self.manifest["shards"])

    # -- reading ----------------------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        """Document ids in index order (``int64`` for integer ids, else ``str``)."""
        return self.column(self.id_column)

    def column(self, name: str) -> np.ndarray:
        """A column as a read-only numpy array in index order, cached.

        Numbers and booleans are ``float64`` (NaN for null); categorical and text columns are object
        arrays of ``str`` (None for null); fixed-size-list vectors are 2-D arrays of their value type
        (``float32`` vectors stay ``float32``; NaN rows for null); the id column is ``int64`` or ``str``.
        """
        cached = self._columns.get(name)
        if cached is not None:
            return cached
        known = [c["name"] for c in self.manifest["columns"]]
        if name not in known or not self._tables:
            raise ForwardIndexError(
                f"The forward index at {self.path} has no column {name!r}; columns: {', '.join(known)}.",
                path=str(self.path),
            )
        type_ = self._tables[0][name].type
        chunks = pa.chunked_array([c for t in self._tables for c in t[name].chunks], type=type_)
        array = _ids_numpy(chunks) if name == self.id_column else _to_numpy(chunks)
        array.flags.writeable = False
        self._columns[name] = array
        return array

    def coefficients(self, node: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(ids, coefficients)`` of a node's per-document table stored in the index.

        Only documents that have coefficients are returned; ``coefficients`` is ``float64 (n, d)``.
        """
        name = coefficient_column(node, part)
        cache = f"\0{name}"
        if cache not in self._columns:
            matrix = self.column(name)
            has = ~np.isnan(matrix).all(axis=1) if matrix.shape[1] else np.ones(len(matrix), dtype=bool)
            ids, rows = self.ids[has], matrix[has]
            ids.flags.writeable = False
            rows.flags.writeable = False
            self._columns[cache] = ids
            self._columns[cache + "\0rows"] = rows
        return self._columns[cache], self._columns[cache + "\0rows"]

    def rows(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``ids`` in index order and a found mask (vectorized; missing ids get -1)."""
        if self._lookup is None:
            all_ids = self.ids
            order = np.argsort(all_ids, kind="stable")
            self._lookup = (order, all_ids[order])
        order, sorted_ids = self._lookup
        wanted = np.asarray(ids)
        if wanted.ndim == 0:
            wanted = wanted.reshape(1)
        wanted = wanted.astype(sorted_ids.dtype if sorted_ids.dtype.kind == "i" else str, copy=False)
        if len(sorted_ids) == 0:
            return np.full(len(wanted), -1, dtype=np.int64), np.zeros(len(wanted), dtype=bool)
        at = np.searchsorted(sorted_ids, wanted)
        at_clipped = np.minimum(at, len(sorted_ids) - 1)
        found = sorted_ids[at_clipped] == wanted
        positions = np.where(found, order[at_clipped], -1).astype(np.int64)
        return positions, np.asarray(found, dtype=bool)

    def to_arrow(self) -> pa.Table:
        """All shards as one Arrow table (index order; zero-copy over the memory maps)."""
        return pa.concat_tables(self._tables)

    # -- integrity --------------------------------------------------------------------------------------
    def verify(self) -> dict[str, Any]:
        """Check every shard's row count and sha256 against the manifest; raise naming the bad shard.

        Returns ``{"rows", "shards", "bytes"}`` when everything matches.
        """
        total = 0
        for entry, table in zip(self.manifest["shards"], self._tables):
            file = self.path / entry["file"]
            try:
                digest = _sha256(file)
            except OSError as exc:
                raise ForwardIndexError(f"Shard {entry['file']} of {self.path} cannot be read: {exc}",
                                        path=str(self.path), shard=entry["file"]) from exc
            if digest != entry["sha256"]:
                raise ForwardIndexError(
                    f"Shard {entry['file']} of {self.path} is corrupt: its sha256 is {digest[:12]}..., "
                    f"the manifest says {entry['sha256'][:12]}...",
                    path=str(self.path), shard=entry["file"],
                )
            if table.num_rows != entry["rows"]:
                raise ForwardIndexError(
                    f"Shard {entry['file']} of {self.path} has {table.num_rows} rows; the manifest says "
                    f"{entry['rows']}.", path=str(self.path), shard=entry["file"],
                )
            total += table.num_rows
        if total != self.manifest["rows"]:
            raise ForwardIndexError(
                f"The forward index at {self.path} has {total} rows; "
                f"its manifest says {self.manifest['rows']}.",
                path=str(self.path),
            )
        return {"rows": total, "shards": len(self._tables), "bytes": self.size_bytes}


# ---------------------------------------------------------------------------------------------- helpers


def _kind(type_: pa.DataType) -> str:
    if pa.types.is_fixed_size_list(type_):
        return "vector"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_boolean(type_):
        return "numeric"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_dictionary(type_):
        return "categorical"
    return "other"


def _ids_numpy(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_integer(ids.type):
        return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=str)


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    type_ = column.type
    if pa.types.is_fixed_size_list(type_):
        value_type = type_.value_type.to_pandas_dtype()
        dtype = value_type if np.issubdtype(value_type, np.floating) else np.float64
        width = type_.list_size
        parts = []
        for chunk in column.chunks:
            values = chunk.flatten() if chunk.null_count == 0 else _fill_null_lists(chunk)
            parts.append(np.asarray(values.to_numpy(zero_copy_only=False), dtype=dtype).reshape(-1, width))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty((0, width), dtype=dtype)
    if _kind(type_) == "numeric":
        if pa.types.is_boolean(type_):
            column = column.cast(pa.float64())
        return np.asarray(column.to_numpy(), dtype=np.float64)
    if pa.types.is_dictionary(type_):
        column = column.cast(type_.value_type)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _fill_null_lists(chunk: pa.FixedSizeListArray) -> pa.Array:
    """The flat values of a fixed-size-list array with NaN for the elements of null lists."""
    width = chunk.type.list_size
    # ``values`` of a sliced/nullable fixed-size list still holds a slot per list, null or not.
    values = chunk.values.slice(chunk.offset * width, len(chunk) * width)
    flat = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64).copy()
    nulls = np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    flat.reshape(-1, width)[nulls] = np.nan
    return pa.array(flat)


def _shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """Stable shard of each id: ``id % shards`` for integers, FNV-1a of the UTF-8 bytes for strings."""
    if ids.dtype.kind == "i":
        return np.mod(ids, shards)
    encoded = np.char.encode(ids.astype(str), "utf-8") if len(ids) else np.empty(0, dtype="S1")
    width = max(encoded.dtype.itemsize, 1)
    data = np.frombuffer(encoded.tobytes(), dtype=np.uint8).reshape(len(ids), width) if len(ids) else \
        np.empty((0, width), dtype=np.uint8)
    lengths = np.char.str_len(encoded) if len(ids) else np.empty(0, dtype=np.int64)
    h = np.full(len(ids), 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(width):  # a loop over byte positions, not rows
            mixed = (h ^ data[:, j].astype(np.uint64)) * prime
            h = np.where(j < lengths, mixed, h)
    return (h % np.uint64(shards)).astype(np.int64)


def _write_shard(file: Path, table: pa.Table) -> dict[str, Any]:
    with pa.OSFile(str(file), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks() if table.num_rows else table)
    with open(file, "rb+") as fh:
        os.fsync(fh.fileno())
    return {"file": file.name, "rows": table.num_rows, "sha256": _sha256(file), "bytes": file.stat().st_size}


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
