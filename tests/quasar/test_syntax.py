"""The Quasar parser: what parses, into which tree, and the exact messages of what does not."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from lark import Token

from proml_lab.errors import ProMLError
from proml_lab.quasar import QuasarError, QuasarSyntaxError, parse, to_source
from proml_lab.quasar.ast import (
    BinOp,
    Bool,
    BoolOp,
    Call,
    Compare,
    Declaration,
    Diversify,
    Documents,
    Extends,
    Filter,
    Input,
    Keep,
    ListLit,
    ListStatement,
    MapEntry,
    MapLit,
    Name,
    Null,
    Number,
    Order,
    Program,
    Return,
    String,
    Top,
    TrainingConfig,
    UnaryOp,
)
from proml_lab.quasar.diagnostics import token_error

PROGRAMS = Path(__file__).parent / "programs"
EXAMPLES = sorted(PROGRAMS.glob("*.quasar"))

# The excerpt from LinkedIn's Pro-ML slide, exactly as written there.
SLIDE = """\
Vector interaction_titleNwEmbeddingV1 = SimilarityFeatureProducer(
    [member_primaryTitleNwEmbeddingV1],
    [job_jobTitleNwEmbeddingV1],
    [ "", "cosine", {"type": "SPARSE", "indexMap": "DYNAMIC"}]);
