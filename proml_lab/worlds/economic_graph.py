"""Generate the synthetic job-recommendation world ("economic graph") straight to Parquet.

Pipeline: ``companies → members → jobs → member activity → impressions (day by day) → hourly business
metrics``. Every step is columnar numpy/Arrow; tables larger than memory are written in chunks (members
and activity by member chunk, impressions by day), so the ``large`` world (1M members, 20M impressions)
stays within a few GB. Each chunk draws from its own seeded stream, so the same config always gives the
same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from proml_lab._fs import publish_dir, write_json_atomic
from proml_lab.worlds import taxonomy as tx
from proml_lab.worlds.config import WorldConfig

Progress = Callable[[str, int, int], None]
GENERATOR_VERSION = 1

# Stream ids: one independent random stream per (table, chunk).
_COMPANIES, _MEMBERS, _JOBS, _ACTIVITY, _IMPRESSIONS, _ANOMALIES = range(6)

_TITLES = tx.all_titles()
_TITLE_NAMES = pa.array([t for t, _, _ in _TITLES])
_TITLE_FAMILY = np.array([list(tx.FAMILIES).index(f) for _, f, _ in _TITLES], dtype=np.int16)
_TITLE_SENIORITY = np.array([s for _, _, s in _TITLES], dtype=np.int16)
_FAMILY_NAMES = pa.array(list(tx.FAMILIES))
_FAMILY_INDUSTRY = np.array([tx.INDUSTRIES.index(ind) for ind, _, _ in tx.FAMILIES.values()])
_INDUSTRY_NAMES = pa.array(tx.INDUSTRIES)
_REGION_NAMES = pa.array(tx.REGIONS)
_REGION_P = 1.0 / np.arange(1, len(tx.REGIONS) + 1) ** 0.8
_REGION_P /= _REGION_P.sum()
_SKILL_NAMES = pa.array(tx.all_skills())
_N_FAMILIES = len(tx.FAMILIES)
_EPOCH = dt.date(1970, 1, 1)
# Share of impressions by hour of day (UTC): quiet nights, a morning and an evening peak.
_HOUR_P = np.array([1, 1, 1, 1, 1, 2, 4, 7, 9, 9, 8, 7, 7, 7, 7, 7, 7, 7, 8, 9, 8, 6, 3, 2], float)
_HOUR_P /= _HOUR_P.sum()


def _rng(cfg: WorldConfig, stream: int, chunk: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, stream, chunk]))


def _day(date: dt.date) -> int:
    return (date - _EPOCH).days


@dataclass
class _Entities:
    """Numeric attributes the impression sampler needs (all members / jobs, kept in memory)."""

    family: np.ndarray
    seniority: np.ndarray
    region: np.ndarray
    skills: np.ndarray  # uint64 bit mask
    bias: np.ndarray


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def _skill_masks(rng: np.random.Generator, family: np.ndarray, p_family: float, p_generic: float) -> np.ndarray:
    n = family.shape[0]
    own = rng.random((n, 4)) < p_family
    own[~own.any(axis=1), 0] = True  # everyone has at least one skill of their family
    generic = rng.random((n, 16)) < p_generic
    weights = np.left_shift(np.uint64(1), np.arange(4, dtype=np.uint64))
    mask = (own.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    mask = np.left_shift(mask, (family.astype(np.uint64) * np.uint64(4)))
    gweights = np.left_shift(np.uint64(1), np.arange(48, 64, dtype=np.uint64))
    return mask | (generic.astype(np.uint64) * gweights).sum(axis=1, dtype=np.uint64)


def _skill_bits(mask: np.ndarray) -> np.ndarray:
    return ((mask[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(bool)


def _skill_lists(bits: np.ndarray) -> pa.ListArray:
    _, cols = np.nonzero(bits)
    offsets = np.concatenate([[0], np.cumsum(bits.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), _SKILL_NAMES.take(pa.array(cols)))


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.date32())


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=1 << 20)


def _standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-12)


# ---------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------
def _companies(cfg: WorldConfig, out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array]:
    rng = _rng(cfg, _COMPANIES)
    n = cfg.n_companies
    a, b, c = (len(tx.COMPANY_WORDS_A), len(tx.COMPANY_WORDS_B), len(tx.COMPANY_WORDS_C))
    code = rng.permutation(a * b * c)[:n] if n <= a * b * c else np.arange(n)
    name = pc.binary_join_element_wise(
        pa.array(tx.COMPANY_WORDS_A).take(pa.array(code % a)),
        pa.array(tx.COMPANY_WORDS_B).take(pa.array((code // a) % b)),
        " ",
    )
    name = pc.binary_join_element_wise(
        name, pa.array(tx.COMPANY_WORDS_C).take(pa.array((code // (a * b)) % c)), ""
    )
    if n > a * b * c:  # more companies than word combinations: number them
        name = pc.binary_join_element_wise(name, pc.cast(pa.array(np.arange(n)), pa.string()), " ")
    industry = rng.integers(0, len(tx.INDUSTRIES), n)
    size = np.maximum(2, np.round(np.exp(rng.normal(4.5, 1.8, n)))).astype(np.int32)
    quality = rng.normal(0.0, 0.3, n)
    _write(
        pa.table(
            {
                "company_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
                "name": name,
                "industry": _INDUSTRY_NAMES.take(pa.array(industry)),
                "employees": pa.array(size),
            }
        ),
        out / "companies" / "part-00000.parquet",
    )
    return industry, size, quality, name


def _members(cfg: WorldConfig, out: Path, progress: Progress) -> tuple[_Entities, np.ndarray, np.ndarray]:
    """Write the member table; return member attributes, activity rate and taste coefficients."""
    rng = _rng(cfg, _MEMBERS)
    n, truth = cfg.n_members, cfg.truth
    title = rng.integers(0, len(_TITLES), n).astype(np.int16)
    family = _TITLE_FAMILY[title]
    seniority = np.clip(_TITLE_SENIORITY[title] + np.round(rng.normal(0, 0.7, n)), 1, 6).astype(np.int16)
    region = rng.choice(len(tx.REGIONS), n, p=_REGION_P).astype(np.int16)
    home = rng.random(n) < 0.7
    industry = np.where(home, _FAMILY_INDUSTRY[family], rng.integers(0, len(tx.INDUSTRIES), n))
    skills = _skill_masks(rng, family, 0.65, 0.1)
    rate = np.exp(rng.normal(np.log(8.0), 0.8, n))  # expected active days over the whole range
    bias = truth.member_activity_loading * _standardize(np.log(rate)) + rng.normal(0, truth.member_bias_sd, n)
    taste = rng.normal(0.0, 1.0, (n, 3)) * np.asarray(truth.member_taste_sd)
    joined = _day(cfg.history_start) - rng.integers(30, 3000, n)
    opener = rng.integers(0, len(tx.HEADLINE_OPENERS), n)

    for c, lo in enumerate(range(0, n, cfg.member_chunk)):
        s = slice(lo, min(n, lo + cfg.member_chunk))
        bits = _skill_bits(skills[s])
        first = bits.argmax(axis=1)
        last = 63 - bits[:, ::-1].argmax(axis=1)
        title_names = _TITLE_NAMES.take(pa.array(title[s]))
        headline = pc.binary_join_element_wise(
            pa.array(tx.HEADLINE_OPENERS).take(pa.array(opener[s])),
            title_names,
            "",
        )
        headline = pc.binary_join_element_wise(
            headline,
            _SKILL_NAMES.take(pa.array(first)),
            _SKILL_NAMES.take(pa.array(last)),
            _INDUSTRY_NAMES.take(pa.array(industry[s])),
            " | ",
        )
        _write(
            pa.table(
                {
                    "member_id": pa.array(np.arange(lo + 1, s.stop + 1, dtype=np.int64)),
                    "primary_title": title_names,
                    "title_id": pa.array(title[s]),
                    "title_family": _FAMILY_NAMES.take(pa.array(family[s])),
                    "seniority": pa.array(seniority[s].astype(np.int8)),
                    "industry": _INDUSTRY_NAMES.take(pa.array(industry[s])),
                    "region": _REGION_NAMES.take(pa.array(region[s])),
                    "skills": _skill_lists(bits),
                    "headline": headline,
                    "joined_date": _dates(joined[s]),
                }
            ),
            out / "members" / f"part-{c:05d}.parquet",
        )
        progress("members", s.stop, n)

    _write(
        pa.table(
            {
                "member_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
                "bias": bias,
                **{f"taste_{a}": taste[:, i] for i, a in enumerate(tx.TASTE_ATTRIBUTES)},
            }
        ),
        out / "truth" / "member_effects.parquet",
    )
    return _Entities(family, seniority, region, skills, bias), rate, taste


@dataclass
class _Jobs(_Entities):
    posted: np.ndarray
    closed: np.ndarray  # day number; huge when still open
    attrs: np.ndarray   # (n, 3) standardized remote / company size / seniority


def _jobs(cfg: WorldConfig, out: Path, companies: tuple) -> _Jobs:
    rng = _rng(cfg, _JOBS)
    n, truth = cfg.n_jobs, cfg.truth
    c_industry, c_size, c_quality, c_name = companies
    company = rng.integers(0, cfg.n_companies, n)
    posted = rng.integers(_day(cfg.start) - 60, _day(cfg.end), n)
    life = rng.integers(14, 91, n)
    closed = np.where(posted + life < _day(cfg.end), posted + life, np.iinfo(np.int32).max)
    drifted = np.zeros(n, bool) if cfg.drift_from is None else posted >= _day(cfg.drift_from)
    # Companies hire mostly in their own industry's families.
    title = rng.integers(0, len(_TITLES), n).astype(np.int16)
    fam_of_industry = [np.flatnonzero(_FAMILY_INDUSTRY == i) for i in range(len(tx.INDUSTRIES))]
    home = rng.random(n) < 0.6
    for i, fams in enumerate(fam_of_industry):
        pick = home & (c_industry[company] == i)
        if len(fams) and pick.any():
            allowed = np.flatnonzero(np.isin(_TITLE_FAMILY, fams))
            title[pick] = allowed[rng.integers(0, len(allowed), pick.sum())]
    family = _TITLE_FAMILY[title]
    shift = np.where(drifted, cfg.drift.new_job_seniority_shift, 0)
    seniority = np.clip(_TITLE_SENIORITY[title] + np.round(rng.normal(0, 0.6, n)) + shift, 1, 6).astype(np.int16)
    region = rng.choice(len(tx.REGIONS), n, p=_REGION_P).astype(np.int16)
    remote = rng.random(n) < np.where(drifted, cfg.drift.new_job_remote_share, 0.2)
    skills = _skill_masks(rng, family, 0.75, 0.08)
    bias = rng.normal(0, truth.job_bias_sd, n) + c_quality[company]
    attrs = np.column_stack(
        [remote.astype(float), _standardize(np.log(c_size[company])), _standardize(seniority.astype(float))]
    )
    bits = _skill_bits(skills)
    still_open = closed >= _day(cfg.end)
    title_names = _TITLE_NAMES.take(pa.array(title))
    region_names = _REGION_NAMES.take(pa.array(region))
    company_names = c_name.take(pa.array(company))
    required = [_SKILL_NAMES.take(pa.array(np.where(bits.any(1), k, 0))) for k in _nth_bits(bits, 3)]
    closer = pa.array(tx.DESCRIPTION_CLOSERS).take(pa.array(rng.integers(0, len(tx.DESCRIPTION_CLOSERS), n)))
    description = pc.binary_join_element_wise(
        company_names, " is hiring a ", title_names, " in ", region_names,
        pc.if_else(pa.array(remote), " (remote friendly). ", ". "), "",
    )
    description = pc.binary_join_element_wise(
        description, "Required skills: ", required[0], ", ", required[1], ", ", required[2], ". ", closer, ""
    )
    _write(
        pa.table(
            {
                "job_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
                "title": title_names,
                "title_id": pa.array(title),
                "title_family": _FAMILY_NAMES.take(pa.array(family)),
                "company_id": pa.array(company.astype(np.int64) + 1),
                "company": company_names,
                "company_size": pa.array(c_size[company]),
                "seniority": pa.array(seniority.astype(np.int8)),
                "region": region_names,
                "industry": _INDUSTRY_NAMES.take(pa.array(c_industry[company])),
                "remote": pa.array(remote),
                "required_skills": _skill_lists(bits),
                "description": description,
                "posted_date": _dates(posted),
                "closed_date": pa.array(np.where(still_open, 0, closed).astype(np.int32), mask=still_open)
                .cast(pa.date32()),
                "active": pa.array(still_open),
            }
        ),
        out / "jobs" / "part-00000.parquet",
    )
    _write(
        pa.table({"job_id": pa.array(np.arange(1, n + 1, dtype=np.int64)), "bias": bias}),
        out / "truth" / "job_effects.parquet",
    )
    return _Jobs(family, seniority, region, skills, bias, posted, closed, attrs)


def _nth_bits(bits: np.ndarray, k: int) -> list[np.ndarray]:
    """Indices of the 1st..k-th set bit of each row (repeating the last one when fewer are set)."""
    rank = np.cumsum(bits, axis=1)
    count = rank[:, -1]
    return [np.argmax(rank >= np.minimum(i + 1, np.maximum(count, 1))[:, None], axis=1) for i in range(k)]


def _activity(cfg: WorldConfig, out: Path, rate: np.ndarray, progress: Progress) -> int:
    """Daily member activity (one row per member and active day) for sliding-window features."""
    n, span = cfg.n_members, cfg.history_days + cfg.days
    first_day = _day(cfg.history_start)
    drift_day = None if cfg.drift_from is None else _day(cfg.drift_from)
    total = 0
    for c, lo in enumerate(range(0, n, cfg.member_chunk)):
        rng = _rng(cfg, _ACTIVITY, c)
        hi = min(n, lo + cfg.member_chunk)
        r = rate[lo:hi]
        days_active = np.minimum(rng.poisson(r), span)
        member = np.repeat(np.arange(lo, hi, dtype=np.int64), days_active)
        key = np.sort(member * span + rng.integers(0, span, member.shape[0]))
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]  # one row per member and day
        member, day = key // span, (key % span).astype(np.int32) + first_day
        m = key.shape[0]
        intensity = np.sqrt(r[member - lo] / 8.0)
        job_views = rng.poisson(2.5 * intensity)
        if drift_day is not None:
            late = day >= drift_day
            job_views[late] = rng.poisson(2.5 * cfg.drift.job_views_factor * intensity[late])
        contacts = np.where(rng.random(m) < 0.04, rng.poisson(25, m), 0)
        ts = day.astype(np.int64) * 86_400 + rng.integers(6 * 3600, 23 * 3600, m)
        _write(
            pa.table(
                {
                    "member_id": pa.array(member + 1),
                    "activity_date": _dates(day),
                    "event_ts": pa.array(ts * 1_000_000, type=pa.timestamp("us", tz="UTC")),
                    "profile_views": pa.array(rng.poisson(1.2 * intensity).astype(np.int32)),
                    "job_views": pa.array(job_views.astype(np.int32)),
                    "imported_contacts": pa.array(contacts.astype(np.int32)),
                }
            ),
            out / "member_activity" / f"part-{c:05d}.parquet",
        )
        total += m
        progress("member activity", hi, n)
    return total


def _per_day_counts(cfg: WorldConfig) -> np.ndarray:
    weekday = np.array([(cfg.start + dt.timedelta(days=d)).weekday() for d in range(cfg.days)])
    w = np.where(weekday >= 5, 0.6, 1.0)
    exact = cfg.n_impressions * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: cfg.n_impressions - counts.sum()]] += 1
    return counts


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _grouped(index: np.ndarray, key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``index`` sorted by ``key``, with each key's start offset and count (for O(1) sampling per key)."""
    ordered = index[np.argsort(key[index], kind="stable")]
    counts = np.bincount(key[ordered], minlength=n_keys)
    return ordered, np.concatenate([[0], np.cumsum(counts)[:-1]]), counts


