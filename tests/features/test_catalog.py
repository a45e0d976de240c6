"""The feature catalog on a real workspace database: apply, versions, search, lineage, stats, online."""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from proml_lab.errors import DefinitionError, FeatureError, FeatureInUseError, UnknownFeatureError
from proml_lab.features.catalog import Catalog, Change, UnknownFeaturesError
from proml_lab.features.loader import load_definitions
from proml_lab.features.spec import (
    Anchor,
    DerivedFeature,
    Entity,
    Feature,
    Source,
    WindowAggregation,
)
from proml_lab.features.synthetic import synthetic_definitions
from proml_lab.workspace import Workspace

ENTITIES = [Entity(name="member", join_key="member_id"), Entity(name="job", join_key="job_id"),
            Entity(name="request", join_key="request_id", key_type="string")]
SOURCES = [Source(name="members", path="world/members", timestamp_column="joined_date"),
           Source(name="jobs", path="world/jobs", timestamp_column="posted_date"),
           Source(name="member_activity", path="world/member_activity", timestamp_column="day"),
           Source(name="requests", table="request_log", timestamp_column="ts")]


def profile(**changes) -> Anchor:
    spec = dict(
        name="member_profile", entity="member", source="members", owner="profile-team", tags=("profile",),
        freshness_sla="1d",
        features=[
            Feature(name="member_primaryTitle", expr="title", type="categorical",
                    description="Standardized primary job title", tags=("title",)),
            Feature(name="member_headline", expr="headline", type="text", owner="text-team",
                    description="Free-text headline, usually repeating the member's title and company"),
            Feature(name="member_seniority", expr="seniority", type="numeric", description="Seniority 1-6"),
        ],
    )
    return Anchor(**{**spec, **changes})


def definitions() -> list:
    return [
        *ENTITIES, *SOURCES, profile(),
        Anchor(name="job_posting", entity="job", source="jobs", owner="jobs-team", online=False,
               features=[Feature(name="job_title", expr="title", type="categorical", description="Job title"),
                         Feature(name="job_titleEmbedding_v1", expr="title_emb", type="vector", dimension=16,
                                 description="Embedding of the job's title")]),
        Anchor(name="member_activity", entity="member", source="member_activity", owner="growth-team",
               aggregations=[WindowAggregation(name="member_jobViews_7d", expr="job_views", function="sum",
                                               window="7d", description="Jobs viewed in the last week")]),
        Anchor(name="request_context", entity="request", source="requests", owner="serving-team",
               features=[Feature(name="request_hourOfDay", expr="hour", type="numeric")]),
        DerivedFeature(name="member_viewsPerSeniority", entity="member", function="ratio",
                       inputs=("member_jobViews_7d", "member_seniority", "request_hourOfDay")),
    ]


@pytest.fixture
def catalog(workspace: Workspace) -> Catalog:
    cat = Catalog(workspace.connect_catalog)
    cat.apply(definitions())
    return cat


def names(hits) -> list[str]:
    return [h.name for h in hits]


# -- apply and versions ----------------------------------------------------------------------------
def test_apply_creates_rows_and_reapplying_changes_nothing(workspace: Workspace) -> None:
    cat = Catalog(workspace.connect_catalog)
    first = cat.apply(definitions())
    assert str(first) == "created 4 anchors, 3 entities, 8 features, 4 sources"
    again = cat.apply(definitions())
    assert not again.changed and len(again.unchanged) == 19
    assert Change("feature", "member_primaryTitle", 1, 1) in again.unchanged
    rec = cat.feature("member_headline")
    assert (rec.entity, rec.kind, rec.type, rec.owner, rec.tags, rec.anchor, rec.source, rec.version) == (
        "member", "feature", "text", "text-team", ("profile",), "member_profile", "members", 1)
    assert rec.ttl == dt.timedelta(days=3650) and rec.freshness_sla == dt.timedelta(days=1)
    assert cat.feature("member_primaryTitle").owner == "profile-team"  # falls back to the anchor's owner
    assert cat.feature("member_primaryTitle").tags == ("title", "profile")
    assert cat.feature("member_jobViews_7d").kind == "window"
    assert isinstance(cat.feature("member_viewsPerSeniority").spec(), DerivedFeature)
    assert cat.anchor("member_profile") == profile() and cat.source("members") == SOURCES[0]
    assert cat.entity("member") == ENTITIES[0] and cat.derived("member_viewsPerSeniority").function == "ratio"