// Use a set of trees to compute the final score
double score = DecisionTreesScorer(treeModel);
list = ORDER DOCUMENTS BY score WITH DESC;
RETURN list;
"""


def syntax_error(source: str, **kwargs: str) -> QuasarSyntaxError:
    with pytest.raises(QuasarSyntaxError) as info:
        parse(source, **kwargs)
    return info.value


def message(source: str) -> str:
    return str(syntax_error(source))


def body(source: str) -> tuple:
    """The statements of a program that has a RETURN, for checking one statement at a time."""
    return parse(source + "\nRETURN r;").statements


# ---- the slide ------------------------------------------------------------------------------------


def test_the_slide_excerpt_parses_as_written():
    program = parse(SLIDE)

    similarity, score, ordering = program.statements
    assert similarity == Declaration(
        type="Vector",
        name="interaction_titleNwEmbeddingV1",
        expr=Call(
            name="SimilarityFeatureProducer",
            args=(
                ListLit(items=(Name(id="member_primaryTitleNwEmbeddingV1"),)),
                ListLit(items=(Name(id="job_jobTitleNwEmbeddingV1"),)),
                ListLit(items=(
                    String(value=""),
                    String(value="cosine"),
                    MapLit(entries=(
                        MapEntry(key="type", value=String(value="SPARSE")),
                        MapEntry(key="indexMap", value=String(value="DYNAMIC")),
                    )),
                )),
            ),
        ),
    )
    assert score == Declaration(type="double", name="score", expr=Call(name="DecisionTreesScorer",
                                                                         args=(Name(id="treeModel"),)))
    assert ordering == ListStatement(name="list", op=Order(source=Documents(), by=Name(id="score"),
                                                            direction="DESC"))
    assert program.returns == Return(source=Name(id="list"))
    assert (program.name, program.extends, program.training_config) == (None, None, None)


def test_the_slide_with_its_missing_bracket_fails_where_the_bracket_was_expected():
    broken = SLIDE.replace('"DYNAMIC"}]);', '"DYNAMIC"});')

    err = syntax_error(broken)

    assert str(err) == (
        "<quasar>:4:62: syntax error: expected ']' or ',' but found ')'\n"
        '        [ "", "cosine", {"type": "SPARSE", "indexMap": "DYNAMIC"});\n'
        "                                                                 ^"
    )
    assert (err.line, err.column, err.expected) == (4, 62, ("']'", "','"))
    assert err.source_line == '    [ "", "cosine", {"type": "SPARSE", "indexMap": "DYNAMIC"});'
    assert err.filename == "<quasar>"


def test_the_missing_bracket_message_on_an_unindented_line():
    broken = SLIDE.replace('    [ "", "cosine"', '[ "", "cosine"').replace('"DYNAMIC"}]);', '"DYNAMIC"});')

    assert message(broken) == (
        "<quasar>:4:58: syntax error: expected ']' or ',' but found ')'\n"
        '    [ "", "cosine", {"type": "SPARSE", "indexMap": "DYNAMIC"});\n'
        "                                                             ^"
    )


# ---- golden programs ----------------------------------------------------------------------------


def test_the_golden_programs_are_there():
    assert [p.name for p in EXAMPLES] == [
        "expressions.quasar",
        "job_recommendations.quasar",
        "job_recommendations_deep_trees.quasar",
        "slide.quasar",
    ]
    assert (PROGRAMS / "slide.quasar").read_text() == SLIDE


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_golden_programs_parse_and_round_trip_through_to_source(path: Path):
    program = parse(path.read_text(), filename=path.name)

    printed = to_source(program)

    assert parse(printed) == program
    assert to_source(parse(printed)) == printed  # canonical form is a fixed point


def test_the_job_recommendation_program():
    program = parse((PROGRAMS / "job_recommendations.quasar").read_text())

    assert program.name == "job_recommendations"
    kinds = [type(s).__name__ for s in program.statements]
    assert kinds.count("Input") == 11
    by_name = {s.name: s for s in program.statements if isinstance(s, (Declaration, ListStatement))}
    trainable = [n for n, s in by_name.items() if isinstance(s, Declaration) and s.trainable]
    assert trainable == ["treeModel", "glmix"]
    glmix = by_name["glmix"].expr
    assert isinstance(glmix, Call) and glmix.name == "GLMix"
    options = glmix.args[1]
    assert isinstance(options, MapLit)
    assert options.keys() == ("per_member", "per_document", "offset", "l2")
    assert options.get("per_document") == ListLit(
        items=(Name(id="member_seniority"), Name(id="member_industry"))
    )
    keep = next(s for s in program.statements if isinstance(s, Keep))
    assert keep == Keep(n=2000, by=Name(id="cheap_score"))
    assert (keep.line, keep.column) == (28, 1)
    assert by_name["diverse"].op == Diversify(
        source=Name(id="eligible"), by=Name(id="job_companyId"), max_per_value=2
    )
    assert by_name["shown"].op == Top(n=100, source=Name(id="diverse"))
    assert program.returns == Return(source=Name(id="shown"))
    config = program.training_config
    assert isinstance(config, TrainingConfig)
    assert config.options.keys() == ("label", "weight", "training_data", "validation_data", "metrics")
    assert config.options.get("label") == Name(id="clicked")
    assert config.options.get("weight") == Null()


def test_the_extends_program_inherits_its_return():
    program = parse((PROGRAMS / "job_recommendations_deep_trees.quasar").read_text())

    assert program.name == "job_recommendations_deep_trees"
    assert program.extends == Extends(
        path="job_recommendations.quasar",
        overrides=MapLit(entries=(
            MapEntry(key="treeModel.max_depth", value=Number(value=8)),
            MapEntry(key="treeModel.num_trees", value=Number(value=400)),
            MapEntry(key="shown.n", value=Number(value=50)),
        )),
    )
    assert program.statements == ()
    assert program.returns is None


def test_to_source_prints_canonical_text():
    printed = to_source(parse(SLIDE))

    assert printed == (
        "Vector interaction_titleNwEmbeddingV1 = SimilarityFeatureProducer(\n"
        "    [member_primaryTitleNwEmbeddingV1],\n"
        "    [job_jobTitleNwEmbeddingV1],\n"
        '    ["", "cosine", {"type": "SPARSE", "indexMap": "DYNAMIC"}]\n'
        ");\n"
        "double score = DecisionTreesScorer(treeModel);\n"
        "list = ORDER DOCUMENTS BY score WITH DESC;\n"
        "RETURN list;\n"
    )


def test_to_source_prints_header_blocks_and_training_config():
    source = (
        'MODEL m; EXTENDS "base.quasar" WITH {"tree.max_depth": 8}; INPUT MEMBER double a; '
        "INPUT DOCUMENT double b; double s = (a + b) * 2; r = ORDER DOCUMENTS BY s WITH DESC; RETURN r; "
        'TRAINING CONFIG {label: clicked, "two words": 1, "ORDER": [1, -2.5e-07], nested: {k: true}};'
    )

    assert to_source(parse(source)) == (
        "MODEL m;\n"
        'EXTENDS "base.quasar" WITH {"tree.max_depth": 8};\n'
        "\n"
        "INPUT MEMBER double a;\n"
        "INPUT DOCUMENT double b;\n"
        "\n"
        "double s = (a + b) * 2;\n"
        "r = ORDER DOCUMENTS BY s WITH DESC;\n"
        "RETURN r;\n"
        "\n"
        'TRAINING CONFIG {label: clicked, "two words": 1, "ORDER": [1, -2.5e-07], nested: {"k": true}}\n'
    )


@pytest.mark.parametrize(
    "source",
    [
        "a - (b - c)", "(a - b) - c", "a / (b * c)", "-(a * b)", "-(-a)", "a * -b", "2 - -3",
        "NOT (a == b)", "(NOT a) == b", "(a OR b) AND c", "a OR (b AND c)", "a AND (b AND c)",
        "(a < b) == c", "NOT NOT a", "f(-1, [-(2)], {k: -x})",
    ],
)
def test_to_source_keeps_the_meaning_of_parentheses(source: str):
    program = parse(f"double x = {source};\nRETURN r;")
    assert parse(to_source(program)) == program


# ---- expressions --------------------------------------------------------------------------------


def expr(source: str):
    (declaration,) = body(f"double x = {source};")
    return declaration.expr


def test_arithmetic_binds_tighter_than_comparison_tighter_than_not_and_or():
    a, b, c, d = (Name(id=n) for n in "abcd")

    assert expr("a + b * c") == BinOp(left=a, op="+", right=BinOp(left=b, op="*", right=c))
    assert expr("a - b - c") == BinOp(left=BinOp(left=a, op="-", right=b), op="-", right=c)
    assert expr("(a + b) / c") == BinOp(left=BinOp(left=a, op="+", right=b), op="/", right=c)
    assert expr("a + b >= c * d") == Compare(
        left=BinOp(left=a, op="+", right=b), op=">=", right=BinOp(left=c, op="*", right=d)
    )
    assert expr("NOT a == b") == UnaryOp(op="NOT", operand=Compare(left=a, op="==", right=b))
    assert expr("a OR b AND c") == BoolOp(left=a, op="OR", right=BoolOp(left=b, op="AND", right=c))
    assert expr("NOT a AND b") == BoolOp(left=UnaryOp(op="NOT", operand=a), op="AND", right=b)
    assert expr("-a * b") == BinOp(left=UnaryOp(op="-", operand=a), op="*", right=b)


def test_the_slide_style_sum_of_weighted_score_and_call():
    assert expr("0.3 * cosine + DecisionTreesScorer(treeModel)") == BinOp(
        left=BinOp(left=Number(value=0.3), op="*", right=Name(id="cosine")),
        op="+",
        right=Call(name="DecisionTreesScorer", args=(Name(id="treeModel"),)),
    )


def test_literals():
    assert expr("42") == Number(value=42) and isinstance(expr("42").value, int)
    assert expr("1.5e3") == Number(value=1500.0) and isinstance(expr("1.5e3").value, float)
    assert expr("-3") == Number(value=-3)  # a negative literal, as in JSON
    assert expr('"tab\\t \\"q\\" \\u00e9"') == String(value='tab\t "q" é')
    assert expr("[true, false, null]") == ListLit(items=(Bool(value=True), Bool(value=False), Null()))
    assert expr("{}") == MapLit() and expr("[]") == ListLit() and expr("f()") == Call(name="f")


def test_trailing_commas_and_comments_are_allowed():
    (declaration,) = body("double x = f(a, [1, 2,], {k: 1,},); // trailing commas\n// and a comment line")
    assert declaration.expr == Call(
        name="f",
        args=(
            Name(id="a"),
            ListLit(items=(Number(value=1), Number(value=2))),
            MapLit(entries=(MapEntry(key="k", value=Number(value=1)),)),
        ),
    )


def test_keywords_are_reserved_but_type_names_are_not():
    assert expr("List + Vector") == BinOp(left=Name(id="List"), op="+", right=Name(id="Vector"))
    assert message("double ORDER = 1;") == (
        "<quasar>:1:8: syntax error: expected '=' or a name but found 'ORDER'\n"
        "    double ORDER = 1;\n"
        "           ^"
    )


# ---- statements ---------------------------------------------------------------------------------


def test_inputs_declarations_and_trainable_nodes():
    statements = body(
        "INPUT MEMBER Vector member_e;\n"
        "INPUT DOCUMENT double job_s;\n"
        "INPUT REQUEST String q;\n"
        "Categorical c = Bucket(job_s, 10);\n"
        'TRAINABLE treeModel = TreeEnsemble([job_s], {"num_trees": 200, "max_depth": 6});\n'
        "TRAINABLE double lin = Linear([job_s]);"
    )

    assert statements[:3] == (
        Input(scope="MEMBER", type="Vector", name="member_e"),
        Input(scope="DOCUMENT", type="double", name="job_s"),
        Input(scope="REQUEST", type="String", name="q"),
    )
    assert statements[3] == Declaration(
        type="Categorical", name="c", expr=Call(name="Bucket", args=(Name(id="job_s"), Number(value=10)))
    )
    tree = statements[4]
    assert (tree.type, tree.name, tree.trainable, tree.expr.name) == (None, "treeModel", True, "TreeEnsemble")
    assert (statements[5].type, statements[5].trainable) == ("double", True)


def test_list_operations_and_keep():
    statements = body(
        "ranked = ORDER DOCUMENTS BY score WITH DESC;\n"
        "again = ORDER ranked BY a - b WITH ASC;\n"
        "top = TOP 100 OF ranked;\n"
        "active = FILTER ranked WHERE job_remote == 1 AND job_seniority >= 3;\n"
        "all = FILTER DOCUMENTS WHERE NOT x;\n"
        "diverse = DIVERSIFY ranked BY job_companyId MAX 2;\n"
        "KEEP TOP 2000 DOCUMENTS BY cheap_score;"
    )

    assert [s.op if isinstance(s, ListStatement) else s for s in statements] == [
        Order(source=Documents(), by=Name(id="score"), direction="DESC"),
        Order(
            source=Name(id="ranked"), by=BinOp(left=Name(id="a"), op="-", right=Name(id="b")), direction="ASC"
        ),
        Top(n=100, source=Name(id="ranked")),
        Filter(
            source=Name(id="ranked"),
            condition=BoolOp(
                left=Compare(left=Name(id="job_remote"), op="==", right=Number(value=1)),
                op="AND",
                right=Compare(left=Name(id="job_seniority"), op=">=", right=Number(value=3)),
            ),
        ),
        Filter(source=Documents(), condition=UnaryOp(op="NOT", operand=Name(id="x"))),
        Diversify(source=Name(id="ranked"), by=Name(id="job_companyId"), max_per_value=2),
        Keep(n=2000, by=Name(id="cheap_score")),
    ]


def test_training_config_may_end_with_a_semicolon():
    with_semicolon = parse("RETURN r; TRAINING CONFIG {label: clicked};")
    without = parse("RETURN r;\nTRAINING CONFIG {label: clicked}")
    assert with_semicolon == without
    assert with_semicolon.training_config.options == MapLit(
        entries=(MapEntry(key="label", value=Name(id="clicked")),)
    )


# ---- positions ----------------------------------------------------------------------------------


def text_of(node, source: str) -> str:
    """The source text a node's positions cover."""
    lines = source.split("\n")
    if node.line == node.end_line:
        return lines[node.line - 1][node.column - 1 : node.end_column - 1]
    middle = lines[node.line : node.end_line - 1]
    first, last = lines[node.line - 1][node.column - 1 :], lines[node.end_line - 1][: node.end_column - 1]
    return "\n".join([first, *middle, last])


