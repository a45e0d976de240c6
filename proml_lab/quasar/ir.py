"""The Quasar intermediate representation: a typed DAG of nodes, serializable to JSON.

Each node has an ``id`` (the declared name, or a stable generated one such as ``_mul_3`` for an
anonymous sub-expression), a ``type`` (``double``, ``Vector[64]``, ``Categorical`` ..., ``List`` for
list nodes), a ``scope`` (``constant`` < ``request`` < ``member`` < ``document``, or ``list``), the ids
of its ``inputs``, its ``params`` (JSON; a reference to another node is written ``{"$ref": id}``,
the candidate set ``DOCUMENTS`` before any ``KEEP`` is ``{"$documents": null}``) and its source
``span`` (line, column, end line, end column). Nodes are listed in declaration order, which is a
topological order.

>>> from proml_lab.quasar.ir import compile
>>> ir = compile('''INPUT DOCUMENT double job_seniority;
... double score = 0.5 * job_seniority;
... ranked = ORDER DOCUMENTS BY score WITH DESC;
... RETURN ranked;''')
>>> [n.id for n in ir.nodes]
['job_seniority', 'score', 'ranked', '_return']
>>> ir.node("score").params
{'left': 0.5, 'right': {'$ref': 'job_seniority'}}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

__all__ = [
    "IR",
    "Diversify",
    "Filter",
    "IRNode",
    "Input",
    "Keep",
    "Op",
    "Order",
    "Return",
    "Top",
    "Trainable",
    "compile",
]

FORMAT = "quasar-ir/1"


@dataclass(frozen=True, kw_only=True)
class IRNode:
    """Fields every node shares; subclasses set :attr:`kind`."""

    kind: ClassVar[str] = "node"
    id: str
    type: str
    scope: str
    inputs: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    span: tuple[int, int, int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind, **asdict(self)}
        data["inputs"] = list(self.inputs)
        data["span"] = list(self.span) if self.span is not None else None
        return data


@dataclass(frozen=True, kw_only=True)
class Input(IRNode):
    """A marketplace feature read by name, at its scope."""

    kind: ClassVar[str] = "input"
    feature: str


@dataclass(frozen=True, kw_only=True)
class Op(IRNode):
    """A registered operator applied to its inputs."""

    kind: ClassVar[str] = "op"
    op: str


@dataclass(frozen=True, kw_only=True)
class Trainable(IRNode):
    """A trainable operator; its learned state is stored under ``state_ref`` in a model bundle."""

    kind: ClassVar[str] = "trainable"
    op: str
    state_ref: str
    implicit: bool = False


@dataclass(frozen=True, kw_only=True)
class Order(IRNode):
    kind: ClassVar[str] = "order"


@dataclass(frozen=True, kw_only=True)
class Top(IRNode):
    kind: ClassVar[str] = "top"


@dataclass(frozen=True, kw_only=True)
class Filter(IRNode):
    kind: ClassVar[str] = "filter"


@dataclass(frozen=True, kw_only=True)
class Diversify(IRNode):
    kind: ClassVar[str] = "diversify"


@dataclass(frozen=True, kw_only=True)
class Keep(IRNode):
    """Phase boundary: later nodes see only the ``n`` documents kept by ``by``."""

    kind: ClassVar[str] = "keep"


@dataclass(frozen=True, kw_only=True)
class Return(IRNode):
    kind: ClassVar[str] = "return"


_KINDS: dict[str, type[IRNode]] = {
    c.kind: c for c in (Input, Op, Trainable, Order, Top, Filter, Diversify, Keep, Return)
}


@dataclass(frozen=True)
class IR:
    """A compiled Quasar program: its nodes in topological (declaration) order and its output."""

    name: str | None
    nodes: tuple[IRNode, ...]
    output: str
    training_config: dict[str, Any] | None = None

    def node(self, node_id: str) -> IRNode:
        """The node called *node_id* (KeyError if none)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    # ---- serialization -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``IR.from_json(ir.to_json()) == ir``."""
        return {"format": FORMAT, "name": self.name, "output": self.output,
                "training_config": self.training_config, "nodes": [n.to_json() for n in self.nodes]}

    def dumps(self) -> str:
        """Stable JSON text (sorted keys, two-space indent, trailing newline)."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> IR:
        """Rebuild an IR from :meth:`to_json` output (or its JSON text)."""
        if isinstance(data, str):
            data = json.loads(data)
        assert isinstance(data, dict)
        if data.get("format") != FORMAT:
            raise ValueError(f"not a Quasar IR ({FORMAT!r}): format is {data.get('format')!r}")
        nodes = []
        for raw in data["nodes"]:
            node_cls = _KINDS[raw["kind"]]
            kwargs: dict[str, Any] = {f.name: raw[f.name] for f in fields(node_cls) if f.name in raw}
            kwargs["inputs"] = tuple(kwargs.get("inputs", ()))
            kwargs["span"] = tuple(kwargs["span"]) if kwargs.get("span") is not None else None
            nodes.append(node_cls(**kwargs))
        return cls(data["name"], tuple(nodes), data["output"], data.get("training_config"))

    # ---- graph views --------------------------------------------------------------------------------

    def topological_order(self) -> list[str]:
        """Node ids so that every node comes after its inputs (declaration order breaks ties)."""
        position = {n.id: i for i, n in enumerate(self.nodes)}
        done: set[str] = set()
        order: list[str] = []
        by_id = {n.id: n for n in self.nodes}

        def visit(node_id: str, stack: tuple[str, ...]) -> None:
            if node_id in done:
                return
            if node_id in stack:
                raise ValueError(f"the IR has a cycle through {node_id!r}")
            for dep in sorted(by_id[node_id].inputs, key=position.__getitem__):
                visit(dep, (*stack, node_id))
            done.add(node_id)
            order.append(node_id)

        for n in self.nodes:
            visit(n.id, ())
        return order

    def reachable(self) -> list[str]:
        """Ids of the nodes the output depends on, in topological order (what a lazy engine computes)."""
        by_id = {n.id: n for n in self.nodes}
        seen: set[str] = set()
        todo = [self.output]
        while todo:
            node_id = todo.pop()
            if node_id not in seen:
                seen.add(node_id)
                todo.extend(by_id[node_id].inputs)
        return [i for i in self.topological_order() if i in seen]

    def phases(self) -> list[list[str]]:
        """Reachable node ids per ranking phase: phase *k* is evaluated after the *k*-th ``KEEP``.

        A node belongs to the phase it is declared in; each ``KEEP`` closes its phase.
        """
        reach = set(self.reachable())
        phase_of: dict[str, int] = {}
        phase = 0
        for n in self.nodes:
            phase_of[n.id] = phase
            if isinstance(n, Keep):
                phase += 1
        out: list[list[str]] = [[] for _ in range(phase + 1)]
        for node_id in self.topological_order():
            if node_id in reach:
                out[phase_of[node_id]].append(node_id)
        return out

    def features(self) -> list[str]:
        """Marketplace features the program reads, in declaration order."""
        return [n.feature for n in self.nodes if isinstance(n, Input)]

    def trainables(self) -> list[Trainable]:
        """The trainable nodes, in topological order (the order training fits them)."""
        return [n for n in self.nodes if isinstance(n, Trainable)]


def compile(  # noqa: A001  (the verb users expect: source -> IR)
    source_or_program: Any,
    *,
    catalog: Any = None,
    filename: str = "<quasar>",
    resolve_extends: Callable[..., Any] | None = None,
) -> IR:
    """Parse, check and build: Quasar text (or a parsed ``Program``) -> :class:`IR`.

    Raises a :class:`~proml_lab.quasar.errors.QuasarError` subclass for any problem in the program.
    """
    from proml_lab.quasar.check import check
    from proml_lab.quasar.syntax import parse

    source = None
    program = source_or_program
    if isinstance(source_or_program, str):
        source = source_or_program
        program = parse(source, filename=filename)
    checked = check(program, catalog=catalog, resolve_extends=resolve_extends, source=source,
                    filename=filename)
    return checked.ir
