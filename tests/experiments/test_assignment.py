"""Assignment as a user relies on it: deterministic across processes, ramps that only add members, arm splits
that follow the weights, exclusive layers and independent layers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from proml_lab.errors import ExperimentError
from proml_lab.experiments import Arm, Experiment, ExperimentStore, assign, bucket
from proml_lab.experiments.assignment import in_experiment, layer_bucket

MEMBERS = np.arange(1, 200_001)
ARMS = [Arm("control", "champion"), Arm("treatment", "challenger")]


def experiment(traffic: float, *, share: float = 100.0, salt: str = "s1", layer: str = "default",
               arms: list[Arm] = ARMS, lo: int = 0) -> Experiment:
    return Experiment("ab", "jobs", arms, layer=layer, salt=salt, traffic=traffic, share=share,
                      bucket_range=(lo, lo + int(share * 100)))


def test_buckets_cover_the_range_uniformly_and_deterministically():
    b = bucket("some-key", MEMBERS)
    assert b.dtype == np.int64 and b.min() == 0 and b.max() == 9_999
    counts = np.bincount(b, minlength=10_000)
    expected = len(MEMBERS) / 10_000
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 10_000 + 5 * np.sqrt(2 * 10_000)  # a chi-square with 9,999 d.o.f. this far out: broken hash
    assert np.array_equal(b, bucket("some-key", MEMBERS.copy()))
    assert np.mean(b == bucket("other-key", MEMBERS)) < 0.001  # another key is another shuffle


def test_an_id_hashes_alike_as_int_numpy_int_or_decimal_string_and_strings_hash_stably():
    ints = [0, 7, -12, 123456789012, 2**63 - 1]
    assert (bucket("k", ints).tolist() == bucket("k", np.array(ints, dtype=np.int64)).tolist()
            == bucket("k", [str(i) for i in ints]).tolist()
            == bucket("k", np.array(ints, dtype=object)).tolist())
    names = np.array([f"member-{i}" for i in range(50_000)])
    b = bucket("k", names)
    assert np.array_equal(b, bucket("k", list(names)))
    assert len(np.unique(b)) > 9_900  # string ids spread over the buckets too
    assert bucket("k", ["007"])[0] != bucket("k", [7])[0] or bucket("k", ["07"])[0] != bucket("k", [7])[0]


def test_buckets_are_the_same_in_a_fresh_process():
    ids = [1, 2, 3, 99_999, "alice", "bob"]
    code = ("import json, sys; from proml_lab.experiments import bucket; "
            "print(json.dumps(bucket(sys.argv[1], json.loads(sys.argv[2])).tolist()))")
    out = subprocess.run([sys.executable, "-c", code, "layer:default", json.dumps(ids)], capture_output=True,
                         text=True, check=True, env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert json.loads(out.stdout) == bucket("layer:default", ids).tolist()


def test_a_ramp_from_5_to_50_percent_only_adds_members_and_nobody_changes_arm():
    at5, at50 = assign(experiment(5), MEMBERS), assign(experiment(50), MEMBERS)
    was_in = at5 != None  # noqa: E711 - elementwise over an object array
    now_in = at50 != None  # noqa: E711
    assert np.all(now_in[was_in])                       # nobody leaves
    assert np.array_equal(at50[was_in], at5[was_in])     # nobody changes arm
    assert was_in.mean() == pytest.approx(0.05, abs=0.003)
    assert now_in.mean() == pytest.approx(0.50, abs=0.005)
    assert (now_in & ~was_in).mean() == pytest.approx(0.45, abs=0.005)  # the only members that moved


def test_a_ramp_down_only_removes_members():
    at50, at20 = assign(experiment(50), MEMBERS), assign(experiment(20), MEMBERS)
    still = at20 != None  # noqa: E711
    assert np.array_equal(at20[still], at50[still]) and np.all(at50[still] != None)  # noqa: E711


def test_the_arm_split_follows_the_weights():
    arms = [Arm("control", "champion", 1), Arm("a", "challenger", 2), Arm("b", "arm-b", 1)]
    got = assign(experiment(100, arms=arms), MEMBERS)
    shares = {name: float(np.mean(got == name)) for name in ("control", "a", "b")}
    assert shares == pytest.approx({"control": 0.25, "a": 0.5, "b": 0.25}, abs=0.006)
    even = assign(experiment(30), MEMBERS)
    in_ = even[even != None]  # noqa: E711
    assert np.mean(in_ == "control") == pytest.approx(0.5, abs=0.01)


def test_the_arm_does_not_depend_on_the_layer_bucket():
    # members of the experiment's first buckets are not all in one arm: the arm is a second, independent hash
    e = experiment(2)
    got = assign(e, MEMBERS)
    members = MEMBERS[got != None]  # noqa: E711
    lowest = members[np.argsort(layer_bucket("default", members))[:500]]
    assert 0.4 < np.mean(assign(e, lowest) == "control") < 0.6


def test_two_experiments_in_one_layer_never_share_a_member(tmp_path):
    store = ExperimentStore(tmp_path)
    first = store.create("one", "jobs", ARMS, share=40, traffic=40)
    second = store.create("two", "jobs", ARMS, share=60, traffic=60)
    in_one, in_two = in_experiment(first, MEMBERS), in_experiment(second, MEMBERS)
    assert not np.any(in_one & in_two)
    assert np.mean(in_one | in_two) == pytest.approx(1.0)  # the layer is fully used
    assert in_one.mean() == pytest.approx(0.4, abs=0.005)


def test_experiments_in_different_layers_are_independent(tmp_path):
    store = ExperimentStore(tmp_path)
    a = store.create("a", "jobs", ARMS, layer="ranking", share=50, traffic=50)
    b = store.create("b", "jobs", ARMS, layer="ui", share=50, traffic=50)
    assert a.bucket_range == b.bucket_range == (0, 5_000)  # each layer has its own buckets
    in_a, in_b = in_experiment(a, MEMBERS), in_experiment(b, MEMBERS)
    assert np.mean(in_a & in_b) == pytest.approx(0.25, abs=0.005)  # overlap as if drawn independently
    arms_b = assign(b, MEMBERS[in_a & in_b])
    assert np.mean(arms_b == "control") == pytest.approx(0.5, abs=0.01)


def test_a_member_outside_the_traffic_gets_none_and_bad_ids_are_refused():
    got = assign(experiment(0), [1, 2, 3])
    assert got.tolist() == [None, None, None]
    with pytest.raises(ExperimentError, match="integers or strings"):
        bucket("k", [1.5])