def test_every_node_knows_where_it_starts_and_ends():
    program = parse(SLIDE)
    similarity, score, ordering = program.statements
    call = similarity.expr
    options = call.args[2].items[2]

    assert text_of(similarity, SLIDE) == SLIDE.split("\n// Use")[0]
    assert text_of(call, SLIDE).startswith("SimilarityFeatureProducer(\n")
    assert text_of(call, SLIDE).endswith("}])")
    assert text_of(options, SLIDE) == '{"type": "SPARSE", "indexMap": "DYNAMIC"}'
    assert text_of(options.entries[1], SLIDE) == '"indexMap": "DYNAMIC"'
    assert text_of(score.expr.args[0], SLIDE) == "treeModel"
    assert text_of(ordering.op, SLIDE) == "ORDER DOCUMENTS BY score WITH DESC"
    assert text_of(ordering.op.source, SLIDE) == "DOCUMENTS"
    assert text_of(program.returns, SLIDE) == "RETURN list;"
    assert (options.line, options.column, options.end_line, options.end_column) == (4, 21, 4, 62)
    assert (program.line, program.column, program.end_line, program.end_column) == (1, 1, 8, 13)


def test_positions_of_expressions():
    source = "double x = -(a + 2) * f(b) >= c OR NOT d;\nRETURN r;"
    expr = parse(source).statements[0].expr
    assert text_of(expr, source) == "-(a + 2) * f(b) >= c OR NOT d"
    compare = expr.left
    assert text_of(compare.left, source) == "-(a + 2) * f(b)"
    assert text_of(compare.left.left, source) == "-(a + 2)"
    assert text_of(compare.left.left.operand, source) == "(a + 2)"  # its span covers the parentheses
    assert text_of(expr.right, source) == "NOT d"
    assert text_of(parse("double y = -2.5;RETURN r;").statements[0].expr, "double y = -2.5;") == "-2.5"


