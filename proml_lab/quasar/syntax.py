"""Parse Quasar source into the tree of :mod:`proml_lab.quasar.ast`.

The pipeline is ``text → tokens (lexer.py) → LALR parse (grammar/quasar.lark) building AST nodes as
rules reduce → program-level checks``. The parser is built once, on first use. Whatever goes wrong
comes out as :class:`~proml_lab.quasar.errors.QuasarSyntaxError` with a line, a column, the source line
and what was expected (diagnostics.py): lark's own exception types never escape.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from importlib import resources
from typing import Any, NoReturn, TypedDict, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from proml_lab.quasar.ast import (
    TYPES,
    BinOp,
    Bool,
    BoolOp,
    Call,
    Compare,
    Declaration,
    Diversify,
    Documents,
    Expr,
    Extends,
    Filter,
    Input,
    Keep,
    ListLit,
    ListStatement,
    MapEntry,
    MapLit,
    Name,
    Node,
    Null,
    Number,
    Order,
    Program,
    Return,
    Statement,
    String,
    Top,
    TrainingConfig,
    UnaryOp,
)
from proml_lab.quasar.diagnostics import TOKEN_KINDS, character_error, line_text, token_error
from proml_lab.quasar.errors import QuasarSyntaxError
from proml_lab.quasar.lexer import QuasarLexer

__all__ = ["parse"]


def parse(source: str, *, filename: str = "<quasar>") -> Program:
    """Parse Quasar *source* into a :class:`~proml_lab.quasar.ast.Program`.

    Only the syntax is checked here (plus the shape of the program: header first, exactly one
    ``RETURN`` as the last statement, ``TRAINING CONFIG`` at the very end). Whether names exist and
    types fit is the checker's job.

    Parameters
    ----------
    source : str
        Program text.
    filename : str, default "<quasar>"
        Shown in error messages.

    Returns
    -------
    Program
        The tree, every node with ``line``, ``column``, ``end_line`` and ``end_column``.

    Raises
    ------
    QuasarSyntaxError
        The text is not a Quasar program; the error names the line, the column and what was expected.

    Examples
    --------
    >>> program = parse('''
    ... INPUT DOCUMENT double job_seniority;
    ... double score = 0.5 * job_seniority;
    ... ranked = ORDER DOCUMENTS BY score WITH DESC;
    ... RETURN ranked;
    ... ''')
    >>> program.statements[1].expr
    BinOp(left=Number(value=0.5), op='*', right=Name(id='job_seniority'))
    >>> program.returns.line
    5
    """
    try:
        return cast(Program, _parser().parse(source))
    except _Reject as err:
        text = line_text(source, err.line)
        error = QuasarSyntaxError(err.message, err.line, err.column, text, (), filename)
    except UnexpectedToken as err:
        end = len(source) if err.token.type == "$END" else err.token.start_pos
        error = token_error(
            err.token, _token_before(source, end), _accepts(err), _terminal_names(), source, filename
        )
    except UnexpectedCharacters as err:
        error = character_error(err.pos_in_stream or 0, _accepts(err), _terminal_names(), source, filename)
    except UnexpectedInput as err:  # UnexpectedEOF is Earley-only; kept so that nothing of lark's leaks
        line = err.line if isinstance(err.line, int) else 1
        column = err.column if isinstance(err.column, int) else 1
        text = line_text(source, line)
        error = QuasarSyntaxError("unexpected end of program", line, column, text, (), filename)
    raise error


@functools.cache
def _parser() -> Lark:
    """The LALR parser for ``grammar/quasar.lark`` (built on first use, then shared).

    The AST is built while parsing (``transformer=``): no intermediate lark tree, no second pass.
    ``keep_all_tokens`` hands every callback its punctuation and keywords too, which is where node
    positions start and end.
    """
    grammar = resources.files(__package__).joinpath("grammar", "quasar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer=QuasarLexer,
        transformer=_ToAst(),
        keep_all_tokens=True,
        maybe_placeholders=False,
    )


@functools.cache
def _terminal_names() -> dict[str, str]:
    """Readable name of every terminal: ``RSQB → "']'"``, ``NAME → "a name"``, ``ORDER → "'ORDER'"``."""
    names = dict(TOKEN_KINDS)
    for terminal in _parser().terminals:
        if isinstance(terminal.pattern, PatternStr):
            names[terminal.name] = f"'{terminal.pattern.value}'"
    return names


def _accepts(err: UnexpectedInput) -> set[str]:
    """Terminals the parser would have taken where it stopped (simulated, so exact for LALR)."""
    parser = getattr(err, "interactive_parser", None)
    return parser.accepts() if parser is not None else set()


def _token_before(source: str, pos: int) -> Token | None:
    """The last token that ends at or before offset *pos* (error path only: it lexes again)."""
    previous = None
    for token in _parser().parser.lexer.tokens(source, 0, pos):
        previous = token
    return previous


# ---- AST building --------------------------------------------------------------------------------


class _Reject(Exception):
    """A rule the grammar cannot express was broken; becomes a QuasarSyntaxError in :func:`parse`."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _reject(message: str, at: Any) -> NoReturn:
    """Stop parsing with *message*, pointing at the start of *at*."""
    raise _Reject(message, at.line, at.column)


