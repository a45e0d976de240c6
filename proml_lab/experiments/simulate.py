"""Run an A/B experiment end to end on one machine: the world's members send requests and click.

``simulate`` is a pipeline of named steps:
``sample members → schedule requests → rank (batched) → draw clicks and applies → log outcomes → wait for the
exposure log → summarize``.

- **Members** are drawn without replacement from the generated world, weighted by their activity (days
  active in ``member_activity`` + 1, the same activity that made the generator show them more impressions),
  or uniformly with ``weighting="uniform"``. Each makes ``1 + Poisson(requests_per_member - 1)`` requests,
  sent in a shuffled order so arms interleave in time.
- **Ranking** is injected: ``rank(member_ids) -> list[response]`` returns one ranking-service response per
  member (``request_id``, ``experiment``, ``arm``, ``items`` with ``document_id`` and ``position``). The
  experiments layer never imports ``serving``; :class:`HttpRanker` calls a running service's ``/v1/rank``
  over HTTP with a thread pool, and any in-process function of the same shape works as well.
- **Outcomes** are drawn from the world's ground truth (:class:`proml_lab.worlds.truth.GroundTruth`) for the
  first ``k`` shown items, with its position effect and, when the world drifted, its drifted weights (the
  simulation happens after the world's last day). ``treatment_effect={"treatment": 0.3}`` adds 0.3 to the
  click logit of every item shown to that arm: a *simulation knob* that injects a known true lift, to check
  that the analysis detects it with the expected power. It is not part of any model.
- **Exposures** are logged by the service in the background (flushed about every second); before returning,
  ``simulate`` waits up to ``wait_s`` seconds until every request it made is in the exposure log, so
  :func:`~proml_lab.experiments.outcomes.experiment_units` can be called right after it.

>>> with BackgroundService(ws) as service, HttpRanker(service.url, "jobs") as rank:   # doctest: +SKIP
...     result = simulate(ws, "jobs-ab", rank, members=500, treatment_effect={"treatment": 0.2})
>>> print(result)                                                                     # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from proml_lab.errors import ExperimentError
from proml_lab.experiments.outcomes import log_outcomes, read_exposure_log

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HttpRanker", "SimulationResult", "simulate", "simulate_traffic"]

Rank = Callable[[list[Any]], Sequence[dict[str, Any]]]
Progress = Callable[[str, int, int], None]
WEIGHTINGS = ("activity", "uniform")
NOT_IN_EXPERIMENT = "(none)"


@dataclass
class SimulationResult:
    """What a simulation did: counts overall and per arm (``(none)``: members outside the experiment)."""

    experiment: str
    model: str
    members: int
    requests: int
    exposures: int
    clicks: int
    applies: int
    per_arm: pd.DataFrame
    wall_s: float
    exposures_logged: bool
    seed: int
    treatment_effect: dict[str, float] = field(default_factory=dict)

    @property
    def ctr(self) -> float:
        return self.clicks / self.exposures if self.exposures else float("nan")

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (the per-arm table as records)."""
        return {"experiment": self.experiment, "model": self.model, "members": self.members,
                "requests": self.requests, "exposures": self.exposures, "clicks": self.clicks,
                "applies": self.applies, "ctr": self.ctr, "wall_s": round(self.wall_s, 3),
                "exposures_logged": self.exposures_logged, "seed": self.seed,
                "treatment_effect": dict(self.treatment_effect),
                "per_arm": self.per_arm.to_dict(orient="records")}

    def __str__(self) -> str:
        head = (f"simulated {self.requests} requests of {self.members} members in experiment "
                f"{self.experiment} ({self.model}) in {self.wall_s:.1f}s: {self.exposures} exposures, "
                f"{self.clicks} clicks (CTR {self.ctr:.3f}), {self.applies} applies")
        if self.treatment_effect:
            head += f"; injected logit lift {self.treatment_effect}"
        return head + "\n" + self.per_arm.to_string(index=False)


