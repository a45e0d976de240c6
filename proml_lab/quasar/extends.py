"""EXTENDS: merging a program with the base it extends, applying its ``WITH`` overrides.

Also the small pieces the checker shares with it: where a statement's text lives (for carets), error
construction, "did you mean" and literal values.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proml_lab.quasar import ast
from proml_lab.quasar.errors import QuasarError, QuasarNameError, QuasarParamError, QuasarTypeError
from proml_lab.quasar.ops import get_operator

Resolver = Callable[[str, str], tuple[ast.Program, str, str]]


@dataclass(frozen=True)
class Origin:
    """Where a statement's text lives (for carets)."""

    filename: str
    lines: tuple[str, ...] | None

    def line(self, n: int) -> str | None:
        if self.lines is None or not 1 <= n <= len(self.lines):
            return None
        return self.lines[n - 1]


def load_relative(path: str, relative_to: str) -> tuple[ast.Program, str, str]:
    """Default EXTENDS resolver: read *path* next to the extending file and parse it."""
    from proml_lab.quasar.syntax import parse

    folder = Path(relative_to).parent if relative_to and not relative_to.startswith("<") else Path.cwd()
    file = folder / path
    text = file.read_text(encoding="utf-8")
    return parse(text, filename=str(file)), text, str(file)


# ---- errors ----------------------------------------------------------------------------------------


def fail(cls: type[QuasarError], message: str, node: ast.Node | None, where: Origin,
          column: int | None = None) -> QuasarError:
    line = node.line if node is not None and node.line else None
    col = column if column is not None else (node.column if node is not None and node.line else None)
    return cls(message, filename=where.filename, line=line, column=col,
               source_line=where.line(line) if line else None)


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


# ---- EXTENDS --------------------------------------------------------------------------------------


def merge(program: ast.Program, where: Origin, resolve: Resolver, seen: tuple[str, ...]) -> tuple[
        list[tuple[ast.Statement, Origin]], tuple[ast.Return, Origin] | None,
        tuple[ast.TrainingConfig, Origin] | None, str | None]:
    """Statements of *program* with its base's merged in (a redeclared name replaces the base's)."""
    own = [(s, where) for s in program.statements]
    returns = (program.returns, where) if program.returns else None
    config = (program.training_config, where) if program.training_config else None
    if program.extends is None:
        return own, returns, config, program.name
    ext = program.extends
    if ext.path in seen:
        raise fail(QuasarNameError, f"EXTENDS cycle: {' -> '.join((*seen, ext.path))}", ext, where)
    try:
        base, text, base_file = resolve(ext.path, where.filename)
    except OSError as err:
        raise fail(QuasarNameError, f"cannot read the base program {ext.path!r}: {err.strerror or err}",
                    ext, where) from None
    base_where = Origin(base_file, tuple(text.splitlines()))
    items, base_ret, base_cfg, _ = merge(base, base_where, resolve, (*seen, ext.path))
    if ext.overrides is not None:
        items = [(s, w) for s, w in items]
        for entry in ext.overrides.entries:
            _override(items, entry, where)
    index = {stmt_name(s): i for i, (s, _) in enumerate(items) if stmt_name(s)}
    for stmt, w in own:
        key = stmt_name(stmt)
        if key and key in index:
            items[index[key]] = (stmt, w)
        else:
            items.append((stmt, w))
    return items, returns or base_ret, config or base_cfg, program.name


def stmt_name(stmt: ast.Statement) -> str | None:
    return stmt.name if isinstance(stmt, ast.Input | ast.Declaration | ast.ListStatement) else None


_LIST_PARAMS: dict[type, dict[str, str]] = {
    ast.Top: {"n": "n"}, ast.Diversify: {"max": "max_per_value"}, ast.Order: {"direction": "direction"}}


