"""Feature definitions: entities, sources, anchors, window aggregations and derived features.

A provider declares *where* features come from (an :class:`Anchor` binds features of one entity to one
:class:`Source`); a modeler only names them. Definitions are plain pydantic models, written in Python or
YAML (see :mod:`proml_lab.features.loader`) and applied to the workspace's catalog.

Names follow the seed's flat style: ``member_seniority``, ``job_companySize``, ``member_jobViews_7d``.

Examples
--------
>>> member = Entity(name="member", join_key="member_id")
>>> src = Source(name="members", path="world/members", timestamp_column="joined_date")
>>> anchor = Anchor(name="member_profile", entity="member", source="members", owner="profile-team",
...                 features=[Feature(name="member_seniority", expr="seniority", type="numeric",
...                                   description="Seniority level 1-6")])
>>> anchor.features[0].name
'member_seniority'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

ValueType = Literal["numeric", "binary", "categorical", "vector", "text"]
AggFunction = Literal["count", "sum", "avg", "min", "max", "latest"]

_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: Any) -> dt.timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"`` (or a timedelta, or seconds) → timedelta."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(
            f"expected a duration such as '7d', '12h', '30m' or '2w'; got {value!r}"
        )
    if seconds <= 0:
        raise ValueError(f"a duration must be positive; got {value!r}")
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):  # "7d", not "1w": windows read as days in feature names
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def canonical(self) -> dict[str, Any]:
        """The definition as plain JSON data (what the catalog stores and hashes)."""
        return self.model_dump(mode="json", exclude_none=True)

    def fingerprint(self) -> str:
        """A stable hash of the definition: equal definitions, equal fingerprints."""
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Entity(_Spec):
    """Something features describe and models rank for or over: ``member``, ``job``, ``request``."""

    kind: Literal["entity"] = "entity"
    name: str = Field(pattern=_NAME)
    join_key: str = Field(pattern=_NAME, description="Key column in sources and label tables.")
    key_type: Literal["int64", "string"] = "int64"
    description: str = ""


class Source(_Spec):
    """Where rows come from offline: a Parquet path or glob, a Spark table, or Spark SQL.

    Relative Parquet paths resolve against the workspace's lake (``world/members`` is
    ``<home>/lake/world/members``). SQL may refer to other sources by name (they are registered as
    temporary views first).
    """

    kind: Literal["source"] = "source"
    name: str = Field(pattern=_NAME)
    path: str | None = None
    table: str | None = None
    sql: str | None = None
    timestamp_column: str = Field(description="Event time of each row (when its values became true).")
    description: str = ""

    @model_validator(mode="after")
    def _exactly_one_location(self) -> Source:
        given = [k for k in ("path", "table", "sql") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"source {self.name!r} needs exactly one of path, table or sql; got "
                f"{', '.join(given) or 'none'}"
            )
        return self

    @property
    def location_kind(self) -> Literal["path", "table", "sql"]:
        return "path" if self.path else "table" if self.table else "sql"


class _Described(_Spec):
    name: str = Field(pattern=_NAME)
    description: str = ""
    owner: str | None = None  # default: the anchor's owner
    tags: tuple[str, ...] = ()
    ttl: Duration | None = None  # default: the anchor's ttl
    freshness_sla: Duration | None = None


class Feature(_Described):
    """A feature read from a column or a Spark SQL expression of the anchor's source."""

    expr: str | None = Field(default=None, description="Column or Spark SQL expression; default: the name.")
    type: ValueType
    dimension: int | None = Field(default=None, ge=1, description="Length of a dense vector.")

    @model_validator(mode="after")
    def _vector_has_dimension(self) -> Feature:
        if (self.type == "vector") != (self.dimension is not None):
            raise ValueError(
                f"feature {self.name!r}: 'dimension' is required for type 'vector' and only for it"
            )
        return self

    @property
    def expression(self) -> str:
        return self.expr or self.name


class WindowAggregation(_Described):
    """A sliding-window aggregation over the source's events, e.g. job views in the last 7 days.

    The value at time *t* aggregates the events in ``(t - window, t]``: ``count`` counts them (rows
    where ``expr`` is not null; ``expr`` may be omitted), ``sum/avg/min/max`` aggregate ``expr``, and
    ``latest`` is the most recent value. An empty window gives 0 for ``count``/``sum`` and null else.
    """

    expr: str | None = None
    function: AggFunction
    window: Duration
    type: Literal["numeric"] = "numeric"

    @model_validator(mode="after")
    def _expr_needed(self) -> WindowAggregation:
        if self.function != "count" and not self.expr:
            raise ValueError(f"window aggregation {self.name!r}: '{self.function}' needs 'expr'")
        return self


class Anchor(_Spec):
    """Features of one entity from one source, with shared defaults for owner, tags, TTL and SLA."""

    kind: Literal["anchor"] = "anchor"
    name: str = Field(pattern=_NAME)
    entity: str
    source: str
    key: str | None = Field(default=None, description="Key column in the source; default: the entity's.")
    owner: str
    description: str = ""
    tags: tuple[str, ...] = ()
    ttl: Duration = Field(default=dt.timedelta(days=3650), description="Values older than this are null.")
    freshness_sla: Duration | None = None
    online: bool = Field(default=True, description="Push the latest values to the online store.")
    partition: Literal["day", "month"] = Field(
        default="day",
        description="Feature-table folders per event day (event streams) or month (slowly changing profiles).",
    )
    features: tuple[Feature, ...] = ()
    aggregations: tuple[WindowAggregation, ...] = ()

    @model_validator(mode="after")
    def _has_unique_features(self) -> Anchor:
        names = [f.name for f in (*self.features, *self.aggregations)]
        if not names:
            raise ValueError(f"anchor {self.name!r} declares no features or aggregations")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"anchor {self.name!r} declares {', '.join(dupes)} more than once")
        return self

    @property
    def all_features(self) -> tuple[Feature | WindowAggregation, ...]:
        return (*self.features, *self.aggregations)


class DerivedFeature(_Described):
    """A feature computed by a registered Python function from other features of the same entity.

    The function (see :func:`proml_lab.features.derived.derived_function`) is vectorized and runs
    identically offline (on Spark, over Arrow batches) and online (on the arrays read from the store).
    """

    kind: Literal["derived"] = "derived"
    entity: str
    inputs: tuple[str, ...] = Field(min_length=1)
    function: str
    type: ValueType = "numeric"
    dimension: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


Definition = Union[Entity, Source, Anchor, DerivedFeature]
