"""The ranking service: ``create_app`` assembles the FastAPI app; ``serve`` runs it with uvicorn.

The service is the Pro-ML "mid-tier + searcher" in one process. Per request it resolves the model version
once (the alias pointer the deployer moves), reads the member's features and coefficients from the online
store, takes the candidates from the forward index and ranks them with the local engine (the operator code
training used). Errors map to status codes with a message saying what to do: unknown model or alias 404,
bad input 422, missing token 401, online store unreachable 503 (the next request tries again, so the service
recovers by itself when the store is back).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from proml_lab.errors import OnlineStoreError, ProMLError

__all__ = ["BackgroundService", "ServiceConfig", "Service", "create_app", "serve"]


@dataclass
class ServiceConfig:
    """How one service instance behaves (``proml serve`` options)."""

    token: str | None = None              # bearer token required on /v1/* and /metrics when set
    default_alias: str = "champion"       # the alias a request without one is served from
    watch_s: float = 0.5                  # how often new deployments are looked for (and preloaded)
    exposure_flush_s: float = 1.0         # exposure log: write at least this often ...
    exposure_batch_rows: int = 20_000     # ... or when this many rows are queued
    preload: tuple[str, ...] = ()         # models to load at start-up (their default alias)
    workers: int | None = None            # threads that rank (default: the CPU count, at most 8)


class Service:
    """What the routes share: the workspace, loaded models, the exposure log and the metrics."""

    def __init__(self, workspace: Any, config: ServiceConfig) -> None:
        from proml_lab.experiments.router import ExperimentRouter
        from proml_lab.serving.exposures import ExposureLog, exposure_dir
        from proml_lab.serving.metrics import ServiceMetrics
        from proml_lab.serving.models import ModelCache

        self.workspace = workspace
        self.config = config
        # Ranking is CPU-bound: as many threads as cores, requests beyond that wait in FIFO order. A large
        # pool would run dozens of rankings at once under a burst, and they would all finish late.
        self.workers = config.workers or min(8, os.cpu_count() or 1)
        self.executor: ThreadPoolExecutor | None = None
        self.metrics = ServiceMetrics()
        self.models = ModelCache(workspace, watch_s=config.watch_s)
        # A/B experiments: which arm's alias serves a request that names none (re-read when they change)
        self.experiments = ExperimentRouter(workspace, default_alias=config.default_alias)
        self.exposures = ExposureLog(exposure_dir(workspace), flush_s=config.exposure_flush_s,
                                     batch_rows=config.exposure_batch_rows,
                                     on_write=self.metrics.exposures.inc,
                                     on_drop=self.metrics.exposures_dropped.inc)

    def start(self) -> None:
        self.exposures.start()
        self.models.start()
        for name in self.config.preload:
            self.models.get(name, self.config.default_alias)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run a CPU-bound request handler on the ranking threads."""
        import asyncio

        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="proml-rank")
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def stop(self) -> None:
        self.models.stop()
        self.exposures.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False)
            self.executor = None

    def health(self) -> dict[str, Any]:
        store = self.workspace.features.online_store.health()
        ok = bool(store.get("ok"))
        return {"status": "ok" if ok else "unavailable",
                "online_store": {k: store.get(k) for k in ("ok", "backend", "latency_ms", "error") if k in store},
                "models": {f"{m.name}@{m.version}": m.deployment.generation for m in self.models.loaded()},
                "load_errors": dict(self.models.load_errors),
                "exposures": {"written": self.exposures.written, "dropped": self.exposures.dropped,
                              "errors": self.exposures.errors}}

    def describe_models(self) -> dict[str, Any]:
        from proml_lab.deploy.deployer import Deployer

        root = self.workspace.root / "deployments"
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
        deployer = Deployer(self.workspace)
        return {"models": [deployer.status(name) for name in names],
                "loaded": [m.describe() for m in self.models.loaded()]}


def create_app(workspace: Any = None, *, config: ServiceConfig | None = None) -> Any:
    """The FastAPI app serving *workspace* (default: the workspace of the current settings).

    Examples
    --------
    >>> import tempfile
    >>> from proml_lab.workspace import Workspace
    >>> app = create_app(Workspace.init(tempfile.mkdtemp() + "/ws"))
    >>> sorted(app.openapi()["paths"])
    ['/healthz', '/metrics', '/v1/models', '/v1/rank', '/v1/score']
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from proml_lab.serving.models import NotDeployedError, RequestError
    from proml_lab.serving.routers import models, operations, ranking
    from proml_lab.workspace import Workspace

    ws = workspace if workspace is not None else Workspace.open()
    service = Service(ws, config or ServiceConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="ProML Lab ranking service", version="1",
                  description="Ranks documents for members with deployed Quasar models.", lifespan=lifespan)
    app.state.service = service
    for router in (ranking.router, models.router, operations.router):
        app.include_router(router)

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    @app.exception_handler(OnlineStoreError)
    async def _store_down(request: Request, exc: OnlineStoreError) -> JSONResponse:
        service.metrics.store_errors.inc()
        return error(503, f"the online store is unavailable, retry shortly: {exc}", {"Retry-After": "1"})

    @app.exception_handler(NotDeployedError)
    async def _not_deployed(request: Request, exc: NotDeployedError) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(RequestError)
    async def _bad_request(request: Request, exc: RequestError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                             for e in exc.errors()[:5])
        return error(422, f"invalid request: {problems}")

    @app.exception_handler(ProMLError)
    async def _other(request: Request, exc: ProMLError) -> JSONResponse:
        # A broken deployment (corrupt index, missing bundle) is a server-side fault with a clear cause.
        return error(500, f"{type(exc).__name__}: {exc}")

    app.add_middleware(_Timing, metrics=service.metrics)
    return app


class _Timing:
    """ASGI middleware: request counts and latencies per endpoint (cheaper than BaseHTTPMiddleware)."""

    _KNOWN = ("/v1/rank", "/v1/score", "/v1/models", "/healthz", "/metrics")

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        endpoint = path if path in self._KNOWN else "other"
        status = {"code": 500}

        async def record(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.observe(endpoint, status["code"], time.perf_counter() - started)


def serve(workspace: Any = None, *, host: str = "127.0.0.1", port: int = 8000,
          config: ServiceConfig | None = None, log_level: str = "warning") -> None:
    """Run the service with uvicorn (one process; scale out with replicas behind a load balancer)."""
    import uvicorn

    uvicorn.run(create_app(workspace, config=config), host=host, port=port, log_level=log_level,
                access_log=False)


class BackgroundService:
    """The service on a real socket in a thread of this process: for notebooks, the demo and tests.

    Examples
    --------
    >>> with BackgroundService(ws) as service:                       # doctest: +SKIP
    ...     httpx.post(service.url + "/v1/rank", json={"model": "jobs", "member_id": 7}).json()
    """

    def __init__(self, workspace: Any = None, *, host: str = "127.0.0.1", port: int = 0,
                 config: ServiceConfig | None = None) -> None:
        self.workspace, self.host, self.port, self.config = workspace, host, port, config
        self.app: Any = None
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundService:
        import socket
        import threading

        import uvicorn

        if self.port == 0:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        self.app = create_app(self.workspace, config=self.config)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="proml-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ProMLError(f"the ranking service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(15)
            self._server = self._thread = None

    def __enter__(self) -> BackgroundService:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
