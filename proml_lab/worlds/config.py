"""Configuration of the synthetic economic graph: sizes, dates, ground truth, drift and anomalies."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SizeName = Literal["tiny", "small", "large"]


class GroundTruth(BaseModel):
    """The model that draws the click and apply labels (kept with the world so tests can check fits).

    ``logit(click) = intercept + family_match*[same family] + seniority_gap*|gap| + region_match*[same
    region] + skill_overlap*jaccard(skills) + position*(slot-1) + member_bias + member_taste·job_attrs
    + job_bias + N(0, noise_sd)``, with ``job_attrs`` = (remote, standardized log company size,
    standardized seniority). Applies happen only after clicks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float = -3.1
    family_match: float = 1.4
    seniority_gap: float = -0.45
    region_match: float = 0.7
    skill_overlap: float = 2.0
    position: float = -0.06
    member_bias_sd: float = 0.8
    member_activity_loading: float = 0.35
    member_taste_sd: tuple[float, float, float] = (0.9, 0.6, 0.5)
    job_bias_sd: float = 0.5
    noise_sd: float = 0.3
    apply_intercept: float = -1.8
    apply_family_match: float = 0.8
    apply_skill_overlap: float = 1.5
    apply_seniority_gap: float = -0.3


class Drift(BaseModel):
    """What changes from ``WorldConfig.drift_from`` on: concept drift and covariate drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region_match: float = 0.0           # region stops mattering (remote work)
    family_match_factor: float = 0.5
    skill_overlap_factor: float = 1.5
    job_views_factor: float = 1.8       # members browse more
    new_job_remote_share: float = 0.6   # jobs posted after the date are remote more often
    new_job_seniority_shift: int = 1


class WorldConfig(BaseModel):
    """Everything that determines a world: the same config gives the same bytes.

    Examples
    --------
    >>> WorldConfig.preset("tiny").n_members
    1000
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: SizeName | Literal["custom"] = "custom"
    seed: int = Field(default=0, ge=0)
    n_members: int = Field(ge=10)
    n_jobs: int = Field(ge=10)
    n_companies: int = Field(ge=2)
    n_impressions: int = Field(ge=100)
    start: dt.date = dt.date(2026, 1, 5)
    days: int = Field(default=28, ge=1, description="Days of impressions from `start`.")
    history_days: int = Field(default=90, ge=0, description="Days of member activity before `start`.")
    member_chunk: int = Field(default=250_000, ge=1)
    drift_from: dt.date | None = None
    drift: Drift = Drift()
    anomalies: int = Field(default=0, ge=0, description="Anomalous windows in the hourly metrics.")
    truth: GroundTruth = GroundTruth()

    @model_validator(mode="after")
    def _drift_inside_range(self) -> WorldConfig:
        if self.drift_from is not None and not (self.start < self.drift_from < self.end):
            raise ValueError(
                f"drift_from must fall strictly inside the impression range {self.start}..{self.end}; "
                f"got {self.drift_from}"
            )
        if self.anomalies * 8 > self.days * 24:
            raise ValueError(f"{self.anomalies} anomalies do not fit in {self.days} days of hourly metrics")
        return self

    @property
    def end(self) -> dt.date:
        """First day after the impression range."""
        return self.start + dt.timedelta(days=self.days)

    @property
    def history_start(self) -> dt.date:
        return self.start - dt.timedelta(days=self.history_days)

    @classmethod
    def preset(cls, size: SizeName, **overrides: object) -> WorldConfig:
        """A named size with optional overrides (``seed``, ``drift_from``, ``anomalies`` ...)."""
        if size not in SIZES:
            raise ValueError(f"Unknown world size {size!r}; choose one of {', '.join(SIZES)}.")
        return cls(size=size, **{**SIZES[size], **overrides})


SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(n_members=1_000, n_jobs=200, n_companies=40, n_impressions=20_000, days=14),
    "small": dict(n_members=20_000, n_jobs=2_000, n_companies=400, n_impressions=500_000, days=28),
    "large": dict(
        n_members=1_000_000, n_jobs=100_000, n_companies=10_000, n_impressions=20_000_000, days=28
    ),
}