def test_positions_take_no_part_in_equality():
    assert parse("RETURN r;") == parse("\n\n   RETURN   r ;")
    assert Name(id="a", line=3, column=4) == Name(id="a")
    assert repr(Name(id="a", line=3)) == "Name(id='a')"


# ---- syntax errors: whole messages ----------------------------------------------------------------


def test_unterminated_string():
    assert message('Vector v = Sim([a], [b], [ "", "cosine]);\nRETURN r;') == (
        "<quasar>:1:32: syntax error: unterminated string: add the closing '\"' on the same line\n"
        '    Vector v = Sim([a], [b], [ "", "cosine]);\n'
        "                                   ^"
    )


def test_invalid_escape_in_string():
    assert message('double x = f("a\\qb");') == (
        "<quasar>:1:16: syntax error: invalid escape sequence '\\q' in string\n"
        '    double x = f("a\\qb");\n'
        "                   ^"
    )


def test_missing_semicolon_points_just_past_the_unfinished_statement():
    source = "double score = DecisionTreesScorer(treeModel)\nlist = ORDER DOCUMENTS BY score WITH DESC;\n"
    err = syntax_error(source)
    assert str(err) == (
        "<quasar>:1:46: syntax error: missing ';' at end of statement\n"
        "    double score = DecisionTreesScorer(treeModel)\n"
        "                                                 ^"
    )
    assert err.expected == ("';'",)