class _Span(TypedDict):
    line: int
    column: int
    end_line: int
    end_column: int


def _span(first: Any, last: Any) -> _Span:
    """Position keywords for a node from the start of *first* to the end of *last* (nodes or tokens)."""
    return _Span(line=first.line, column=first.column, end_line=last.end_line, end_column=last.end_column)


def _parts(children: Children) -> tuple[Any, ...]:
    """The children that are nodes, without the punctuation and keywords around them."""
    return tuple(child for child in children if type(child) is not Token)


def _type_name(token: Token) -> str:
    if token.value not in TYPES:
        _reject(f"unknown type '{token.value}'; expected one of {', '.join(TYPES)}", token)
    return str(token.value)


def _count(token: Token, what: str) -> int:
    """A whole number of at least 1 (TOP n, KEEP TOP n, MAX n)."""
    if not token.value.isdigit() or int(token.value) < 1:
        _reject(f"{what} needs a whole number of at least 1, got {token.value}", token)
    return int(token.value)


def _unquote(token: Token) -> str:
    text = token.value
    return text[1:-1] if "\\" not in text else json.loads(text)


# What a rule method receives: nodes and tokens. Named, because the method 'list' shadows the type.
Children = list[Any]
_NOWHERE = _Span(line=1, column=1, end_line=1, end_column=1)  # where an empty program is
_OVERRIDE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")


