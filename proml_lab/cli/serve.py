"""``proml serve``: the real-time ranking service over a workspace's deployed models."""

from __future__ import annotations

from typing import Annotated

import typer

from proml_lab.cli._common import HomeOption, console, workspace


def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    token: Annotated[str | None, typer.Option(envvar="PROML_SERVE_TOKEN",
                                              help="Require 'Authorization: Bearer <token>' on /v1 and /metrics.")] = None,
    alias: Annotated[str, typer.Option(help="Alias served when a request names none.")] = "champion",
    preload: Annotated[list[str] | None, typer.Option(help="Model to load at start-up (repeatable).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve POST /v1/rank and /v1/score, GET /v1/models, /healthz and /metrics (OpenAPI at /docs)."""
    from proml_lab.serving.app import ServiceConfig, serve as run

    ws = workspace(home, create=False)
    console.print(f"serving {ws.root} on http://{host}:{port} (OpenAPI docs at /docs; Ctrl-C stops)",
                  highlight=False, soft_wrap=True)
    run(ws, host=host, port=port, log_level=log_level,
        config=ServiceConfig(token=token, default_alias=alias, preload=tuple(preload or ())))
