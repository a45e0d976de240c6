"""A large, realistic, made-up feature catalog for search and scale benchmarks.

:func:`synthetic_definitions` builds entities (member, job, company, request), one source per anchor,
anchors of 10-50 features each (plain columns, embeddings, sliding-window aggregations) and some
derived features, with names in the seed's style (``member_profileViews_7d``,
``job_titleEmbedding_v3``, ``company_followerCount_30d``), descriptions, owners and tags. Source paths
point at data that does not exist: apply these to a catalog, do not validate them against sources.

Examples
--------
>>> defs = synthetic_definitions(200, seed=1)
>>> sum(len(d.all_features) for d in defs if d.kind == "anchor") + sum(d.kind == "derived" for d in defs)
200
>>> defs == synthetic_definitions(200, seed=1)
True
"""

from __future__ import annotations

import datetime as dt
import random

from proml_lab.features.spec import (
    Anchor,
    Definition,
    DerivedFeature,
    Entity,
    Feature,
    Source,
    WindowAggregation,
)

_ENTITIES = {  # entity: (join key, share of features)
    "member": ("member_id", 0.45),
    "job": ("job_id", 0.30),
    "company": ("company_id", 0.15),
    "request": ("request_id", 0.10),
}
_TOPICS = {
    "member": ["profile", "activity", "jobseeker", "network", "skills", "learning", "messaging", "feed",
               "search", "premium", "notifications", "education", "experience", "endorsements"],
    "job": ["posting", "engagement", "applicants", "compensation", "requirements", "quality", "promotion",
            "location", "recruiter", "search"],
    "company": ["page", "followers", "hiring", "employees", "growth", "content", "reviews"],
    "request": ["context", "device", "session", "query"],
}
_NOUNS = {
    "member": ["profile", "jobSearch", "connection", "message", "post", "comment", "skill", "endorsement",
               "title", "headline", "company", "school", "course", "group", "invite", "follow", "share",
               "article", "video", "save", "apply", "recruiterMessage", "notification", "feedItem",
               "premiumFeature", "salaryInsight", "interviewPrep", "resume", "location", "industry"],
    "job": ["view", "apply", "save", "share", "title", "description", "skill", "salary", "seniority",
            "location", "remote", "applicant", "impression", "click", "recruiter", "posting", "benefit",
            "function", "industry", "company", "promotion", "sponsored", "easyApply", "qualification"],
    "company": ["follower", "employee", "hire", "jobPosting", "pageView", "post", "review", "rating",
                "size", "industry", "growth", "attrition", "visitor", "mention", "update", "event"],
    "request": ["device", "hour", "weekday", "locale", "query", "page", "position", "session", "referrer",
                "channel", "app", "network", "geo", "browser"],
}
_METRICS = ["Views", "Count", "Clicks", "Rate", "Share", "Total", "Score", "Ratio", "Impressions",
            "Interactions", "Visits", "Actions", "Sessions", "Events", "Minutes", "Responses"]
_QUALIFIERS = ["", "", "", "Mobile", "Desktop", "Weekend", "Organic", "Paid", "Premium", "Us", "Intl",
               "Recent", "Unique", "Active", "Passive", "Inbound", "Outbound"]
_CATEGORICAL = ["Type", "Category", "Bucket", "Tier", "Segment", "Level", "Code", "Id", "Status"]
_WINDOWS = ["1d", "3d", "7d", "14d", "30d", "90d", "180d"]
_FUNCTIONS = ["count", "sum", "avg", "max", "min", "latest"]
_FUNCTION_TEXT = {"count": "Number of", "sum": "Total", "avg": "Average", "max": "Largest",
                  "min": "Smallest", "latest": "Most recent"}
_TAGS = ["ranking", "feed", "jobs", "search", "growth", "ads", "trust", "messaging", "learning", "pymk",
         "recruiter", "sales", "premium", "notifications", "experimental", "pii-free", "gdpr", "core"]
_TEAMS = ["profile-team", "feed-ai", "jobs-relevance", "search-ai", "growth-data", "ads-ml", "trust-ml",
          "messaging-ai", "learning-ai", "pymk-ai", "recruiter-ai", "premium-ds", "notifications-ml"]
_DERIVED = [("Ratio", "ratio"), ("Trend", "difference"), ("Log", "log1p"), ("Zscore", "standardize"),
            ("Bucket", "bucketize"), ("Share", "ratio")]
_EXTRAS = ["", "", "Refreshed daily.", "Used by feed ranking.", "Backfilled to 2019.",
           "Excludes bots and spam.", "Deduplicated per session.", "Null before the first event."]


def _words(camel: str) -> str:
    return "".join(" " + c.lower() if c.isupper() else c for c in camel).strip()


def _phrase(*parts: str) -> str:
    return " ".join(p for p in parts if p).strip()


def _column(*parts: str) -> str:
    return "_".join(_words(p).replace(" ", "_") for p in parts if p)


