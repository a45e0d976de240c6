"""The Quasar abstract syntax tree: frozen dataclasses with positions.

Every node carries ``line``, ``column``, ``end_line`` and ``end_column`` (1-based; the end is just past
the node's last character; a parenthesized expression's span includes its parentheses). Positions
are left out of ``==`` and ``repr``, so two trees compare equal when they mean the same program,
wherever its text sits in the file::

    parse(to_source(parse(src))) == parse(src)      # to_source: proml_lab.quasar.printer

Sequences are tuples, so trees are immutable and hashable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = [
    "Bool",
    "BoolOp",
    "Call",
    "Compare",
    "Declaration",
    "Diversify",
    "Documents",
    "Expr",
    "Extends",
    "Filter",
    "Input",
    "Keep",
    "ListLit",
    "ListOp",
    "ListStatement",
    "MapEntry",
    "MapLit",
    "Name",
    "Node",
    "Null",
    "Number",
    "Order",
    "Program",
    "RESERVED_WORDS",
    "Return",
    "SCOPES",
    "Source",
    "Statement",
    "String",
    "TYPES",
    "Top",
    "TrainingConfig",
    "UnaryOp",
]

#: Value types a declaration or an input may name, in the order the docs list them.
TYPES: tuple[str, ...] = ("double", "Vector", "String", "Categorical", "List")
#: Input scopes: MEMBER once per query, DOCUMENT once per candidate, REQUEST from the request.
SCOPES: tuple[str, ...] = ("MEMBER", "DOCUMENT", "REQUEST")
#: Words the lexer never reads as names (type names are not reserved).
RESERVED_WORDS: frozenset[str] = frozenset(
    "MODEL EXTENDS WITH INPUT MEMBER DOCUMENT REQUEST TRAINABLE ORDER DOCUMENTS BY ASC DESC TOP OF "
    "FILTER WHERE DIVERSIFY MAX KEEP RETURN TRAINING CONFIG AND OR NOT true false null".split()
)

@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node: where its text starts and ends (1-based, end exclusive).

    The four positions are keyword-only, default to 0 (a node built by hand) and take no part in
    ``==``, ``hash`` or ``repr``.
    """

    line: int = field(default=0, compare=False, repr=False, kw_only=True)
    column: int = field(default=0, compare=False, repr=False, kw_only=True)
    end_line: int = field(default=0, compare=False, repr=False, kw_only=True)
    end_column: int = field(default=0, compare=False, repr=False, kw_only=True)


# ---- expressions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A reference to an input, a declared node or a list: ``member_primaryTitleNwEmbeddingV1``."""

    id: str


@dataclass(frozen=True, slots=True)
class Number(Node):
    """A number literal; ``int`` unless written with a ``.`` or an exponent. ``-3`` is ``Number(-3)``."""

    value: int | float


@dataclass(frozen=True, slots=True)
class String(Node):
    """A string literal, already unescaped (JSON escapes)."""

    value: str


@dataclass(frozen=True, slots=True)
class Bool(Node):
    """``true`` or ``false``."""

    value: bool


@dataclass(frozen=True, slots=True)
class Null(Node):
    """``null``."""


@dataclass(frozen=True, slots=True)
class Call(Node):
    """An operator call with positional arguments: ``DecisionTreesScorer(treeModel)``."""

    name: str
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class ListLit(Node):
    """A list literal: ``[job_seniority, interaction]``."""

    items: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class MapEntry(Node):
    """One ``key: value`` of a map; its position is the key's."""

    key: str
    value: Expr


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    """A JSON-like map ``{"num_trees": 200}``; keys are unique and keep their written order."""

    entries: tuple[MapEntry, ...] = ()

    def get(self, key: str, default: Expr | None = None) -> Expr | None:
        """Return the value stored under *key*, or *default*."""
        for entry in self.entries:
            if entry.key == key:
                return entry.value
        return default

    def keys(self) -> tuple[str, ...]:
        """The keys in written order."""
        return tuple(entry.key for entry in self.entries)


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    """Arithmetic: ``left op right`` with op one of ``+ - * /``."""

    left: Expr
    op: Literal["+", "-", "*", "/"]
    right: Expr