def _override(items: list[tuple[ast.Statement, Origin]], entry: ast.MapEntry, where: Origin) -> None:
    """Apply one ``"<node>.<param>": value`` override onto the base's statements, in place."""
    node_name, _, param = entry.key.partition(".")
    names = [n for s, _ in items if (n := stmt_name(s))]
    if not param:
        raise fail(QuasarNameError, f"override {entry.key!r} must be written \"<node>.<param>\"",
                    entry, where)
    hits = [i for i, (s, _) in enumerate(items) if stmt_name(s) == node_name]
    if not hits:
        raise fail(QuasarNameError, f"override {entry.key!r}: the base program has no node {node_name!r}"
                    f"{did_you_mean(node_name, names)}", entry, where)
    i = hits[0]
    stmt, w = items[i]
    value = literal(entry.value, where)
    if isinstance(stmt, ast.ListStatement):
        allowed = _LIST_PARAMS.get(type(stmt.op), {})
        if param not in allowed:
            raise fail(QuasarParamError, f"override {entry.key!r}: {type(stmt.op).__name__.upper()} has no "
                        f"parameter {param!r}; allowed: {', '.join(allowed) or 'none'}", entry, where)
        ok = value in ("ASC", "DESC") if param == "direction" else (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        if not ok:
            wanted = "ASC or DESC" if param == "direction" else "an integer >= 1"
            raise fail(QuasarParamError, f"override {entry.key!r} must be {wanted}. Got {value!r} instead.",
                        entry, where)
        items[i] = (dataclasses.replace(stmt, op=dataclasses.replace(stmt.op, **{allowed[param]: value})), w)
        return
    call = stmt.expr if isinstance(stmt, ast.Declaration) else None
    if not isinstance(stmt, ast.Declaration) or not isinstance(call, ast.Call):
        raise fail(QuasarParamError, f"override {entry.key!r}: node {node_name!r} is not an operator call",
                    entry, where)
    try:
        op = get_operator(call.name)
    except QuasarNameError as err:
        raise fail(QuasarNameError, err.message, call, w) from None
    slot = next((k for k, a in enumerate(op.args) if a.kind == "params"), None)
    allowed_params = sorted(op.params.model_fields) if op.params else []
    if slot is None or param not in allowed_params:
        raise fail(QuasarParamError, f"override {entry.key!r}: {op.name} has no parameter {param!r}; "
                    f"allowed: {', '.join(allowed_params) or 'none'}", entry, where)
    args = list(call.args)
    while len(args) <= slot:
        args.append(ast.MapLit((), line=call.line, column=call.column))
    old = args[slot]
    if not isinstance(old, ast.MapLit):
        raise fail(QuasarTypeError, f"{op.name} expects a map of parameters here", old, w)
    new_entry = ast.MapEntry(param, entry.value, line=entry.line, column=entry.column)
    entries = [e for e in old.entries if e.key != param]
    entries.insert(next((k for k, e in enumerate(old.entries) if e.key == param), len(entries)), new_entry)
    args[slot] = dataclasses.replace(old, entries=tuple(entries))
    items[i] = (dataclasses.replace(stmt, expr=dataclasses.replace(call, args=tuple(args))), w)


# ---- literals ---------------------------------------------------------------------------------------


def literal(e: ast.Expr, where: Origin, *, names_ok: bool = False) -> Any:
    """The JSON value of a literal expression (a name reads as its text only where *names_ok*)."""
    if isinstance(e, ast.Number | ast.String | ast.Bool):
        return e.value
    if isinstance(e, ast.Null):
        return None
    if isinstance(e, ast.ListLit):
        return [literal(i, where, names_ok=names_ok) for i in e.items]
    if isinstance(e, ast.MapLit):
        return {x.key: literal(x.value, where, names_ok=names_ok) for x in e.entries}
    if isinstance(e, ast.Name) and names_ok:
        return e.id
    raise fail(QuasarTypeError, "expected a literal value (number, string, list or map) here", e, where)
