"""Deterministic, salted, vectorized assignment of members to experiment arms.

``bucket(key, ids)`` maps member ids to one of :data:`~proml_lab.experiments.model.BUCKETS` buckets with a
keyed 64-bit mix (two rounds of the splitmix64 finalizer over ``id ^ k1`` then ``^ k2``, where ``k1, k2``
come from BLAKE2b of the key), then a multiply-shift into ``[0, 10000)``. Everything is numpy over arrays and
depends on nothing but the key and the id, so the same member lands in the same bucket in every process,
on every machine, after every restart (Python's ``hash()`` is never used: it is salted per process).

Ids: an integer (or a string that is a canonical decimal integer, ``"7"``) is hashed by its value, so
``7``, ``np.int64(7)`` and ``"7"`` agree; any other string is hashed by its UTF-8 bytes (FNV-1a, vectorized
over the bytes' columns).

An experiment uses two independent hashes:

1. the *layer* bucket, keyed by the layer name: the member is in the experiment when it falls in
   ``[lo, lo + active_buckets)`` of the experiment's ``bucket_range``. Experiments of one layer own disjoint
   ranges, so they never share a member; ramping only moves the upper end, so a ramp up only adds members.
2. the *arm* bucket, keyed by the experiment's salt, split by the arms' weights: it does not depend on the
   traffic, so nobody changes arm when the experiment ramps.

>>> bucket("layer:default", [1, 2, 3]).tolist() == bucket("layer:default", ["1", "2", "3"]).tolist()
True
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from proml_lab.errors import ExperimentError
from proml_lab.experiments.model import BUCKETS, Experiment

__all__ = ["arm_index", "assign", "bucket", "in_experiment", "layer_bucket"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def bucket(key: str, member_ids: Any) -> np.ndarray:
    """The bucket in ``[0, 10000)`` of each member id under ``key`` (int64 array, same order).

    Examples
    --------
    >>> b = bucket("exp-salt", np.arange(100_000))
    >>> int(b.min()), int(b.max()), b.dtype.name
    (0, 9999, 'int64')
    """
    k1, k2 = _key(key)
    with np.errstate(over="ignore"):
        h = _mix(_mix(_ids_u64(member_ids) ^ k1) ^ k2)
        return (((h >> np.uint64(32)) * np.uint64(BUCKETS)) >> np.uint64(32)).astype(np.int64)


def layer_bucket(layer: str, member_ids: Any) -> np.ndarray:
    """The member's bucket in a layer (the hash that decides who is in which experiment of the layer)."""
    return bucket(f"layer:{layer}", member_ids)


def in_experiment(experiment: Experiment, member_ids: Any) -> np.ndarray:
    """Boolean mask: which members the experiment serves at its current traffic."""
    lo = experiment.bucket_range[0]
    b = layer_bucket(experiment.layer, member_ids)
    return (b >= lo) & (b < lo + experiment.active_buckets)


def arm_index(experiment: Experiment, member_ids: Any) -> np.ndarray:
    """The index (into ``experiment.arms``) of each member's arm, -1 for members not in the experiment."""
    weights = np.array([a.weight for a in experiment.arms], dtype=np.float64)
    if len(weights) == 0 or not np.all(weights > 0):
        raise ExperimentError(f"Experiment {experiment.name!r} needs arms with weights > 0.",
                              experiment=experiment.name)
    # cumulative bucket boundaries: arm i owns [edges[i-1], edges[i]) of the salt's 10,000 buckets
    edges = np.rint(np.cumsum(weights) / weights.sum() * BUCKETS).astype(np.int64)
    arms = np.searchsorted(edges, bucket(f"arm:{experiment.salt}", member_ids), side="right")
    return np.where(in_experiment(experiment, member_ids), arms, -1)


def assign(experiment: Experiment, member_ids: Any) -> np.ndarray:
    """Each member's arm name (object array), None for members not in the experiment now.

    Examples
    --------
    >>> from proml_lab.experiments.model import Arm
    >>> e = Experiment("ab", "jobs", [Arm("control", "champion"), Arm("treatment", "challenger")],
    ...                traffic=100.0)
    >>> sorted(set(assign(e, range(1000))))
    ['control', 'treatment']
    """
    index = arm_index(experiment, member_ids)
    names = np.array([a.name for a in experiment.arms] + [None], dtype=object)
    return names[index]  # -1 picks the trailing None


# ------------------------------------------------------------------------------------------------- helpers


def _key(key: str) -> tuple[np.uint64, np.uint64]:
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=16).digest()
    return np.uint64(int.from_bytes(digest[:8], "little")), np.uint64(int.from_bytes(digest[8:], "little"))


def _mix(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer (a bijection on 64 bits with full avalanche)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _ids_u64(member_ids: Any) -> np.ndarray:
    """Member ids as uint64 words: integers by value (two's complement), other strings by an FNV-1a hash."""
    arr = np.asarray(member_ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64).view(np.uint64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr) & (arr == np.floor(arr))):
            raise ExperimentError("Member ids must be integers or strings; got non-integral floats.")
        return arr.astype(np.int64).view(np.uint64)
    text = arr.astype(str)
    out = np.empty(len(text), dtype=np.uint64)
    ints = _canonical_ints(text)
    if ints.any():
        out[ints] = text[ints].astype(np.int64).view(np.uint64)
    if (~ints).any():
        out[~ints] = _fnv1a(text[~ints])
    return out


def _canonical_ints(text: np.ndarray) -> np.ndarray:
    """Which strings are what ``str(int)`` gives for an int64 (``"7"``, ``"-12"``, not ``"007"`` or ``"+7"``)."""
    negative = np.char.startswith(text, "-")
    body = np.where(negative, np.char.lstrip(text, "-"), text)
    size = np.char.str_len(body)
    # within int64: up to 18 digits, or 19 digits up to 2**63 - 1 (2**63 when negative); same-length digit
    # strings compare like their numbers
    limit = np.where(negative, "9223372036854775808", "9223372036854775807")
    digits = np.char.isdigit(body) & ((size <= 18) | ((size == 19) & (body <= limit)))
    if digits.any():  # isdigit accepts other scripts' digits too: keep ASCII ones (1 byte per character)
        digits[digits] = np.char.str_len(np.char.encode(body[digits], "utf-8")) == size[digits]
    no_lead = (np.char.str_len(body) == 1) | ~np.char.startswith(body, "0")
    single_minus = np.char.str_len(text) - np.char.str_len(body) <= 1
    return digits & no_lead & single_minus & (text != "-0")


def _fnv1a(text: np.ndarray) -> np.ndarray:
    encoded = np.char.encode(text, "utf-8", "surrogatepass")
    width = max(encoded.dtype.itemsize, 1)
    lengths = np.char.str_len(encoded).astype(np.int64)
    raw = np.frombuffer(np.ascontiguousarray(encoded).tobytes(), dtype=np.uint8)
    raw = raw.reshape(len(text), width) if len(text) else raw.reshape(0, width)
    h = np.full(len(text), _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(width):
            live = lengths > j
            h = np.where(live, (h ^ raw[:, j].astype(np.uint64)) * _FNV_PRIME, h)
        # fold the length in and mark the word as a string hash (so it is unlikely to equal an int id)
        return _mix(h ^ (lengths.astype(np.uint64) << np.uint64(56)) ^ np.uint64(0x5354524944000000))
