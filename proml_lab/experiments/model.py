"""What an A/B experiment is: its arms (serving aliases with weights), its layer slice, its ramp and status.

An experiment of a model splits the members of one *layer* between *arms*. Each arm is a serving alias of the
model's deployment (``champion``, ``challenger`` or any alias the deployer moved); the first arm is the
control. Every layer has :data:`BUCKETS` buckets; an experiment reserves a disjoint slice of them
(``bucket_range``, ``share`` percent of the layer) when it is created and serves the first ``traffic``
percent-of-the-layer of that slice, so it can ramp up to ``share`` and two experiments of one layer never
share a member.

>>> e = Experiment("ab", "jobs", [Arm("control", "champion"), Arm("treatment", "challenger")], traffic=5.0)
>>> e.control.alias, e.active_buckets
('champion', 500)
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from proml_lab.errors import ExperimentError

__all__ = ["BUCKETS", "STATUSES", "Arm", "Experiment"]

BUCKETS = 10_000
"""Buckets per layer: a percentage of a layer is a whole number of buckets down to 0.01%."""
STATUSES = ("draft", "running", "stopped")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
ALIAS = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


@dataclass(frozen=True)
class Arm:
    """One arm: its name, the serving alias it routes to and its relative weight (> 0)."""

    name: str
    alias: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Arm:
        """An arm from ``NAME=ALIAS[:WEIGHT]`` (the CLI's ``--arm control=champion``).

        >>> Arm.parse("treatment=challenger:0.5")
        Arm(name='treatment', alias='challenger', weight=0.5)
        """
        name, sep, rest = text.partition("=")
        alias, colon, weight = rest.partition(":")
        if not sep or not name.strip() or not alias.strip():
            raise ExperimentError(f"Arm {text!r} is not NAME=ALIAS[:WEIGHT] (e.g. control=champion, "
                                  "treatment=challenger:0.5).")
        try:
            value = float(weight) if colon else 1.0
        except ValueError:
            raise ExperimentError(f"Arm {text!r}: the weight {weight!r} is not a number.") from None
        return cls(name.strip(), alias.strip(), value)

    @classmethod
    def coerce(cls, value: Any) -> Arm:
        """An :class:`Arm` from an Arm, a ``(name, alias[, weight])`` tuple, a dict or ``NAME=ALIAS[:W]``."""
        if isinstance(value, Arm):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, dict):
            return cls(str(value["name"]), str(value["alias"]), float(value.get("weight", 1.0)))
        if isinstance(value, (tuple, list)) and len(value) in (2, 3):
            return cls(str(value[0]), str(value[1]), float(value[2]) if len(value) == 3 else 1.0)
        raise ExperimentError(f"Cannot read an arm from {value!r}: give Arm(name, alias, weight), "
                              "(name, alias[, weight]) or 'name=alias[:weight]'.")


@dataclass
class Experiment:
    """An A/B experiment of one model (see the module docstring for layers, shares and traffic).

    Attributes
    ----------
    traffic
        Percent (0-100) of the layer's members in the experiment now.
    share
        Percent of the layer's buckets reserved for it: the most ``traffic`` can ever be.
    bucket_range
        ``(lo, hi)``: its half-open slice of the layer's buckets; the members it serves are those whose layer
        bucket is in ``[lo, lo + active_buckets)``.
    ramp
        History of traffic changes, ``[{"at": iso-time, "traffic": percent}, ...]``.
    """

    name: str
    model: str
    arms: list[Arm]
    layer: str = "default"
    salt: str = ""
    traffic: float = 0.0
    share: float = 100.0
    bucket_range: tuple[int, int] = (0, BUCKETS)
    ramp: list[dict[str, Any]] = field(default_factory=list)
    status: str = "draft"
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        self.arms = [Arm.coerce(a) for a in self.arms]
        self.bucket_range = (int(self.bucket_range[0]), int(self.bucket_range[1]))
        if not self.salt:
            self.salt = self.name

    @property
    def control(self) -> Arm:
        """The first arm."""
        return self.arms[0]

    @property
    def arm_names(self) -> list[str]:
        return [a.name for a in self.arms]

    @property
    def active_buckets(self) -> int:
        """How many of the layer's buckets (from the start of ``bucket_range``) are in the experiment now."""
        return min(percent_to_buckets(self.traffic), self.bucket_range[1] - self.bucket_range[0])

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["bucket_range"] = list(self.bucket_range)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Experiment:
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        known["arms"] = [Arm.coerce(a) for a in known.get("arms", [])]
        if "bucket_range" in known:
            known["bucket_range"] = tuple(known["bucket_range"])
        return cls(**known)

    def __str__(self) -> str:
        arms = ", ".join(f"{a.name}->{a.alias}" + (f" x{a.weight:g}" if a.weight != 1 else "") for a in self.arms)
        return (f"experiment {self.name} of {self.model} [{self.status}]: {arms}; layer {self.layer}, "
                f"traffic {self.traffic:g}% of share {self.share:g}%, buckets {self.bucket_range[0]}-"
                f"{self.bucket_range[1] - 1}")


def percent_to_buckets(percent: float) -> int:
    """A percentage of a layer as a whole number of buckets (0.01% each)."""
    return int(round(float(percent) * BUCKETS / 100))