def test_a_changed_definition_becomes_the_next_version(catalog: Catalog) -> None:
    changed = profile(features=[
        Feature(name="member_primaryTitle", expr="title", type="categorical", description="Primary title v2",
                tags=("title",)),
        *profile().features[1:],
    ])
    result = catalog.apply([*ENTITIES, *SOURCES, changed])
    assert result.updated == [
        Change("anchor", "member_profile", 1, 2), Change("feature", "member_primaryTitle", 1, 2)]
    assert result.of_kind("feature").unchanged == [
        Change("feature", "member_headline", 1, 1), Change("feature", "member_seniority", 1, 1)]
    info = catalog.describe("member_primaryTitle")
    assert [(v["version"], v["change"]) for v in info["versions"]] == [(1, "created"), (2, "updated")]
    assert info["versions"][0]["definition"]["description"] == "Standardized primary job title"
    assert info["definition"]["description"] == "Primary title v2"
    # an inherited change (the anchor's owner) is a new version of every feature that inherits it
    result = catalog.apply([profile(owner="new-team")])
    updated = sorted(c.name for c in result.of_kind("feature").updated)
    assert updated == ["member_primaryTitle", "member_seniority"]


def test_features_an_anchor_no_longer_declares_are_deleted(catalog: Catalog) -> None:
    primary, headline, seniority = profile().features
    result = catalog.apply([profile(features=[primary, seniority])])
    assert result.deleted == [Change("feature", "member_headline", 1, None)]
    with pytest.raises(UnknownFeatureError):
        catalog.feature("member_headline")
    # ... but not one a derived feature uses: then nothing is written
    with pytest.raises(DefinitionError) as err:
        catalog.apply([profile(features=[primary])])
    assert str(err.value) == (
        "field derived[member_viewsPerSeniority].inputs: input 'member_seniority' is no longer declared by "
        "any anchor")
    assert catalog.feature("member_seniority").version == 1
    catalog.apply([profile()])  # re-created: the version sequence continues after the deletion
    assert catalog.feature("member_headline").version == 2


def test_a_feature_moves_between_anchors_applied_together(catalog: Catalog) -> None:
    other = Anchor(name="member_titles", entity="member", source="members", owner="titles-team",
                   features=[profile().features[0]])
    with pytest.raises(DefinitionError) as err:
        catalog.apply([other])
    assert str(err.value) == (
        "field anchors[member_titles].features[member_primaryTitle]: feature 'member_primaryTitle' is "
        "already declared by anchor 'member_profile' in the catalog; to move it, apply 'member_profile' "
        "without it in the same batch")
    result = catalog.apply([other, profile(features=profile().features[1:])])
    assert Change("feature", "member_primaryTitle", 1, 2) in result.updated
    assert catalog.feature("member_primaryTitle").anchor == "member_titles"


def test_cross_reference_errors_name_file_and_field_with_suggestions(
    workspace: Workspace, tmp_path: Path
) -> None:
    cat = Catalog(workspace.connect_catalog)
    cat.apply([*ENTITIES, *SOURCES])
    path = tmp_path / "defs.yaml"
    path.write_text(textwrap.dedent("""\
        anchors:
          - name: member_skills
            entity: membr
            source: memberz
            owner: skills-team
            features: [{name: member_skillCount, expr: n_skills, type: numeric}]
          - name: job_skills
            entity: job
            source: jobs
            owner: skills-team
            features: [{name: member_skillCount, expr: n_skills, type: numeric}]
        derived:
          - {name: member_x, entity: member, function: f, inputs: [member_skilCount, job_title]}
        """))
    with pytest.raises(DefinitionError) as err:
        cat.apply(load_definitions(path))
    assert str(err.value).split("\n  also: ") == [
        f"{path}, field anchors[member_skills].entity: unknown entity 'membr' (did you mean: member?)",
        f"{path}, field anchors[member_skills].source: unknown source 'memberz' (did you mean: members?)",
        f"{path}, field anchors[job_skills].features[member_skillCount]: feature 'member_skillCount' is also "
        f"declared at anchors[member_skills] in {path}; feature names are unique across all anchors and "
        "derived features",
        f"{path}, field derived[member_x].inputs: unknown feature 'member_skilCount' (did you mean: "
        "member_skillCount?)",
        f"{path}, field derived[member_x].inputs: unknown feature 'job_title' (known: member_skillCount, "
        "member_x)",
    ]


def test_derived_inputs_must_share_the_entity(catalog: Catalog) -> None:
    bad = DerivedFeature(name="member_titleMatch", entity="member", function="eq",
                         inputs=("member_primaryTitle", "job_title"))
    with pytest.raises(DefinitionError) as err:
        catalog.apply([bad])
    assert str(err.value) == (
        "field derived[member_titleMatch].inputs: input 'job_title' is a feature of entity 'job', not "
        "'member' (a derived feature combines features of its own entity and request features)")


