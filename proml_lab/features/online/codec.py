"""Packing a feature group's values into one blob per row, and back, without a Python loop over rows.

A blob is a fixed-width prefix followed by the UTF-8 bytes of the row's strings::

    int64   event timestamp (µs since the epoch)      <- stores compare these 8 bytes (newer wins)
    uint32  schema tag (first 32 bits of the fingerprint; catches a reader's stale schema)
    float64 per numeric / binary field                 (NaN = null)
    float32 * dimension per vector field               (all NaN = null)
    int32   byte length per categorical / text field   (-1 = null)
    bytes   the strings, row-major in field order

All integers are little-endian. Encoding and decoding work on whole batches with numpy and Arrow:
the fixed prefixes are one structured array, and the string bytes are split from the prefixes with
one boolean mask, so the cost per row is a few machine instructions, not Python bytecode.

Decoded columns: numeric and binary as ``float64``, vectors as ``float32`` of shape ``(n, dim)``,
categorical and text as a nullable :class:`pyarrow.StringArray`. A missing row (no blob) reads as
NaN, an all-NaN vector, a null string and the timestamp :data:`MISSING_TS` (``INT64_MIN``).

Examples
--------
>>> import numpy as np
>>> schema = GroupSchema((FieldSpec("age", "numeric"), FieldSpec("title", "text")))
>>> blobs = encode(schema, {"age": [31.0, None], "title": ["engineer", "chef"]}, np.array([5, 6]))
>>> columns, ts, found = decode(schema, [blobs[1], None, blobs[0]])
>>> columns["age"].tolist()[::2], columns["title"].to_pylist(), found.tolist()
([nan, 31.0], ['chef', None, 'engineer'], [True, False, True])
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from proml_lab.errors import UnknownFeatureError

FieldType = Literal["numeric", "binary", "categorical", "vector", "text"]
Column: TypeAlias = np.ndarray | pa.Array

#: Timestamp reported for a key the store does not hold.
MISSING_TS = np.iinfo(np.int64).min

_FIELD_TYPES: tuple[str, ...] = get_args(FieldType)
_FLOAT_TYPES = ("numeric", "binary")
_STRING_TYPES = ("categorical", "text")


class SchemaTagMismatch(ValueError):
    """A blob was encoded with a different schema than the one given to :func:`decode`."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a feature group: its name, value type and (for vectors) dimension.

    Examples
    --------
    >>> FieldSpec("member_titleEmbedding", "vector", 8).dimension
    8
    """

    name: str
    type: FieldType
    dimension: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a field name must be a non-empty string; got {self.name!r}")
        if self.type not in _FIELD_TYPES:
            raise ValueError(
                f"The 'type' of field {self.name!r} must be one of {', '.join(_FIELD_TYPES)}. "
                f"Got {self.type!r} instead."
            )
        if (self.type == "vector") != (self.dimension is not None):
            raise ValueError(f"field {self.name!r}: 'dimension' is required for type 'vector' and only it")
        if self.dimension is not None and (not isinstance(self.dimension, int) or self.dimension < 1):
            raise ValueError(f"field {self.name!r}: 'dimension' must be an int >= 1; got {self.dimension!r}")


@dataclass(frozen=True)
class GroupSchema:
    """The ordered fields of a feature group; the blob layout follows this order.

    Examples
    --------
    >>> s = GroupSchema((FieldSpec("a", "numeric"), FieldSpec("v", "vector", 3)))
    >>> GroupSchema.from_json(s.to_json()) == s, len(s.fingerprint())
    (True, 16)
    """

    fields: tuple[FieldSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"a group schema names {', '.join(dupes)} more than once")

    @functools.cached_property
    def names(self) -> tuple[str, ...]:  # cached: every read checks requested names against it
        return tuple(f.name for f in self.fields)

    @classmethod
    def from_features(cls, features: Iterable[Any]) -> GroupSchema:
        """From feature definitions (anything with ``name``, ``type`` and optional ``dimension``)."""
        return cls(tuple(FieldSpec(f.name, f.type, getattr(f, "dimension", None)) for f in features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fields": [
                {"name": f.name, "type": f.type, **({"dimension": f.dimension} if f.dimension else {})}
                for f in self.fields
            ]
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal schemas give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> GroupSchema:
        data = json.loads(text)
        return cls(tuple(FieldSpec(f["name"], f["type"], f.get("dimension")) for f in data["fields"]))

    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of the layout: field names, types, dimensions and their order."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Layout:
    dtype: np.dtype  # the packed fixed-width prefix
    width: int
    tag: int
    numeric: dict[str, int]  # name -> column of the "num" block
    vectors: dict[str, str]  # name -> struct field
    strings: dict[str, int]  # name -> column of the "slen" block


@functools.lru_cache(maxsize=256)
def _layout(schema: GroupSchema) -> _Layout:
    numeric = {f.name: i for i, f in enumerate(f for f in schema.fields if f.type in _FLOAT_TYPES)}
    vectors = {f.name: f"v{i}" for i, f in enumerate(f for f in schema.fields if f.type == "vector")}
    strings = {f.name: i for i, f in enumerate(f for f in schema.fields if f.type in _STRING_TYPES)}
    parts: list[tuple[Any, ...]] = [("ts", "<i8"), ("tag", "<u4")]
    if numeric:
        parts.append(("num", "<f8", (len(numeric),)))
    parts += [(vectors[f.name], "<f4", (f.dimension,)) for f in schema.fields if f.type == "vector"]
    if strings:
        parts.append(("slen", "<i4", (len(strings),)))
    dtype = np.dtype(parts)  # packed: no alignment padding inside a blob
    return _Layout(dtype, dtype.itemsize, int(schema.fingerprint()[:8], 16), numeric, vectors, strings)


# ---------------------------------------------------------------------------------------------- encode


def encode(schema: GroupSchema, columns: Mapping[str, Any], event_ts_us: Any) -> list[bytes]:
    """One blob per row for ``columns`` (every field of ``schema``) stamped with ``event_ts_us``.

    Parameters
    ----------
    schema
        The group's fields.
    columns
        Field name -> values (numpy array, Arrow array, list; None/NaN for null). Vectors as an
        ``(n, dim)`` array, an Arrow list array or a list of arrays (None for a null row).
    event_ts_us
        Event time of each row in µs since the epoch (``int64``, or ``datetime64``).

    Examples
    --------
    >>> import numpy as np
    >>> s = GroupSchema((FieldSpec("x", "numeric"),))
    >>> [len(b) for b in encode(s, {"x": np.array([1.0, 2.0])}, np.array([0, 1]))]
    [20, 20]
    """
    buf, offsets = encode_packed(schema, columns, event_ts_us)
    raw = buf.tobytes()
    # Drivers take one bytes object per row; map() slices in C, without bytecode per row.
    return list(map(raw.__getitem__, map(slice, offsets[:-1].tolist(), offsets[1:].tolist())))


def encode_packed(
    schema: GroupSchema, columns: Mapping[str, Any], event_ts_us: Any
) -> tuple[np.ndarray, np.ndarray]:
    """All blobs concatenated (``uint8``) and their ``n + 1`` boundaries (``int64``)."""
    lay = _layout(schema)
    ts = as_timestamps(event_ts_us)
    n = len(ts)
    missing = [name for name in schema.names if name not in columns]
    unknown = sorted(set(columns) - set(schema.names))
    problems = [f"{what} {', '.join(names)}" for what, names in (("missing", missing), ("unknown", unknown))
                if names]
    if problems:
        raise ValueError(f"columns must match the group's fields: {'; '.join(problems)}")
    prefix = np.zeros(n, dtype=lay.dtype)
    prefix["ts"] = ts
    prefix["tag"] = lay.tag
    strings: list[pa.Array] = []
    for f in schema.fields:
        values = columns[f.name]
        if f.type in _FLOAT_TYPES:
            prefix["num"][:, lay.numeric[f.name]] = _float_column(f.name, values, n)
        elif f.type == "vector":
            prefix[lay.vectors[f.name]] = _vector_column(f.name, values, n, f.dimension or 0)
        else:
            arr = _string_column(f.name, values, n)
            lengths = pc.fill_null(pc.binary_length(arr), -1).to_numpy(zero_copy_only=False)
            prefix["slen"][:, lay.strings[f.name]] = lengths
            strings.append(arr)
    fixed = prefix.view(np.uint8)
    data = _interleaved_bytes(strings, n)
    if data.size == 0:  # every row is exactly the prefix
        return fixed, np.arange(n + 1, dtype=np.int64) * lay.width
    row_len = lay.width + np.clip(prefix["slen"], 0, None).sum(axis=1, dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_len, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    is_prefix = _prefix_mask(offsets, lay.width)
    out[is_prefix] = fixed
    out[~is_prefix] = data
    return out, offsets


def as_timestamps(event_ts_us: Any) -> np.ndarray:
    """Event times as ``int64`` µs (``datetime64`` values are converted)."""
    ts = np.asarray(event_ts_us)
    if ts.ndim == 1 and ts.size == 0:  # an empty list comes in as float64
        return ts.astype(np.int64)
    if ts.dtype.kind == "M":
        ts = ts.astype("datetime64[us]").astype(np.int64)
    if ts.ndim != 1 or ts.dtype.kind not in "iu":
        raise ValueError(f"event_ts_us must be 1-d int (µs) or datetime64; got {ts.dtype} {ts.shape}")
    return ts.astype(np.int64, copy=False)


def _check_len(name: str, got: int, n: int) -> None:
    if got != n:
        raise ValueError(f"column {name!r} has {got} values for {n} rows")


def _float_column(name: str, values: Any, n: int) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        values = values.to_numpy(zero_copy_only=False)
    try:
        arr = np.asarray(values, dtype=np.float64)  # None -> NaN
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-d; got shape {arr.shape}")
    _check_len(name, len(arr), n)
    return arr


def _vector_column(name: str, values: Any, n: int, dim: int) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub" and values.ndim == 2:
        _check_len(name, values.shape[0], n)
        if values.shape[1] != dim:
            raise ValueError(f"column {name!r} has vectors of length {values.shape[1]}, expected {dim}")
        return values.astype(np.float32, copy=False)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):  # a list (or object array) of vectors and None: convert in Arrow
        values = pa.array(list(values) if isinstance(values, np.ndarray) else values, pa.list_(pa.float32()))
    _check_len(name, len(values), n)
    arr = values.cast(pa.list_(pa.float32()))
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(arr), dim).to_numpy(zero_copy_only=False)
    if (lengths != dim).any():
        wrong = sorted(set(lengths.tolist()) - {dim})
        raise ValueError(f"column {name!r} has vectors of length {wrong}, expected {dim}")
    out = np.full((n, dim), np.nan, dtype=np.float32)
    out[valid] = arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)  # skips null rows
    return out


def _string_column(name: str, values: Any, n: int) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        arr = values.dictionary_decode() if pa.types.is_dictionary(values.type) else values
    else:
        try:
            arr = pa.array(values, type=pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. integer category ids: cast in Arrow
            arr = pa.array(values)
    _check_len(name, len(arr), n)
    return arr.cast(pa.large_string())  # int64 offsets: no 2 GiB limit on a batch


def _interleaved_bytes(strings: list[pa.Array], n: int) -> np.ndarray:
    """The string bytes in blob order (row by row, fields in order) as one uint8 array."""
    if not strings:
        return np.empty(0, dtype=np.uint8)
    if len(strings) == 1:
        arr = strings[0]
    else:  # element j*n + i of the concatenation is field j of row i; take it row-major
        order = (np.arange(n)[:, None] + np.arange(len(strings))[None, :] * n).ravel()
        arr = pc.take(pa.concat_arrays(strings), pa.array(order))
    arr = pc.fill_null(arr, "")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]


def _prefix_mask(offsets: np.ndarray, width: int) -> np.ndarray:
    """True for the bytes that belong to a row's fixed-width prefix."""
    marks = np.zeros(int(offsets[-1]) + 1, dtype=np.int8)
    starts = offsets[:-1]
    marks[starts] += 1  # starts are distinct (a prefix is never empty), so plain indexing suffices
    marks[starts + width] -= 1
    return np.cumsum(marks[:-1], dtype=np.int8).astype(bool)