class _ToAst(Transformer):
    """Builds AST nodes while the LALR parser reduces (one method per rule or alias of the grammar).

    Each method gets all of its rule's children, tokens included (``keep_all_tokens``): the first and
    the last child give the node's position; ``?rules`` with a single child never get here.
    """

    # -- program ------------------------------------------------------------------------------
    def start(self, c: Children) -> Program:
        return _assemble(c)

    def model(self, c: Children) -> _Model:
        return _Model(name=str(c[1]), **_span(c[0], c[-1]))

    def extends(self, c: Children) -> Extends:
        overrides = c[3] if len(c) == 5 else None
        for entry in overrides.entries if overrides else ():
            if not _OVERRIDE_KEY.match(entry.key):
                _reject(f'override key "{entry.key}" must name a node parameter as "<node>.<param>"', entry)
        return Extends(path=_unquote(c[1]), overrides=overrides, **_span(c[0], c[-1]))

    def training_config(self, c: Children) -> TrainingConfig:
        return TrainingConfig(options=c[2], **_span(c[0], c[-1]))

    # -- statements ---------------------------------------------------------------------------
    def input(self, c: Children) -> Input:
        return Input(scope=c[1].value, type=_type_name(c[2]), name=str(c[3]), **_span(c[0], c[-1]))

    def declaration(self, c: Children) -> Declaration:
        return Declaration(type=_type_name(c[0]), name=str(c[1]), expr=c[3], **_span(c[0], c[-1]))

    def trainable(self, c: Children) -> Declaration:
        type_ = _type_name(c[1]) if len(c) == 6 else None
        name, expr = c[-4], c[-2]
        if not isinstance(expr, Call):
            _reject(f"TRAINABLE needs an operator call, e.g. 'TRAINABLE {name} = TreeEnsemble(...)'", expr)
        return Declaration(type=type_, name=str(name), expr=expr, trainable=True, **_span(c[0], c[-1]))

    def list_statement(self, c: Children) -> ListStatement:
        return ListStatement(name=str(c[0]), op=c[2], **_span(c[0], c[-1]))

    def untyped_assignment(self, c: Children) -> NoReturn:
        name = c[0]
        _reject(
            f"missing type in '{name} = ...': only list operations (ORDER, TOP, FILTER, DIVERSIFY) are "
            f"assigned without one; write e.g. 'double {name} = ...'",
            name,
        )

    def keep(self, c: Children) -> Keep:
        return Keep(n=_count(c[2], "KEEP TOP"), by=c[5], **_span(c[0], c[-1]))

    def return_stmt(self, c: Children) -> Return:
        return Return(source=c[1], **_span(c[0], c[-1]))

    # -- list operations ----------------------------------------------------------------------
    def order(self, c: Children) -> Order:
        direction = c[5].value
        return Order(source=c[1], by=c[3], direction=direction, **_span(c[0], c[-1]))

    def top(self, c: Children) -> Top:
        return Top(n=_count(c[1], "TOP"), source=c[3], **_span(c[0], c[-1]))

    def filter(self, c: Children) -> Filter:
        return Filter(source=c[1], condition=c[3], **_span(c[0], c[-1]))

    def diversify(self, c: Children) -> Diversify:
        return Diversify(source=c[1], by=c[3], max_per_value=_count(c[5], "MAX"), **_span(c[0], c[-1]))

    def documents(self, c: Children) -> Documents:
        return Documents(**_span(c[0], c[0]))

    # -- expressions --------------------------------------------------------------------------
    def name(self, c: Children) -> Name:
        return Name(id=str(c[0]), **_span(c[0], c[0]))

    def number(self, c: Children) -> Number:
        text = c[0].value
        try:
            value: int | float = float(text) if ("." in text or "e" in text or "E" in text) else int(text)
        except ValueError:  # more digits than Python converts
            _reject(f"number {text[:20]}... is too long", c[0])
        if not math.isfinite(value):
            _reject(f"number {text} is out of range", c[0])
        return Number(value=value, **_span(c[0], c[0]))

    def string(self, c: Children) -> String:
        return String(value=_unquote(c[0]), **_span(c[0], c[0]))

    def true(self, c: Children) -> Bool:
        return Bool(value=True, **_span(c[0], c[0]))

    def false(self, c: Children) -> Bool:
        return Bool(value=False, **_span(c[0], c[0]))

    def null(self, c: Children) -> Null:
        return Null(**_span(c[0], c[0]))

    def unary(self, c: Children) -> Expr:
        # "(" expr ")": no node of its own, but the span grows to cover the parentheses, so that
        # every enclosing node's span (taken from its first and last child) covers them too
        return dataclasses.replace(c[1], **_span(c[0], c[-1]))

    def call(self, c: Children) -> Call:
        return Call(name=str(c[0]), args=_parts(c[2:-1]), **_span(c[0], c[-1]))

    def list(self, c: Children) -> ListLit:
        return ListLit(items=_parts(c[1:-1]), **_span(c[0], c[-1]))

    def map(self, c: Children) -> MapLit:
        entries: tuple[MapEntry, ...] = _parts(c[1:-1])
        seen: set[str] = set()
        for entry in entries:
            if entry.key in seen:
                _reject(f'duplicate key "{entry.key}" in map', entry)
            seen.add(entry.key)
        return MapLit(entries=entries, **_span(c[0], c[-1]))

    def pair(self, c: Children) -> MapEntry:
        key = _unquote(c[0]) if c[0].type == "STRING" else str(c[0])
        return MapEntry(key=key, value=c[2], **_span(c[0], c[-1]))

    def binop(self, c: Children) -> BinOp:
        return BinOp(left=c[0], op=str(c[1]), right=c[2], **_span(c[0], c[-1]))  # type: ignore[arg-type]

    def compare(self, c: Children) -> Compare:
        return Compare(left=c[0], op=str(c[1]), right=c[2], **_span(c[0], c[-1]))  # type: ignore[arg-type]

    def and_op(self, c: Children) -> BoolOp:
        return BoolOp(left=c[0], op="AND", right=c[2], **_span(c[0], c[-1]))

    def or_op(self, c: Children) -> BoolOp:
        return BoolOp(left=c[0], op="OR", right=c[2], **_span(c[0], c[-1]))

    def not_op(self, c: Children) -> UnaryOp:
        return UnaryOp(op="NOT", operand=c[1], **_span(c[0], c[-1]))

    def neg(self, c: Children) -> Number | UnaryOp:
        operand = c[1]
        if isinstance(operand, Number):  # -3 is a number, as in JSON, not an operation on one
            return Number(value=-operand.value, **_span(c[0], c[-1]))
        return UnaryOp(op="-", operand=operand, **_span(c[0], c[-1]))

    # -- rules that only name a keyword or a symbol: the token itself (its position is needed) --
    def _token(self, c: Children) -> Token:
        return c[0]

    scope = direction = comp_op = add_op = mul_op = _token


