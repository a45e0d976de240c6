"""Which arm serves a request: the ranking service asks the router once per request without an explicit alias.

The router keeps the running experiments of each model in memory and re-reads them only when the store's
:meth:`~proml_lab.experiments.store.ExperimentStore.change_token` changes (one ``stat`` and a 4-byte read
per request), so a ramp or a stop reaches a running service at its next request, without a restart.

A member can fall in running experiments of one model that live in different layers. Only one can decide
the model version it is served, so the router takes the **earliest started** of them (then by name): an
experiment that started later never takes members away from one that was already running. Members in no
experiment get the default alias.

>>> router = ExperimentRouter(ws)                                                  # doctest: +SKIP
>>> router.route("jobs", [1, 2])                                                    # doctest: +SKIP
[('jobs-ab', 'treatment', 'challenger'), (None, None, 'champion')]
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from proml_lab.experiments.assignment import arm_index
from proml_lab.experiments.model import Experiment
from proml_lab.experiments.store import ExperimentStore

__all__ = ["ExperimentRouter", "Route"]


class Route(NamedTuple):
    """Where one member's request goes: the experiment and arm (None outside any) and the serving alias."""

    experiment: str | None
    arm: str | None
    alias: str


class ExperimentRouter:
    """Route members of a model to their experiment arm's alias (or the default alias).

    Parameters
    ----------
    workspace
        The workspace whose ``experiments.db`` is read.
    default_alias
        The alias of members in no running experiment.
    """

    def __init__(self, workspace: Any, *, default_alias: str = "champion") -> None:
        self.workspace = workspace
        self.default_alias = default_alias
        self.store = ExperimentStore(workspace)
        self._lock = threading.Lock()
        self._token: Any = object()  # never equal to a real token: the first call loads
        self._running: dict[str, list[Experiment]] = {}
        self.reloads = 0

    def running(self, model: str) -> list[Experiment]:
        """The running experiments of ``model`` in routing order (refreshed when the store changed)."""
        token = self.store.change_token()
        if token != self._token:
            with self._lock:
                if token != self._token:
                    self._running = self._load() if token is not None else {}
                    self._token = token
                    self.reloads += 1
        return self._running.get(model, [])

    def route(self, model: str, member_ids: Any) -> list[Route]:
        """One :class:`Route` per member id, in order."""
        experiments, chosen, arms = self.assign(model, member_ids)
        out = []
        for e, a in zip(chosen.tolist(), arms.tolist()):
            if e < 0:
                out.append(Route(None, None, self.default_alias))
            else:
                arm = experiments[e].arms[a]
                out.append(Route(experiments[e].name, arm.name, arm.alias))
        return out

    def route_one(self, model: str, member_id: Any) -> Route:
        """The :class:`Route` of one member (what a ranking request uses)."""
        if not self.running(model):
            return Route(None, None, self.default_alias)
        return self.route(model, [member_id])[0]

    def assign(self, model: str, member_ids: Any) -> tuple[list[Experiment], np.ndarray, np.ndarray]:
        """Vectorized routing: ``(experiments, experiment index or -1, arm index or -1)`` per member."""
        experiments = self.running(model)
        ids = np.asarray(member_ids)
        n = len(ids) if ids.ndim else 1
        chosen = np.full(n, -1, dtype=np.int64)
        arms = np.full(n, -1, dtype=np.int64)
        for i, experiment in enumerate(experiments):  # earliest started first: it keeps its members
            open_ = chosen < 0
            if not open_.any():
                break
            index = arm_index(experiment, ids[open_] if ids.ndim else ids)
            hit = index >= 0
            rows = np.flatnonzero(open_)[hit]
            chosen[rows] = i
            arms[rows] = index[hit]
        return experiments, chosen, arms

    def _load(self) -> dict[str, list[Experiment]]:
        running: dict[str, list[Experiment]] = {}
        for e in sorted(self.store.list(status="running"), key=lambda e: (e.started_at or "", e.name)):
            running.setdefault(e.model, []).append(e)
        return running
