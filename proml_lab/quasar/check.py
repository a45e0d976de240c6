"""The Quasar checker: names, feature resolution, types, scopes, operator binding (EXTENDS: ``extends``).

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

from dataclasses import dataclass
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
from proml_lab.quasar.extends import (
    Origin,
    Resolver,
    did_you_mean,
    fail,
    literal,
    load_relative,
    merge,
    stmt_name,
)
from proml_lab.quasar.ops import QType, get_operator
from proml_lab.quasar.ops.registry import Operator

__all__ = ["CheckedProgram", "check", "load_relative"]

SCOPE_RANK = {"constant": 0, "request": 1, "member": 2, "document": 3}
FEATURE_TYPES = {"numeric": "double", "binary": "double", "vector": "Vector", "categorical": "Categorical",
                 "text": "String"}
_BINOPS = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "==": "Eq", "!=": "Ne", "<": "Lt", "<=": "Le",
           ">": "Gt", ">=": "Ge", "AND": "And", "OR": "Or"}

@dataclass(frozen=True)
class CheckedProgram:
    """A program that passed every check: its merged statements and its typed DAG (``ir``)."""

    name: str | None
    ir: irm.IR

    @property
    def nodes(self) -> tuple[irm.IRNode, ...]:
        return self.ir.nodes


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
    origin = Origin(filename, tuple(source.splitlines()) if source is not None else None)
    items, returns, config, name = merge(program, origin, resolve_extends or load_relative, ())
    checker = _Checker(catalog)
    checker.later = {n: s.line for s, _ in items if (n := stmt_name(s))}
    for stmt, where in items:
        checker.statement(stmt, where)
    if returns is None:
        raise QuasarError("the program has no RETURN", filename=filename)
    checker.returns(*returns)
    training = literal(config[0].options, config[1], names_ok=True) if config else None
    ir = irm.IR(name, tuple(checker.nodes.values()), "_return", training)
    return CheckedProgram(name, ir)


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

    def statement(self, stmt: ast.Statement, where: Origin) -> None:
        if isinstance(stmt, ast.Input):
            self.input(stmt, where)
        elif isinstance(stmt, ast.Declaration):
            self.declaration(stmt, where)
        elif isinstance(stmt, ast.ListStatement):
            self.list_statement(stmt, where)
        else:
            self.keep(stmt, where)

    def _claim(self, name: str, node: ast.Node, where: Origin) -> None:
        if name in self.nodes:
            raise fail(QuasarNameError, f"{name!r} is already declared (line {self.lines.get(name, '?')})",
                        node, where)

    def _add(self, node: irm.IRNode, line: int = 0) -> irm.IRNode:
        self.nodes[node.id] = node
        self.lines[node.id] = line
        return node

    def input(self, stmt: ast.Input, where: Origin) -> None:
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
                raise fail(QuasarNameError, f"unknown feature {stmt.name!r}{hint}", stmt, where,
                            column) from None
            actual = _feature_type(rec)
            if not actual.fits(declared):
                raise fail(QuasarTypeError, f"input {stmt.name!r} is declared {declared} but the feature is "
                            f"{actual} ({rec.type})", stmt, where, column)
            wanted = _entity_scope(rec.entity)
            if wanted != scope:
                raise fail(QuasarScopeError, f"input {stmt.name!r} is declared {stmt.scope} but the feature "
                            f"belongs to entity {rec.entity!r} ({wanted.upper()} scope)", stmt, where, column)
            if declared.name == "Vector":
                declared = actual
        self._add(irm.Input(id=stmt.name, type=str(declared), scope=scope, feature=stmt.name,
                            span=_span(stmt)), stmt.line)

    def declaration(self, stmt: ast.Declaration, where: Origin) -> None:
        self._claim(stmt.name, stmt, where)
        if stmt.trainable:
            assert isinstance(stmt.expr, ast.Call)
            op = self._op(stmt.expr, where)
            if not op.trainable:
                raise fail(QuasarTypeError, f"TRAINABLE {stmt.name!r} needs a trainable operator; "
                            f"{op.name} is not one", stmt.expr, where)
        value = self.expr(stmt.expr, where, name=stmt.name, span=_span(stmt))
        if value.ref != {"$ref": stmt.name}:  # a bare name or a literal: an alias node
            value = self._make("Identity" if isinstance(value.ref, dict) else "Constant",
                               {"x": value.ref} if isinstance(value.ref, dict) else {"value": value.ref},
                               value.type, value.scope, stmt, name=stmt.name, span=_span(stmt))
        if stmt.type is not None and not value.type.fits(QType(stmt.type)):
            raise fail(QuasarTypeError,
                        f"{stmt.name!r} is declared {stmt.type} but its value is {value.type}",
                        stmt.expr, where)

    def list_statement(self, stmt: ast.ListStatement, where: Origin) -> None:
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

    def keep(self, stmt: ast.Keep, where: Origin) -> None:
        by = self.ranking_value(stmt.by, where, "KEEP ... BY")
        self.keeps += 1
        node_id = f"_keep_{self.keeps}"
        self._add(irm.Keep(id=node_id, type="List", scope="list", inputs=_refs(self.documents, by),
                           params={"source": self.documents, "n": stmt.n, "by": by}, span=_span(stmt)),
                  stmt.line)
        self.documents = {"$ref": node_id}

    def returns(self, stmt: ast.Return, where: Origin) -> None:
        source = self.source(stmt.source, where)
        self._add(irm.Return(id="_return", type="List", scope="list", inputs=_refs(source),
                             params={"source": source}, span=_span(stmt)), stmt.line)

    def source(self, src: ast.Source, where: Origin) -> Any:
        if isinstance(src, ast.Documents):
            return self.documents
        node = self.nodes.get(src.id)
        if node is None:
            lists = [k for k, n in self.nodes.items() if n.scope == "list" and not k.startswith("_")]
            raise fail(QuasarNameError, f"undeclared list {src.id!r}{did_you_mean(src.id, lists)}",
                        src, where)
        if node.scope != "list":
            raise fail(QuasarTypeError, f"expected a list (or DOCUMENTS) but {src.id!r} is {node.type}",
                        src, where)
        return {"$ref": src.id}

    def ranking_value(self, e: ast.Expr, where: Origin, what: str) -> Any:
        return self.document_value(e, where, what, ("double",))

    def document_value(self, e: ast.Expr, where: Origin, what: str, types: tuple[str, ...]) -> Any:
        v = self.expr(e, where)
        if not any(v.type.fits(QType(t)) for t in types):
            raise fail(QuasarTypeError, f"{what} needs {' or '.join(types)} but the expression is {v.type}",
                        e, where)
        if v.scope != "document":
            raise fail(QuasarScopeError, f"{what} needs a DOCUMENT-scope value (one per candidate) but the "
                        f"expression has {v.scope.upper()} scope", e, where)
        return v.ref

    # expressions

    def expr(self, e: ast.Expr, where: Origin, *, name: str | None = None,
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
        raise fail(QuasarTypeError, f"{what} cannot be used as a value here", e, where)

    def name(self, e: ast.Name, where: Origin) -> _Value:
        node = self.nodes.get(e.id)
        if node is None:
            node = self._implicit_input(e, where)
        if node.scope == "list":
            raise fail(QuasarTypeError, f"{e.id!r} is a list; a value (double, Vector ...) is expected here",
                        e, where)
        return _Value({"$ref": e.id}, QType.parse(node.type), node.scope)

    def _implicit_input(self, e: ast.Name, where: Origin) -> irm.IRNode:
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
            raise fail(QuasarNameError, f"{e.id!r} is used before it is declared (line {self.later[e.id]})",
                        e, where)
        known = [k for k in self.nodes if not k.startswith("_")]
        raise fail(QuasarNameError, f"undeclared name {e.id!r}{did_you_mean(e.id, known)}", e, where)

    def _op(self, call: ast.Call, where: Origin) -> Operator:
        try:
            return get_operator(call.name)
        except QuasarNameError as err:
            raise fail(QuasarNameError, err.message, call, where) from None

    def call(self, call: ast.Call, where: Origin, *, name: str | None = None,
             span: tuple[int, int, int, int] | None = None) -> _Value:
        op = self._op(call, where)
        if len(call.args) > len(op.args):
            raise fail(QuasarTypeError, f"{op.name} takes at most {len(op.args)} argument(s) "
                        f"({', '.join(a.name for a in op.args)}) but got {len(call.args)}", call, where)
        params: dict[str, Any] = {}
        types: dict[str, Any] = {}
        scopes: list[str] = []
        for k, arg in enumerate(op.args):
            if k >= len(call.args):
                if not arg.optional:
                    raise fail(QuasarTypeError, f"{op.name} is missing its argument {arg.name!r} "
                                f"({arg.kind})", call, where)
                continue
            e = call.args[k]
            if arg.kind == "node":
                v = self.arg_value(op, arg.name, arg.types, e, where)
                params[arg.name], types[arg.name] = v.ref, v.type
                scopes.append(v.scope)
            elif arg.kind == "nodes":
                if not isinstance(e, ast.ListLit):
                    raise fail(QuasarTypeError,
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
                params[arg.name] = types[arg.name] = literal(e, where)
            else:
                params[arg.name] = types[arg.name] = self.param_map(op, e, where, scopes)
        if op.validate is not None:
            try:
                op.validate(params)
            except QuasarParamError as err:
                raise fail(QuasarParamError, err.message, call, where) from None
        try:
            out = op.output_type(types, params)
        except QuasarTypeError as err:
            raise fail(QuasarTypeError, f"{op.name}: {err.message}", call, where) from None
        except (KeyError, TypeError, IndexError) as err:
            raise fail(QuasarTypeError, f"{op.name} cannot type its arguments: {err}", call, where) from None
        scope = max(scopes, key=SCOPE_RANK.__getitem__, default="constant")
        if op.scope != "auto":
            scope = op.scope
        return self._make(op.name, params, out, scope, call, name=name, span=span or _span(call), op=op)

    def arg_value(self, op: Operator, arg: str, allowed: tuple[str, ...], e: ast.Expr,
                  where: Origin) -> _Value:
        v = self.expr(e, where)
        if not any(v.type.fits(QType(t)) for t in allowed):
            raise fail(QuasarTypeError, f"{op.name}'s argument {arg!r} must be {' or '.join(allowed)} "
                        f"but got {v.type}", e, where)
        return v

    def param_map(self, op: Operator, e: ast.Expr, where: Origin, scopes: list[str]) -> dict[str, Any]:
        if not isinstance(e, ast.MapLit):
            raise fail(QuasarTypeError,
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
                    raise fail(QuasarTypeError,
                                f"{op.name}'s parameter {entry.key!r} must be a list of values",
                                entry.value, where)
                vs = [self.arg_value(op, entry.key, allowed, i, where) for i in entry.value.items]
                values[entry.key] = [v.ref for v in vs]
                scopes += [v.scope for v in vs]
            else:
                values[entry.key] = literal(entry.value, where)
        try:
            op.validate_params(values)
        except QuasarParamError as err:
            bad = next((x for x in e.entries if repr(x.key) in err.message.split(" parameter")[0]), None)
            raise fail(QuasarParamError, err.message, bad or e, where) from None
        return values

    def model(self, op: Operator, e: ast.Expr, where: Origin) -> _Value:
        if not isinstance(e, ast.Name):
            raise fail(QuasarTypeError, f"{op.name} expects the name of a trainable model here", e, where)
        node = self.nodes.get(e.id)
        if node is None and op.default_model is not None and self.catalog_lacks(e.id):
            node = self._implicit_trainable(e, op.default_model)
        if node is None:
            return self.name(e, where)  # raises the undeclared-name error
        if not isinstance(node, irm.Trainable):
            raise fail(QuasarTypeError, f"{op.name} expects a trainable model but {e.id!r} is "
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


def _name_column(stmt: ast.Node, name: str, where: Origin) -> int | None:
    """Column of *name* within its statement's first line (for a caret under the feature name)."""
    text = where.line(stmt.line) if stmt.line else None
    if text is None:
        return None
    at = text.find(name, max(stmt.column - 1, 0))
    return at + 1 if at >= 0 else None