def test_missing_semicolon_at_the_end_of_the_program():
    assert message("ranked = ORDER DOCUMENTS BY s WITH DESC;\nRETURN ranked") == (
        "<quasar>:2:14: syntax error: missing ';' at end of statement\n"
        "    RETURN ranked\n"
        "                 ^"
    )


def test_a_bad_character():
    assert message("double score = 0.3 * @cosine;") == (
        "<quasar>:1:22: syntax error: unexpected character '@'; expected an expression\n"
        "    double score = 0.3 * @cosine;\n"
        "                         ^"
    )


def test_single_quotes():
    assert message("double x = f('cosine');") == (
        "<quasar>:1:14: syntax error: unexpected character \"'\"; strings are written in double quotes\n"
        "    double x = f('cosine');\n"
        "                 ^"
    )


def test_a_stray_keyword():
    assert message("double score = DecisionTreesScorer(treeModel) DESC;") == (
        "<quasar>:1:47: syntax error: expected ';' or an operator but found 'DESC'\n"
        "    double score = DecisionTreesScorer(treeModel) DESC;\n"
        "                                                  ^"
    )


def test_a_list_operation_with_a_type():
    assert message("List ranked = ORDER DOCUMENTS BY s WITH DESC;") == (
        "<quasar>:1:15: syntax error: expected an expression but found 'ORDER'; "
        "list operations are assigned without a type, e.g. 'ranked = ORDER ...'\n"
        "    List ranked = ORDER DOCUMENTS BY s WITH DESC;\n"
        "                  ^"
    )


