"""The world's ground-truth click and apply model, as vectorized functions of (member, job, position).

The generator (:mod:`proml_lab.worlds.economic_graph`) draws every logged click from a logistic model whose
coefficients live in the world's config and whose per-entity effects live in ``truth/*.parquet``. This module
rebuilds that model from the files on disk so the simulated members of an A/B test
(:mod:`proml_lab.experiments.simulate`) click exactly as the world's members did:

``logit P(click) = intercept + family_match·[same family] + seniority_gap·|gap| + region_match·[same region]
+ skill_overlap·jaccard(skills) + position·(slot-1) + member_bias + member_taste·job_attrs + job_bias + ε``,
``ε ~ N(0, noise_sd)``, with the family, region and skill weights of the drift block once the world drifted.
``P(apply | click) = sigmoid(apply_intercept + apply_family_match·[same family] + apply_skill_overlap·jaccard
+ apply_seniority_gap·|gap| + 0.5·member_bias)``.

**The noise term.** ε is drawn independently for every impression, so the probability that an impression is
clicked is the logistic-normal mean ``E[sigmoid(μ + ε)]``; :meth:`GroundTruth.click_probability` returns that
mean, computed by Gauss-Hermite quadrature (exact to ~1e-10 for ``noise_sd`` below 1), not ``sigmoid(μ)``.
Because ε is independent per impression, a Bernoulli draw with that mean has exactly the generator's
distribution, so :meth:`GroundTruth.draw` needs no separate noise draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from proml_lab.errors import DataNotFoundError
from proml_lab.worlds import taxonomy as tx
from proml_lab.worlds.config import WorldConfig

__all__ = ["GroundTruth"]

_SKILL_BIT = {s: i for i, s in enumerate(tx.all_skills())}
_FAMILY_INDEX = {f: i for i, f in enumerate(tx.FAMILIES)}
_REGION_INDEX = {r: i for i, r in enumerate(tx.REGIONS)}
# Probabilists' Gauss-Hermite nodes: E[f(Z)], Z ~ N(0, 1) = sum(w * f(x)) / sqrt(2 pi).
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


@dataclass
class _Side:
    """Dense attribute arrays of one entity kind, indexed by ``id - 1`` (ids are 1..n in a world)."""

    family: np.ndarray
    seniority: np.ndarray
    region: np.ndarray
    skills: np.ndarray  # uint64 bit mask over taxonomy.all_skills()
    bias: np.ndarray

    def index(self, ids: Any, what: str) -> np.ndarray:
        idx = np.asarray(ids).astype(np.int64) - 1
        bad = (idx < 0) | (idx >= self.bias.shape[0])
        if bad.any():
            raise KeyError(f"Unknown {what} id(s) {np.asarray(ids)[bad][:5].tolist()}: the world has "
                           f"{what} ids 1..{self.bias.shape[0]}.")
        return idx


class GroundTruth:
    """The click and apply model the world's labels were drawn from (see the module docstring).

    Its coefficients are ``params``, the world config's :class:`proml_lab.worlds.config.GroundTruth` (the
    same name: that one holds the numbers, this one rebuilds the model with the world's entities).

    Examples
    --------
    >>> truth = GroundTruth.open(World.open(workspace))                          # doctest: +SKIP
    >>> p = truth.click_probability([7, 7], [3, 42], [1, 2], drifted=truth.drifted_now)   # doctest: +SKIP
    >>> clicked, applied = truth.draw([7], [3], [1], np.random.default_rng(0))   # doctest: +SKIP
    """

    def __init__(self, config: WorldConfig, members: _Side, taste: np.ndarray, jobs: _Side,
                 job_attrs: np.ndarray) -> None:
        self.config = config
        self.params = config.truth
        self._members, self._taste, self._jobs, self._attrs = members, taste, jobs, job_attrs

    @classmethod
    def open(cls, world: Any) -> GroundTruth:
        """Rebuild the ground truth of a generated :class:`~proml_lab.worlds.world.World`."""
        config = WorldConfig.model_validate(world.info["config"])
        for table in ("truth/member_effects.parquet", "truth/job_effects.parquet"):
            if not (world.path / table).exists():
                raise DataNotFoundError(f"The world at {world.path} has no {table}; regenerate it.",
                                        path=str(world.path / table))
        members = world.read("members", ["member_id", "title_family", "seniority", "region", "skills"])
        effects = world.read("member_effects")
        jobs = world.read("jobs", ["job_id", "title_family", "seniority", "region", "required_skills",
                                   "remote", "company_size"])
        job_effects = world.read("job_effects")
        members = members.sort_values("member_id", kind="stable").reset_index(drop=True)
        effects = effects.set_index("member_id").reindex(members["member_id"])
        jobs = jobs.sort_values("job_id", kind="stable").reset_index(drop=True)
        job_bias = job_effects.set_index("job_id")["bias"].reindex(jobs["job_id"]).to_numpy(float)
        for frame, key in ((members, "member_id"), (jobs, "job_id")):
            if not np.array_equal(frame[key].to_numpy(), np.arange(1, len(frame) + 1)):
                raise DataNotFoundError(f"The world's {key}s are not 1..n; it was not written by this "
                                        "generator.", path=str(world.path))
        member_side = _Side(
            family=members["title_family"].map(_FAMILY_INDEX).to_numpy(np.int16),
            seniority=members["seniority"].to_numpy(np.int16),
            region=members["region"].map(_REGION_INDEX).to_numpy(np.int16),
            skills=_masks(members["skills"]),
            bias=effects["bias"].to_numpy(float),
        )
        taste = effects[[f"taste_{a}" for a in tx.TASTE_ATTRIBUTES]].to_numpy(float)
        job_side = _Side(
            family=jobs["title_family"].map(_FAMILY_INDEX).to_numpy(np.int16),
            seniority=jobs["seniority"].to_numpy(np.int16),
            region=jobs["region"].map(_REGION_INDEX).to_numpy(np.int16),
            skills=_masks(jobs["required_skills"]),
            bias=job_bias,
        )
        # The same standardization the generator applied over all jobs (remote, log company size, seniority).
        attrs = np.column_stack([
            jobs["remote"].to_numpy(float),
            _standardize(np.log(jobs["company_size"].to_numpy(np.int32))),
            _standardize(job_side.seniority.astype(float)),
        ])
        return cls(config, member_side, taste, job_side, attrs)

    # ---- properties -----------------------------------------------------------------------------------

    @property
    def drifted_now(self) -> bool:
        """Whether traffic simulated today (after the world's last day) follows the drifted model."""
        return self.config.drift_from is not None

    def drifted_at(self, ts: Any) -> np.ndarray:
        """Per timestamp (or date): whether the drifted weights applied then."""
        days = np.asarray(ts).astype("datetime64[D]")
        if self.config.drift_from is None:
            return np.zeros(days.shape, dtype=bool)
        return days >= np.datetime64(self.config.drift_from, "D")

    # ---- the model ------------------------------------------------------------------------------------

    def click_logit(self, member_ids: Any, job_ids: Any, positions: Any, *,
                    drifted: bool | np.ndarray = False) -> np.ndarray:
        """The mean click logit μ (everything but the per-impression noise ε)."""
        m, j, gap, family, overlap = self._pair(member_ids, job_ids)
        t, d = self.params, self.config.drift
        drifted = np.asarray(drifted, dtype=bool)
        w_family = np.where(drifted, t.family_match * d.family_match_factor, t.family_match)
        w_region = np.where(drifted, d.region_match, t.region_match)
        w_skill = np.where(drifted, t.skill_overlap * d.skill_overlap_factor, t.skill_overlap)
        return (
            t.intercept
            + w_family * family
            + t.seniority_gap * gap
            + w_region * (self._members.region[m] == self._jobs.region[j])
            + w_skill * overlap
            + t.position * (np.asarray(positions, dtype=float) - 1.0)
            + self._members.bias[m]
            + np.einsum("ij,ij->i", self._taste[m], self._attrs[j])
            + self._jobs.bias[j]
        )

    def click_probability(self, member_ids: Any, job_ids: Any, positions: Any, *,
                          drifted: bool | np.ndarray = False, offset: float | np.ndarray = 0.0) -> np.ndarray:
        """P(click) of each (member, job, 1-based position): the logistic-normal mean over the noise ε.

        ``offset`` is added to the logit (a simulation knob: an injected treatment effect).
        """
        mu = self.click_logit(member_ids, job_ids, positions, drifted=drifted) + np.asarray(offset, float)
        return self._logistic_normal_mean(mu)

    def apply_probability_given_click(self, member_ids: Any, job_ids: Any) -> np.ndarray:
        """P(apply | click) of each (member, job) pair (the generator's apply model has no noise term)."""
        m, _, gap, family, overlap = self._pair(member_ids, job_ids)
        t = self.params
        return _sigmoid(t.apply_intercept + t.apply_family_match * family + t.apply_skill_overlap * overlap
                        + t.apply_seniority_gap * gap + 0.5 * self._members.bias[m])

    def apply_probability(self, member_ids: Any, job_ids: Any, positions: Any, *,
                          drifted: bool | np.ndarray = False, offset: float | np.ndarray = 0.0) -> np.ndarray:
        """P(apply) of each shown item: P(click) · P(apply | click) (applies only follow clicks)."""
        return (self.click_probability(member_ids, job_ids, positions, drifted=drifted, offset=offset)
                * self.apply_probability_given_click(member_ids, job_ids))

    def draw(self, member_ids: Any, job_ids: Any, positions: Any, rng: np.random.Generator, *,
             drifted: bool | np.ndarray = False,
             offset: float | np.ndarray = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(clicked, applied)`` boolean arrays for the shown items, as the generator did."""
        p_click = self.click_probability(member_ids, job_ids, positions, drifted=drifted, offset=offset)
        clicked = rng.random(p_click.shape[0]) < p_click
        p_apply = self.apply_probability_given_click(member_ids, job_ids)
        applied = clicked & (rng.random(p_click.shape[0]) < p_apply)
        return clicked, applied

    # ---- helpers --------------------------------------------------------------------------------------

    def _pair(self, member_ids: Any, job_ids: Any) -> tuple[np.ndarray, ...]:
        m = self._members.index(member_ids, "member")
        j = self._jobs.index(job_ids, "job")
        if m.shape != j.shape:
            raise ValueError(f"member_ids and job_ids must have the same length; got {m.shape} and "
                             f"{j.shape}.")
        gap = np.abs(self._jobs.seniority[j] - self._members.seniority[m]).astype(float)
        family = self._members.family[m] == self._jobs.family[j]
        both = self._members.skills[m]
        overlap = np.bitwise_count(both & self._jobs.skills[j]) / np.maximum(
            np.bitwise_count(both | self._jobs.skills[j]), 1)
        return m, j, gap, family, overlap

    def _logistic_normal_mean(self, mu: np.ndarray) -> np.ndarray:
        sd = self.params.noise_sd
        if sd == 0:
            return _sigmoid(mu)
        return _sigmoid(mu[:, None] + sd * _GH_NODES[None, :]) @ _GH_WEIGHTS


def _masks(lists: Any) -> np.ndarray:
    """uint64 skill bit masks from a column of skill-name lists (one bitwise-or per skill, no row loop)."""
    exploded = lists.explode()
    owner = np.asarray(exploded.index, dtype=np.int64)
    bit = exploded.map(_SKILL_BIT)
    keep = bit.notna().to_numpy()
    mask = np.zeros(len(lists), dtype=np.uint64)
    np.bitwise_or.at(mask, owner[keep], np.left_shift(np.uint64(1), bit[keep].to_numpy(np.uint64)))
    return mask