def _impressions(
    cfg: WorldConfig, out: Path, members: _Entities, rate: np.ndarray, taste: np.ndarray, jobs: _Jobs,
    progress: Progress,
) -> tuple[dict[str, int], np.ndarray]:
    """Impressions day by day, labelled by the ground truth; also the hourly totals (hours x 3)."""
    truth, drift = cfg.truth, cfg.drift
    counts = _per_day_counts(cfg)
    member_cdf = np.cumsum(rate) / rate.sum()
    hourly = np.zeros((cfg.days * 24, 3), dtype=np.int64)
    drift_day = None if cfg.drift_from is None else _day(cfg.drift_from)
    next_id, clicks, applies = 1, 0, 0
    for k, m in enumerate(counts):
        rng = _rng(cfg, _IMPRESSIONS, k)
        day = _day(cfg.start) + k
        # Sorted draws make the binary searches (and later gathers) walk memory in order.
        mem = np.minimum(np.searchsorted(member_cdf, np.sort(rng.random(m)), side="right"), cfg.n_members - 1)
        # The recommender that produced the log: mostly same-family jobs, some same-region, rest random.
        eligible = np.flatnonzero((jobs.posted <= day) & (jobs.closed > day))
        route, u = rng.random(m), rng.random(m)
        job = eligible[(u * len(eligible)).astype(np.int64)]
        for key_m, key_j, n_keys, lo, hi in (
            (members.family, jobs.family, _N_FAMILIES, 0.0, 0.55),
            (members.region, jobs.region, len(tx.REGIONS), 0.55, 0.7),
        ):
            ordered, start, count = _grouped(eligible, key_j.astype(np.int64), n_keys)
            km = key_m[mem]
            pick = (route >= lo) & (route < hi) & (count[km] > 0)
            job[pick] = ordered[start[km[pick]] + (u[pick] * count[km[pick]]).astype(np.int64)]
        hour = rng.choice(24, m, p=_HOUR_P)
        ts = day * 86_400 + hour * 3600 + rng.integers(0, 3600, m)
        order = np.argsort(ts, kind="stable")
        mem, job, hour, ts = mem[order], job[order], hour[order], ts[order]
        position = rng.integers(1, 11, m)

        late = drift_day is not None and day >= drift_day
        w_family = truth.family_match * (drift.family_match_factor if late else 1.0)
        w_region = drift.region_match if late else truth.region_match
        w_skill = truth.skill_overlap * (drift.skill_overlap_factor if late else 1.0)
        family_match = members.family[mem] == jobs.family[job]
        gap = np.abs(jobs.seniority[job] - members.seniority[mem]).astype(float)
        overlap = np.bitwise_count(members.skills[mem] & jobs.skills[job]) / np.maximum(
            np.bitwise_count(members.skills[mem] | jobs.skills[job]), 1
        )
        z = (
            truth.intercept
            + w_family * family_match
            + truth.seniority_gap * gap
            + w_region * (members.region[mem] == jobs.region[job])
            + w_skill * overlap
            + truth.position * (position - 1)
            + members.bias[mem]
            + np.einsum("ij,ij->i", taste[mem], jobs.attrs[job])
            + jobs.bias[job]
            + rng.normal(0.0, truth.noise_sd, m)
        )
        clicked = rng.random(m) < _sigmoid(z)
        za = (
            truth.apply_intercept
            + truth.apply_family_match * family_match
            + truth.apply_skill_overlap * overlap
            + truth.apply_seniority_gap * gap
            + 0.5 * members.bias[mem]
        )
        applied = clicked & (rng.random(m) < _sigmoid(za))
        date = cfg.start + dt.timedelta(days=k)
        _write(
            pa.table(
                {
                    "impression_id": pa.array(np.arange(next_id, next_id + m, dtype=np.int64)),
                    "member_id": pa.array(mem.astype(np.int64) + 1),
                    "job_id": pa.array(job.astype(np.int64) + 1),
                    "impression_ts": pa.array(ts * 1_000_000, type=pa.timestamp("us", tz="UTC")),
                    "position": pa.array(position.astype(np.int8)),
                    "clicked": pa.array(clicked),
                    "applied": pa.array(applied),
                }
            ),
            out / "impressions" / f"date={date.isoformat()}" / "part-00000.parquet",
        )
        h = k * 24 + hour
        hourly[:, 0] += np.bincount(h, minlength=len(hourly))
        hourly[:, 1] += np.bincount(h, weights=clicked, minlength=len(hourly)).astype(np.int64)
        hourly[:, 2] += np.bincount(h, weights=applied, minlength=len(hourly)).astype(np.int64)
        next_id += m
        clicks += int(clicked.sum())
        applies += int(applied.sum())
        progress("impressions", k + 1, cfg.days)
    return {"impressions": int(next_id - 1), "clicks": clicks, "applies": applies}, hourly


