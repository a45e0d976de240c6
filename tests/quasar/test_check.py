"""The Quasar checker: names, features (against a real catalog), types, scopes, operators, EXTENDS."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proml_lab.features.catalog import Catalog
from proml_lab.features.spec import Anchor, Entity, Feature, Source
from proml_lab.quasar import parse
from proml_lab.quasar.check import check
from proml_lab.quasar.errors import QuasarError
from proml_lab.quasar.ir import Trainable, compile
from proml_lab.quasar.ops import reload_plugins
from proml_lab.workspace import Workspace

PROGRAMS = Path(__file__).parent / "programs"
PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"


def catalog_definitions() -> list:
    """The slide's two embeddings plus a few member and job features."""
    return [
        Entity(name="member", join_key="member_id"), Entity(name="job", join_key="job_id"),
        Source(name="members", path="world/members", timestamp_column="joined_date"),
        Source(name="jobs", path="world/jobs", timestamp_column="posted_date"),
        Anchor(name="member_profile", entity="member", source="members", owner="profile-team", features=[
            Feature(name="member_primaryTitleNwEmbeddingV1", type="vector", dimension=64),
            Feature(name="member_seniority", type="numeric"),
            Feature(name="member_industry", type="categorical")]),
        Anchor(name="job_posting", entity="job", source="jobs", owner="jobs-team", features=[
            Feature(name="job_jobTitleNwEmbeddingV1", type="vector", dimension=64),
            Feature(name="job_seniority", type="numeric"),
            Feature(name="job_remote", type="binary"),
            Feature(name="job_companyId", type="categorical"),
            Feature(name="job_smallEmbedding", type="vector", dimension=16)]),
    ]


def make_catalog(root: Path) -> Catalog:
    cat = Catalog(Workspace.init(root / "ws").connect_catalog)
    cat.apply(catalog_definitions())
    return cat


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return make_catalog(tmp_path_factory.mktemp("quasar_catalog"))


def error_text(source: str, catalog: Catalog | None = None, filename: str = "m.quasar") -> str:
    with pytest.raises(QuasarError) as err:
        compile(source, catalog=catalog, filename=filename)
    return str(err.value)


# ---- programs that check -----------------------------------------------------------------------------


def test_slide_excerpt_checks_against_a_catalog(catalog):
    ir = compile((PROGRAMS / "slide.quasar").read_text(), catalog=catalog, filename="slide.quasar")
    member, job = ir.node("member_primaryTitleNwEmbeddingV1"), ir.node("job_jobTitleNwEmbeddingV1")
    assert (member.scope, member.type) == ("member", "Vector[64]")
    assert (job.scope, job.type) == ("document", "Vector[64]")
    assert ir.node("interaction_titleNwEmbeddingV1").type == "Vector[1]"
    tree = ir.node("treeModel")
    assert isinstance(tree, Trainable) and tree.implicit and tree.op == "TreeEnsemble"
    assert tree.inputs == ("interaction_titleNwEmbeddingV1",)
    assert ir.features() == ["member_primaryTitleNwEmbeddingV1", "job_jobTitleNwEmbeddingV1"]


def test_slide_excerpt_without_a_catalog_names_the_unknown_feature():
    assert error_text((PROGRAMS / "slide.quasar").read_text(), filename="slide.quasar") == (
        "slide.quasar:2:6: name error: undeclared name 'member_primaryTitleNwEmbeddingV1'\n"
        "        [member_primaryTitleNwEmbeddingV1],\n"
        "         ^")


def test_job_recommendations_checks_with_scopes_and_types():
    ir = compile((PROGRAMS / "job_recommendations.quasar").read_text())
    assert ir.name == "job_recommendations"
    assert ir.node("freshness").scope == "document" and ir.node("freshness").type == "double"
    assert ir.node("seniority_gap").inputs == ("_sub_1",)
    assert ir.node("glmix").inputs[-1] == "tree_score"
    assert ir.training_config["label"] == "clicked"


def test_extends_applies_overrides_and_inherits_return():
    path = PROGRAMS / "job_recommendations_deep_trees.quasar"
    ir = compile(path.read_text(), filename=str(path))
    assert ir.name == "job_recommendations_deep_trees"
    assert ir.node("treeModel").params["params"] == {"num_trees": 400, "max_depth": 8, "learning_rate": 0.1}
    assert ir.node("shown").params["n"] == 50