def simulate(workspace: Any, experiment_name: str, rank: Rank, *, members: int = 500,
             requests_per_member: float = 3.0, seed: int = 0, k: int = 10, truth: Any = None,
             treatment_effect: dict[str, float] | None = None, weighting: str = "activity",
             batch_size: int = 64, wait_s: float | None = 30.0, progress: Progress | None = None,
             ) -> SimulationResult:
    """Simulate ``members`` of the world using the ranking behind ``rank`` during ``experiment_name``.

    Parameters
    ----------
    workspace
        The workspace holding the world (``lake/world``), the experiment and the logs.
    experiment_name
        A running experiment (its model is the one ranked; its arm names key ``treatment_effect``).
    rank
        ``rank(member_ids) -> [response, ...]``: one ranking response (a dict as ``POST /v1/rank`` returns)
        per member id, in order; e.g. :class:`HttpRanker`.
    members
        Distinct members to simulate (at most the world's member count).
    requests_per_member
        Mean requests per member (>= 1; each member makes ``1 + Poisson(mean - 1)``).
    k
        How many of each response's items a member looks at (positions 1..k); build the ranker with the
        same k.
    truth
        A :class:`~proml_lab.worlds.truth.GroundTruth`; default: the workspace world's.
    treatment_effect
        ``{arm: logit lift}`` added to the click logit of that arm's items (a simulation knob).
    weighting
        ``activity`` (members drawn in proportion to their active days + 1) or ``uniform``.
    wait_s
        Seconds to wait for the service's exposure log to hold every request (None or 0: do not wait).
    progress
        ``progress(stage, done, total)`` callback.
    """
    started = time.perf_counter()
    report: Progress = progress or (lambda stage, done, total: None)
    experiment, world, truth = _check(workspace, experiment_name, members=members,
                                      requests_per_member=requests_per_member, k=k, weighting=weighting,
                                      batch_size=batch_size, truth=truth)
    effects = {str(a): float(v) for a, v in (treatment_effect or {}).items()}
    unknown = sorted(set(effects) - set(experiment.arm_names))
    if unknown:
        raise ExperimentError(f"treatment_effect names arm(s) {unknown} that experiment {experiment.name!r} "
                              f"does not have; its arms: {', '.join(experiment.arm_names)}.",
                              experiment=experiment.name)
    seeds = np.random.SeedSequence(seed).spawn(3)
    member_ids = _sample_members(world, members, weighting, np.random.default_rng(seeds[0]))
    schedule = _schedule(member_ids, requests_per_member, np.random.default_rng(seeds[1]))
    shown = _rank_all(rank, schedule, batch_size=batch_size, k=k, report=report)
    events, shown = _draw_outcomes(truth, shown, effects, np.random.default_rng(seeds[2]))
    log_outcomes(workspace, experiment.model, events)
    report("outcomes", len(events), len(events))
    logged = _wait_for_exposures(workspace, experiment.model, shown, wait_s=wait_s, report=report)
    return SimulationResult(
        experiment=experiment.name, model=experiment.model, members=len(member_ids), requests=len(schedule),
        exposures=len(shown), clicks=int(shown["clicked"].sum()), applies=int(shown["applied"].sum()),
        per_arm=_per_arm(shown), wall_s=time.perf_counter() - started, exposures_logged=logged, seed=seed,
        treatment_effect=effects)


def simulate_traffic(workspace: Any, model: str, rank: Rank, *, members: int = 500,
                     requests_per_member: float = 3.0, seed: int = 0, k: int = 10, truth: Any = None,
                     weighting: str = "activity", batch_size: int = 64, wait_s: float | None = 30.0,
                     progress: Progress | None = None) -> SimulationResult:
    """Plain traffic, no experiment: the world's members use ``model`` (its default alias) and click.

    The same steps as :func:`simulate` (sample members, schedule, rank, draw outcomes, log them, wait for
    the exposure log) with no arm routing and no treatment effect: what a monitoring job watches. Clicks
    follow the world's drifted weights when the world drifted. The result's ``experiment`` is ``(none)``.

    >>> with BackgroundService(ws) as service, HttpRanker(service.url, "jobs") as rank:   # doctest: +SKIP
    ...     print(simulate_traffic(ws, "jobs", rank, members=300))
    """
    from proml_lab.worlds.truth import GroundTruth
    from proml_lab.worlds.world import World

    started = time.perf_counter()
    report: Progress = progress or (lambda stage, done, total: None)
    _check_knobs("simulate_traffic", members=members, requests_per_member=requests_per_member, k=k,
                 weighting=weighting, batch_size=batch_size)
    world = World.open(workspace)
    truth = truth if truth is not None else GroundTruth.open(world)
    seeds = np.random.SeedSequence(seed).spawn(3)
    member_ids = _sample_members(world, members, weighting, np.random.default_rng(seeds[0]))
    schedule = _schedule(member_ids, requests_per_member, np.random.default_rng(seeds[1]))
    shown = _rank_all(rank, schedule, batch_size=batch_size, k=k, report=report)
    events, shown = _draw_outcomes(truth, shown, {}, np.random.default_rng(seeds[2]))
    log_outcomes(workspace, model, events)
    report("outcomes", len(events), len(events))
    logged = _wait_for_exposures(workspace, model, shown, wait_s=wait_s, report=report)
    return SimulationResult(
        experiment=NOT_IN_EXPERIMENT, model=model, members=len(member_ids), requests=len(schedule),
        exposures=len(shown), clicks=int(shown["clicked"].sum()), applies=int(shown["applied"].sum()),
        per_arm=_per_arm(shown), wall_s=time.perf_counter() - started, exposures_logged=logged, seed=seed)


