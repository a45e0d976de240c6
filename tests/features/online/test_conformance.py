"""One conformance suite, run against every online store (SQLite and a real redis-server)."""

from __future__ import annotations

import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from proml_lab._registry import Registry

from proml_lab.errors import OnlineStoreError, ProMLError, UnknownFeatureError
from proml_lab.features.online import (
    MISSING_TS,
    FieldSpec,
    GroupSchema,
    OnlineStore,
    SchemaMismatchError,
    UnknownGroupError,
    open_online_store,
    register_online_store,
)
import proml_lab.features.online as online

SCHEMA = GroupSchema((
    FieldSpec("member_seniority", "numeric"),
    FieldSpec("member_isActive", "binary"),
    FieldSpec("member_titleEmbedding", "vector", 3),
    FieldSpec("member_country", "categorical"),
    FieldSpec("member_headline", "text"),
))
NUMERIC = GroupSchema((FieldSpec("x", "numeric"),))


def _columns() -> dict:
    return {
        "member_seniority": np.array([3.0, np.nan, 5.5]),
        "member_isActive": np.array([True, False, True]),
        "member_titleEmbedding": [np.array([0.5, -1.0, 2.0]), None, [1e-3, 0.0, 7.0]],
        "member_country": ["no", None, "日本"],
        "member_headline": ["Straße café ☕", "", None],
    }


def _x(store: OnlineStore, keys, group: str = "g") -> list[float]:
    return store.read("member", group, np.asarray(keys)).columns["x"].tolist()


def test_round_trip_of_every_value_type(store: OnlineStore) -> None:
    assert store.write_batch("member", "profile", SCHEMA, np.array([10, 20, 30]), _columns(),
                             np.array([100, 200, 300])) == 3
    got = store.read("member", "profile", np.array([10, 20, 30]))
    np.testing.assert_array_equal(got.columns["member_seniority"], [3.0, np.nan, 5.5])
    np.testing.assert_array_equal(got.columns["member_isActive"], [1.0, 0.0, 1.0])
    vectors = got.columns["member_titleEmbedding"]
    assert vectors.dtype == np.float32 and vectors.shape == (3, 3)
    np.testing.assert_array_equal(vectors, np.array([[0.5, -1, 2], [np.nan] * 3, [1e-3, 0, 7]], np.float32))
    assert isinstance(got.columns["member_country"], pa.StringArray)
    assert got.columns["member_country"].to_pylist() == ["no", None, "日本"]
    assert got.columns["member_headline"].to_pylist() == ["Straße café ☕", "", None]
    assert got.event_ts_us.tolist() == [100, 200, 300] and got.found.all()
    assert list(got.columns) == list(SCHEMA.names)
    assert store.schema("member", "profile") == SCHEMA


def test_request_order_duplicates_missing_and_feature_selection(store: OnlineStore) -> None:
    store.write_batch("member", "profile", SCHEMA, np.array([10, 20, 30]), _columns(), np.array([1, 2, 3]))
    got = store.read("member", "profile", np.array([30, 99, 10, 30, 10]),
                     features=["member_country", "member_seniority", "member_titleEmbedding"])
    assert list(got.columns) == ["member_country", "member_seniority", "member_titleEmbedding"]
    assert got.found.tolist() == [True, False, True, True, True]
    assert got.columns["member_country"].to_pylist() == ["日本", None, "no", "日本", "no"]
    np.testing.assert_array_equal(got.columns["member_seniority"], [5.5, np.nan, 3.0, 5.5, 3.0])
    assert np.isnan(got.columns["member_titleEmbedding"][1]).all()
    assert got.event_ts_us.tolist() == [3, MISSING_TS, 1, 3, 1]
    one_missing = store.read("member", "profile", np.array([7]))
    assert one_missing.found.tolist() == [False] and one_missing.columns["member_headline"].null_count == 1
    empty = store.read("member", "profile", np.array([], dtype=np.int64))
    assert len(empty) == 0 and empty.columns["member_titleEmbedding"].shape == (0, 3)
    with pytest.raises(UnknownFeatureError, match="member_seniorty.*Did you mean: member_seniority"):
        store.read("member", "profile", np.array([10]), features=["member_seniorty"])


