"""Property tests: whatever the text, the parser either returns a tree or raises QuasarSyntaxError.

Inputs: random text over Quasar's characters, random token soup, and the golden programs with
characters or tokens deleted, duplicated, swapped or replaced. Whatever parses must print back
(``to_source``) to the same tree, and every error must point inside the text it quotes. Random trees
built directly must survive ``parse(to_source(tree))`` too.

Set ``QUASAR_FUZZ_EXAMPLES`` (default 150) to search longer, e.g. ``QUASAR_FUZZ_EXAMPLES=5000``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proml_lab.quasar import QuasarSyntaxError, parse, to_source
from proml_lab.quasar.ast import (
    RESERVED_WORDS,
    TYPES,
    BinOp,
    Bool,
    BoolOp,
    Call,
    Compare,
    Declaration,
    Diversify,
    Documents,
    Filter,
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
    UnaryOp,
)
from proml_lab.quasar.diagnostics import line_text

SOURCES = [path.read_text() for path in sorted((Path(__file__).parent / "programs").glob("*.quasar"))]
# Explicit alphabets (no Unicode database lookups) and no example database: nothing is written to disk.
EXAMPLES = int(os.environ.get("QUASAR_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
CHARACTERS = (
    "abcxyzABCXYZ_019 \n\t\r" + "()[]{};,:=<>!+-*/.\"\\'@#$%^&|~`?" + "éλ中\u2028\x00\x7f"
)
VOCABULARY = sorted(RESERVED_WORDS) + list(TYPES) + [
    "(", ")", "[", "]", "{", "}", ";", ",", ":", "=", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/",
    "x", "score", "ranked", "f", "0", "1", "2.5", "1e3", '""', '"cosine"', '"a\\"b"', "//c\n", "\n",
]
TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
    r"|==|!=|<=|>=|\S"
)


def parses_or_fails_cleanly(source: str) -> None:
    """The contract: a tree that round-trips, or a QuasarSyntaxError that points into the text."""
    try:
        program = parse(source)
    except QuasarSyntaxError as err:
        assert 1 <= err.line <= source.count("\n") + 1
        assert err.source_line == line_text(source, err.line)
        assert 1 <= err.column <= len(err.source_line) + 1
        assert str(err).startswith(f"<quasar>:{err.line}:{err.column}: syntax error: ")
        return
    assert parse(to_source(program)) == program


@FUZZ
@given(st.text(alphabet=CHARACTERS, max_size=300))
def test_random_text(source: str):
    parses_or_fails_cleanly(source)


@FUZZ
@given(st.lists(st.sampled_from(VOCABULARY), max_size=60))
def test_random_token_soup(tokens: list[str]):
    parses_or_fails_cleanly(" ".join(tokens))


@FUZZ
@given(
    st.sampled_from(SOURCES),
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "duplicate", "swap", "insert"]),
            st.floats(0, 1),
            st.floats(0, 1),
            st.sampled_from(CHARACTERS),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_character_mutations_of_the_golden_programs(source: str, mutations: list[tuple]):
    text = list(source)
    for kind, where, other, char in mutations:
        i = min(int(where * len(text)), len(text) - 1)
        if kind == "delete":
            del text[i]
        elif kind == "duplicate":
            text.insert(i, text[i])
        elif kind == "swap":
            j = min(int(other * len(text)), len(text) - 1)
            text[i], text[j] = text[j], text[i]
        else:
            text.insert(i, char)
    parses_or_fails_cleanly("".join(text))


@FUZZ
@given(
    st.sampled_from(SOURCES),
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "duplicate", "swap", "replace"]),
            st.floats(0, 1),
            st.floats(0, 1),
            st.sampled_from(VOCABULARY),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_token_mutations_of_the_golden_programs(source: str, mutations: list[tuple]):
    matches = list(TOKEN.finditer(source))
    # each token keeps the whitespace that follows it, so the text stays laid out as written
    tokens = [m.group() for m in matches]
    gaps = [source[m.end() : (matches[k + 1].start() if k + 1 < len(matches) else len(source))]
            for k, m in enumerate(matches)]
    for kind, where, other, word in mutations:
        i = min(int(where * len(tokens)), len(tokens) - 1)
        if kind == "delete":
            del tokens[i], gaps[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
            gaps.insert(i, " ")
        elif kind == "swap":
            j = min(int(other * len(tokens)), len(tokens) - 1)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = word
    parses_or_fails_cleanly("".join(t + g for t, g in zip(tokens, gaps)))


# ---- random trees print and parse back to themselves ------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in RESERVED_WORDS)
numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
).map(lambda v: Number(value=v))
strings = st.text(alphabet=CHARACTERS + "ü", max_size=12).map(lambda s: String(value=s))
leaves = st.one_of(
    names.map(lambda n: Name(id=n)),
    numbers,
    strings,
    st.booleans().map(lambda b: Bool(value=b)),
    st.just(Null()),
)


def _negate(operand):
    """``-operand``; the parser reads '-' before a number literal as a negative literal instead."""
    return Number(value=-operand.value) if isinstance(operand, Number) else UnaryOp(op="-", operand=operand)


def _compound(children: st.SearchStrategy) -> st.SearchStrategy:
    maps = st.lists(st.tuples(st.text(alphabet=CHARACTERS, max_size=6), children), max_size=3,
                    unique_by=lambda kv: kv[0])
    return st.one_of(
        st.builds(lambda n, a: Call(name=n, args=tuple(a)), names, st.lists(children, max_size=3)),
        st.lists(children, max_size=3).map(lambda items: ListLit(items=tuple(items))),
        maps.map(lambda kvs: MapLit(entries=tuple(MapEntry(key=k, value=v) for k, v in kvs))),
        st.builds(BinOp, left=children, op=st.sampled_from(["+", "-", "*", "/"]), right=children),
        st.builds(Compare, left=children, op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
                  right=children),
        st.builds(BoolOp, left=children, op=st.sampled_from(["AND", "OR"]), right=children),
        st.builds(UnaryOp, op=st.just("NOT"), operand=children),
        st.builds(_negate, children),
    )


expressions = st.recursive(leaves, _compound, max_leaves=12)
sources = st.one_of(st.just(Documents()), names.map(lambda n: Name(id=n)))
counts = st.integers(min_value=1, max_value=10**6)
statements = st.one_of(
    st.builds(Declaration, type=st.sampled_from(TYPES), name=names, expr=expressions),
    st.builds(
        lambda n, a: Declaration(type=None, name=n, expr=Call(name="Op", args=tuple(a)), trainable=True),
        names,
        st.lists(expressions, max_size=2),
    ),
    st.builds(ListStatement, name=names, op=st.one_of(
        st.builds(Order, source=sources, by=expressions, direction=st.sampled_from(["ASC", "DESC"])),
        st.builds(Top, n=counts, source=sources),
        st.builds(Filter, source=sources, condition=expressions),
        st.builds(Diversify, source=sources, by=expressions, max_per_value=counts),
    )),
    st.builds(Keep, n=counts, by=expressions),
)


@settings(
    max_examples=EXAMPLES + 50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(statements, max_size=4), sources)
def test_random_trees_survive_printing_and_parsing(body: list, returned):
    program = Program(name=None, extends=None, statements=tuple(body), returns=Return(source=returned))
    assert parse(to_source(program)) == program
