"""Quasar engines: the same IR and operators run locally (numpy column batches) or on Spark."""

from __future__ import annotations

from typing import Any

from proml_lab.quasar.engine.frame import score_frame
from proml_lab.quasar.engine.local import LocalEngine, QueryBatch, RankResult

__all__ = ["LocalEngine", "QueryBatch", "RankResult", "SparkEngine", "score_frame"]


def __getattr__(name: str) -> Any:
    if name == "SparkEngine":  # imported on first use: the local engine must not pull in Spark
        from proml_lab.quasar.engine.spark import SparkEngine

        return SparkEngine
    raise AttributeError(f"module 'proml_lab.quasar.engine' has no attribute {name!r}")
