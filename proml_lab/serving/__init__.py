"""The RUN layer: the real-time ranking service (``proml serve``) and its exposure log."""

from __future__ import annotations

from typing import Any

__all__ = ["BackgroundService", "ServiceConfig", "create_app", "read_exposures", "serve"]


def __getattr__(name: str) -> Any:  # FastAPI loads only when the service is used
    if name in ("BackgroundService", "ServiceConfig", "create_app", "serve"):
        from proml_lab.serving import app

        return getattr(app, name)
    if name == "read_exposures":
        from proml_lab.serving.exposures import read_exposures

        return read_exposures
    raise AttributeError(f"module 'proml_lab.serving' has no attribute {name!r}")
