"""``POST /v1/rank`` and ``POST /v1/score``."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter

from proml_lab.serving.dependencies import Authorized, Service
from proml_lab.serving.exposures import ExposureBatch
from proml_lab.serving.schemas import (ErrorResponse, PairScore, RankedItem, RankRequest, RankResponse,
                                       ScoreRequest, ScoreResponse)

router = APIRouter(prefix="/v1", tags=["ranking"], dependencies=[Authorized],
                   responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
                              422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})


@router.post("/rank", response_model=RankResponse, summary="Top-K documents for one member")
async def rank(body: RankRequest, service: Service) -> RankResponse:
    return await service.run(_rank, body, service)


@router.post("/score", response_model=ScoreResponse, summary="Scores of explicit (member, document) pairs")
async def score(body: ScoreRequest, service: Service) -> ScoreResponse:
    return await service.run(_score, body, service)


def _rank(body: RankRequest, service: Any) -> RankResponse:
    started = time.perf_counter()
    experiment, arm, alias = _route(body, service, [body.member_id])
    model = service.models.get(body.model, alias)  # resolved once: the whole request uses this version
    ranked = model.rank(body.member_id, k=body.k, candidates=body.candidates, filters=body.filters,
                        context=body.context, explain=body.explain)
    request_id = uuid.uuid4().hex
    positions = np.arange(1, len(ranked.document_ids) + 1)
    service.exposures.log(ExposureBatch(request_id, model.name, alias, model.version, body.member_id,
                                        ranked.document_ids, positions, ranked.scores,
                                        dt.datetime.now(dt.timezone.utc), experiment, arm))
    service.metrics.served.labels(model.name, alias, model.version).inc()
    service.metrics.candidates.observe(ranked.candidates)
    items = [RankedItem(document_id=_plain(d), position=int(p), score=_finite(s),
                        explain=({n: _jsonable(v[i]) for n, v in ranked.explain.items()} if body.explain else None))
             for i, (d, p, s) in enumerate(zip(ranked.document_ids, positions, ranked.scores))]
    return RankResponse(request_id=request_id, model=model.name, alias=alias, version=model.version,
                        member_id=body.member_id, member_known=ranked.member_known, candidates=ranked.candidates,
                        items=items, unknown_candidates=ranked.unknown_candidates, experiment=experiment, arm=arm,
                        took_ms=round((time.perf_counter() - started) * 1000, 3))


def _score(body: ScoreRequest, service: Any) -> ScoreResponse:
    started = time.perf_counter()
    members = [p.member_id for p in body.pairs]
    experiment, arm, alias = _route(body, service, members)
    model = service.models.get(body.model, alias)
    documents = [p.document_id for p in body.pairs]
    scores, details, _ = model.score(members, documents, context=body.context, explain=body.explain)
    found_rows = np.cumsum(~np.isnan(scores)) - 1  # details hold the found pairs only, in order
    out = []
    for i, pair in enumerate(body.pairs):
        explain = None
        if body.explain and not np.isnan(scores[i]):
            explain = {n: _jsonable(v[found_rows[i]]) for n, v in details.items()}
        out.append(PairScore(member_id=pair.member_id, document_id=pair.document_id, score=_finite(scores[i]),
                             explain=explain))
    return ScoreResponse(request_id=uuid.uuid4().hex, model=model.name, alias=alias, version=model.version,
                         scores=out, experiment=experiment, arm=arm,
                         took_ms=round((time.perf_counter() - started) * 1000, 3))


def _route(body: Any, service: Any, members: list[Any]) -> tuple[str | None, str | None, str]:
    """(experiment, arm, alias) of a request: an explicit alias bypasses experiments; otherwise the members'
    running experiment arm, or the default alias. One request is served by one version, so the pairs of a
    score request must all route alike."""
    if body.alias:
        return None, None, body.alias
    if len(set(members)) == 1:
        return tuple(service.experiments.route_one(body.model, members[0]))
    routes = set(service.experiments.route(body.model, members))
    if len(routes) > 1:
        from proml_lab.serving.models import RequestError

        arms = ", ".join(sorted(f"{e}/{a}" if e else "none" for e, a, _ in routes))
        raise RequestError(f"the pairs' members fall in different A/B experiment arms of model {body.model!r} "
                           f"({arms}): send one member per request or name an 'alias'")
    return tuple(routes.pop())


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