def test_derived_features_may_not_form_a_cycle(catalog: Catalog) -> None:
    a = DerivedFeature(name="member_a", entity="member", function="f", inputs=("member_b",))
    b = DerivedFeature(name="member_b", entity="member", function="f", inputs=("member_a", "member_seniority"))
    with pytest.raises(DefinitionError) as err:
        catalog.apply([a, b])
    assert str(err.value) == "field derived[member_a].inputs: derived features form a cycle: member_a -> " \
        "member_b -> member_a"


def test_a_bad_definition_leaves_the_catalog_unchanged(catalog: Catalog) -> None:
    before = catalog.summary(), [r.to_dict() for r in catalog.features()]
    new = Anchor(name="member_new", entity="member", source="members", owner="x",
                 features=[Feature(name="member_brandNew", type="numeric")])
    with pytest.raises(DefinitionError, match="unknown source 'membrs'"):
        catalog.apply([profile(owner="someone-else"), new,
                       Anchor(name="member_bad", entity="member", source="membrs", owner="x",
                              features=[Feature(name="member_other", type="numeric")])])
    assert (catalog.summary(), [r.to_dict() for r in catalog.features()]) == before
    with pytest.raises(UnknownFeatureError):
        catalog.feature("member_brandNew")


def test_conflicting_duplicates_in_one_batch_are_an_error(workspace: Workspace) -> None:
    cat = Catalog(workspace.connect_catalog)
    with pytest.raises(DefinitionError, match=r"entity 'member' is defined twice, differently \(also at "
                                              r"entities\[member\]\)"):
        cat.apply([ENTITIES[0], Entity(name="member", join_key="mid")])
    assert not cat.apply([ENTITIES[0], ENTITIES[0]]).updated  # identical twice is fine


# -- search ----------------------------------------------------------------------------------------
def test_search_ranks_name_matches_first(catalog: Catalog) -> None:
    hits = catalog.search("title")
    assert set(names(hits[:3])) == {"job_title", "member_primaryTitle", "job_titleEmbedding_v1"}
    assert names(hits)[3:] == ["member_headline"]  # only its description mentions a title
    assert hits[0].score > hits[-1].score > 0
    assert names(catalog.search("titl")) == names(hits)  # prefixes match
    assert names(catalog.search("primaryTitle")) == ["member_primaryTitle"]
    assert names(catalog.search("member title")) == ["member_primaryTitle", "member_headline"]
    assert names(catalog.search("title zebra")) == names(hits)  # no feature has every word: any word


def test_search_filters(catalog: Catalog) -> None:
    assert names(catalog.search("title", entity="job")) == ["job_title", "job_titleEmbedding_v1"]
    assert names(catalog.search("title", type="vector")) == ["job_titleEmbedding_v1"]
    assert names(catalog.search("title", owner="text-team")) == ["member_headline"]
    assert names(catalog.search("title", online=False)) == ["job_title", "job_titleEmbedding_v1"]
    assert names(catalog.search("", entity="member", online=True)) == [
        "member_headline", "member_jobViews_7d", "member_primaryTitle", "member_seniority",
        "member_viewsPerSeniority"]
    assert len(catalog.search("", limit=3)) == 3
    hit = catalog.search("headline")[0]
    assert (hit.entity, hit.type, hit.owner, hit.tags, hit.online) == (
        "member", "text", "text-team", ("profile",), True)


@pytest.mark.parametrize("query", ['"foo', "AND(", "NOT", "*", "title OR", "NEAR(a b)", "entity:member",
                                   "'; DROP TABLE features; --", "\x00", "🙂 titl", "a" * 1000, "^-+:()"])
def test_hostile_queries_never_raise(catalog: Catalog, query: str) -> None:
    catalog.search(query)
    catalog.search(query, entity="member", type="numeric", owner='"x', online=True)


def test_derived_features_are_online_when_their_inputs_are(catalog: Catalog) -> None:
    assert catalog.feature("member_viewsPerSeniority").online
    catalog.apply([profile(online=False)])
    assert not catalog.feature("member_viewsPerSeniority").online
    assert names(catalog.search("views", online=False)) == ["member_viewsPerSeniority"]


