"""Readable syntax errors: what the parser expected, what it found, and where.

The parser reports terminal names (``RSQB``, ``NAME``, ``$END``); users read ``']'``, ``a name``,
``end of program``. Expected items are grouped where a phrase reads better (``an expression``,
``an operator``) and listed in a fixed order: what most likely closes the construct first (``']'``,
``')'``, ``';'``), then joiners, phrases, keywords, kinds of literal, end of program. At most six are
listed, then ``...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from lark import Token

from proml_lab.quasar.errors import QuasarSyntaxError

__all__ = ["character_error", "line_text", "token_error"]

#: What a regex terminal is called in messages (string terminals read as themselves, quoted).
TOKEN_KINDS = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "$END": "end of program"}

_ARITHMETIC = frozenset({"'+'", "'-'", "'*'", "'/'"})
_COMPARISON = frozenset({"'=='", "'!='", "'<'", "'<='", "'>'", "'>='"})
# Groups of expected items that read better as one phrase, tried in this order.
_GROUPS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    # NOT is not required: after '+' an operand cannot start with NOT, yet it is still an expression
    ("an expression", frozenset({"a name", "a number", "a string", "'('", "'['", "'{'", "'-'",
                                 "'true'", "'false'", "'null'"}), frozenset({"'NOT'"})),
    # where a statement may start (the header's and TRAINING CONFIG's places are checked later)
    ("a statement", frozenset({"'INPUT'", "'KEEP'", "'RETURN'", "'TRAINABLE'", "a name"}),
     frozenset({"'MODEL'", "'EXTENDS'", "'TRAINING'"})),
    ("an operator", _ARITHMETIC | _COMPARISON | {"'AND'", "'OR'"}, frozenset()),
    ("an arithmetic operator", _ARITHMETIC, frozenset()),
    ("a comparison operator", _COMPARISON, frozenset()),
)
_FIRST = (
    "']'", "')'", "'}'", "';'", "','", "'='", "':'", "'('", "'['", "'{'",
    "an expression", "a statement", "an operator", "an arithmetic operator", "a comparison operator",
    "'+'", "'-'", "'*'", "'/'", "'=='", "'!='", "'<'", "'<='", "'>'", "'>='", "'AND'", "'OR'", "'NOT'",
)
_LAST = ("a name", "a number", "a string", "'true'", "'false'", "'null'", "end of program")
_MAX_LISTED = 6
_LIST_KEYWORDS = frozenset({"ORDER", "TOP", "FILTER", "DIVERSIFY"})
_ESCAPE = re.compile(r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})')


def token_error(
    token: Any,
    previous: Any,
    accepts: Iterable[str],
    names: Mapping[str, str],
    source: str,
    filename: str,
) -> QuasarSyntaxError:
    """The error for a token the grammar does not allow where it stands.

    Parameters
    ----------
    token : lark.Token
        The token the parser refused (type ``$END`` at the end of the text).
    previous : lark.Token or None
        The token before it, if any.
    accepts : iterable of str
        Terminal names the parser would have taken instead.
    names : mapping
        Readable name of each terminal.
    source, filename : str
        The program text and the name to show.
    """
    expected = _expected(accepts, names)
    at_end = token.type == "$END"
    if previous is not None and "';'" in expected and (at_end or token.line > previous.end_line):
        # the next statement (or the end) came instead of ';': point just past the unfinished one
        line, column = previous.end_line, previous.end_column
        return QuasarSyntaxError(
            "missing ';' at end of statement", line, column, line_text(source, line), ("';'",), filename
        )
    if at_end and previous is not None:
        line, column = previous.end_line, previous.end_column
    else:
        line, column = token.line, token.column
    found = _describe(token)
    message = f"expected {_listing(expected)} but found {found}" if expected else f"unexpected {found}"
    message += _hint(token, previous, expected)
    return QuasarSyntaxError(message, line, column, line_text(source, line), expected, filename)


def character_error(
    pos: int, accepts: Iterable[str], names: Mapping[str, str], source: str, filename: str
) -> QuasarSyntaxError:
    """The error for text at offset *pos* that starts no token (a stray character, a broken string)."""
    char = source[pos]
    expected: tuple[str, ...] = ()
    if char == '"':
        message, pos = _string_problem(source, pos)
    elif char == "'":
        message = "unexpected character \"'\"; strings are written in double quotes"
    else:
        expected = _expected(accepts, names)
        message = f"unexpected character {char!r}"
        if expected:
            message += f"; expected {_listing(expected)}"
    line, column = _line_column(source, pos)
    return QuasarSyntaxError(message, line, column, line_text(source, line), expected, filename)


def line_text(source: str, line: int) -> str:
    """The text of 1-based *line* without its line ending (lines end at '\\n', as for the lexer)."""
    lines = source.split("\n")
    return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""


def _rank(item: str) -> tuple[int, str]:
    """Sort key of an expected item: ``_FIRST`` in order, keywords alphabetically, then ``_LAST``."""
    if item in _FIRST:
        return (_FIRST.index(item), "")
    if item in _LAST:
        return (1000 + _LAST.index(item), "")
    return (500, item)


def _expected(accepts: Iterable[str], names: Mapping[str, str]) -> tuple[str, ...]:
    """Readable, grouped and ordered names for the terminals in *accepts*."""
    items = {names.get(terminal, terminal) for terminal in accepts}
    phrases = set()
    for phrase, members, absorbed in _GROUPS:
        if members <= items:
            items -= members | absorbed
            phrases.add(phrase)
    return tuple(sorted(items | phrases, key=_rank))


def _listing(items: tuple[str, ...]) -> str:
    """``"X"``, ``"X or Y"``, ``"X, Y or Z"``; past six items, the first six and ``"..."``."""
    if len(items) > _MAX_LISTED:
        return ", ".join(items[:_MAX_LISTED]) + ", ..."
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def _describe(token: Token) -> str:
    """How a message names the token that was found."""
    if token.type == "$END":
        return "end of program"
    if token.type == "NAME":
        return f"the name '{token.value}'"
    if token.type == "NUMBER":
        return f"the number {token.value}"
    if token.type == "STRING":
        text = token.value if len(token.value) <= 40 else token.value[:36] + '..."'
        return f"the string {text}"
    return f"'{token.value}'"


def _hint(token: Token, previous: Token | None, expected: tuple[str, ...]) -> str:
    """A short fix for two mistakes that the list of expected items alone does not explain."""
    if token.type in _LIST_KEYWORDS and previous is not None and previous.type == "EQUAL":
        return f"; list operations are assigned without a type, e.g. 'ranked = {token.value} ...'"
    if token.type != "STRING" and f"'{token.value}'" in _COMPARISON and "'AND'" in expected:
        return "; comparisons do not chain, join them with AND"
    return ""


def _string_problem(source: str, start: int) -> tuple[str, int]:
    """Why the string opening at offset *start* is not a valid string, and at which offset."""
    i = start + 1
    while i < len(source):
        char = source[i]
        if char in "\r\n":
            break
        if char == '"':  # closed after all: only reached if the lexer's string pattern changed
            return "invalid string", start
        if char == "\\":
            match = _ESCAPE.match(source, i)
            if match is None:
                return f"invalid escape sequence '{source[i:i + 2]}' in string", i
            i = match.end()
            continue
        if ord(char) < 0x20:
            return f"control character {char!r} in string; write it as an escape such as \\t", i
        i += 1
    return "unterminated string: add the closing '\"' on the same line", start


def _line_column(source: str, pos: int) -> tuple[int, int]:
    """1-based line and column of offset *pos*."""
    line_start = source.rfind("\n", 0, pos) + 1
    return source.count("\n", 0, pos) + 1, pos - line_start + 1
