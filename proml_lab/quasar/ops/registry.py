"""The operator registry: one decorator declares an operator's signature and its vectorized code.

An operator's positional call arguments bind to declared :class:`Arg` s, each of one *kind*:

``node``      one expression (a name, an arithmetic expression, a call ...);
``nodes``     a list literal of expressions (``[f1, f2]``);
``model``     the name of a trainable node (``DecisionTreesScorer(treeModel)``);
``literal``   a literal JSON value (``["", "cosine", {...}]``, ``10``);
``params``    a map literal validated by the operator's pydantic model (``extra="forbid"``); the
              model's fields listed in ``node_params`` hold expressions instead of literals.

Implementations take row-aligned numpy arrays (member-scope values already broadcast to the documents)
and return one array: ``double`` -> float64 ``(n,)``, ``Vector`` -> float ``(n, d)``, ``String`` /
``Categorical`` -> object ``(n,)``. They are called with one keyword per declared argument (arrays in
place of expressions), plus ``state=`` for trainable operators and ``ids=`` for operators declared with
``needs_ids=True``: ``{"member": ..., "document": ...}`` row-aligned, and for document-scope nodes also
``"member_of_query"`` (one id per query) with ``"query_index"`` (each row's query), so per-member
look-ups can run once per query.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from proml_lab._registry import Registry
from proml_lab.quasar.errors import QuasarNameError, QuasarParamError, QuasarStateError

__all__ = [
    "Arg",
    "OPERATORS",
    "OpParams",
    "Operator",
    "QType",
    "get_operator",
    "operator",
    "reload_plugins",
    "run_operator",
]

ArgKind = Literal["node", "nodes", "model", "literal", "params"]


@dataclass(frozen=True, slots=True)
class QType:
    """A Quasar value type: ``double``, ``Vector`` (with a dimension when known), ``String``,
    ``Categorical``, ``List``, or ``Model`` (a trainable model's own output, read by a scorer)."""

    name: str
    dim: int | None = None

    def __str__(self) -> str:
        return f"Vector[{self.dim}]" if self.name == "Vector" and self.dim is not None else self.name

    def fits(self, wanted: QType) -> bool:
        """Whether a value of this type may stand where *wanted* is expected."""
        if wanted.name == self.name:
            return wanted.dim is None or self.dim is None or wanted.dim == self.dim
        if wanted.name == "double" and self.name == "Vector" and self.dim == 1:
            return True  # a one-dimensional vector (one similarity) reads as a number
        return {wanted.name, self.name} == {"String", "Categorical"}

    @classmethod
    def parse(cls, text: str) -> QType:
        """``"Vector[64]"`` -> ``QType("Vector", 64)``; ``"double"`` -> ``QType("double")``."""
        if text.startswith("Vector[") and text.endswith("]"):
            return cls("Vector", int(text[7:-1]))
        return cls(text)


DOUBLE = QType("double")


class OpParams(BaseModel):
    """Base of an operator's parameter model: unknown keys are errors, not silent defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Arg:
    """One positional argument of an operator: its name, kind, and the value types it accepts."""

    name: str
    kind: ArgKind = "node"
    types: tuple[str, ...] = ("double",)
    optional: bool = False


OutputRule = Callable[[dict[str, Any], dict[str, Any]], QType]


@dataclass(frozen=True)
class Operator:
    """A registered operator: signature, output-type rule and implementation.

    ``output`` is a :class:`QType`, a type name, or a function ``(arg_types, params) -> QType`` for
    outputs that depend on the inputs (``arg_types`` maps each argument to a ``QType`` or a list of them;
    ``params`` maps each literal/params argument to its value). ``validate``, when given, is called
    by the checker with the bound arguments (node references as ``{"$ref": id}``) and raises
    :class:`QuasarParamError` for a combination the signature alone cannot rule out.
    """

    name: str
    fn: Callable[..., np.ndarray]
    args: tuple[Arg, ...]
    output: QType | OutputRule
    trainable: bool = False
    scope: Literal["auto", "member", "document"] = "auto"
    params: type[OpParams] | None = None
    node_params: Mapping[str, Literal["node", "nodes"]] = field(default_factory=dict)
    default_model: str | None = None
    needs_ids: bool = False
    extra: str | None = None
    validate: Callable[[dict[str, Any]], None] | None = None

    def output_type(self, arg_types: dict[str, Any], params: dict[str, Any]) -> QType:
        if isinstance(self.output, QType):
            return self.output
        return self.output(arg_types, params)

    def validate_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate a params map (node-valued entries already replaced by placeholders)."""
        if self.params is None:
            return dict(values)
        try:
            return self.params(**values).model_dump(exclude_unset=True)
        except ValidationError as err:
            problem = err.errors()[0]
            raise QuasarParamError(param_message(self, problem, values)) from None


def param_message(op: Operator, problem: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """The one template every parameter error uses (STYLE 2)."""
    assert op.params is not None
    name = str(problem["loc"][0]) if problem.get("loc") else "?"
    allowed = sorted(op.params.model_fields)
    if problem.get("type") == "extra_forbidden":
        return (f"The {name!r} parameter is not a parameter of {op.name}; "
                f"allowed: {', '.join(allowed)}. Got {values.get(name)!r} instead.")
    what = problem.get("msg", "invalid").removeprefix("Value error, ")
    got = values.get(name, problem.get("input"))
    what = what[0].lower() + what[1:]
    return f"The {name!r} parameter of {op.name} is invalid: {what}. Got {got!r} instead."


OPERATORS: Registry[Operator] = Registry("proml_lab.quasar_ops", "Quasar operator")


def operator(
    name: str,
    *,
    args: tuple[Arg, ...] | list[Arg],
    output: QType | str | OutputRule,
    trainable: bool = False,
    scope: Literal["auto", "member", "document"] = "auto",
    params: type[OpParams] | None = None,
    node_params: Mapping[str, Literal["node", "nodes"]] | None = None,
    default_model: str | None = None,
    needs_ids: bool = False,
    extra: str | None = None,
    validate: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register a vectorized implementation as the Quasar operator *name*.

    A plugin module uses the same decorator and names the function (or the module) in the
    ``proml_lab.quasar_ops`` entry-point group; the registry stores the :class:`Operator`.

    Examples
    --------
    >>> import numpy as np
    >>> @operator("Twice", args=[Arg("x")], output="double")
    ... def twice(x):
    ...     return 2.0 * x
    >>> get_operator("Twice").fn(x=np.array([1.0, 2.0]))
    array([2., 4.])
    """

    def register(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        out = QType.parse(output) if isinstance(output, str) else output
        op = Operator(name, fn, tuple(args), out, trainable, scope, params, dict(node_params or {}),
                      default_model, needs_ids, extra, validate)
        OPERATORS.register(name, op)
        fn.quasar_operator = op  # type: ignore[attr-defined]  # lets an entry point name the function
        return fn

    return register


def get_operator(name: str) -> Operator:
    """The operator registered as *name*; :class:`QuasarNameError` listing the closest names if none."""
    item = OPERATORS.get(name)
    if item is not None and not isinstance(item, Operator):  # an entry point naming a decorated function
        item = getattr(item, "quasar_operator", None)
    if item is None:
        close = difflib.get_close_matches(name, OPERATORS.names(), n=3, cutoff=0.5)
        known = ", ".join(close or OPERATORS.names())
        hint = f"; did you mean {known}?" if close else f"; known operators: {known}"
        raise QuasarNameError(f"unknown operator {name!r}{hint}")
    return item


def reload_plugins() -> None:
    """Read the ``proml_lab.quasar_ops`` entry points again (after installing a plugin at run time)."""
    OPERATORS._loaded = False
    OPERATORS.names()


def run_operator(
    op: Operator,
    bound: Mapping[str, Any],
    *,
    state: Any = None,
    ids: Mapping[str, np.ndarray] | None = None,
    node_id: str = "?",
) -> np.ndarray:
    """Call *op* with its bound arguments (arrays in place of expressions).

    Raises :class:`QuasarStateError` when a trainable operator has no state yet.
    """
    kwargs = dict(bound)
    if op.trainable:
        if state is None:
            raise QuasarStateError(
                f"node {node_id!r} ({op.name}) has not been trained; train the program first "
                f"(proml_lab.training.connect) or load a bundle that holds its state")
        kwargs["state"] = state
    if op.needs_ids:
        kwargs["ids"] = ids or {}
    return op.fn(**kwargs)


def lazy_import(module: str, extra: str | None) -> Any:
    """Import an optional dependency, or raise MissingDependencyError naming the extra."""
    import importlib

    from proml_lab.errors import MissingDependencyError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module.split(".")[0], extra) from None