# ---------------------------------------------------------------------------------------------- decode


def decode(
    schema: GroupSchema, blobs: Sequence[bytes | None], features: Sequence[str] | None = None
) -> tuple[dict[str, Column], np.ndarray, np.ndarray]:
    """Columns, event timestamps and a found mask for ``blobs`` (None = the row is missing).

    Parameters
    ----------
    schema
        The schema the blobs were encoded with (checked through the schema tag in every blob).
    blobs
        One blob per row, or None for a missing row.
    features
        The fields to return, in this order; default: all of them.

    Returns
    -------
    columns, event_ts_us, found
        Missing rows read as NaN / all-NaN vectors / null strings, timestamp :data:`MISSING_TS`.

    Examples
    --------
    >>> import numpy as np
    >>> s = GroupSchema((FieldSpec("x", "numeric"),))
    >>> cols, ts, found = decode(s, [None, *encode(s, {"x": [2.5]}, np.array([7]))])
    >>> cols["x"].tolist(), ts.tolist()[1], found.tolist()
    ([nan, 2.5], 7, [False, True])
    """
    objs = np.empty(len(blobs), dtype=object)
    objs[:] = blobs
    found = objs != None  # noqa: E711 - elementwise comparison in C, not `is not None` per row
    present = objs[found].tolist()
    columns, ts = decode_present(schema, present, features)
    if len(present) == len(blobs):
        return columns, ts, found
    index = np.where(found, np.cumsum(found) - 1, -1)
    columns, ts = take_rows(schema, columns, ts, index)
    return columns, ts, found