def test_string_and_int_keys(store: OnlineStore) -> None:
    store.write_batch("member", "by_name", NUMERIC, np.array(["ana", "bø", "c:d"]), {"x": [1.0, 2.0, 3.0]},
                      np.array([1, 1, 1]))
    assert _x(store, ["c:d", "zz", "bø", "ana"], "by_name")[::2] == [3.0, 2.0]
    store.write_batch("member", "by_id", NUMERIC, np.array([-5, 2**40]), {"x": [1.0, 2.0]}, np.array([1, 1]))
    assert _x(store, np.array([2**40, -5]), "by_id") == [2.0, 1.0]
    # Ids that arrive as strings (JSON) are converted to the group's key type.
    assert _x(store, np.array(["-5"]), "by_id") == [1.0]
    with pytest.raises(ValueError, match="int64 keys"):
        store.read("member", "by_id", np.array(["ana"]))
    assert store.write_batch("member", "by_id", NUMERIC, np.array(["7"]), {"x": [7.0]}, 1) == 1
    assert _x(store, [7], "by_id") == [7.0]
    # An empty first batch still records the group (and its key type): reads find nothing, not an error.
    assert store.write_batch("member", "empty", NUMERIC, np.array([], dtype=str), {"x": []}, []) == 0
    assert store.read("member", "empty", np.array(["a", "b"])).found.tolist() == [False, False]


def test_newer_wins_and_older_write_is_ignored(store: OnlineStore) -> None:
    store.write_batch("member", "g", NUMERIC, np.array([1, 2]), {"x": [1.0, 2.0]}, np.array([100, 100]))
    # An older re-materialization must not overwrite; an equal or newer timestamp replaces.
    assert store.write_batch("member", "g", NUMERIC, np.array([1, 2]), {"x": [-1.0, 20.0]},
                             np.array([99, 101])) == 1
    got = store.read("member", "g", np.array([1, 2]))
    assert got.columns["x"].tolist() == [1.0, 20.0] and got.event_ts_us.tolist() == [100, 101]
    # Negative and large timestamps order correctly too (the Redis script compares int64 exactly).
    store.write_batch("member", "g", NUMERIC, np.array([3]), {"x": [1.0]}, np.array([2**53 + 1]))
    store.write_batch("member", "g", NUMERIC, np.array([3]), {"x": [2.0]}, np.array([2**53]))
    store.write_batch("member", "g", NUMERIC, np.array([4]), {"x": [1.0]}, np.array([-(2**40)]))
    store.write_batch("member", "g", NUMERIC, np.array([4]), {"x": [2.0]}, np.array([-(2**40) + 1]))
    assert _x(store, [3, 4]) == [1.0, 2.0]
    # Within one batch the newest row of a repeated key wins (the last one on a tie).
    store.write_batch("member", "g", NUMERIC, np.array([5, 5, 5, 6, 6]), {"x": [1.0, 3.0, 2.0, 4.0, 5.0]},
                      np.array([10, 30, 20, 7, 7]))
    assert _x(store, [5, 6]) == [3.0, 5.0]


def test_rewriting_a_batch_is_idempotent(store: OnlineStore) -> None:
    keys, ts = np.array([1, 2, 3]), np.array([5, 6, 7])
    for _ in range(2):
        assert store.write_batch("member", "profile", SCHEMA, keys, _columns(), ts) == 3
    got = store.read("member", "profile", keys)
    assert got.columns["member_country"].to_pylist() == ["no", None, "日本"]
    assert store.health()["ok"]


def test_a_failed_batch_leaves_nothing_visible(store: OnlineStore) -> None:
    store.write_batch("member", "g", NUMERIC, np.array([1]), {"x": [1.0]}, np.array([1]))
    with pytest.raises(ValueError, match="column 'x' has 2 values for 3 rows"):
        store.write_batch("member", "g", NUMERIC, np.array([1, 2, 3]), {"x": [9.0, 9.0]}, np.array([2, 2, 2]))
    with pytest.raises(ValueError, match="missing member_headline"):
        cols = _columns()
        del cols["member_headline"]
        store.write_batch("member", "new", SCHEMA, np.array([1, 2, 3]), cols, np.array([2, 2, 2]))
    got = store.read("member", "g", np.array([1, 2, 3]))
    assert got.found.tolist() == [True, False, False] and got.columns["x"][0] == 1.0
    with pytest.raises(UnknownGroupError):
        store.read("member", "new", np.array([1]))