def test_chained_comparison():
    assert message("double x = a < b < c;") == (
        "<quasar>:1:18: syntax error: expected ';', '+', '-', 'AND' or 'OR' but found '<'; "
        "comparisons do not chain, join them with AND\n"
        "    double x = a < b < c;\n"
        "                     ^"
    )


def test_end_of_program_inside_an_expression():
    assert message("RETURN r;\ndouble x = (a + b") == (
        "<quasar>:2:18: syntax error: expected ')', '(' or an operator but found end of program\n"
        "    double x = (a + b\n"
        "                     ^"
    )


def test_expected_items_in_common_places():
    err = syntax_error("RETURN r;\n) ")
    assert str(err) == (
        "<quasar>:2:1: syntax error: expected a statement or end of program but found ')'\n"
        "    ) \n"
        "    ^"
    )
    err = syntax_error("double x = f(a b);")
    assert err.expected == ("')'", "','", "'('", "an operator")
    err = syntax_error("r = ORDER DOCUMENTS BY s WITH ;")
    assert err.expected == ("'ASC'", "'DESC'")
    err = syntax_error("r = FILTER DOCUMENTS WHERE a b")
    assert str(err).splitlines()[0] == (
        "<quasar>:1:30: syntax error: expected ';', '(' or an operator but found the name 'b'"
    )
    err = syntax_error("double x = a * ;")
    assert err.expected == ("an expression",)
    err = syntax_error("MODEL m; INPUT MEMBER 3")
    assert err.expected == ("a name",)  # type names are names; the parser checks them after reading


def test_expected_items_are_grouped_and_ordered():
    assert message("double x = f(a) g;") == (
        "<quasar>:1:17: syntax error: expected ';' or an operator but found the name 'g'\n"
        "    double x = f(a) g;\n"
        "                    ^"
    )
    assert message("x = TOP 3 OF r WHERE;") == (
        "<quasar>:1:16: syntax error: expected ';' but found 'WHERE'\n"
        "    x = TOP 3 OF r WHERE;\n"
        "                   ^"
    )
    assert message("INPUT ) ").splitlines()[0] == (
        "<quasar>:1:7: syntax error: expected 'DOCUMENT', 'MEMBER' or 'REQUEST' but found ')'"
    )
    assert message("double x = NOT ;").splitlines()[0] == (
        "<quasar>:1:16: syntax error: expected an expression but found ';'"
    )
    assert message("double x = 1 <= >").splitlines()[0] == (
        "<quasar>:1:17: syntax error: expected an expression but found '>'"  # NOT cannot start it here
    )
    assert message("double x = a < b * c d;").splitlines()[0] == (
        "<quasar>:1:22: syntax error: expected ';', '(', an arithmetic operator, 'AND' or 'OR' "
        "but found the name 'd'"
    )


def test_more_than_six_expected_items_are_cut_with_dots():
    # the grammar's groups ("an expression", "a statement", ...) keep real lists short; the rule still holds
    accepts = {"RSQB", "SEMICOLON", "COMMA", "ORDER", "TOP", "FILTER", "DIVERSIFY", "NAME"}
    names = {"RSQB": "']'", "SEMICOLON": "';'", "COMMA": "','", "NAME": "a name"}
    names |= {k: f"'{k}'" for k in ("ORDER", "TOP", "FILTER", "DIVERSIFY")}
    found = Token("RPAR", ")", 5, 1, 6, 1, 7, 6)

    err = token_error(found, Token("NAME", "x", 3, 1, 4, 1, 5, 4), accepts, names, "r = x)", "f.quasar")

    assert str(err).splitlines()[0] == (
        "f.quasar:1:6: syntax error: expected ']', ';', ',', 'DIVERSIFY', 'FILTER', 'ORDER', ... "
        "but found ')'"
    )
    assert len(err.expected) == 8


