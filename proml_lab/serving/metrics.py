"""Prometheus metrics of one service instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """Request counts and latencies, candidates per query, exposures written / dropped, store outages."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("proml_requests_total", "Requests by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("proml_request_seconds", "Request latency by endpoint.", ["endpoint"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.candidates = Histogram("proml_candidates", "Documents ranked per request.",
                                    buckets=(10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000),
                                    registry=self.registry)
        self.served = Counter("proml_ranked_total", "Rank requests served by model, alias and version.",
                              ["model", "alias", "version"], registry=self.registry)
        self.exposures = Counter("proml_exposures_logged_total", "Exposure rows written to the log.",
                                 registry=self.registry)
        self.exposures_dropped = Counter("proml_exposures_dropped_total",
                                         "Exposure rows dropped because the log queue was full.",
                                         registry=self.registry)
        self.store_errors = Counter("proml_online_store_errors_total",
                                    "Requests answered 503 because the online store failed.",
                                    registry=self.registry)
        self.models_loaded = Gauge("proml_models_loaded", "Model versions held in memory.",
                                   registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def __getstate__(self) -> dict[str, Any]:  # pragma: no cover - never pickled; explicit for clarity
        raise TypeError("ServiceMetrics is process-local")