# -- lookups ---------------------------------------------------------------------------------------
def test_unknown_names_suggest_the_closest(catalog: Catalog) -> None:
    with pytest.raises(UnknownFeatureError) as err:
        catalog.feature("member_primaryTitel")
    assert str(err.value) == "Unknown feature 'member_primaryTitel'. Did you mean: member_primaryTitle?"
    assert err.value.suggestions == ["member_primaryTitle"]
    with pytest.raises(UnknownFeatureError, match=r"^Unknown anchor 'member_profil'\. Did you mean: "
                                                  r"member_profile\?$"):
        catalog.anchor("member_profil")
    with pytest.raises(UnknownFeaturesError) as err:
        catalog.resolve(["job_title", "member_senority", "zzz", "member_headline"])
    assert str(err.value) == (
        "Unknown features: 'member_senority' (did you mean: member_seniority?), 'zzz'.")
    assert err.value.unknown == {"member_senority": ["member_seniority"], "zzz": []}
    assert names(catalog.resolve(["member_headline", "job_title"])) == ["member_headline", "job_title"]


# -- lineage and deletion --------------------------------------------------------------------------
def test_delete_is_refused_while_a_model_uses_the_feature(catalog: Catalog) -> None:
    catalog.record_lineage("job_recs", "3", ["member_primaryTitle", "job_title"])
    catalog.record_lineage("feed", "1", ["member_primaryTitle"])
    assert catalog.models_using("member_primaryTitle") == ["feed:1", "job_recs:3"]
    with pytest.raises(FeatureInUseError) as err:
        catalog.delete("member_primaryTitle")
    assert str(err.value) == (
        "Feature 'member_primaryTitle' is used by published model(s) feed:1, job_recs:3; retire those "
        "models first (or publish versions that do not use it).")
    with pytest.raises(FeatureInUseError, match="feed:1, job_recs:3"):
        catalog.delete("member_profile")  # the anchor, with all its features
    with pytest.raises(FeatureInUseError):
        catalog.apply([profile(features=profile().features[1:])])  # dropping it from the anchor
    catalog.remove_lineage("feed")
    catalog.remove_lineage("job_recs", "3")
    result = catalog.delete("member_primaryTitle")
    assert result.deleted == [Change("feature", "member_primaryTitle", 1, None)]
    assert result.updated == [Change("anchor", "member_profile", 1, 2)]
    kept = [f.name for f in catalog.anchor("member_profile").features]
    assert kept == ["member_headline", "member_seniority"]
    history = catalog._con().execute(
        "SELECT version, change FROM history WHERE kind = 'feature' AND name = 'member_primaryTitle' "
        "ORDER BY id")
    assert history.fetchall() == [(1, "created"), (1, "deleted")]


def test_delete_refuses_features_derived_features_use(catalog: Catalog) -> None:
    with pytest.raises(FeatureError, match=r"derived feature\(s\) member_viewsPerSeniority use "
                                           r"'member_jobViews_7d'; delete them first"):
        catalog.delete("member_activity")
    assert catalog.delete("member_viewsPerSeniority").deleted == [
        Change("feature", "member_viewsPerSeniority", 1, None)]
    result = catalog.delete("member_activity")
    assert [c.name for c in result.deleted] == ["member_jobViews_7d", "member_activity"]
    with pytest.raises(UnknownFeatureError, match="Unknown anchor 'member_activity'"):
        catalog.anchor("member_activity")
    with pytest.raises(FeatureError, match="source 'members' is used by member_profile"):
        catalog.delete("members", kind="source")
    with pytest.raises(UnknownFeatureError, match="Unknown feature 'nope'"):
        catalog.delete("nope")


def test_record_lineage_checks_the_names(catalog: Catalog) -> None:
    with pytest.raises(UnknownFeatureError, match="member_primaryTitle"):
        catalog.record_lineage("m", "1", ["member_primaryTitl"])
    assert catalog.models_using("member_primaryTitle") == []