# ------------------------------------------------------------------------------------------------- steps


def _check_knobs(function: str, *, members: int, requests_per_member: float, k: int, weighting: str,
                 batch_size: int) -> None:
    """The simulation knobs, checked with one message template."""
    for what, value, ok, rule in (
        ("members", members, isinstance(members, (int, np.integer)) and members >= 1, "an int in [1, inf)"),
        ("requests_per_member", requests_per_member, float(requests_per_member) >= 1, "a float in [1, inf)"),
        ("k", k, isinstance(k, (int, np.integer)) and k >= 1, "an int in [1, inf)"),
        ("batch_size", batch_size, isinstance(batch_size, (int, np.integer)) and batch_size >= 1,
         "an int in [1, inf)"),
        ("weighting", weighting, weighting in WEIGHTINGS, f"one of {', '.join(WEIGHTINGS)}"),
    ):
        if not ok:
            raise ExperimentError(f"The {what!r} parameter of {function} must be {rule}. "
                                  f"Got {value!r} instead.")


def _check(workspace: Any, name: str, *, members: int, requests_per_member: float, k: int, weighting: str,
           batch_size: int, truth: Any) -> tuple[Any, Any, Any]:
    """Validate the knobs (one message template) and open the experiment, the world and its ground truth."""
    from proml_lab.experiments.store import ExperimentStore
    from proml_lab.worlds.truth import GroundTruth
    from proml_lab.worlds.world import World

    _check_knobs("simulate", members=members, requests_per_member=requests_per_member, k=k,
                 weighting=weighting, batch_size=batch_size)
    experiment = ExperimentStore(workspace).get(name)
    if experiment.status != "running":
        raise ExperimentError(f"Experiment {name!r} is {experiment.status}; start it before simulating "
                              f"(`proml experiment start {name}`).", experiment=name)
    world = World.open(workspace)
    return experiment, world, truth if truth is not None else GroundTruth.open(world)


def _sample_members(world: Any, n: int, weighting: str, rng: np.random.Generator) -> np.ndarray:
    """Distinct member ids, activity-weighted (active days + 1) or uniform."""
    ids = np.sort(world.read("members", ["member_id"])["member_id"].to_numpy(np.int64))
    n = min(n, len(ids))
    if weighting == "uniform":
        return rng.choice(ids, n, replace=False)
    active = world.read("member_activity", ["member_id"])["member_id"].to_numpy(np.int64)
    weights = np.bincount(np.searchsorted(ids, active), minlength=len(ids))[: len(ids)] + 1.0
    return rng.choice(ids, n, replace=False, p=weights / weights.sum())