def test_a_batch_larger_than_one_chunk_is_written_whole(store: OnlineStore) -> None:
    n = 25_000  # more than one Redis script chunk and one SQLite IN list
    keys = np.arange(n) * 7
    assert store.write_batch("member", "g", NUMERIC, keys, {"x": keys * 0.5}, np.full(n, 3)) == n
    request = np.concatenate([keys[::-1], [1, 2]])
    got = store.read("member", "g", request)
    np.testing.assert_array_equal(got.columns["x"][:n], keys[::-1] * 0.5)
    assert got.found.sum() == n


def test_schema_of_a_group_cannot_change_silently(store: OnlineStore) -> None:
    store.write_batch("member", "g", NUMERIC, np.array([1]), {"x": [1.0]}, np.array([1]))
    other = GroupSchema((FieldSpec("x", "numeric"), FieldSpec("y", "numeric")))
    with pytest.raises(SchemaMismatchError, match="delete_group"):
        store.write_batch("member", "g", other, np.array([1]), {"x": [1.0], "y": [2.0]}, np.array([2]))
    assert store.delete_group("member", "g") == 1
    store.write_batch("member", "g", other, np.array([1]), {"x": [1.0], "y": [2.0]}, np.array([2]))
    assert store.read("member", "g", np.array([1])).columns["y"].tolist() == [2.0]


def test_coefficients_per_version_and_delete_version(store: OnlineStore) -> None:
    v1 = np.array([[0.1, -0.2, 1e-17], [3.0, 4.0, 5.0]])
    assert store.write_coefficients("jobs", "1", "member", np.array([7, 8]), v1) == 2
    assert store.write_coefficients("jobs", "2", "member", np.array([8]), v1[:1] * 2) == 1
    store.write_coefficients("jobs", "2", "job", np.array(["j1"]), np.ones((1, 2)))
    matrix, found = store.read_coefficients("jobs", "1", "member", np.array([8, 9, 7]))
    assert matrix.dtype == np.float64 and matrix.shape == (3, 3)
    np.testing.assert_array_equal(matrix[[0, 2]], v1[::-1])  # exact float64, not rounded to float32
    assert np.isnan(matrix[1]).all() and found.tolist() == [True, False, True]
    assert store.delete_version("jobs", "2") == 2
    with pytest.raises(UnknownGroupError, match="coefficients of model 'jobs' version '2'"):
        store.read_coefficients("jobs", "2", "member", np.array([8]))
    np.testing.assert_array_equal(store.read_coefficients("jobs", "1", "member", np.array([7]))[0], v1[:1])


def test_delete_group_leaves_other_groups(store: OnlineStore) -> None:
    store.write_batch("member", "a", NUMERIC, np.arange(5), {"x": np.ones(5)}, np.zeros(5, np.int64))
    store.write_batch("member", "ab", NUMERIC, np.arange(3), {"x": np.ones(3)}, np.zeros(3, np.int64))
    store.write_batch("job", "a", NUMERIC, np.arange(2), {"x": np.ones(2)}, np.zeros(2, np.int64))
    assert store.groups() == [("job", "a"), ("member", "a"), ("member", "ab")]
    assert store.delete_group("member", "a") == 5
    assert store.delete_group("member", "a") == 0
    assert store.groups() == [("job", "a"), ("member", "ab")]
    assert _x(store, [0, 1, 2], "ab") == [1.0, 1.0, 1.0]
    assert store.read("job", "a", np.arange(2)).found.all()