def _business_metrics(cfg: WorldConfig, out: Path, hourly: np.ndarray) -> list[dict[str, object]]:
    """Hourly business metrics with injected anomalies; returns the anomaly windows (the truth)."""
    rng = _rng(cfg, _ANOMALIES)
    values = hourly.astype(float)
    hours = len(values)
    anomalies: list[dict[str, object]] = []
    if cfg.anomalies:
        # One window per equal segment after a 2-day warm-up, so windows never overlap.
        edges = np.linspace(min(48, hours // 4), hours - 8, cfg.anomalies + 1).astype(int)
        for a in range(cfg.anomalies):
            begin = int(rng.integers(edges[a], max(edges[a] + 1, edges[a + 1] - 6)))
            length = int(rng.integers(2, 7))
            kind = str(rng.choice(["tracking_outage", "bot_traffic"]))
            span = slice(begin, min(hours, begin + length))
            if kind == "tracking_outage":  # clicks and applies stop being logged
                values[span, 1:] *= 0.3
            else:  # non-human impressions that never click
                values[span, 0] *= 2.5
            start_ts = dt.datetime.combine(cfg.start, dt.time(), dt.timezone.utc) + dt.timedelta(hours=begin)
            anomalies.append(
                {"kind": kind, "start": start_ts.isoformat(), "hours": span.stop - span.start}
            )
    values = np.round(values).astype(np.int64)
    imp = np.maximum(values[:, 0], 1)
    start_s = _day(cfg.start) * 86_400
    _write(
        pa.table(
            {
                "hour": pa.array(
                    (start_s + np.arange(hours, dtype=np.int64) * 3600) * 1_000_000,
                    type=pa.timestamp("us", tz="UTC"),
                ),
                "impressions": pa.array(values[:, 0]),
                "clicks": pa.array(values[:, 1]),
                "applies": pa.array(values[:, 2]),
                "ctr": pa.array(values[:, 1] / imp),
                "apply_rate": pa.array(values[:, 2] / imp),
            }
        ),
        out / "business_metrics" / "part-00000.parquet",
    )
    return anomalies


# ---------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------
def write_world(cfg: WorldConfig, target: Path, *, progress: Progress | None = None) -> Path:
    """Generate the world described by ``cfg`` into directory ``target`` (replaced atomically)."""
    report: Progress = progress or (lambda stage, done, total: None)
    with publish_dir(target) as out:
        companies = _companies(cfg, out)
        members, rate, taste = _members(cfg, out, report)
        jobs = _jobs(cfg, out, companies)
        activity_rows = _activity(cfg, out, rate, report)
        counts, hourly = _impressions(cfg, out, members, rate, taste, jobs, report)
        anomalies = _business_metrics(cfg, out, hourly)
        write_json_atomic(
            out / "world.json",
            {
                "generator_version": GENERATOR_VERSION,
                "config": cfg.model_dump(mode="json"),
                "start": cfg.start.isoformat(),
                "end": cfg.end.isoformat(),
                "history_start": cfg.history_start.isoformat(),
                "rows": {
                    "companies": cfg.n_companies,
                    "members": cfg.n_members,
                    "jobs": cfg.n_jobs,
                    "member_activity": activity_rows,
                    "impressions": counts["impressions"],
                    "business_metrics": cfg.days * 24,
                },
                "labels": {"clicks": counts["clicks"], "applies": counts["applies"]},
                "anomalies": anomalies,
            },
        )
    return target
