"""Quasar engines: the same IR and operators run locally (numpy column batches) or on Spark."""

from __future__ import annotations

from proml_lab.quasar.engine.local import LocalEngine, QueryBatch, RankResult

__all__ = ["LocalEngine", "QueryBatch", "RankResult"]
