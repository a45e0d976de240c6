"""The blob codec: round trips of random batches, nulls, empty and all-missing batches, bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from proml_lab.errors import UnknownFeatureError
from proml_lab.features.online.codec import (
    MISSING_TS,
    FieldSpec,
    GroupSchema,
    SchemaTagMismatch,
    decode,
    encode,
)

ALPHABET = list("abz ÿßé日本語🙂\x00\n")


def _random_schema(rng: np.random.Generator) -> GroupSchema:
    fields = []
    for i in range(int(rng.integers(1, 7))):
        kind = str(rng.choice(["numeric", "binary", "categorical", "vector", "text"]))
        dimension = int(rng.integers(1, 5)) if kind == "vector" else None
        fields.append(FieldSpec(f"f{i}", kind, dimension))  # type: ignore[arg-type]
    return GroupSchema(tuple(fields))


def _random_column(rng: np.random.Generator, f: FieldSpec, n: int) -> list | np.ndarray:
    null = rng.random(n) < 0.3
    if f.type == "numeric":
        return np.where(null, np.nan, rng.normal(size=n) * 10.0 ** rng.integers(-5, 20, size=n))
    if f.type == "binary":
        return np.where(null, np.nan, rng.integers(0, 2, size=n).astype(float))
    if f.type == "vector":
        return [None if z else rng.normal(size=f.dimension).astype(np.float32) for z in null]
    return [None if z else "".join(rng.choice(ALPHABET, size=int(rng.integers(0, 12)))) for z in null]


def _assert_column(f: FieldSpec, got, want, found: np.ndarray) -> None:
    if f.type in ("numeric", "binary"):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got[found], np.asarray(want, dtype=float)[found])
        assert np.isnan(got[~found]).all()
    elif f.type == "vector":
        assert got.dtype == np.float32 and got.shape == (len(found), f.dimension)
        for row, value, ok in zip(got, want, found):
            expected = np.full(f.dimension, np.nan, np.float32) if value is None or not ok else value
            np.testing.assert_array_equal(row, expected)
    else:
        assert isinstance(got, pa.StringArray)
        assert got.to_pylist() == [v if ok else None for v, ok in zip(want, found)]


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    schema = _random_schema(rng)
    n = int(rng.integers(0, 40))
    columns = {f.name: _random_column(rng, f, n) for f in schema.fields}
    ts = rng.integers(-(2**62), 2**62, size=n)
    blobs = encode(schema, columns, ts)
    assert len(blobs) == n and all(isinstance(b, bytes) for b in blobs)
    # Read back a shuffled selection with repeats and missing rows.
    pick = rng.integers(-1, max(n, 1), size=int(rng.integers(0, 60))) if n else np.full(3, -1)
    got, got_ts, found = decode(schema, [blobs[i] if i >= 0 else None for i in pick.tolist()])
    assert found.tolist() == (pick >= 0).tolist()
    assert got_ts.tolist() == [int(ts[i]) if i >= 0 else MISSING_TS for i in pick.tolist()]
    for f in schema.fields:
        want = [columns[f.name][i] if i >= 0 else None for i in pick.tolist()]
        if f.type in ("numeric", "binary"):
            want = [np.nan if w is None else w for w in want]
        _assert_column(f, got[f.name], want, found)


def test_empty_batch_and_all_missing() -> None:
    schema = GroupSchema((FieldSpec("x", "numeric"), FieldSpec("v", "vector", 2), FieldSpec("s", "text")))
    assert encode(schema, {"x": [], "v": np.empty((0, 2)), "s": []}, np.array([], dtype=np.int64)) == []
    cols, ts, found = decode(schema, [])
    assert cols["x"].shape == (0,) and cols["v"].shape == (0, 2) and len(cols["s"]) == 0 and len(ts) == 0
    cols, ts, found = decode(schema, [None, None])
    assert not found.any() and ts.tolist() == [MISSING_TS] * 2
    assert np.isnan(cols["x"]).all() and np.isnan(cols["v"]).all() and cols["s"].to_pylist() == [None, None]


def test_input_kinds_and_feature_selection() -> None:
    schema = GroupSchema((FieldSpec("c", "categorical"), FieldSpec("v", "vector", 2),
                          FieldSpec("x", "numeric"), FieldSpec("t", "text")))
    columns = {
        "c": np.array([3, 4]),  # integer category ids become strings
        "v": pa.array([[1.0, 2.0], None], type=pa.list_(pa.float64(), 2)),
        "x": pa.chunked_array([[1, None]]),
        "t": pa.array(["a", "b"]).dictionary_encode(),
    }
    ts = np.array(["2026-01-01T00:00:00", "1969-12-31T23:59:59"], dtype="datetime64[s]")
    blobs = encode(schema, columns, ts)
    cols, got_ts, _ = decode(schema, blobs, features=["x", "t", "c"])
    assert list(cols) == ["x", "t", "c"]
    assert cols["c"].to_pylist() == ["3", "4"] and cols["t"].to_pylist() == ["a", "b"]
    np.testing.assert_array_equal(cols["x"], [1.0, np.nan])
    assert got_ts.tolist() == [1_767_225_600_000_000, -1_000_000]
    with pytest.raises(UnknownFeatureError, match="Did you mean: x"):
        decode(schema, blobs, features=["xx"])


def test_bad_input_is_refused() -> None:
    schema = GroupSchema((FieldSpec("x", "numeric"), FieldSpec("v", "vector", 3)))
    ts = np.array([1, 2])
    with pytest.raises(ValueError, match="column 'x' has 3 values for 2 rows"):
        encode(schema, {"x": [1.0, 2.0, 3.0], "v": np.zeros((2, 3))}, ts)
    with pytest.raises(ValueError, match=r"vectors of length \[2\], expected 3"):
        encode(schema, {"x": [1.0, 2.0], "v": [[1.0, 2.0], None]}, ts)
    with pytest.raises(ValueError, match="missing v; unknown y"):
        encode(schema, {"x": [1.0, 2.0], "y": [1, 2]}, ts)
    with pytest.raises(ValueError, match="must be numeric"):
        encode(schema, {"x": ["a", "b"], "v": np.zeros((2, 3))}, ts)
    with pytest.raises(ValueError, match="'dimension' is required"):
        FieldSpec("v", "vector")
    with pytest.raises(ValueError, match="must be one of numeric, binary"):
        FieldSpec("v", "float")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="names x more than once"):
        GroupSchema((FieldSpec("x", "numeric"), FieldSpec("x", "text")))


def test_blobs_of_another_schema_are_detected() -> None:
    a = GroupSchema((FieldSpec("x", "numeric"),))
    b = GroupSchema((FieldSpec("y", "numeric"),))
    with pytest.raises(SchemaTagMismatch):
        decode(b, encode(a, {"x": [1.0]}, np.array([1])))


def test_schema_json_and_fingerprint_are_stable() -> None:
    schema = GroupSchema((FieldSpec("member_seniority", "numeric"), FieldSpec("emb", "vector", 4)))
    assert schema.to_json() == (
        '{"fields":[{"name":"member_seniority","type":"numeric"},'
        '{"dimension":4,"name":"emb","type":"vector"}]}'
    )
    assert GroupSchema.from_json(schema.to_json()) == schema
    # Pinned: a change here means stored blobs would no longer be readable.
    assert schema.fingerprint() == GroupSchema.from_json(schema.to_json()).fingerprint() == "565ea820294f4d25"
    swapped = GroupSchema(schema.fields[::-1])
    assert swapped.fingerprint() != schema.fingerprint()  # the layout follows field order


def test_layout_is_the_documented_one() -> None:
    schema = GroupSchema((FieldSpec("x", "numeric"), FieldSpec("v", "vector", 2), FieldSpec("s", "text")))
    (blob,) = encode(schema, {"x": [1.5], "v": [[1.0, 2.0]], "s": ["hé"]}, np.array([7]))
    assert len(blob) == 8 + 4 + 8 + 2 * 4 + 4 + 3
    assert int.from_bytes(blob[:8], "little", signed=True) == 7  # stores compare these bytes
    assert np.frombuffer(blob[12:20], "<f8")[0] == 1.5
    assert np.frombuffer(blob[28:32], "<i4")[0] == 3 and blob[32:] == "hé".encode()
