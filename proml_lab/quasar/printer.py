"""Print a Quasar AST back as canonical source: :func:`to_source`."""

from __future__ import annotations

import json
import re

from proml_lab.quasar.ast import (
    RESERVED_WORDS,
    BinOp,
    Bool,
    BoolOp,
    Call,
    Compare,
    Declaration,
    Diversify,
    Documents,
    Expr,
    Filter,
    Input,
    Keep,
    ListLit,
    ListOp,
    ListStatement,
    MapLit,
    Name,
    Node,
    Null,
    Number,
    Order,
    Program,
    Source,
    Statement,
    String,
    Top,
    UnaryOp,
)

__all__ = ["to_source"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_WIDTH = 100
_INDENT = 4
# binding strength, loosest first; a literal or call binds tightest
_PREC = {"OR": 1, "AND": 2, "NOT": 3, "compare": 4, "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7, "atom": 8}


def to_source(program: Program) -> str:
    """Print *program* as canonical Quasar source.

    Canonical means: one statement per line, single spaces, the fewest parentheses that keep the
    meaning (plus those around a comparison under ``NOT``), no trailing commas, and calls and
    literals that would pass 100 columns broken one item per line. Comments are not part of the tree
    and are not printed.

    Parameters
    ----------
    program : Program
        A tree from :func:`proml_lab.quasar.parse` (or built by hand).

    Returns
    -------
    str
        Source text, ending in a newline, for which ``parse(to_source(p)) == p``.

    Examples
    --------
    >>> from proml_lab.quasar import parse
    >>> print(to_source(parse("double s=0.3*(a+b);r=ORDER DOCUMENTS BY s WITH DESC;RETURN r;")), end="")
    double s = 0.3 * (a + b);
    r = ORDER DOCUMENTS BY s WITH DESC;
    RETURN r;
    """
    blocks: list[list[str]] = []
    header = []
    if program.name is not None:
        header.append(f"MODEL {program.name};")
    if program.extends is not None:
        text = f"EXTENDS {_string(program.extends.path)}"
        if program.extends.overrides is not None:
            text += " WITH " + _render(program.extends.overrides, len(text) + 6, 0)
        header.append(text + ";")
    blocks.append(header)
    previous: type | None = None
    for statement in program.statements:
        kind = Input if isinstance(statement, Input) else Node
        if kind is not previous:
            blocks.append([])
            previous = kind
        blocks[-1].append(_statement(statement))
    if program.returns is not None:
        if previous is not Node:  # RETURN closes the block of nodes, never the header or the inputs
            blocks.append([])
        blocks[-1].append(f"RETURN {_flat(program.returns.source)};")
    if program.training_config is not None:
        blocks.append(["TRAINING CONFIG " + _render(program.training_config.options, 16, 0, bare_keys=True)])
    return "\n\n".join("\n".join(block) for block in blocks if block) + "\n"


def _statement(node: Statement) -> str:
    """One statement, with its ';'."""
    if isinstance(node, Input):
        return f"INPUT {node.scope} {node.type} {node.name};"
    if isinstance(node, Declaration):
        words = (["TRAINABLE"] if node.trainable else []) + ([node.type] if node.type else []) + [node.name]
        head = " ".join(words) + " = "
        return head + _render(node.expr, len(head), 0) + ";"
    if isinstance(node, ListStatement):
        return f"{node.name} = {_list_op(node.op)};"
    if isinstance(node, Keep):
        return f"KEEP TOP {node.n} DOCUMENTS BY {_flat(node.by)};"
    raise TypeError(f"not a Quasar statement: {node!r}")


def _list_op(op: ListOp) -> str:
    """``ORDER ...``, ``TOP ...``, ``FILTER ...`` or ``DIVERSIFY ...``."""
    if isinstance(op, Order):
        return f"ORDER {_flat(op.source)} BY {_flat(op.by)} WITH {op.direction}"
    if isinstance(op, Top):
        return f"TOP {op.n} OF {_flat(op.source)}"
    if isinstance(op, Filter):
        return f"FILTER {_flat(op.source)} WHERE {_flat(op.condition)}"
    if isinstance(op, Diversify):
        return f"DIVERSIFY {_flat(op.source)} BY {_flat(op.by)} MAX {op.max_per_value}"
    raise TypeError(f"not a Quasar list operation: {op!r}")


def _string(value: str) -> str:
    """A JSON string literal (non-ASCII kept as is)."""
    return json.dumps(value, ensure_ascii=False)


def _key(key: str, bare: bool) -> str:
    """A map key: bare when asked for and it reads as a name, else quoted."""
    return key if bare and _IDENTIFIER.match(key) and key not in RESERVED_WORDS else _string(key)


def _number(value: int | float) -> str:
    """Shortest text that reads back as the same number."""
    return repr(value) if isinstance(value, float) else str(value)


def _prec(node: Expr | Source) -> int:
    """How tightly *node* binds when printed."""
    if isinstance(node, (BinOp, BoolOp)):
        return _PREC[node.op]
    if isinstance(node, Compare):
        return _PREC["compare"]
    if isinstance(node, UnaryOp):
        return _PREC["NOT" if node.op == "NOT" else "neg"]
    if isinstance(node, Number) and node.value < 0:
        return _PREC["neg"]
    return _PREC["atom"]


def _wrap(node: Expr, needs_parens: bool) -> str:
    """*node* flat, in parentheses when the context would otherwise bind it differently."""
    text = _flat(node)
    return f"({text})" if needs_parens else text


def _flat(node: Expr | Source, bare_keys: bool = False) -> str:
    """*node* on one line."""
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Documents):
        return "DOCUMENTS"
    if isinstance(node, Number):
        return _number(node.value)
    if isinstance(node, String):
        return _string(node.value)
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Null):
        return "null"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_flat(a) for a in node.args)})"
    if isinstance(node, ListLit):
        return f"[{', '.join(_flat(i) for i in node.items)}]"
    if isinstance(node, MapLit):
        return "{" + ", ".join(f"{_key(e.key, bare_keys)}: {_flat(e.value)}" for e in node.entries) + "}"
    if isinstance(node, (BinOp, BoolOp)):
        # left-associative: walk a chain like a + b - c + ... in a loop (a long sum must not recurse
        # once per term); a right operand of equal strength needs parentheses
        p = _PREC[node.op]
        chain: list[tuple[str, Expr]] = []
        left: Expr = node
        while isinstance(left, (BinOp, BoolOp)) and _PREC[left.op] == p:
            chain.append((left.op, left.right))
            left = left.left
        parts = [_wrap(left, _prec(left) < p)]
        parts += [f"{op} {_wrap(right, _prec(right) <= p)}" for op, right in reversed(chain)]
        return " ".join(parts)
    if isinstance(node, Compare):
        p = _PREC["compare"]  # not associative: neither side may be a comparison or looser
        lhs, rhs = _wrap(node.left, _prec(node.left) <= p), _wrap(node.right, _prec(node.right) <= p)
        return f"{lhs} {node.op} {rhs}"
    if isinstance(node, UnaryOp):
        if node.op == "NOT":
            # NOT binds looser than a comparison; parentheses there anyway, as readers expect them
            return f"NOT {_wrap(node.operand, _prec(node.operand) <= _PREC['compare'])}"
        return f"-{_wrap(node.operand, _prec(node.operand) < _PREC['atom'])}"
    raise TypeError(f"not a Quasar expression: {node!r}")


def _render(node: Expr, column: int, indent: int, bare_keys: bool = False) -> str:
    """*node* starting at *column*; calls and literals that would pass the width break one item a line."""
    flat = _flat(node, bare_keys)
    if column + len(flat) <= _WIDTH or not isinstance(node, (Call, ListLit, MapLit)):
        return flat
    inner = indent + _INDENT
    pad = " " * inner
    if isinstance(node, Call):
        opening, closing = f"{node.name}(", ")"
        items = [_render(a, inner, inner) for a in node.args]
    elif isinstance(node, ListLit):
        opening, closing = "[", "]"
        items = [_render(i, inner, inner) for i in node.items]
    else:
        opening, closing = "{", "}"
        items = []
        for entry in node.entries:
            key = f"{_key(entry.key, bare_keys)}: "
            items.append(key + _render(entry.value, inner + len(key), inner))
    if not items:
        return flat
    body = ",\n".join(pad + item for item in items)
    return f"{opening}\n{body}\n{' ' * indent}{closing}"
