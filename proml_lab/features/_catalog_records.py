"""What the catalog hands back: feature records, search hits, and the error for several unknown names."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from proml_lab.errors import UnknownFeatureError
from proml_lab.features._catalog_schema import FEATURE_COLUMNS
from proml_lab.features.spec import DerivedFeature, Feature, WindowAggregation, format_duration


@dataclass(frozen=True)
class FeatureRecord:
    """One feature as the catalog holds it (anchored, window aggregation or derived)."""

    name: str
    entity: str
    kind: Literal["feature", "window", "derived"]
    type: str
    dimension: int | None
    description: str
    owner: str | None  # the feature's owner, else its anchor's
    tags: tuple[str, ...]  # the feature's tags, then its anchor's
    anchor: str | None
    source: str | None
    ttl: dt.timedelta | None
    freshness_sla: dt.timedelta | None
    online: bool
    version: int
    definition: dict[str, Any]
    file: str | None
    created_at: str
    updated_at: str

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> FeatureRecord:
        d = dict(zip(FEATURE_COLUMNS, row))
        secs = lambda v: None if v is None else dt.timedelta(seconds=v)  # noqa: E731
        return cls(
            name=d["name"], entity=d["entity"], kind=d["kind"], type=d["type"], dimension=d["dimension"],
            description=d["description"], owner=d["owner"], tags=tuple(json.loads(d["tags"])),
            anchor=d["anchor"], source=d["source"], ttl=secs(d["ttl_s"]),
            freshness_sla=secs(d["freshness_sla_s"]), online=bool(d["online"]), version=d["version"],
            definition=json.loads(d["definition"]), file=d["file"], created_at=d["created_at"],
            updated_at=d["updated_at"],
        )

    def spec(self) -> Feature | WindowAggregation | DerivedFeature:
        """The pydantic definition of this feature."""
        model: Any = {"feature": Feature, "window": WindowAggregation, "derived": DerivedFeature}[self.kind]
        return model.model_validate(self.definition)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (durations as ``"7d"``)."""
        out = dataclasses.asdict(self)
        for k in ("ttl", "freshness_sla"):
            out[k] = format_duration(out[k]) if out[k] is not None else None
        out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True)
class SearchHit:
    """One search result; higher ``score`` is a better match (0.0 when listing without a query)."""

    name: str
    entity: str
    type: str
    description: str
    owner: str | None
    tags: tuple[str, ...]
    online: bool
    score: float


class UnknownFeaturesError(UnknownFeatureError):
    """Several names are unknown; ``unknown`` maps each to its closest known names."""

    def __init__(self, unknown: dict[str, list[str]]) -> None:
        first = next(iter(unknown))
        super().__init__(first, unknown[first])
        parts = [f"{n!r}" + (f" (did you mean: {', '.join(s)}?)" if s else "") for n, s in unknown.items()]
        self.args = (f"Unknown features: {', '.join(parts)}.",)
        self.unknown = unknown
