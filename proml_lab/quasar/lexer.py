"""The lexer the Quasar parser runs on: one compiled regex over the grammar's own terminals.

lark's basic lexer spends about three times as long per token (it is general: callbacks, line
counters, byte input). This one reads the same terminals from the grammar, orders them the same way
and reserves keywords the same way, so it yields exactly the tokens lark's would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.common import LexerConf
from lark.exceptions import UnexpectedCharacters
from lark.lexer import Lexer, LexerState, PatternRE, PatternStr

__all__ = ["QuasarLexer"]


class QuasarLexer(Lexer):
    """lark lexer (pass the class as ``Lark(lexer=QuasarLexer)``) built from the grammar's terminals.

    A string terminal that the pattern of a regex terminal reads whole (``"ORDER"`` and ``NAME``) is a
    keyword: the regex reads it and a lookup gives it its own type, so keywords are reserved
    everywhere. No token of the Quasar grammar spans lines, so only ignored text (whitespace) moves
    the line counter.
    """

    __future_interface__ = 2

    def __init__(self, conf: LexerConf) -> None:
        terminals = sorted(
            conf.terminals, key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name)
        )
        regexes = [t for t in terminals if isinstance(t.pattern, PatternRE)]
        self.keywords: dict[str, dict[str, str]] = {}
        alternatives = []
        for terminal in terminals:
            owner = next((r for r in regexes if isinstance(terminal.pattern, PatternStr)
                          and re.fullmatch(r.pattern.to_regexp(), terminal.pattern.value)), None)
            if owner is not None:  # a keyword: read by its owner's pattern, then looked up
                self.keywords.setdefault(owner.name, {})[terminal.pattern.value] = terminal.name
            else:
                alternatives.append(f"(?P<{terminal.name}>{terminal.pattern.to_regexp()})")
        self.match = re.compile("|".join(alternatives)).match
        self.ignore = frozenset(conf.ignore)

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        """lark's entry point: the tokens of the text being parsed."""
        text = lexer_state.text
        return self.tokens(text.text, text.start, text.end)

    def tokens(self, text: str, start: int = 0, stop: int | None = None) -> Iterator[Token]:
        """The tokens of ``text[start:stop]``, with lark positions (1-based, end column exclusive)."""
        match, ignore, keywords = self.match, self.ignore, self.keywords
        stop = len(text) if stop is None else stop
        pos, line, line_start = start, text.count("\n", 0, start) + 1, text.rfind("\n", 0, start) + 1
        while pos < stop:
            found = match(text, pos, stop)
            if found is None or found.end() == pos:
                raise UnexpectedCharacters(text, pos, line, pos - line_start + 1)
            kind: str = found.lastgroup  # type: ignore[assignment]  # every alternative is a named group
            value, end = found.group(), found.end()
            if kind in ignore:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rfind("\n") + 1
            else:
                if kind in keywords:
                    kind = keywords[kind].get(value, kind)
                column = pos - line_start + 1
                yield Token(kind, value, pos, line, column, line, column + end - pos, end)
            pos = end
