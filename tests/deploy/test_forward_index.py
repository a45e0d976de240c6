"""The forward index: a generation round-trips every column kind, looks ids up vectorized, and catches damage."""

import json

import numpy as np
import pyarrow as pa
import pytest

from proml_lab.deploy.forward_index import ForwardIndex, coefficient_column, write_generation
from proml_lab.errors import ForwardIndexError


def _documents(n=1_000):
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(10, 10 + 3 * n, 3))
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    coefs = rng.normal(size=(n, 2))
    has_coefs = rng.random(n) < 0.7
    return pa.table({
        "job_id": pa.array(ids, pa.int64()),
        "job_seniority": pa.array(rng.random(n), mask=rng.random(n) < 0.1),
        "job_remote": pa.array(rng.random(n) < 0.5),
        "job_companySize": pa.array(rng.integers(1, 5_000, n)),
        "job_region": pa.array(rng.choice(["east", "west", None], n)),
        "job_description": pa.array([f"job number {i}" for i in range(n)]),
        "job_embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8),
        coefficient_column("glmix", "per_document"): pa.FixedSizeListArray.from_arrays(
            pa.array(coefs.reshape(-1)), 2, mask=pa.array(~has_coefs)),
    }), vectors, coefs, has_coefs


def test_round_trip_of_every_column_kind(tmp_path):
    table, vectors, coefs, has_coefs = _documents()
    index = write_generation(tmp_path / "g1", table, id_column="job_id", shards=4, meta={"version": "3"})
    again = ForwardIndex.open(tmp_path / "g1")
    assert len(again) == 1_000 and again.meta == {"version": "3"}
    assert [e["file"] for e in again.manifest["shards"]] == [f"shard-{k}.arrow" for k in range(4)]
    assert sorted(p.name for p in (tmp_path / "g1").iterdir()) == ["manifest.json", *[f"shard-{k}.arrow" for k in range(4)]]
    assert again.ids.dtype == np.int64 and set(again.ids) == set(table["job_id"].to_pylist())

    positions, found = again.rows(table["job_id"].to_numpy())
    assert found.all()
    np.testing.assert_array_equal(again.ids[positions], table["job_id"].to_numpy())
    seniority = again.column("job_seniority")[positions]
    np.testing.assert_array_equal(seniority, table["job_seniority"].to_numpy(zero_copy_only=False))
    assert again.column("job_remote").dtype == np.float64 and again.column("job_companySize").dtype == np.float64
    assert again.column("job_region")[positions].tolist() == table["job_region"].to_pylist()
    assert again.column("job_description")[positions].tolist() == table["job_description"].to_pylist()

    emb = again.column("job_embedding")
    assert emb.dtype == np.float32 and emb.shape == (1_000, 8) and not emb.flags.writeable
    np.testing.assert_array_equal(emb[positions], vectors)
    with pytest.raises(ValueError):
        emb[0, 0] = 1.0
    assert again.column("job_embedding") is emb  # cached: no per-request copy

    ids, matrix = again.coefficients("glmix", "per_document")
    assert matrix.dtype == np.float64 and len(ids) == has_coefs.sum()
    pos, ok = again.rows(ids)
    want = dict(zip(table["job_id"].to_pylist(), coefs))
    np.testing.assert_array_equal(matrix, np.array([want[i] for i in ids.tolist()]))
    assert index.verify() == {"rows": 1_000, "shards": 4, "bytes": index.size_bytes}
    assert again.column_names == ["job_seniority", "job_remote", "job_companySize", "job_region",
                                  "job_description", "job_embedding"]


def test_rows_reports_missing_ids_and_keeps_request_order(tmp_path):
    table, *_ = _documents(50)
    index = write_generation(tmp_path / "g", table, id_column="job_id", shards=3)
    wanted = np.array([13, 7, 10, 13, 10_000])
    positions, found = index.rows(wanted)
    assert found.tolist() == [True, False, True, True, False]
    assert positions[1] == -1 and positions[4] == -1
    assert index.ids[positions[[0, 2, 3]]].tolist() == [13, 10, 13]
    assert index.rows(np.array([], dtype=np.int64))[0].shape == (0,)


def test_string_ids_shard_stably(tmp_path):
    table = pa.table({"doc": ["b", "a", "ccc", "dd"], "x": [1.0, 2.0, 3.0, 4.0]})
    one = write_generation(tmp_path / "one", table, id_column="doc", shards=2)
    two = write_generation(tmp_path / "two", table.slice(0, 2), id_column="doc", shards=2)
    assert one.ids.dtype.kind == "U"
    shard_of = lambda ix: {d: k for k, t in enumerate(ix._tables) for d in t["doc"].to_pylist()}  # noqa: E731
    assert {d: shard_of(one)[d] for d in ("a", "b")} == shard_of(two)
    positions, found = one.rows(["dd", "zz"])
    assert found.tolist() == [True, False] and one.column("x")[positions[0]] == 4.0


def test_a_corrupted_shard_is_caught_and_named(tmp_path):
    table, *_ = _documents(200)
    write_generation(tmp_path / "g", table, id_column="job_id", shards=4)
    shard = tmp_path / "g" / "shard-2.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of a buffer
    shard.write_bytes(bytes(data))
    with pytest.raises(ForwardIndexError, match="Shard shard-2.arrow .* is corrupt") as info:
        ForwardIndex.open(tmp_path / "g").verify()
    assert info.value.shard == "shard-2.arrow"


def test_a_shard_that_disagrees_with_the_manifest_is_refused_at_open(tmp_path):
    table, *_ = _documents(200)
    write_generation(tmp_path / "g", table, id_column="job_id", shards=2)
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    manifest["shards"][1]["rows"] += 1
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ForwardIndexError, match="Shard shard-1.arrow .* the manifest says"):
        ForwardIndex.open(tmp_path / "g")
    (tmp_path / "g" / "shard-0.arrow").unlink()
    with pytest.raises(ForwardIndexError, match="shard-0.arrow"):
        ForwardIndex.open(tmp_path / "g")


def test_a_generation_is_written_atomically_and_never_overwritten(tmp_path):
    table, *_ = _documents(20)
    write_generation(tmp_path / "g", table, id_column="job_id")
    with pytest.raises(ForwardIndexError, match="already exists"):
        write_generation(tmp_path / "g", table, id_column="job_id")
    with pytest.raises(ForwardIndexError, match="repeated ids"):
        write_generation(tmp_path / "h", pa.concat_tables([table, table]), id_column="job_id")
    with pytest.raises(ForwardIndexError, match="no column 'nope'"):
        ForwardIndex.open(tmp_path / "g").column("nope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no staging directory left behind
