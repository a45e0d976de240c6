"""The Quasar checker: EXTENDS, names, feature resolution, types, scopes, operator binding.

``check`` reads a parsed program as a pipeline of named steps::

    merge EXTENDS (apply WITH overrides)  ->  resolve names and features  ->  bind operators
    ->  infer types and scopes  ->  check list statements  ->  CheckedProgram (with its IR)

Every problem raises a :class:`~proml_lab.quasar.errors.QuasarError` subclass with a line, a column
and the source line with a caret.

Two conveniences keep LinkedIn-style excerpts short:

* a name that is not declared but is a catalog feature is an implicit input, its scope taken from the
  feature's entity (``member`` -> MEMBER, ``request`` -> REQUEST, any other -> DOCUMENT);
* an undeclared name passed where an operator expects a *model* (``DecisionTreesScorer(treeModel)``) is
  an implicit ``TRAINABLE`` node of the operator's default model (``TreeEnsemble``) over every named
  ``double`` / ``Vector`` value declared before it (or every such input, when no value is declared).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proml_lab.errors import UnknownFeatureError
from proml_lab.quasar import ast
from proml_lab.quasar import ir as irm
from proml_lab.quasar.errors import (
    QuasarError,
    QuasarNameError,
    QuasarParamError,
    QuasarScopeError,
    QuasarTypeError,
)
from proml_lab.quasar.ops import QType, get_operator
from proml_lab.quasar.ops.registry import Operator

__all__ = ["CheckedProgram", "check", "load_relative"]

SCOPE_RANK = {"constant": 0, "request": 1, "member": 2, "document": 3}
FEATURE_TYPES = {"numeric": "double", "binary": "double", "vector": "Vector", "categorical": "Categorical",
                 "text": "String"}
_BINOPS = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "==": "Eq", "!=": "Ne", "<": "Lt", "<=": "Le",
           ">": "Gt", ">=": "Ge", "AND": "And", "OR": "Or"}

Resolver = Callable[[str, str], tuple[ast.Program, str, str]]


@dataclass(frozen=True)
class CheckedProgram:
    """A program that passed every check: its merged statements and its typed DAG (``ir``)."""

    name: str | None
    ir: irm.IR

    @property
    def nodes(self) -> tuple[irm.IRNode, ...]:
        return self.ir.nodes


@dataclass(frozen=True)
class _Origin:
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


def check(
    program: ast.Program,
    *,
    catalog: Any = None,
    resolve_extends: Resolver | None = None,
    source: str | None = None,
    filename: str = "<quasar>",
) -> CheckedProgram:
    """Check a parsed program and build its IR.

    Parameters
    ----------
    program : Program
        From :func:`proml_lab.quasar.parse`.
    catalog : Catalog, optional
        Feature catalog to resolve inputs against; without one, inputs are trusted as declared.
    resolve_extends : callable, optional
        ``(path, extending_filename) -> (Program, source, filename)``; default: read the file next
        to the extending one (:func:`load_relative`).
    source, filename : str, optional
        The program's text and name, for error carets.

    Examples
    --------
    >>> from proml_lab.quasar import parse
    >>> src = "INPUT DOCUMENT double x; double y = Log1p(x); r = ORDER DOCUMENTS BY y WITH DESC; RETURN r;"
    >>> [n.id for n in check(parse(src)).ir.nodes]
    ['x', 'y', 'r', '_return']
    """
    origin = _Origin(filename, tuple(source.splitlines()) if source is not None else None)
    items, returns, config, name = _merge(program, origin, resolve_extends or load_relative, ())
    checker = _Checker(catalog)
    checker.later = {n: s.line for s, _ in items if (n := _stmt_name(s))}
    for stmt, where in items:
        checker.statement(stmt, where)
    if returns is None:
        raise QuasarError("the program has no RETURN", filename=filename)
    checker.returns(*returns)
    training = _literal(config[0].options, config[1], names_ok=True) if config else None
    ir = irm.IR(name, tuple(checker.nodes.values()), "_return", training)
    return CheckedProgram(name, ir)


# ---- errors ----------------------------------------------------------------------------------------


def _fail(cls: type[QuasarError], message: str, node: ast.Node | None, where: _Origin,
          column: int | None = None) -> QuasarError:
    line = node.line if node is not None and node.line else None
    col = column if column is not None else (node.column if node is not None and node.line else None)
    return cls(message, filename=where.filename, line=line, column=col,
               source_line=where.line(line) if line else None)


def _did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


# ---- EXTENDS --------------------------------------------------------------------------------------


def _merge(program: ast.Program, where: _Origin, resolve: Resolver, seen: tuple[str, ...]) -> tuple[
        list[tuple[ast.Statement, _Origin]], tuple[ast.Return, _Origin] | None,
        tuple[ast.TrainingConfig, _Origin] | None, str | None]:
    """Statements of *program* with its base's merged in (a redeclared name replaces the base's)."""
    own = [(s, where) for s in program.statements]
    returns = (program.returns, where) if program.returns else None
    config = (program.training_config, where) if program.training_config else None
    if program.extends is None:
        return own, returns, config, program.name
    ext = program.extends
    if ext.path in seen:
        raise _fail(QuasarNameError, f"EXTENDS cycle: {' -> '.join((*seen, ext.path))}", ext, where)
    try:
        base, text, base_file = resolve(ext.path, where.filename)
    except OSError as err:
        raise _fail(QuasarNameError, f"cannot read the base program {ext.path!r}: {err.strerror or err}",
                    ext, where) from None
    base_where = _Origin(base_file, tuple(text.splitlines()))
    items, base_ret, base_cfg, _ = _merge(base, base_where, resolve, (*seen, ext.path))
    if ext.overrides is not None:
        items = [(s, w) for s, w in items]
        for entry in ext.overrides.entries:
            _override(items, entry, where)
    index = {_stmt_name(s): i for i, (s, _) in enumerate(items) if _stmt_name(s)}
    for stmt, w in own:
        key = _stmt_name(stmt)
        if key and key in index:
            items[index[key]] = (stmt, w)
        else:
            items.append((stmt, w))
    return items, returns or base_ret, config or base_cfg, program.name


def _stmt_name(stmt: ast.Statement) -> str | None:
    return stmt.name if isinstance(stmt, ast.Input | ast.Declaration | ast.ListStatement) else None


_LIST_PARAMS: dict[type, dict[str, str]] = {
    ast.Top: {"n": "n"}, ast.Diversify: {"max": "max_per_value"}, ast.Order: {"direction": "direction"}}


def _override(items: list[tuple[ast.Statement, _Origin]], entry: ast.MapEntry, where: _Origin) -> None:
    """Apply one ``"<node>.<param>": value`` override onto the base's statements, in place."""
    node_name, _, param = entry.key.partition(".")
    names = [n for s, _ in items if (n := _stmt_name(s))]
    if not param:
        raise _fail(QuasarNameError, f"override {entry.key!r} must be written \"<node>.<param>\"",
                    entry, where)
    hits = [i for i, (s, _) in enumerate(items) if _stmt_name(s) == node_name]
    if not hits:
        raise _fail(QuasarNameError, f"override {entry.key!r}: the base program has no node {node_name!r}"
                    f"{_did_you_mean(node_name, names)}", entry, where)
    i = hits[0]
    stmt, w = items[i]
    value = _literal(entry.value, where)
    if isinstance(stmt, ast.ListStatement):
        allowed = _LIST_PARAMS.get(type(stmt.op), {})
        if param not in allowed:
            raise _fail(QuasarParamError, f"override {entry.key!r}: {type(stmt.op).__name__.upper()} has no "
                        f"parameter {param!r}; allowed: {', '.join(allowed) or 'none'}", entry, where)
        ok = value in ("ASC", "DESC") if param == "direction" else (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        if not ok:
            wanted = "ASC or DESC" if param == "direction" else "an integer >= 1"
            raise _fail(QuasarParamError, f"override {entry.key!r} must be {wanted}. Got {value!r} instead.",
                        entry, where)
        items[i] = (dataclasses.replace(stmt, op=dataclasses.replace(stmt.op, **{allowed[param]: value})), w)
        return
    call = stmt.expr if isinstance(stmt, ast.Declaration) else None
    if not isinstance(stmt, ast.Declaration) or not isinstance(call, ast.Call):
        raise _fail(QuasarParamError, f"override {entry.key!r}: node {node_name!r} is not an operator call",
                    entry, where)
    try:
        op = get_operator(call.name)
    except QuasarNameError as err:
        raise _fail(QuasarNameError, err.message, call, w) from None
    slot = next((k for k, a in enumerate(op.args) if a.kind == "params"), None)
    allowed_params = sorted(op.params.model_fields) if op.params else []
    if slot is None or param not in allowed_params:
        raise _fail(QuasarParamError, f"override {entry.key!r}: {op.name} has no parameter {param!r}; "
                    f"allowed: {', '.join(allowed_params) or 'none'}", entry, where)
    args = list(call.args)
    while len(args) <= slot:
        args.append(ast.MapLit((), line=call.line, column=call.column))
    old = args[slot]
    if not isinstance(old, ast.MapLit):
        raise _fail(QuasarTypeError, f"{op.name} expects a map of parameters here", old, w)
    new_entry = ast.MapEntry(param, entry.value, line=entry.line, column=entry.column)
    entries = [e for e in old.entries if e.key != param]
    entries.insert(next((k for k, e in enumerate(old.entries) if e.key == param), len(entries)), new_entry)
    args[slot] = dataclasses.replace(old, entries=tuple(entries))
    items[i] = (dataclasses.replace(stmt, expr=dataclasses.replace(call, args=tuple(args))), w)


# ---- literals ---------------------------------------------------------------------------------------


def _literal(e: ast.Expr, where: _Origin, *, names_ok: bool = False) -> Any:
    """The JSON value of a literal expression (a name reads as its text only where *names_ok*)."""
    if isinstance(e, ast.Number | ast.String | ast.Bool):
        return e.value
    if isinstance(e, ast.Null):
        return None
    if isinstance(e, ast.ListLit):
        return [_literal(i, where, names_ok=names_ok) for i in e.items]
    if isinstance(e, ast.MapLit):
        return {x.key: _literal(x.value, where, names_ok=names_ok) for x in e.entries}
    if isinstance(e, ast.Name) and names_ok:
        return e.id
    raise _fail(QuasarTypeError, "expected a literal value (number, string, list or map) here", e, where)


# ---- the checker ------------------------------------------------------------------------------------


@dataclass
class _Value:
    """What an expression evaluates to: a node reference (or a literal number) with type and scope."""

    ref: Any
    type: QType
    scope: str


class _Checker:
    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.nodes: dict[str, irm.IRNode] = {}
        self.lines: dict[str, int] = {}
        self.counter = 0
        self.documents: dict[str, Any] = {"$documents": None}
        self.keeps = 0
        self.later: dict[str, int] = {}  # every declared name -> its line, for "used before declared"

    # statements

    def statement(self, stmt: ast.Statement, where: _Origin) -> None:
        if isinstance(stmt, ast.Input):
            self.input(stmt, where)
        elif isinstance(stmt, ast.Declaration):
            self.declaration(stmt, where)
        elif isinstance(stmt, ast.ListStatement):
            self.list_statement(stmt, where)
        else:
            self.keep(stmt, where)

    def _claim(self, name: str, node: ast.Node, where: _Origin) -> None:
        if name in self.nodes:
            raise _fail(QuasarNameError, f"{name!r} is already declared (line {self.lines.get(name, '?')})",
                        node, where)

    def _add(self, node: irm.IRNode, line: int = 0) -> irm.IRNode:
        self.nodes[node.id] = node
        self.lines[node.id] = line
        return node

    def input(self, stmt: ast.Input, where: _Origin) -> None:
        self._claim(stmt.name, stmt, where)
        declared = QType(stmt.type)
        scope = stmt.scope.lower()
        column = _name_column(stmt, stmt.name, where)
        if self.catalog is not None:
            try:
                rec = self.catalog.feature(stmt.name)
            except UnknownFeatureError as err:
                close = ", ".join(repr(s) for s in err.suggestions)
                hint = f"; did you mean {close}?" if close else ""
                raise _fail(QuasarNameError, f"unknown feature {stmt.name!r}{hint}", stmt, where,
                            column) from None
            actual = _feature_type(rec)
            if not actual.fits(declared):
                raise _fail(QuasarTypeError, f"input {stmt.name!r} is declared {declared} but the feature is "
                            f"{actual} ({rec.type})", stmt, where, column)
            wanted = _entity_scope(rec.entity)
            if wanted != scope:
                raise _fail(QuasarScopeError, f"input {stmt.name!r} is declared {stmt.scope} but the feature "
                            f"belongs to entity {rec.entity!r} ({wanted.upper()} scope)", stmt, where, column)
            if declared.name == "Vector":
                declared = actual
        self._add(irm.Input(id=stmt.name, type=str(declared), scope=scope, feature=stmt.name,
                            span=_span(stmt)), stmt.line)

    def declaration(self, stmt: ast.Declaration, where: _Origin) -> None:
        self._claim(stmt.name, stmt, where)
        if stmt.trainable:
            assert isinstance(stmt.expr, ast.Call)
            op = self._op(stmt.expr, where)
            if not op.trainable:
                raise _fail(QuasarTypeError, f"TRAINABLE {stmt.name!r} needs a trainable operator; "
                            f"{op.name} is not one", stmt.expr, where)
        value = self.expr(stmt.expr, where, name=stmt.name, span=_span(stmt))
        if value.ref != {"$ref": stmt.name}:  # a bare name or a literal: an alias node
            value = self._make("Identity" if isinstance(value.ref, dict) else "Constant",
                               {"x": value.ref} if isinstance(value.ref, dict) else {"value": value.ref},
                               value.type, value.scope, stmt, name=stmt.name, span=_span(stmt))
        if stmt.type is not None and not value.type.fits(QType(stmt.type)):
            raise _fail(QuasarTypeError,
                        f"{stmt.name!r} is declared {stmt.type} but its value is {value.type}",
                        stmt.expr, where)

    def list_statement(self, stmt: ast.ListStatement, where: _Origin) -> None:
        self._claim(stmt.name, stmt, where)
        op = stmt.op
        source = self.source(op.source, where)
        span = _span(stmt)
        if isinstance(op, ast.Order):
            by = self.ranking_value(op.by, where, "ORDER ... BY")
            node: irm.IRNode = irm.Order(id=stmt.name, type="List", scope="list", inputs=_refs(source, by),
                                         params={"source": source, "by": by, "direction": op.direction},
                                         span=span)
        elif isinstance(op, ast.Top):
            node = irm.Top(id=stmt.name, type="List", scope="list", inputs=_refs(source),
                           params={"source": source, "n": op.n}, span=span)
        elif isinstance(op, ast.Filter):
            cond = self.document_value(op.condition, where, "FILTER ... WHERE", ("double",))
            node = irm.Filter(id=stmt.name, type="List", scope="list", inputs=_refs(source, cond),
                              params={"source": source, "condition": cond}, span=span)
        else:
            by = self.document_value(op.by, where, "DIVERSIFY ... BY", ("double", "Categorical", "String"))
            node = irm.Diversify(id=stmt.name, type="List", scope="list", inputs=_refs(source, by),
                                 params={"source": source, "by": by, "max": op.max_per_value}, span=span)
        self._add(node, stmt.line)

    def keep(self, stmt: ast.Keep, where: _Origin) -> None:
        by = self.ranking_value(stmt.by, where, "KEEP ... BY")
        self.keeps += 1
        node_id = f"_keep_{self.keeps}"
        self._add(irm.Keep(id=node_id, type="List", scope="list", inputs=_refs(self.documents, by),
                           params={"source": self.documents, "n": stmt.n, "by": by}, span=_span(stmt)),
                  stmt.line)
        self.documents = {"$ref": node_id}

    def returns(self, stmt: ast.Return, where: _Origin) -> None:
        source = self.source(stmt.source, where)
        self._add(irm.Return(id="_return", type="List", scope="list", inputs=_refs(source),
                             params={"source": source}, span=_span(stmt)), stmt.line)

    def source(self, src: ast.Source, where: _Origin) -> Any:
        if isinstance(src, ast.Documents):
            return self.documents
        node = self.nodes.get(src.id)
        if node is None:
            lists = [k for k, n in self.nodes.items() if n.scope == "list" and not k.startswith("_")]
            raise _fail(QuasarNameError, f"undeclared list {src.id!r}{_did_you_mean(src.id, lists)}",
                        src, where)
        if node.scope != "list":
            raise _fail(QuasarTypeError, f"expected a list (or DOCUMENTS) but {src.id!r} is {node.type}",
                        src, where)
        return {"$ref": src.id}

    def ranking_value(self, e: ast.Expr, where: _Origin, what: str) -> Any:
        return self.document_value(e, where, what, ("double",))

    def document_value(self, e: ast.Expr, where: _Origin, what: str, types: tuple[str, ...]) -> Any:
        v = self.expr(e, where)
        if not any(v.type.fits(QType(t)) for t in types):
            raise _fail(QuasarTypeError, f"{what} needs {' or '.join(types)} but the expression is {v.type}",
                        e, where)
        if v.scope != "document":
            raise _fail(QuasarScopeError, f"{what} needs a DOCUMENT-scope value (one per candidate) but the "
                        f"expression has {v.scope.upper()} scope", e, where)
        return v.ref

    # expressions

    def expr(self, e: ast.Expr, where: _Origin, *, name: str | None = None,
             span: tuple[int, int, int, int] | None = None) -> _Value:
        if isinstance(e, ast.Number):
            return _Value(e.value, QType("double"), "constant")
        if isinstance(e, ast.Name):
            return self.name(e, where)
        if isinstance(e, ast.Call):
            return self.call(e, where, name=name, span=span)
        if isinstance(e, ast.BinOp | ast.Compare | ast.BoolOp):
            call = ast.Call(_BINOPS[e.op], (e.left, e.right), line=e.line, column=e.column,
                            end_line=e.end_line, end_column=e.end_column)
            return self.call(call, where, name=name, span=span)
        if isinstance(e, ast.UnaryOp):
            call = ast.Call("Neg" if e.op == "-" else "Not", (e.operand,), line=e.line, column=e.column,
                            end_line=e.end_line, end_column=e.end_column)
            return self.call(call, where, name=name, span=span)
        what = {ast.String: "a string", ast.Bool: "a boolean", ast.Null: "null",
                ast.ListLit: "a list literal",
                ast.MapLit: "a map literal"}.get(type(e), "this")
        raise _fail(QuasarTypeError, f"{what} cannot be used as a value here", e, where)

    def name(self, e: ast.Name, where: _Origin) -> _Value:
        node = self.nodes.get(e.id)
        if node is None:
            node = self._implicit_input(e, where)
        if node.scope == "list":
            raise _fail(QuasarTypeError, f"{e.id!r} is a list; a value (double, Vector ...) is expected here",
                        e, where)
        return _Value({"$ref": e.id}, QType.parse(node.type), node.scope)

    def _implicit_input(self, e: ast.Name, where: _Origin) -> irm.IRNode:
        if self.catalog is not None:
            try:
                rec = self.catalog.feature(e.id)
            except UnknownFeatureError:
                rec = None
            if rec is not None:
                node = irm.Input(id=e.id, type=str(_feature_type(rec)), scope=_entity_scope(rec.entity),
                                 feature=e.id, span=_span(e))
                return self._add(node, e.line)
        if e.id in self.later:
            raise _fail(QuasarNameError, f"{e.id!r} is used before it is declared (line {self.later[e.id]})",
                        e, where)
        known = [k for k in self.nodes if not k.startswith("_")]
        raise _fail(QuasarNameError, f"undeclared name {e.id!r}{_did_you_mean(e.id, known)}", e, where)

    def _op(self, call: ast.Call, where: _Origin) -> Operator:
        try:
            return get_operator(call.name)
        except QuasarNameError as err:
            raise _fail(QuasarNameError, err.message, call, where) from None

    def call(self, call: ast.Call, where: _Origin, *, name: str | None = None,
             span: tuple[int, int, int, int] | None = None) -> _Value:
        op = self._op(call, where)
        if len(call.args) > len(op.args):
            raise _fail(QuasarTypeError, f"{op.name} takes at most {len(op.args)} argument(s) "
                        f"({', '.join(a.name for a in op.args)}) but got {len(call.args)}", call, where)
        params: dict[str, Any] = {}
        types: dict[str, Any] = {}
        scopes: list[str] = []
        for k, arg in enumerate(op.args):
            if k >= len(call.args):
                if not arg.optional:
                    raise _fail(QuasarTypeError, f"{op.name} is missing its argument {arg.name!r} "
                                f"({arg.kind})", call, where)
                continue
            e = call.args[k]
            if arg.kind == "node":
                v = self.arg_value(op, arg.name, arg.types, e, where)
                params[arg.name], types[arg.name] = v.ref, v.type
                scopes.append(v.scope)
            elif arg.kind == "nodes":
                if not isinstance(e, ast.ListLit):
                    raise _fail(QuasarTypeError,
                                f"{op.name}'s argument {arg.name!r} must be a list of values "
                                "written [a, b, ...]", e, where)
                vs = [self.arg_value(op, arg.name, arg.types, item, where) for item in e.items]
                params[arg.name], types[arg.name] = [v.ref for v in vs], [v.type for v in vs]
                scopes += [v.scope for v in vs]
            elif arg.kind == "model":
                v = self.model(op, e, where)
                params[arg.name], types[arg.name] = v.ref, v.type
                scopes.append(v.scope)
            elif arg.kind == "literal":
                params[arg.name] = types[arg.name] = _literal(e, where)
            else:
                params[arg.name] = types[arg.name] = self.param_map(op, e, where, scopes)
        if op.validate is not None:
            try:
                op.validate(params)
            except QuasarParamError as err:
                raise _fail(QuasarParamError, err.message, call, where) from None
        try:
            out = op.output_type(types, params)
        except QuasarTypeError as err:
            raise _fail(QuasarTypeError, f"{op.name}: {err.message}", call, where) from None
        except (KeyError, TypeError, IndexError) as err:
            raise _fail(QuasarTypeError, f"{op.name} cannot type its arguments: {err}", call, where) from None
        scope = max(scopes, key=SCOPE_RANK.__getitem__, default="constant")
        if op.scope != "auto":
            scope = op.scope
        return self._make(op.name, params, out, scope, call, name=name, span=span or _span(call), op=op)

    def arg_value(self, op: Operator, arg: str, allowed: tuple[str, ...], e: ast.Expr,
                  where: _Origin) -> _Value:
        v = self.expr(e, where)
        if not any(v.type.fits(QType(t)) for t in allowed):
            raise _fail(QuasarTypeError, f"{op.name}'s argument {arg!r} must be {' or '.join(allowed)} "
                        f"but got {v.type}", e, where)
        return v

    def param_map(self, op: Operator, e: ast.Expr, where: _Origin, scopes: list[str]) -> dict[str, Any]:
        if not isinstance(e, ast.MapLit):
            raise _fail(QuasarTypeError,
                        f"{op.name} expects a map of parameters {{\"name\": value, ...}} here",
                        e, where)
        values: dict[str, Any] = {}
        # node-valued parameters accept what the operator's list argument accepts (GLMix: its features)
        allowed = next((a.types for a in op.args if a.kind == "nodes"), ("double", "Vector"))
        for entry in e.entries:
            kind = op.node_params.get(entry.key)
            if kind == "node":
                v = self.arg_value(op, entry.key, allowed, entry.value, where)
                values[entry.key] = v.ref
                scopes.append(v.scope)
            elif kind == "nodes":
                if not isinstance(entry.value, ast.ListLit):
                    raise _fail(QuasarTypeError,
                                f"{op.name}'s parameter {entry.key!r} must be a list of values",
                                entry.value, where)
                vs = [self.arg_value(op, entry.key, allowed, i, where) for i in entry.value.items]
                values[entry.key] = [v.ref for v in vs]
                scopes += [v.scope for v in vs]
            else:
                values[entry.key] = _literal(entry.value, where)
        try:
            op.validate_params(values)
        except QuasarParamError as err:
            bad = next((x for x in e.entries if repr(x.key) in err.message.split(" parameter")[0]), None)
            raise _fail(QuasarParamError, err.message, bad or e, where) from None
        return values

    def model(self, op: Operator, e: ast.Expr, where: _Origin) -> _Value:
        if not isinstance(e, ast.Name):
            raise _fail(QuasarTypeError, f"{op.name} expects the name of a trainable model here", e, where)
        node = self.nodes.get(e.id)
        if node is None and op.default_model is not None and self.catalog_lacks(e.id):
            node = self._implicit_trainable(e, op.default_model)
        if node is None:
            return self.name(e, where)  # raises the undeclared-name error
        if not isinstance(node, irm.Trainable):
            raise _fail(QuasarTypeError, f"{op.name} expects a trainable model but {e.id!r} is "
                        f"{'an input' if isinstance(node, irm.Input) else 'not trainable'}", e, where)
        return _Value({"$ref": e.id}, QType.parse(node.type), node.scope)

    def catalog_lacks(self, name: str) -> bool:
        if self.catalog is None:
            return True
        try:
            self.catalog.feature(name)
        except UnknownFeatureError:
            return True
        return False

    def _implicit_trainable(self, e: ast.Name, model_op: str) -> irm.IRNode:
        op = get_operator(model_op)
        numeric = [n for n in self.nodes.values()
                   if not n.id.startswith("_") and QType.parse(n.type).name in ("double", "Vector")]
        features = [n for n in numeric if not isinstance(n, irm.Input)] or numeric
        scope = max((n.scope for n in features), key=SCOPE_RANK.__getitem__, default="constant")
        refs = [{"$ref": n.id} for n in features]
        out = op.output_type({"features": [QType.parse(n.type) for n in features]}, {})
        node = irm.Trainable(id=e.id, type=str(out), scope=scope, inputs=tuple(n.id for n in features),
                             params={"features": refs}, span=_span(e), op=op.name, state_ref=e.id,
                             implicit=True)
        return self._add(node, e.line)

    def _make(self, op_name: str, params: dict[str, Any], out: QType, scope: str, at: ast.Node, *,
              name: str | None, span: tuple[int, int, int, int] | None, op: Operator | None = None) -> _Value:
        if name is None:
            self.counter += 1
            name = f"_{op_name.lower()}_{self.counter}"
        inputs = _refs(params)
        trainable = op is not None and op.trainable
        cls_kwargs: dict[str, Any] = dict(id=name, type=str(out), scope=scope, inputs=inputs, params=params,
                                          span=span, op=op_name)
        node = irm.Trainable(**cls_kwargs, state_ref=name) if trainable else irm.Op(**cls_kwargs)
        self._add(node, at.line)
        return _Value({"$ref": name}, out, scope)


# ---- helpers -----------------------------------------------------------------------------------------


def _refs(*values: Any) -> tuple[str, ...]:
    """Ids of every ``{"$ref": id}`` inside *values*, in first-seen order."""
    out: dict[str, None] = {}

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if "$ref" in v and len(v) == 1:
                out[v["$ref"]] = None
            else:
                for x in v.values():
                    walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    for v in values:
        walk(v)
    return tuple(out)


def _span(node: ast.Node) -> tuple[int, int, int, int] | None:
    return (node.line, node.column, node.end_line, node.end_column) if node.line else None


def _feature_type(rec: Any) -> QType:
    name = FEATURE_TYPES.get(rec.type, rec.type)
    return QType(name, rec.dimension if name == "Vector" else None)


def _entity_scope(entity: str) -> str:
    return {"member": "member", "request": "request"}.get(entity, "document")


def _name_column(stmt: ast.Node, name: str, where: _Origin) -> int | None:
    """Column of *name* within its statement's first line (for a caret under the feature name)."""
    text = where.line(stmt.line) if stmt.line else None
    if text is None:
        return None
    at = text.find(name, max(stmt.column - 1, 0))
    return at + 1 if at >= 0 else None
