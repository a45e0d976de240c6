"""Loading definitions from YAML/Python files and checking them against a real Parquet source."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from proml_lab.errors import DefinitionError
from proml_lab.features.loader import (
    LoadedDefinition,
    load_definitions,
    parquet_schema,
    validate_against_sources,
)
from proml_lab.features.spec import Anchor, DerivedFeature, Entity, Source

GOOD_YAML = """\
entities:
  - {name: member, join_key: member_id}
sources:
  - {name: member_activity, path: activity, timestamp_column: day}
anchors:
  - name: member_activity
    entity: member
    source: member_activity
    owner: growth-team
    features:
      - {name: member_sessions, expr: sessions, type: numeric}
      - {name: member_title, expr: title, type: categorical}
      - {name: member_embedding, expr: emb, type: vector, dimension: 4}
      - {name: member_engagement, expr: "coalesce(job_views, 0) + sessions", type: numeric}
    aggregations:
      - {name: member_jobViews_7d, expr: job_views, function: sum, window: 7d}
      - {name: member_events_30d, function: count, window: 30d}
derived:
  - {name: member_viewsPerSession, entity: member, function: ratio,
     inputs: [member_jobViews_7d, member_sessions]}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A hive-partitioned Parquet source: ``day`` exists only as a partition column."""
    table = pa.table({
        "member_id": pa.array([1, 2], pa.int64()),
        "job_views": pa.array([3, 0], pa.int32()),
        "sessions": pa.array([1, 2], pa.int64()),
        "title": pa.array(["engineer", "nurse"]),
        "emb": pa.array([[0.1] * 4, [0.2] * 4], pa.list_(pa.float32(), 4)),
        "scores": pa.array([[1.0], [2.0, 3.0]], pa.list_(pa.float64())),
        "is_premium": pa.array([True, False]),
    })
    out = tmp_path / "lake" / "activity" / "day=2026-01-01"
    out.mkdir(parents=True)
    pq.write_table(table, out / "part-0.parquet")
    return tmp_path / "lake"


def check(path: Path, lake: Path) -> None:
    validate_against_sources(load_definitions(path), resolve_source_schema=lambda s: parquet_schema(s, lake))


def anchor_yaml(features: str = "", aggregations: str = "", key: str = "") -> str:
    return (
        "entities:\n  - {name: member, join_key: member_id}\n"
        "sources:\n  - {name: member_activity, path: activity, timestamp_column: day}\n"
        "anchors:\n  - name: member_activity\n    entity: member\n    source: member_activity\n"
        f"    owner: growth-team\n{key}"
        + (f"    features:\n{features}" if features else "")
        + (f"    aggregations:\n{aggregations}" if aggregations else "")
    )


# -- loading ---------------------------------------------------------------------------------------
def test_yaml_file_loads_every_kind_with_file_and_locator(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.yaml", GOOD_YAML)
    loaded = load_definitions(path)
    assert [(type(x.definition).__name__, x.locator) for x in loaded] == [
        ("Entity", "entities[member]"),
        ("Source", "sources[member_activity]"),
        ("Anchor", "anchors[member_activity]"),
        ("DerivedFeature", "derived[member_viewsPerSession]"),
    ]
    assert {x.file for x in loaded} == {str(path)}
    anchor = loaded[2].definition
    assert [f.name for f in anchor.all_features][-2:] == ["member_jobViews_7d", "member_events_30d"]


def test_python_file_collects_module_objects_and_lists(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.py", """\
        from proml_lab.features.spec import Anchor, Entity, Feature, Source

        MEMBER = Entity(name="member", join_key="member_id")
        _helper = 42
        SOURCES = [Source(name="members", path="world/members", timestamp_column="joined_date"), "not a def"]
        PROFILE = Anchor(name="member_profile", entity="member", source="members", owner="profile-team",
                         features=[Feature(name="member_seniority", expr="seniority", type="numeric")])
        ALIAS = MEMBER  # the same object twice is collected once
    """)
    loaded = load_definitions(path)
    assert [(x.definition.name, x.locator) for x in loaded] == [
        ("member", "MEMBER"), ("members", "SOURCES[0]"), ("member_profile", "PROFILE"),
    ]
    assert loaded[0] == LoadedDefinition(Entity(name="member", join_key="member_id"), str(path), "MEMBER")


def test_directory_is_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "defs" / "b" / "anchors.yaml", GOOD_YAML.split("anchors:")[0].replace(
        "entities:\n  - {name: member, join_key: member_id}\n", ""))
    write(tmp_path / "defs" / "a_entities.py",
          "from proml_lab.features.spec import Entity\nJOB = Entity(name='job', join_key='job_id')\n")
    # identical to the Python one: kept once
    write(tmp_path / "defs" / "c.yml", "entities:\n  - {name: job, join_key: job_id}\n")
    write(tmp_path / "defs" / ".hidden" / "x.yaml", "nonsense: [")
    write(tmp_path / "defs" / "notes.txt", "not a definitions file")
    loaded = load_definitions(tmp_path / "defs")
    assert [(x.definition.name, Path(x.file).name) for x in loaded] == [
        ("job", "a_entities.py"), ("member_activity", "anchors.yaml"),
    ]
    listed = load_definitions([tmp_path / "defs" / "c.yml", tmp_path / "defs" / "a_entities.py"])
    assert [x.locator for x in listed] == ["entities[job]"]


def test_empty_yaml_file_has_no_definitions(tmp_path: Path) -> None:
    assert load_definitions(write(tmp_path / "empty.yaml", "# nothing yet\n")) == []


# -- pinned errors ---------------------------------------------------------------------------------
def test_bad_window_names_file_and_field_path(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.yaml", GOOD_YAML.replace("window: 7d", "window: 7 days"))
    with pytest.raises(DefinitionError) as err:
        load_definitions(path)
    assert str(err.value) == (
        f"{path}, field anchors[member_activity].aggregations[member_jobViews_7d].window: expected a "
        "duration such as '7d', '12h', '30m' or '2w'; got '7 days'"
    )
    assert err.value.file == str(path)
    assert err.value.field == "anchors[member_activity].aggregations[member_jobViews_7d].window"


def test_unknown_field_lists_the_allowed_ones(tmp_path: Path) -> None:
    text = GOOD_YAML.replace("type: categorical}", "type: categorical, colour: red}")
    path = write(tmp_path / "defs.yaml", text)
    with pytest.raises(DefinitionError) as err:
        load_definitions(path)
    assert str(err.value) == (
        f"{path}, field anchors[member_activity].features[member_title]: unknown field 'colour'; allowed "
        "fields: description, dimension, expr, freshness_sla, name, owner, tags, ttl, type"
    )


def test_unknown_field_close_to_a_known_one_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.yaml", GOOD_YAML.replace("owner: growth-team", "ownr: growth-team"))
    with pytest.raises(DefinitionError) as err:
        load_definitions(path)
    assert str(err.value).startswith(
        f"{path}, field anchors[member_activity]: unknown field 'ownr' (did you mean 'owner'?); allowed "
        "fields: aggregations, description, entity, features, freshness_sla, key, name, online, owner, partition, "
        "source, tags, ttl"
    )
    assert "also" not in str(err.value)  # not also "owner is missing"


def test_missing_vector_dimension_and_bad_type(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.yaml", GOOD_YAML.replace(", dimension: 4", "").replace(
        "expr: sessions, type: numeric", "expr: sessions, type: number"))
    with pytest.raises(DefinitionError) as err:
        load_definitions(path)
    assert str(err.value) == (
        f"{path}, field anchors[member_activity].features[member_sessions].type: input should be 'numeric', "
        "'binary', 'categorical', 'vector' or 'text'; got 'number'\n"
        f"  also: {path}, field anchors[member_activity].features[member_embedding]: feature "
        "'member_embedding': 'dimension' is required for type 'vector' and only for it"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.yaml", "entitys:\n  - {name: member, join_key: member_id}\n")
    with pytest.raises(DefinitionError) as err:
        load_definitions(path)
    assert str(err.value) == (
        f"{path}: unknown top-level key 'entitys' (did you mean 'entities'?); allowed keys: entities, "
        "sources, anchors, derived"
    )


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "defs.yaml", "anchors:\n  - name: a\n    owner: x\n   entity: y\n")
    with pytest.raises(DefinitionError) as err:
        load_definitions(path)
    assert str(err.value) == (
        f"{path}: line 4, column 4: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection started at line 2)"
    )


def test_python_file_errors_name_the_line(tmp_path: Path) -> None:
    bad_model = write(tmp_path / "bad_model.py", """\
        from proml_lab.features.spec import Anchor, Feature

        A = Anchor(name="a", entity="member", source="s", owner="o",
                   features=[Feature(name="f", type="numeric")],
                   aggregations=[dict(name="g", function="count", window="7 days")])
    """)
    with pytest.raises(DefinitionError) as err:
        load_definitions(bad_model)
    assert str(err.value) == (
        f"{bad_model}, field Anchor.aggregations[0].window: line 3: expected a duration such as '7d', "
        "'12h', '30m' or '2w'; got '7 days'"
    )
    broken = write(tmp_path / "broken.py",
                   "from proml_lab.features.spec import Entity\n\nE = Entty(name='x')\n")
    with pytest.raises(DefinitionError) as err:
        load_definitions(broken)
    assert str(err.value) == f"{broken}: line 3: cannot import: NameError: name 'Entty' is not defined"


def test_missing_path_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no such file or directory"):
        load_definitions(tmp_path / "nope.yaml")
    with pytest.raises(DefinitionError, match=r"unsupported file type '\.json'"):
        load_definitions(write(tmp_path / "defs.json", "{}"))


# -- checking against the source's schema ----------------------------------------------------------
def test_parquet_schema_includes_hive_partitions(lake: Path) -> None:
    schema = parquet_schema(Source(name="s", path="activity", timestamp_column="day"), lake)
    assert "day" in schema.names and "job_views" in schema.names
    glob = parquet_schema(Source(name="s", path="activ*/day=*/*.parquet", timestamp_column="day"), lake)
    assert "day" in glob.names
    assert parquet_schema(Source(name="s", table="db.t", timestamp_column="ts"), lake) is None
    assert parquet_schema(Source(name="s", path="missing", timestamp_column="ts"), lake) is None


def test_valid_definitions_pass(tmp_path: Path, lake: Path) -> None:
    check(write(tmp_path / "defs.yaml", GOOD_YAML), lake)


def test_unknown_column_suggests_the_closest(tmp_path: Path, lake: Path) -> None:
    text = GOOD_YAML.replace("expr: job_views, function", "expr: job_view, function")
    path = write(tmp_path / "defs.yaml", text)
    with pytest.raises(DefinitionError) as err:
        check(path, lake)
    assert str(err.value) == (
        f"{path}, field anchors[member_activity].aggregations[member_jobViews_7d].expr: column 'job_view' "
        "is not in source 'member_activity' (did you mean: job_views?)"
    )


def test_unknown_column_inside_an_expression_and_defaulted_expr(tmp_path: Path, lake: Path) -> None:
    path = write(tmp_path / "defs.yaml", anchor_yaml(
        "      - {name: member_x, expr: 'coalesce(zzz, 0) * 2', type: numeric}\n"
        "      - {name: sessions_count, type: numeric}\n"))
    with pytest.raises(DefinitionError) as err:
        check(path, lake)
    assert str(err.value) == (
        f"{path}, field anchors[member_activity].features[member_x].expr: column 'zzz' is not in source "
        "'member_activity' (its columns: member_id, job_views, sessions, title, emb, scores, is_premium, "
        "day)\n"
        f"  also: {path}, field anchors[member_activity].features[sessions_count].expr: column "
        "'sessions_count' is not in source 'member_activity' (did you mean: sessions?); 'expr' defaults to "
        "the feature name"
    )


def test_wrong_column_types(tmp_path: Path, lake: Path) -> None:
    path = write(tmp_path / "defs.yaml", anchor_yaml(
        "      - {name: member_a, expr: title, type: numeric}\n"
        "      - {name: member_b, expr: sessions, type: vector, dimension: 4}\n"
        "      - {name: member_c, expr: emb, type: vector, dimension: 8}\n"
        "      - {name: member_d, expr: is_premium, type: categorical}\n"
        "      - {name: member_ok1, expr: is_premium, type: binary}\n"
        "      - {name: member_ok2, expr: scores, type: vector, dimension: 2}\n"
        "      - {name: member_ok3, expr: sessions, type: categorical}\n",
        "      - {name: member_e, expr: title, function: max, window: 7d}\n"
        "      - {name: member_ok4, expr: title, function: count, window: 7d}\n"))
    with pytest.raises(DefinitionError) as err:
        check(path, lake)
    field = f"{path}, field anchors[member_activity]"
    assert str(err.value).split("\n  also: ") == [
        f"{field}.features[member_a].expr: type 'numeric' needs a numeric or boolean column; column "
        "'title' of source 'member_activity' is string",
        f"{field}.features[member_b].expr: type 'vector' needs a list column; column 'sessions' of source "
        "'member_activity' is int64",
        f"{field}.features[member_c].expr: dimension 8 does not match the column's fixed size 4; column "
        "'emb' of source 'member_activity' is fixed_size_list<element: float>[4]",
        f"{field}.features[member_d].expr: type 'categorical' needs a string or integer column; column "
        "'is_premium' of source 'member_activity' is bool",
        f"{field}.aggregations[member_e].expr: function 'max' needs a numeric or boolean column; column "
        "'title' of source 'member_activity' is string",
    ]


def test_timestamp_and_key_columns_must_exist(tmp_path: Path, lake: Path) -> None:
    text = anchor_yaml("      - {name: member_sessions, expr: sessions, type: numeric}\n",
                       key="    key: memberid\n")
    path = write(tmp_path / "defs.yaml", text.replace("timestamp_column: day", "timestamp_column: ts"))
    with pytest.raises(DefinitionError) as err:
        check(path, lake)
    assert str(err.value).split("\n  also: ") == [
        f"{path}, field sources[member_activity].timestamp_column: timestamp column 'ts' is not in source "
        "'member_activity' (its columns: member_id, job_views, sessions, title, emb, scores, is_premium, "
        "day)",
        f"{path}, field anchors[member_activity].key: key column 'memberid' is not in source "
        "'member_activity' (did you mean: member_id?)",
    ]


def test_unparseable_expression(tmp_path: Path, lake: Path) -> None:
    text = anchor_yaml("      - {name: member_x, expr: 'sessions +', type: numeric}\n")
    path = write(tmp_path / "defs.yaml", text)
    with pytest.raises(DefinitionError) as err:
        check(path, lake)
    assert str(err.value) == (
        f"{path}, field anchors[member_activity].features[member_x].expr: cannot parse Spark SQL expression "
        "'sessions +' (error near '+' at column 10)"
    )


def test_sources_without_a_readable_schema_are_skipped(lake: Path) -> None:
    anchor = Anchor(name="a", entity="member", source="events", owner="o",
                    features=[{"name": "member_nope", "expr": "no_such_column", "type": "numeric"}])
    known = [Entity(name="member", join_key="member_id"),
             Source(name="events", table="db.events", timestamp_column="ts")]
    validate_against_sources([anchor], resolve_source_schema=lambda s: parquet_schema(s, lake), known=known)
    # a source known from elsewhere (the catalog) is still checked when its schema can be read
    known[1] = Source(name="events", path="activity", timestamp_column="day")
    with pytest.raises(DefinitionError) as err:
        validate_against_sources([anchor], resolve_source_schema=lambda s: parquet_schema(s, lake),
                                 known=known)
    assert str(err.value).startswith(
        "field anchors[a].features[member_nope].expr: column 'no_such_column' is not in source 'events'")
    assert DerivedFeature(name="d", entity="member", inputs=["x"], function="f").kind == "derived"