def test_health(store: OnlineStore) -> None:
    store.write_batch("member", "g", NUMERIC, np.arange(4), {"x": np.ones(4)}, np.zeros(4, np.int64))
    report = store.health()
    assert report["ok"] is True and report["url"] == store.url
    assert 0 <= report["latency_ms"] < 1000
    assert report.get("rows", report.get("keys")) >= 4 and report["groups"] == 1


def test_unknown_group(store: OnlineStore) -> None:
    store.write_batch("member", "profile", NUMERIC, np.array([1]), {"x": [1.0]}, np.array([1]))
    with pytest.raises(UnknownGroupError) as info:
        store.read("member", "activity", np.array([1]))
    assert isinstance(info.value, OnlineStoreError) and isinstance(info.value, KeyError)
    assert str(info.value).startswith(
        "No feature group 'activity' of entity 'member' has been written to this store. "
        "Groups of 'member' in this store: profile."
    )


def test_reads_from_many_threads(store: OnlineStore) -> None:
    store.write_batch("member", "g", NUMERIC, np.arange(100), {"x": np.arange(100.0)},
                      np.zeros(100, np.int64))

    def read(i: int) -> list[float]:
        return [store.read("member", "g", np.array([i, i + 1])).columns["x"].tolist() for _ in range(20)][-1]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(read, range(16))) == [[float(i), float(i + 1)] for i in range(16)]


def test_a_closed_store_says_so(store_url: str) -> None:
    store = open_online_store(store_url)
    store.close()
    report = store.health()
    assert report["ok"] is False and "closed" in report["error"]
    with pytest.raises(OnlineStoreError, match="closed"):
        store.read("member", "g", np.array([1]))


# -- opening by URL -------------------------------------------------------------------------------------


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(OnlineStoreError,
                       match=r"Unknown online store scheme 'cassandra'; known schemes: .*redis.*sqlite"):
        open_online_store("cassandra://localhost:9042")


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listened on, then released: nobody answers there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_redis_fails_fast_naming_the_url() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    started = time.monotonic()
    with pytest.raises(OnlineStoreError, match="check that redis-server is running") as info:
        open_online_store(url)
    assert time.monotonic() - started < 3
    assert info.value.url == url and url in str(info.value)


def test_uncreatable_sqlite_directory_names_the_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'sub' / 'online.db'}"
    with pytest.raises(OnlineStoreError, match="Check that the directory exists or can be created") as info:
        open_online_store(url)
    assert url in str(info.value)


def test_redis_password_is_not_shown() -> None:
    with pytest.raises(OnlineStoreError) as info:
        open_online_store(f"redis://:s3cret@127.0.0.1:{_closed_port()}/0")
    assert "s3cret" not in str(info.value) and ":***@" in str(info.value)


def test_registered_and_entry_point_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from proml_lab.features.online.sqlite import SQLiteOnlineStore

    opened: list[str] = []

    def factory(url: str) -> OnlineStore:
        opened.append(url)
        return SQLiteOnlineStore("sqlite:///" + url.split("://", 1)[1])

    fresh = Registry(online.ENTRY_POINT_GROUP, "Online-store", normalize=str.lower)
    for name in online._REGISTRY.names():
        fresh.register(name, online._REGISTRY.get(name))
    monkeypatch.setattr(online, "_REGISTRY", fresh)
    register_online_store("mystore", factory)
    with open_online_store(f"mystore://{tmp_path / 'x.db'}") as s:
        s.write_batch("member", "g", NUMERIC, np.array([1]), {"x": [4.0]}, np.array([1]))
        assert _x(s, [1]) == [4.0]
    assert opened == [f"mystore://{tmp_path / 'x.db'}"]

    # A broken plugin (a real installed entry point whose module does not import) only warns.
    dist = tmp_path / "site" / "broken_store-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-store\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[proml_lab.online_stores]\nbroken = no_such_module_xyz:Store\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), *sys.path])
    monkeypatch.setattr(fresh, "_loaded", False)
    with pytest.warns(UserWarning, match="Online-store plugin 'broken' failed to load"):
        with pytest.raises(OnlineStoreError, match="Unknown online store scheme 'broken'"):
            open_online_store("broken://x")
    assert issubclass(OnlineStoreError, ProMLError)