@dataclass(frozen=True, slots=True)
class UnaryOp(Node):
    """``-operand`` (when the operand is not a number literal) or ``NOT operand``."""

    op: Literal["-", "NOT"]
    operand: Expr


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """A comparison ``left op right`` with op one of ``== != < <= > >=`` (comparisons do not chain)."""

    left: Expr
    op: Literal["==", "!=", "<", "<=", ">", ">="]
    right: Expr


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    """``left AND right`` or ``left OR right`` (binary, left-associative, like :class:`BinOp`)."""

    left: Expr
    op: Literal["AND", "OR"]
    right: Expr


Expr: TypeAlias = (
    Name | Number | String | Bool | Null | Call | ListLit | MapLit | BinOp | UnaryOp | Compare | BoolOp
)


# ---- list operations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Documents(Node):
    """The keyword ``DOCUMENTS``: all candidate documents (those kept by the last ``KEEP``)."""


Source: TypeAlias = Documents | Name


@dataclass(frozen=True, slots=True)
class Order(Node):
    """``ORDER <source> BY <expr> WITH ASC|DESC``."""

    source: Source
    by: Expr
    direction: Literal["ASC", "DESC"]


@dataclass(frozen=True, slots=True)
class Top(Node):
    """``TOP <n> OF <source>``: the first *n* documents of the list."""

    n: int
    source: Source


@dataclass(frozen=True, slots=True)
class Filter(Node):
    """``FILTER <source> WHERE <condition>``."""

    source: Source
    condition: Expr


@dataclass(frozen=True, slots=True)
class Diversify(Node):
    """``DIVERSIFY <source> BY <expr> MAX <n>``: at most *max_per_value* documents per value of *by*."""

    source: Source
    by: Expr
    max_per_value: int


ListOp: TypeAlias = Order | Top | Filter | Diversify


# ---- statements ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input(Node):
    """``INPUT <scope> <type> <feature>;``: a marketplace feature by name."""

    scope: Literal["MEMBER", "DOCUMENT", "REQUEST"]
    type: str
    name: str


@dataclass(frozen=True, slots=True)
class Declaration(Node):
    """``<type> <name> = <expr>;`` or ``TRAINABLE [<type>] <name> = <Op>(...);``.

    ``type`` is ``None`` only for trainable nodes written without one; a trainable node's ``expr`` is
    always a :class:`Call`.
    """

    type: str | None
    name: str
    expr: Expr
    trainable: bool = False


@dataclass(frozen=True, slots=True)
class ListStatement(Node):
    """``<name> = ORDER|TOP|FILTER|DIVERSIFY ...;``."""

    name: str
    op: ListOp


@dataclass(frozen=True, slots=True)
class Keep(Node):
    """``KEEP TOP <n> DOCUMENTS BY <expr>;``: phased ranking; later statements see only those *n*."""

    n: int
    by: Expr


@dataclass(frozen=True, slots=True)
class Return(Node):
    """``RETURN <list>;``."""

    source: Source


@dataclass(frozen=True, slots=True)
class Extends(Node):
    """``EXTENDS "<path>" [WITH {"<node>.<param>": value, ...}];``."""

    path: str
    overrides: MapLit | None = None


@dataclass(frozen=True, slots=True)
class TrainingConfig(Node):
    """``TRAINING CONFIG {label: clicked, ...}`` at the end of the program."""

    options: MapLit


Statement: TypeAlias = Input | Declaration | ListStatement | Keep


@dataclass(frozen=True, slots=True)
class Program(Node):
    """A whole Quasar program.

    ``statements`` holds the inputs, declarations, list statements and ``KEEP`` s in written order;
    ``returns`` is the ``RETURN`` (``None`` only in a program that ``EXTENDS`` another and inherits it).
    """

    name: str | None
    extends: Extends | None
    statements: tuple[Statement, ...]
    returns: Return | None
    training_config: TrainingConfig | None = None