def test_extends_uses_the_resolver_callback():
    base = ("INPUT DOCUMENT double x;\nTRAINABLE m = LinearScorer([x]);\n"
            "r = ORDER DOCUMENTS BY m WITH DESC;\nRETURN r;")
    seen = []

    def resolve(path, relative_to):
        seen.append((path, relative_to))
        return parse(base, filename=path), base, path

    ext = 'EXTENDS "base.quasar" WITH {"m.l2": 0.5};\nINPUT DOCUMENT double y;'
    program = parse(ext, filename="ext.quasar")
    ir = check(program, resolve_extends=resolve, filename="ext.quasar").ir
    assert seen == [("base.quasar", "ext.quasar")]
    assert ir.node("m").params["params"] == {"l2": 0.5} and "y" in [n.id for n in ir.nodes]


def test_plugin_operator_is_usable_from_a_program(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(PLUGIN_DIR), *sys.path])
    reload_plugins()
    ir = compile("INPUT DOCUMENT double x;\ndouble s = Squash(x);\n"
                 "r = ORDER DOCUMENTS BY s WITH DESC;\nRETURN r;")
    assert ir.node("s").op == "Squash" and ir.node("s").type == "double"


# ---- errors, whole messages pinned -----------------------------------------------------------------------

ERRORS = {
    "unknown feature": (
        "INPUT MEMBER double member_senority;\nr = ORDER DOCUMENTS BY 1 WITH DESC;\nRETURN r;",
        "m.quasar:1:21: name error: unknown feature 'member_senority'; did you mean 'member_seniority'?\n"
        "    INPUT MEMBER double member_senority;\n"
        "                        ^"),
    "undeclared name": (
        "INPUT DOCUMENT double job_seniority;\ndouble s = Log1p(job_senority);\nr = ORDER DOCUMENTS BY s "
        "WITH DESC;"
        "\nRETURN r;",
        "m.quasar:2:18: name error: undeclared name 'job_senority'; did you mean 'job_seniority'?\n"
        "    double s = Log1p(job_senority);\n"
        "                     ^"),
    "argument type": (
        "INPUT DOCUMENT double job_seniority;\nINPUT DOCUMENT Vector job_jobTitleNwEmbeddingV1;\n"
        "double s = CosineSimilarity(job_seniority, job_jobTitleNwEmbeddingV1);\nr = ORDER DOCUMENTS BY s "
        "WITH DESC;"
        "\nRETURN r;",
        "m.quasar:3:29: type error: CosineSimilarity's argument 'a' must be Vector but got double\n"
        "    double s = CosineSimilarity(job_seniority, job_jobTitleNwEmbeddingV1);\n"
        "                                ^"),
    "declared type": (
        "INPUT DOCUMENT Vector job_jobTitleNwEmbeddingV1;\ndouble s = Log1p(job_jobTitleNwEmbeddingV1);\n"
        "r = ORDER DOCUMENTS BY s WITH DESC;\nRETURN r;",
        "m.quasar:2:12: type error: 's' is declared double but its value is Vector[64]\n"
        "    double s = Log1p(job_jobTitleNwEmbeddingV1);\n"
        "               ^"),
    "vector dimensions": (
        "double s = job_jobTitleNwEmbeddingV1 - job_smallEmbedding;\nr = ORDER DOCUMENTS BY 1 WITH DESC;\n"
        "RETURN r;",
        "m.quasar:1:12: type error: Sub: cannot combine vectors of different dimensions: Vector[64] and "
        "Vector[16]\n"
        "    double s = job_jobTitleNwEmbeddingV1 - job_smallEmbedding;\n"
        "               ^"),
    "input type": (
        "INPUT DOCUMENT double job_jobTitleNwEmbeddingV1;\nr = TOP 5 OF DOCUMENTS;\nRETURN r;",
        "m.quasar:1:23: type error: input 'job_jobTitleNwEmbeddingV1' is declared double but the feature is "
        "Vector[64] (vector)\n"
        "    INPUT DOCUMENT double job_jobTitleNwEmbeddingV1;\n"
        "                          ^"),
    "input scope": (
        "INPUT DOCUMENT double member_seniority;\nr = TOP 5 OF DOCUMENTS;\nRETURN r;",
        "m.quasar:1:23: scope error: input 'member_seniority' is declared DOCUMENT but the feature belongs "
        "to "
        "entity 'member' (MEMBER scope)\n"
        "    INPUT DOCUMENT double member_seniority;\n"
        "                          ^"),
    "order scope": (
        "INPUT MEMBER double member_seniority;\nr = ORDER DOCUMENTS BY member_seniority WITH DESC;\nRETURN "
        "r;",
        "m.quasar:2:24: scope error: ORDER ... BY needs a DOCUMENT-scope value (one per candidate) but the "
        "expression has MEMBER scope\n"
        "    r = ORDER DOCUMENTS BY member_seniority WITH DESC;\n"
        "                           ^"),
    "filter scope": (
        "INPUT MEMBER double member_seniority;\nr = FILTER DOCUMENTS WHERE member_seniority > 2;\nRETURN r;",
        "m.quasar:2:28: scope error: FILTER ... WHERE needs a DOCUMENT-scope value (one per candidate) but "
        "the "
        "expression has MEMBER scope\n"
        "    r = FILTER DOCUMENTS WHERE member_seniority > 2;\n"
        "                               ^"),
    "bad op param": (
        'INPUT DOCUMENT double job_seniority;\nTRAINABLE t = TreeEnsemble([job_seniority], {"num_trees": '
        '200, '
        '"max_dept": 6});\nr = ORDER DOCUMENTS BY t WITH DESC;\nRETURN r;',
        "m.quasar:2:64: parameter error: The 'max_dept' parameter is not a parameter of TreeEnsemble; "
        "allowed: "
        "learning_rate, max_depth, num_trees, objective. Got 6 instead.\n"
        '    TRAINABLE t = TreeEnsemble([job_seniority], {"num_trees": 200, "max_dept": 6});\n'
        "                                                                   ^"),
    "bad op value": (
        'INPUT DOCUMENT double job_seniority;\nTRAINABLE t = TreeEnsemble([job_seniority], {"num_trees": '
        '0});\n'
        "r = ORDER DOCUMENTS BY t WITH DESC;\nRETURN r;",
        "m.quasar:2:46: parameter error: The 'num_trees' parameter of TreeEnsemble is invalid: input should "
        "be "
        "greater than or equal to 1. Got 0 instead.\n"
        '    TRAINABLE t = TreeEnsemble([job_seniority], {"num_trees": 0});\n'
        "                                                 ^"),
    "unknown op": (
        "INPUT DOCUMENT double job_seniority;\ndouble s = Sigmod(job_seniority);\nr = TOP 5 OF DOCUMENTS;\n"
        "RETURN r;",
        "m.quasar:2:12: name error: unknown operator 'Sigmod'; did you mean Sigmoid?\n"
        "    double s = Sigmod(job_seniority);\n"
        "               ^"),
    "list source": (
        "INPUT DOCUMENT double job_seniority;\nr = TOP 5 OF job_seniority;\nRETURN r;",
        "m.quasar:2:14: type error: expected a list (or DOCUMENTS) but 'job_seniority' is double\n"
        "    r = TOP 5 OF job_seniority;\n"
        "                 ^"),
    "not trainable": (
        "INPUT DOCUMENT double job_seniority;\nTRAINABLE t = Log1p(job_seniority);\nr = TOP 5 OF "
        "DOCUMENTS;\nRETURN r;",
        "m.quasar:2:15: type error: TRAINABLE 't' needs a trainable operator; Log1p is not one\n"
        "    TRAINABLE t = Log1p(job_seniority);\n"
        "                  ^"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_messages(case, catalog):
    source, expected = ERRORS[case]
    assert error_text(source, catalog) == expected


def _extend(base: str, ext: str) -> str:
    def resolve(path, relative_to):
        return parse(base, filename=path), base, path

    with pytest.raises(QuasarError) as err:
        check(parse(ext, filename="ext.quasar"), resolve_extends=resolve, source=ext, filename="ext.quasar")
    return str(err.value)


BASE = ("INPUT DOCUMENT double x;\nTRAINABLE model = LinearScorer([x]);\n"
        "r = ORDER DOCUMENTS BY model WITH DESC;\nshown = TOP 10 OF r;\nRETURN shown;")


def test_bad_override_messages():
    assert _extend(BASE, 'EXTENDS "base.quasar" WITH {"modle.l2": 1};') == (
        "ext.quasar:1:29: name error: override 'modle.l2': the base program has no node 'modle'; "
        "did you mean 'model'?\n"
        '    EXTENDS "base.quasar" WITH {"modle.l2": 1};\n'
        "                                ^")
    assert _extend(BASE, 'EXTENDS "base.quasar" WITH {"model.depth": 1};') == (
        "ext.quasar:1:29: parameter error: override 'model.depth': LinearScorer has no parameter 'depth'; "
        "allowed: l1, l2\n"
        '    EXTENDS "base.quasar" WITH {"model.depth": 1};\n'
        "                                ^")
    assert _extend(BASE, 'EXTENDS "base.quasar" WITH {"shown.n": -3};') == (
        "ext.quasar:1:29: parameter error: override 'shown.n' must be an integer >= 1. Got -3 instead.\n"
        '    EXTENDS "base.quasar" WITH {"shown.n": -3};\n'
        "                                ^")


def test_missing_base_file_is_a_quasar_error(tmp_path):
    src = 'EXTENDS "nowhere.quasar";'
    with pytest.raises(QuasarError, match="cannot read the base program 'nowhere.quasar'"):
        compile(src, filename=str(tmp_path / "m.quasar"))


# ---- property: parse + check never raise anything but QuasarError ---------------------------------------

SOURCES = [p.read_text() for p in sorted(PROGRAMS.glob("*.quasar"))]
WORDS = ["x", "job_seniority", "member_seniority", "treeModel", "score", "ranked", "DOCUMENTS", "Log1p",
         "GLMix", "TreeEnsemble", "OneHot", "Concat", "double", "Vector", "String", "[", "]", "{", "}", "(",
         ")", ",", ";", "+", "*", "1", "0", '"n"', '"max_depth"', "ORDER", "BY", "TOP", "KEEP", "FILTER",
         "WHERE", "INPUT"]


def _resolve(path, relative_to):
    file = PROGRAMS / Path(path).name
    if not file.exists():
        raise FileNotFoundError(2, "No such file", str(file))
    text = file.read_text()
    return parse(text, filename=str(file)), text, str(file)


_CATALOG: list[Catalog] = []


def _fuzz_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    if not _CATALOG:
        _CATALOG.append(make_catalog(tmp_path_factory.mktemp("fuzz_catalog")))
    return _CATALOG[0]


@pytest.fixture(scope="module")
def fuzz_catalog(tmp_path_factory):
    return _fuzz_catalog(tmp_path_factory)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(SOURCES) - 1), seed=st.integers(0, 2**32 - 1),
       edits=st.integers(1, 4), use_catalog=st.booleans())
