"""``GET /healthz`` (liveness + readiness: the online store and loaded models) and ``GET /metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from proml_lab.serving.dependencies import Authorized, Service

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Health: 200 when the online store answers, 503 otherwise")
async def healthz(service: Service) -> Any:
    report = await run_in_threadpool(service.health)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get("/metrics", summary="Prometheus metrics", dependencies=[Authorized],
            response_class=Response)
async def metrics(service: Service) -> Response:
    service.metrics.models_loaded.set(len(service.models.loaded()))
    body, content_type = service.metrics.render()
    return Response(body, media_type=content_type)