# -- stats, online state, describe, summary --------------------------------------------------------
def test_describe_collects_stats_lineage_and_online_freshness(catalog: Catalog) -> None:
    catalog.record_stats("member_seniority", {"mean": np.float64(3.5), "hist": np.arange(3)}, batch=1,
                         range_start=dt.date(2026, 1, 1), range_end=dt.date(2026, 1, 7))
    catalog.record_stats("member_seniority", {"mean": 3.7}, batch=2)
    catalog.record_lineage("job_recs", "1", ["member_seniority"])
    materialized = dt.datetime(2026, 2, 1, 12, tzinfo=dt.timezone.utc)
    catalog.record_online("member_profile", store_url="sqlite:///online.db", group="member_profile@v1",
                          rows=1000, max_event_ts=dt.datetime(2026, 2, 1), materialized_at=materialized)
    info = catalog.describe("member_seniority", now=materialized + dt.timedelta(hours=6))
    assert [s["stats"]["mean"] for s in info["stats"]] == [3.7, 3.5]
    assert info["stats"][1] == {"batch": 1, "range_start": "2026-01-01", "range_end": "2026-01-07",
                                "recorded_at": info["stats"][1]["recorded_at"],
                                "stats": {"mean": 3.5, "hist": [0, 1, 2]}}
    assert info["lineage"] == ["job_recs:1"]
    assert info["anchor"]["name"] == "member_profile" and info["source"]["path"] == "world/members"
    assert info["feature"]["freshness_sla"] == "1d"
    online = info["online"]
    assert (online["store_url"], online["group"], online["rows"], online["freshness"], online["age_s"]) == (
        "sqlite:///online.db", "member_profile@v1", 1000, "fresh", 6 * 3600.0)
    assert online["max_event_ts"] == "2026-02-01T00:00:00+00:00"
    stale = catalog.describe("member_seniority", now=materialized + dt.timedelta(days=2))
    assert stale["online"]["freshness"] == "stale"
    assert catalog.describe("job_title")["online"]["freshness"] == "unknown"  # never materialized
    assert catalog.online_group("member_profile") == "member_profile@v1"
    assert catalog.online_group("job_posting") is None
    with pytest.raises(UnknownFeatureError):
        catalog.record_online("nope", store_url="x", group="g", rows=0, max_event_ts=None)
    with pytest.raises(UnknownFeatureError):
        catalog.record_stats("nope", {})


def test_summary_counts(catalog: Catalog) -> None:
    assert catalog.summary() == {
        "features": 8, "by_entity": {"job": 2, "member": 5, "request": 1},
        "by_type": {"categorical": 2, "numeric": 4, "text": 1, "vector": 1},
        "by_kind": {"derived": 1, "feature": 6, "window": 1}, "online": 6,
        "entities": 3, "sources": 4, "anchors": 4, "derived": 1,
    }


# -- concurrency and scale -------------------------------------------------------------------------
WRITER = """
import sys
from proml_lab.features.catalog import Catalog
from proml_lab.features.synthetic import synthetic_definitions
from proml_lab.workspace import Workspace

cat = Catalog(Workspace.open(sys.argv[1]).connect_catalog)
defs = synthetic_definitions(1500, seed=7)
for r in range(5):
    cat.apply([d.model_copy(update={"owner": f"writer-{sys.argv[2]}-{r}"}) if d.kind == "anchor" else d
               for d in defs])
"""


def test_concurrent_applies_from_two_processes_do_not_corrupt(workspace: Workspace) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(workspace.root), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    cat = Catalog(workspace.connect_catalog)
    con = cat._con()
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.execute("INSERT INTO features_fts (features_fts) VALUES ('integrity-check')")
    # ten applies, each with a new owner for every anchor: ten versions of everything, none lost
    anchored = [r for r in cat.features() if r.kind != "derived"]
    assert len(cat.features()) == 1500 and {r.version for r in anchored} == {10}
    assert con.execute("SELECT count(*) FROM history WHERE kind = 'feature'").fetchone()[0] == \
        10 * len(anchored) + (1500 - len(anchored))
    assert {r.owner.rsplit("-", 1)[-1] for r in anchored if r.owner.startswith("writer-")} == {"4"}


def test_search_over_a_synthetic_catalog(workspace: Workspace) -> None:
    cat = Catalog(workspace.connect_catalog)
    result = cat.apply(synthetic_definitions(20_000, seed=3))
    assert len(result.of_kind("feature").created) == 20_000
    hits = cat.search("title embedding")
    assert hits and all({"title", "embedding"} <= set(_words(h.name)) for h in hits)
    hits = cat.search("views 7d", entity="member")
    assert hits and all(h.entity == "member" and h.name.endswith("_7d") for h in hits)
    assert all(h.type == "vector" for h in cat.search("embedding", type="vector"))
    assert len(cat.search("member", limit=50)) == 50  # a broad query still fills the page
    broad = cat.search("member", entity="member", type="numeric")  # ranks a name-first sample
    assert len(broad) == 20 and all(h.entity == "member" and h.type == "numeric" for h in broad)
    listed = names(cat.search("", entity="company", limit=5))
    assert listed == sorted(listed) and all(n.startswith("company_") for n in listed)
    queries = ["title", "salary", "views 7d", "follower count", "embedding", "recruiter message", "skill"]
    times = []
    for q in queries * 3:
        start = time.perf_counter()
        cat.search(q)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.05  # generous: shared CI machines; bench/ has the real figures


def _words(name: str) -> list[str]:
    from proml_lab.features._catalog_schema import name_words

    return name_words(name).split()
