"""Sample data: a synthetic job-recommendation world and the MovieLens-100K loader.

>>> from proml_lab.worlds import generate_world        # doctest: +SKIP
>>> world = generate_world("tiny", seed=7)            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proml_lab.worlds.config import SIZES, Drift, GroundTruth, WorldConfig
from proml_lab.worlds.movielens import MovieLens, load_movielens
from proml_lab.worlds.world import World

__all__ = [
    "SIZES",
    "Drift",
    "GroundTruth",
    "MovieLens",
    "World",
    "WorldConfig",
    "generate_world",
    "load_movielens",
]


def generate_world(
    size: str = "small",
    *,
    seed: int = 0,
    workspace: Any = None,
    name: str = "world",
    progress: Any = None,
    **overrides: Any,
) -> World:
    """Generate the synthetic economic graph into ``<workspace>/lake/<name>`` and return it.

    Parameters
    ----------
    size
        ``tiny`` (~1k members, unit tests), ``small`` (~20k members, 500k impressions) or ``large``
        (~1M members, 20M impressions, written in chunks).
    seed
        Same seed, same bytes.
    workspace
        A :class:`~proml_lab.workspace.Workspace`; default: the one at ``PROML_HOME`` (created if needed).
    overrides
        Any :class:`WorldConfig` field, e.g. ``drift_from=date(2026, 1, 20)``, ``anomalies=3``.
    """
    from proml_lab.workspace import Workspace
    from proml_lab.worlds.economic_graph import write_world

    ws = workspace if workspace is not None else Workspace.init()
    cfg = _config(size, seed=seed, **overrides)
    path = write_world(cfg, Path(ws.lake) / name, progress=progress)
    return World(path)


def _config(size: str, **fields: Any) -> WorldConfig:
    """A preset with overrides, with pydantic's complaints turned into one readable error."""
    from pydantic import ValidationError

    from proml_lab.errors import ConfigurationError

    if size not in SIZES:
        raise ConfigurationError(
            f"Unknown world size {size!r}; choose one of: {', '.join(SIZES)}.", setting="size"
        )
    try:
        return WorldConfig.preset(size, **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigurationError(f"Invalid world configuration: {problems}", setting="world") from None