def select_features(schema: GroupSchema, features: Sequence[str] | None) -> tuple[str, ...]:
    """``features`` checked against the schema (an unknown name suggests the closest known ones)."""
    if features is None:
        return schema.names
    for name in features:
        if name not in schema.names:
            raise UnknownFeatureError(name, difflib.get_close_matches(name, schema.names, n=3, cutoff=0.5))
    return tuple(features)


def decode_present(
    schema: GroupSchema, blobs: Sequence[bytes], features: Sequence[str] | None = None
) -> tuple[dict[str, Column], np.ndarray]:
    """Columns and timestamps for blobs that are all present (the common path of a store read)."""
    lay = _layout(schema)
    names = select_features(schema, features)
    m = len(blobs)
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    if data.size == m * lay.width:  # no string bytes anywhere: the prefixes are the whole buffer
        prefix = data.view(lay.dtype)
        strings = data[:0]
    else:
        lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=m)
        if (lengths < lay.width).any():
            raise SchemaTagMismatch("a blob is shorter than the schema's fixed-width prefix")
        offsets = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        is_prefix = _prefix_mask(offsets, lay.width)
        prefix = data[is_prefix].view(lay.dtype)
        strings = data[~is_prefix]
    if m and (prefix["tag"] != lay.tag).any():
        raise SchemaTagMismatch("blobs were encoded with a different schema of this group")
    columns: dict[str, Column] = {}
    wanted_num = [lay.numeric[n] for n in names if n in lay.numeric]
    if wanted_num:
        # One gather, transposed so that each column is a contiguous row of the block.
        block = np.take(prefix["num"], wanted_num, axis=1).T.copy()
        num_rows = dict(zip((n for n in names if n in lay.numeric), block))
    if lay.strings and any(n in lay.strings for n in names):
        all_strings = _string_array(prefix["slen"].ravel(), strings)
    nstr = len(lay.strings)
    for name in names:
        if name in lay.numeric:
            columns[name] = num_rows[name]
        elif name in lay.vectors:
            columns[name] = np.array(prefix[lay.vectors[name]], dtype=np.float32)
        elif nstr == 1:
            columns[name] = all_strings
        else:
            columns[name] = all_strings.take(pa.array(np.arange(m) * nstr + lay.strings[name]))
    return columns, np.array(prefix["ts"], dtype=np.int64)