# ---- syntax errors: the shape of the program ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "double x = 1;\n",
            "<quasar>:1:14: syntax error: missing RETURN: a program ends with 'RETURN <list>;'\n"
            "    double x = 1;\n"
            "                 ^",
        ),
        (
            "",
            "<quasar>:1:1: syntax error: missing RETURN: a program ends with 'RETURN <list>;'\n"
            "    \n"
            "    ^",
        ),
        (
            "RETURN r;\ndouble x = 1;",
            "<quasar>:2:1: syntax error: RETURN (line 1) must be the last statement; move this above it\n"
            "    double x = 1;\n"
            "    ^",
        ),
        (
            "RETURN a;\nRETURN b;",
            "<quasar>:2:1: syntax error: only one RETURN is allowed (the first is on line 1)\n"
            "    RETURN b;\n"
            "    ^",
        ),
        (
            "score = 0.3 * cosine;\nRETURN r;",
            "<quasar>:1:1: syntax error: missing type in 'score = ...': only list operations (ORDER, TOP, "
            "FILTER, DIVERSIFY) are assigned without one; write e.g. 'double score = ...'\n"
            "    score = 0.3 * cosine;\n"
            "    ^",
        ),
        (
            'INPUT MEMBER double a;\nEXTENDS "base.quasar";\nRETURN r;',
            "<quasar>:2:1: syntax error: EXTENDS must come first, or right after MODEL\n"
            '    EXTENDS "base.quasar";\n'
            "    ^",
        ),
        (
            'EXTENDS "base.quasar";\nMODEL m;',
            "<quasar>:2:1: syntax error: MODEL must be the first statement of the program\n"
            "    MODEL m;\n"
            "    ^",
        ),
        (
            "MODEL m;\nMODEL n;\nRETURN r;",
            "<quasar>:2:1: syntax error: only one MODEL is allowed (the first is on line 1)\n"
            "    MODEL n;\n"
            "    ^",
        ),
        (
            'EXTENDS "a.quasar";\nEXTENDS "b.quasar";',
            "<quasar>:2:1: syntax error: only one EXTENDS is allowed (the first is on line 1)\n"
            '    EXTENDS "b.quasar";\n'
            "    ^",
        ),
        (
            "TRAINING CONFIG {label: y}\nRETURN r;",
            "<quasar>:2:1: syntax error: TRAINING CONFIG (line 1) must end the program; move this above it\n"
            "    RETURN r;\n"
            "    ^",
        ),
        (
            "RETURN r;\nTRAINING CONFIG {a: 1}\nTRAINING CONFIG {b: 2}",
            "<quasar>:3:1: syntax error: only one TRAINING CONFIG is allowed (the first is on line 2)\n"
            "    TRAINING CONFIG {b: 2}\n"
            "    ^",
        ),
    ],
    ids=[
        "no-return", "empty", "return-not-last", "two-returns", "untyped-non-list", "extends-late",
        "model-late", "two-models", "two-extends", "config-not-last", "two-configs",
    ],
)
def test_program_shape_errors(source: str, expected: str):
    assert message(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "doubel x = 1;",
            "<quasar>:1:1: syntax error: unknown type 'doubel'; expected one of double, Vector, String, "
            "Categorical, List\n    doubel x = 1;\n    ^",
        ),
        (
            "INPUT MEMBER vector e;",
            "<quasar>:1:14: syntax error: unknown type 'vector'; expected one of double, Vector, String, "
            "Categorical, List\n    INPUT MEMBER vector e;\n                 ^",
        ),
        (
            "TRAINABLE m = 0.5 * a;",
            "<quasar>:1:15: syntax error: TRAINABLE needs an operator call, e.g. "
            "'TRAINABLE m = TreeEnsemble(...)'\n    TRAINABLE m = 0.5 * a;\n                  ^",
        ),
        (
            "r = TOP 1.5 OF ranked;",
            "<quasar>:1:9: syntax error: TOP needs a whole number of at least 1, got 1.5\n"
            "    r = TOP 1.5 OF ranked;\n            ^",
        ),
        (
            "KEEP TOP 0 DOCUMENTS BY s;",
            "<quasar>:1:10: syntax error: KEEP TOP needs a whole number of at least 1, got 0\n"
            "    KEEP TOP 0 DOCUMENTS BY s;\n             ^",
        ),
        (
            "r = DIVERSIFY d BY c MAX 2e1;",
            "<quasar>:1:26: syntax error: MAX needs a whole number of at least 1, got 2e1\n"
            "    r = DIVERSIFY d BY c MAX 2e1;\n                             ^",
        ),
        (
            'double x = f({"type": "SPARSE", type: "DENSE"});',
            '<quasar>:1:33: syntax error: duplicate key "type" in map\n'
            '    double x = f({"type": "SPARSE", type: "DENSE"});\n'
            "                                    ^",
        ),
        (
            'EXTENDS "base.quasar" WITH {"max_depth": 8};',
            '<quasar>:1:29: syntax error: override key "max_depth" must name a node parameter as '
            '"<node>.<param>"\n'
            '    EXTENDS "base.quasar" WITH {"max_depth": 8};\n'
            "                                ^",
        ),
        (
            "double x = 1e999;",
            "<quasar>:1:12: syntax error: number 1e999 is out of range\n"
            "    double x = 1e999;\n"
            "               ^",
        ),
    ],
    ids=["type", "input-type", "trainable-not-call", "top-fraction", "keep-zero", "max-exponent",
         "duplicate-key", "override-key", "huge-number"],
)
def test_rule_errors(source: str, expected: str):
    assert message(source) == expected