@dataclasses.dataclass(frozen=True, slots=True)
class _Model(Node):
    """``MODEL <name>;`` while the program is being assembled (the Program keeps only the name)."""

    name: str


def _assemble(items: list[Any]) -> Program:
    """Check the shape of the program and build it.

    Header (MODEL, then EXTENDS) first; one RETURN after every other statement; TRAINING CONFIG last.
    A program that EXTENDS another may leave RETURN out and inherit it.
    """
    name: _Model | None = None
    extends: Extends | None = None
    returns: Return | None = None
    config: TrainingConfig | None = None
    statements: list[Statement] = []
    for index, item in enumerate(items):
        if isinstance(item, TrainingConfig):
            if config is not None:
                _reject(f"only one TRAINING CONFIG is allowed (the first is on line {config.line})", item)
            config = item
            continue
        if config is not None:
            _reject(f"TRAINING CONFIG (line {config.line}) must end the program; move this above it", item)
        if isinstance(item, _Model):
            if name is not None:
                _reject(f"only one MODEL is allowed (the first is on line {name.line})", item)
            if index != 0:
                _reject("MODEL must be the first statement of the program", item)
            name = item
        elif isinstance(item, Extends):
            if extends is not None:
                _reject(f"only one EXTENDS is allowed (the first is on line {extends.line})", item)
            if index != (0 if name is None else 1):
                _reject("EXTENDS must come first, or right after MODEL", item)
            extends = item
        elif isinstance(item, Return):
            if returns is not None:
                _reject(f"only one RETURN is allowed (the first is on line {returns.line})", item)
            returns = item
        else:
            if returns is not None:
                _reject(f"RETURN (line {returns.line}) must be the last statement; move this above it", item)
            statements.append(item)
    if returns is None and extends is None:
        body = [item for item in items if not isinstance(item, TrainingConfig)]
        # point just past the last statement
        line, column = (body[-1].end_line, body[-1].end_column) if body else (1, 1)
        raise _Reject("missing RETURN: a program ends with 'RETURN <list>;'", line, column)
    return Program(
        name=name.name if name else None,
        extends=extends,
        statements=tuple(statements),
        returns=returns,
        training_config=config,
        **(_span(items[0], items[-1]) if items else _NOWHERE),
    )