def _string_array(lengths: np.ndarray, data: np.ndarray) -> pa.Array:
    """A nullable string array from byte lengths (-1 = null) and the concatenated bytes."""
    n = len(lengths)
    valid = lengths >= 0
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.where(valid, lengths, 0), out=offsets[1:])
    large = offsets[-1] >= 2**31 - 1
    offsets = offsets if large else offsets.astype(np.int32)
    null_count = int(n - valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if null_count else None
    cls = pa.LargeStringArray if large else pa.StringArray
    return cls.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, null_count)


def missing_rows(
    schema: GroupSchema, n: int, features: Sequence[str] | None = None
) -> tuple[dict[str, Column], np.ndarray]:
    """Columns and timestamps for ``n`` rows that are all missing."""
    columns: dict[str, Column] = {}
    for name in select_features(schema, features):
        f = schema.fields[schema.names.index(name)]
        if f.type in _FLOAT_TYPES:
            columns[name] = np.full(n, np.nan)
        elif f.type == "vector":
            columns[name] = np.full((n, f.dimension or 0), np.nan, dtype=np.float32)
        else:
            columns[name] = pa.nulls(n, pa.string())
    return columns, np.full(n, MISSING_TS, dtype=np.int64)


def take_rows(
    schema: GroupSchema, columns: Mapping[str, Column], ts: np.ndarray, index: np.ndarray
) -> tuple[dict[str, Column], np.ndarray]:
    """Rows ``index`` of decoded columns (repeats allowed); ``-1`` gives a missing row."""
    missing = index < 0
    if len(ts) == 0:
        return missing_rows(schema, len(index), list(columns))
    safe = np.where(missing, 0, index) if missing.any() else index
    arrow_index = pa.array(safe, mask=missing) if missing.any() else pa.array(safe)
    out: dict[str, Column] = {}
    for name, col in columns.items():
        if isinstance(col, pa.Array):
            out[name] = col.take(arrow_index)
        else:
            taken = col[safe]
            taken[missing] = np.nan
            out[name] = taken
    out_ts = ts[safe]
    out_ts[missing] = MISSING_TS
    return out, out_ts
