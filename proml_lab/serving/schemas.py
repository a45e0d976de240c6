"""Request and response bodies of the ranking service (they are its OpenAPI contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Id = int | str
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$"
FilterValue = float | str | list[float | str] | dict[str, float | str | list[float | str]]


class RankRequest(BaseModel):
    """``POST /v1/rank``: the top ``k`` documents for one member."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=_NAME, description="Registered model name.")
    member_id: Id = Field(description="The member to rank for.")
    k: int = Field(default=10, ge=1, le=10_000, description="How many documents to return.")
    candidates: list[Id] | None = Field(default=None, max_length=100_000,
                                        description="Documents to rank; default: every document deployed.")
    filters: dict[str, FilterValue] | None = Field(
        default=None, description='Document filters: {"job_region": "west", "job_seniority": {"gte": 3}}.')
    context: dict[str, Any] | None = Field(default=None, description="Values of REQUEST-scope inputs.")
    alias: str | None = Field(default=None, pattern=_NAME,
                              description="Serve this alias instead of the default (e.g. 'challenger'); "
                                          "bypasses A/B experiments.")
    explain: bool = Field(default=False, description="Return every node's value for the returned documents.")


class RankedItem(BaseModel):
    document_id: Id
    position: int
    score: float | None
    explain: dict[str, Any] | None = None


class RankResponse(BaseModel):
    request_id: str
    model: str
    alias: str
    version: str
    member_id: Id
    member_known: bool = Field(description="False for a member the online store does not know (cold start).")
    candidates: int = Field(description="Documents ranked (after candidates and filters).")
    items: list[RankedItem]
    unknown_candidates: list[Id] = Field(default_factory=list)
    experiment: str | None = Field(default=None, description="The A/B experiment that routed the request.")
    arm: str | None = Field(default=None, description="The member's arm in that experiment.")
    took_ms: float


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: Id
    document_id: Id


class ScoreRequest(BaseModel):
    """``POST /v1/score``: the model's score of explicit (member, document) pairs."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=_NAME)
    pairs: list[Pair] = Field(min_length=1, max_length=100_000)
    context: dict[str, Any] | None = None
    alias: str | None = Field(default=None, pattern=_NAME)
    explain: bool = False


class PairScore(BaseModel):
    member_id: Id
    document_id: Id
    score: float | None = Field(description="Null when the document is not deployed.")
    explain: dict[str, Any] | None = None


class ScoreResponse(BaseModel):
    request_id: str
    model: str
    alias: str
    version: str
    scores: list[PairScore]
    experiment: str | None = Field(default=None, description="The A/B experiment that routed the request.")
    arm: str | None = Field(default=None, description="The members' arm in that experiment.")
    took_ms: float


class ErrorResponse(BaseModel):
    detail: str
