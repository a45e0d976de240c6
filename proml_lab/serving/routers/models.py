"""``GET /v1/models``: what is deployed, under which aliases, and what this instance holds in memory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from proml_lab.serving.dependencies import Authorized, Service

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Authorized])


@router.get("/models", summary="Deployed models, their aliases and versions")
async def models(service: Service) -> dict[str, Any]:
    return await run_in_threadpool(service.describe_models)