class _Names:
    """Hands out unique feature names, adding ``_v2``, ``_v3`` ... on a clash."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, name: str) -> str:
        out, v = name, 2
        while out in self.used:
            out, v = f"{name}_v{v}", v + 1
        self.used.add(out)
        return out


def synthetic_definitions(n_features: int, *, seed: int = 0) -> list[Definition]:
    """Definitions with exactly ``n_features`` features (anchored, windowed and derived).

    Parameters
    ----------
    n_features
        Number of features (about 2% are derived features; the rest sit in anchors of 10-50).
    seed
        The same seed gives the same definitions.

    Returns
    -------
    list[Definition]
        Entities, then sources and anchors, then derived features; ready for ``Catalog.apply``.

    Examples
    --------
    >>> [d.name for d in synthetic_definitions(30)[:4]]
    ['member', 'job', 'company', 'request']
    """
    rng = random.Random(seed)
    names = _Names()
    out: list[Definition] = [
        Entity(name=e, join_key=k, key_type="string" if e == "request" else "int64",
               description=f"A {e} of the economic graph.")
        for e, (k, _) in _ENTITIES.items()
    ]
    n_derived = n_features // 50 if n_features >= 50 else 0
    remaining = n_features - n_derived
    numeric_by_entity: dict[str, list[str]] = {e: [] for e in _ENTITIES}
    entities, weights = list(_ENTITIES), [w for _, w in _ENTITIES.values()]
    serial = 0
    while remaining > 0:
        entity = rng.choices(entities, weights)[0]
        topic = rng.choice(_TOPICS[entity])
        serial += 1
        size = min(remaining, rng.randint(10, 50))
        remaining -= size
        anchor_name = f"{entity}_{topic}_{serial}"
        team = rng.choice(_TEAMS)
        sla = rng.choice([None, dt.timedelta(hours=6), dt.timedelta(days=1), dt.timedelta(days=7)])
        out.append(Source(name=anchor_name, path=f"synthetic/{entity}/{topic}_{serial}",
                          timestamp_column="event_ts", description=f"{topic.title()} events of {entity}s."))
        features, aggregations = [], []
        for _ in range(size):
            if rng.random() < 0.45:
                aggregations.append(_aggregation(rng, names, entity))
                numeric_by_entity[entity].append(aggregations[-1].name)
            else:
                features.append(_feature(rng, names, entity))
                if features[-1].type == "numeric":
                    numeric_by_entity[entity].append(features[-1].name)
        out.append(Anchor(
            name=anchor_name, entity=entity, source=anchor_name, owner=team,
            description=f"{topic.title()} features of {entity}s, owned by {team}.",
            tags=tuple(rng.sample(_TAGS, rng.randint(1, 3))), freshness_sla=sla,
            online=entity == "request" or rng.random() < 0.7,
            features=tuple(features), aggregations=tuple(aggregations),
        ))
    for _ in range(n_derived):
        entity = rng.choice([e for e in entities if numeric_by_entity[e]])
        inputs = rng.sample(numeric_by_entity[entity], min(2, len(numeric_by_entity[entity])))
        suffix, function = rng.choice(_DERIVED)
        stem = inputs[0].split("_")[1]
        out.append(DerivedFeature(
            name=names.take(f"{entity}_{stem}{suffix}"), entity=entity, inputs=tuple(inputs),
            function=function,
            description=f"{suffix} of {' and '.join(_words(i.replace('_', ' ')) for i in inputs)}.",
            owner=rng.choice(_TEAMS), tags=("derived", rng.choice(_TAGS)),
        ))
    return out


def _feature(rng: random.Random, names: _Names, entity: str) -> Feature:
    noun = rng.choice(_NOUNS[entity])
    roll = rng.random()
    if roll < 0.15:
        version = rng.randint(1, 5)
        dim = rng.choice([16, 32, 64, 128, 256])
        name = names.take(f"{entity}_{noun}Embedding_v{version}")
        return Feature(name=name, expr=_column(noun, "embedding", f"v{version}"), type="vector",
                       dimension=dim,
                       description=_phrase(f"Dense {dim}-d embedding of the {entity}'s {_words(noun)} "
                                           f"(model v{version}).", rng.choice(_EXTRAS)), tags=("embedding",))
    if roll < 0.40:
        kind = rng.choice(_CATEGORICAL)
        name = names.take(f"{entity}_{noun}{kind}")
        return Feature(name=name, expr=_column(noun, kind), type="categorical",
                       description=_phrase(f"{kind} of the {entity}'s {_words(noun)}.", rng.choice(_EXTRAS)))
    if roll < 0.47:
        name = names.take(f"{entity}_{noun}Text")
        return Feature(name=name, expr=_column(noun, "text"), type="text",
                       description=f"Free text of the {entity}'s {_words(noun)}, lower-cased.")
    if roll < 0.57:
        name = names.take(f"{entity}_has{noun[0].upper()}{noun[1:]}")
        return Feature(name=name, expr=_column("has", noun), type="binary",
                       description=_phrase(f"Whether the {entity} has any {_words(noun)}.",
                                           rng.choice(_EXTRAS)))
    metric, qualifier = rng.choice(_METRICS), rng.choice(_QUALIFIERS)
    name = names.take(f"{entity}_{noun}{qualifier}{metric}")
    return Feature(name=name, expr=_column(noun, qualifier, metric), type="numeric",
                   description=_phrase(_words(metric).capitalize(), "of", _words(qualifier), _words(noun),
                                       "for the", entity, "(all time).", rng.choice(_EXTRAS)))


def _aggregation(rng: random.Random, names: _Names, entity: str) -> WindowAggregation:
    noun, metric, qualifier = rng.choice(_NOUNS[entity]), rng.choice(_METRICS), rng.choice(_QUALIFIERS)
    window, function = rng.choice(_WINDOWS), rng.choice(_FUNCTIONS)
    name = names.take(f"{entity}_{noun}{qualifier}{metric}_{window}")
    days = window[:-1]
    description = _phrase(_FUNCTION_TEXT[function], _words(qualifier), _words(noun), _words(metric), "of the",
                          entity, f"in the last {days} day{'s' if days != '1' else ''}.", rng.choice(_EXTRAS))
    return WindowAggregation.model_validate(dict(
        name=name, expr=_column(noun, qualifier, metric), function=function, window=window,
        description=description,
    ))