# ---- the error type -----------------------------------------------------------------------------


def test_syntax_errors_carry_their_fields_and_the_file_name():
    err = syntax_error("RETURN r;\nRETURN s;", filename="models/jobs.quasar")

    assert isinstance(err, QuasarError) and isinstance(err, ProMLError)
    assert (err.filename, err.line, err.column) == ("models/jobs.quasar", 2, 1)
    assert err.message == "only one RETURN is allowed (the first is on line 1)"
    assert err.source_line == "RETURN s;"
    assert str(err).startswith("models/jobs.quasar:2:1: syntax error: only one RETURN")


def test_syntax_errors_survive_pickling():
    err = syntax_error("double x = @;")

    copy = pickle.loads(pickle.dumps(err))

    assert type(copy) is QuasarSyntaxError
    assert str(copy) == str(err)
    assert copy.expected == err.expected


def test_no_lark_exception_escapes_and_the_cause_is_hidden():
    err = syntax_error("double x = (;")
    assert err.__cause__ is None and err.__context__ is None
    assert type(err).__module__ == "proml_lab.quasar.errors"


def test_carets_line_up_under_tabs():
    assert message("double x =\t\t@;") == (
        "<quasar>:1:13: syntax error: unexpected character '@'; expected an expression\n"
        "    double x =\t\t@;\n"
        "              \t\t^"
    )


def test_windows_line_endings():
    program = parse("double x = 1;\r\nRETURN r;\r\n")
    assert program.returns.line == 2
    assert message("double x = 1\r\nRETURN r;") == (
        "<quasar>:1:13: syntax error: missing ';' at end of statement\n"
        "    double x = 1\n"
        "                ^"
    )


def test_a_program_node_can_be_built_by_hand_and_printed():
    program = Program(
        name="hand_made",
        extends=None,
        statements=(Declaration(type="double", name="s", expr=Number(value=1)),),
        returns=Return(source=Documents()),
    )
    assert to_source(program) == "MODEL hand_made;\n\ndouble s = 1;\nRETURN DOCUMENTS;\n"
    assert parse(to_source(program)) == program