def _schedule(member_ids: np.ndarray, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Each member's requests (1 + Poisson(mean - 1) of them) in a shuffled order."""
    counts = 1 + rng.poisson(float(mean) - 1.0, len(member_ids))
    return rng.permutation(np.repeat(member_ids, counts))


def _rank_all(rank: Rank, schedule: np.ndarray, *, batch_size: int, k: int, report: Progress) -> pd.DataFrame:
    """Call ``rank`` batch by batch; one row per shown item (position <= k) with its request's fields."""
    import pandas as pd

    parts = []
    for lo in range(0, len(schedule), batch_size):
        batch = schedule[lo:lo + batch_size]
        responses = list(rank(batch.tolist()))
        if len(responses) != len(batch):
            raise ExperimentError(f"The rank function returned {len(responses)} responses for {len(batch)} "
                                  "member ids; it must return one per member, in order.")
        now = pd.Timestamp.now(tz="UTC")
        n_items = np.fromiter((len(r.get("items") or ()) for r in responses), np.int64, len(responses))
        items = list(chain.from_iterable(r.get("items") or () for r in responses))
        parts.append(pd.DataFrame({
            "ts": now,
            "request_id": np.repeat([str(r["request_id"]) for r in responses], n_items),
            "experiment": np.repeat(_column(responses, "experiment"), n_items),
            "arm": np.repeat(_column(responses, "arm"), n_items),
            "member_id": np.repeat(batch, n_items),
            "document_id": [i["document_id"] for i in items],
            "position": np.fromiter((i["position"] for i in items), np.int64, len(items)),
        }))
        report("requests", min(lo + batch_size, len(schedule)), len(schedule))
    shown = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return shown[shown["position"] <= k].reset_index(drop=True) if len(shown) else shown


def _column(responses: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """One field of every response as an object array (None where absent)."""
    return np.array([r.get(key) for r in responses], dtype=object)


def _draw_outcomes(truth: Any, shown: pd.DataFrame, effects: dict[str, float],
                   rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clicks and applies of the shown items from the ground truth; the events to log and the marked items."""
    import pandas as pd

    if not len(shown):
        empty = pd.DataFrame(columns=["ts", "request_id", "member_id", "document_id", "event"])
        return empty, shown.assign(clicked=False, applied=False)
    offset = shown["arm"].map(effects).fillna(0.0).to_numpy(float)
    clicked, applied = truth.draw(shown["member_id"].to_numpy(), shown["document_id"].to_numpy(),
                                  shown["position"].to_numpy(), rng, drifted=truth.drifted_now, offset=offset)
    shown = shown.assign(clicked=clicked, applied=applied)
    # a click follows its exposure by a few seconds, an apply follows its click
    delay = pd.Series(pd.to_timedelta(rng.exponential(20.0, len(shown)), unit="s"), index=shown.index)
    columns = ["ts", "request_id", "member_id", "document_id"]
    clicks = shown.loc[clicked, columns].assign(ts=(shown["ts"] + delay)[clicked], event="click")
    applies = shown.loc[applied, columns].assign(ts=(shown["ts"] + 3 * delay)[applied], event="apply")
    return pd.concat([clicks, applies], ignore_index=True), shown


def _wait_for_exposures(workspace: Any, model: str, shown: pd.DataFrame, *, wait_s: float | None,
                        report: Progress) -> bool:
    """Wait until the exposure log holds every request that showed items (the service flushes each second)."""
    if not wait_s or not len(shown):
        return not len(shown)
    wanted = np.unique(shown["request_id"].to_numpy().astype(str))
    deadline = time.monotonic() + float(wait_s)
    while True:
        logged = read_exposure_log(workspace, model, columns=["request_id"])
        have = int(np.isin(wanted, logged["request_id"].to_numpy().astype(str)).sum()) if len(logged) else 0
        report("exposure log", have, len(wanted))
        if have == len(wanted):
            return True
        if time.monotonic() > deadline:
            warnings.warn(f"Only {have} of {len(wanted)} simulated requests reached the exposure log of "
                          f"{model!r} within {wait_s:g}s; call experiment_units after the service stopped.",
                          stacklevel=3)
            return False
        time.sleep(0.25)


def _per_arm(shown: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    if not len(shown):
        return pd.DataFrame(columns=["arm", "members", "requests", "exposures", "clicks", "applies", "ctr"])
    arm = shown["arm"].where(shown["arm"].notna(), NOT_IN_EXPERIMENT)
    out = shown.groupby(arm, sort=True).agg(
        members=("member_id", "nunique"), requests=("request_id", "nunique"),
        exposures=("document_id", "size"), clicks=("clicked", "sum"), applies=("applied", "sum"))
    out["ctr"] = out["clicks"] / out["exposures"]
    return out.rename_axis("arm").reset_index()


# ------------------------------------------------------------------------------------------------- HTTP


class HttpRanker:
    """A ``rank`` function for :func:`simulate` that calls a running service's ``POST /v1/rank``.

    One request per member id (the service ranks one member per request), ``concurrency`` of them in flight
    at a time over one pooled ``httpx.Client``. Use as a context manager (or call :meth:`close`).

    Parameters
    ----------
    url
        The service's base URL (``BackgroundService(ws).url``, ``http://127.0.0.1:8080``).
    model
        The registered model to rank with (no alias: the service routes each member to its arm).
    """

    def __init__(self, url: str, model: str, *, k: int = 10, concurrency: int = 8, token: str | None = None,
                 timeout: float = 30.0) -> None:
        self.url, self.model, self.k, self.concurrency = url.rstrip("/"), model, k, concurrency
        self.token, self.timeout = token, timeout
        self._client: Any = None
        self._pool: Any = None

    def __call__(self, member_ids: list[Any]) -> list[dict[str, Any]]:
        if self._client is None:
            import httpx
            from concurrent.futures import ThreadPoolExecutor

            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            limits = httpx.Limits(max_connections=self.concurrency,
                                  max_keepalive_connections=self.concurrency)
            self._client = httpx.Client(base_url=self.url, headers=headers, timeout=self.timeout,
                                        limits=limits)
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="proml-simulate")
        return list(self._pool.map(self._one, member_ids))

    def _one(self, member_id: Any) -> dict[str, Any]:
        body = {"model": self.model, "member_id": member_id, "k": self.k}
        response = self._client.post("/v1/rank", json=body)
        if response.status_code != 200:
            raise ExperimentError(f"The ranking service answered {response.status_code} for member "
                                  f"{member_id}: {response.text[:300]}")
        return response.json()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
        self._client = self._pool = None

    def __enter__(self) -> HttpRanker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