def test_mutated_programs_raise_only_quasar_errors(fuzz_catalog, index, seed, edits, use_catalog):
    rng = random.Random(seed)
    tokens = SOURCES[index].replace(";", " ; ").replace(",", " , ").split(" ")
    for _ in range(edits):
        i = rng.randrange(len(tokens))
        action = rng.choice(["delete", "duplicate", "replace", "swap"])
        if action == "delete":
            del tokens[i]
        elif action == "duplicate":
            tokens.insert(i, tokens[i])
        elif action == "replace":
            tokens[i] = rng.choice(WORDS)
        else:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
    text = " ".join(tokens)
    try:
        program = parse(text)
        check(program, catalog=fuzz_catalog if use_catalog else None, resolve_extends=_resolve, source=text)
    except QuasarError:
        pass


def test_use_before_declaration_and_similarity_options():
    src = "INPUT DOCUMENT double a;\ndouble s = 2 * t;\ndouble t = Log1p(a);\nRETURN DOCUMENTS;"
    assert error_text(src) == (
        "m.quasar:2:16: name error: 't' is used before it is declared (line 3)\n"
        "    double s = 2 * t;\n"
        "                   ^")
    src = ("INPUT MEMBER Vector m;\nINPUT DOCUMENT Vector d;\n"
           'Vector s = SimilarityFeatureProducer([m], [d], ["", "euclid", {}]);\nRETURN DOCUMENTS;')
    assert error_text(src).splitlines()[0] == (
        "m.quasar:3:12: parameter error: The 'options' parameter of SimilarityFeatureProducer must be a list "
        "[name, \"cosine\" | \"dot\", {...}]. Got ['', 'euclid', {}] instead.")


def test_glmix_random_effect_features_are_type_checked():
    src = ("INPUT DOCUMENT double a;\nINPUT MEMBER List skills;\n"
           'TRAINABLE g = GLMix([a], {"per_member": [a, skills]});\nRETURN DOCUMENTS;')
    assert error_text(src).splitlines()[0] == (
        "m.quasar:3:45: type error: GLMix's argument 'per_member' must be double or Vector or Categorical "
        "but got List")
