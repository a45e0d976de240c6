"""The Quasar IR: golden JSON for the golden programs, exact round-trips, laziness and phases.

Regenerate the golden files after an intended change with ``QUASAR_UPDATE_GOLDEN=1 pytest tests/quasar``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from proml_lab.quasar.errors import QuasarError
from proml_lab.quasar.ir import IR, Input, Keep, Trainable, compile
from proml_lab.quasar.ops import Arg, OpParams, operator
from tests.quasar.test_check import make_catalog

PROGRAMS = Path(__file__).parent / "programs"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("QUASAR_UPDATE_GOLDEN") == "1"


class _LinearParams(OpParams):
    l1: float = 0.0
    l2: float = 0.0


# Operators the expression zoo calls that are not built in (a team's own operators, registered in code).
operator("Score", args=[Arg("x"), Arg("weights", "literal", optional=True),
                        Arg("options", "literal", optional=True)],
         output="double")(lambda x, weights=None, options=None: x)
operator("Linear", args=[Arg("features", "nodes"), Arg("params", "params", optional=True)], output="double",
         trainable=True, params=_LinearParams)(lambda features, state, params=None: features[0])
operator("Bucket", args=[Arg("x"), Arg("n", "literal")], output="Categorical")(lambda x, n: x)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return make_catalog(tmp_path_factory.mktemp("ir_catalog"))


def compiled(name: str, catalog) -> dict:
    """The program's IR as JSON, or ``{"error": message}`` when it does not check."""
    path = PROGRAMS / f"{name}.quasar"
    try:
        ir = compile(path.read_text(), catalog=catalog if name == "slide" else None, filename=path.name)
    except QuasarError as err:
        return {"error": str(err)}
    return json.loads(ir.dumps())


@pytest.mark.parametrize("name", sorted(p.stem for p in PROGRAMS.glob("*.quasar")))
def test_golden_ir(name, catalog, monkeypatch):
    monkeypatch.chdir(PROGRAMS)  # EXTENDS paths resolve next to the extending file
    got = compiled(name, catalog)
    golden = GOLDEN / f"{name}.json"
    if UPDATE or not golden.exists():
        golden.write_text(json.dumps(got, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert got == json.loads(golden.read_text())
    assert compiled(name, catalog) == got  # stable across runs


def test_expression_zoo_reports_a_member_scope_diversity_key(monkeypatch):
    monkeypatch.chdir(PROGRAMS)
    err = compiled("expressions", None)["error"]
    assert err.splitlines()[0] == ("expressions.quasar:22:30: scope error: DIVERSIFY ... BY needs a "
                                   "DOCUMENT-scope "
                                   "value (one per candidate) but the expression has MEMBER scope")


def test_json_round_trip_is_exact(catalog):
    for path in (PROGRAMS / "job_recommendations.quasar", PROGRAMS / "slide.quasar"):
        ir = compile(path.read_text(), catalog=catalog if path.stem == "slide" else None, filename=path.name)
        again = IR.from_json(ir.dumps())
        assert again == ir and again.dumps() == ir.dumps()
        assert IR.from_json(ir.to_json()) == ir


def test_reachable_skips_nodes_the_output_does_not_use():
    ir = compile("INPUT DOCUMENT double a;\nINPUT DOCUMENT double b;\ndouble unused = Log1p(b);\n"
                 "double s = 2 * a;\nr = ORDER DOCUMENTS BY s WITH DESC;\nRETURN r;")
    assert ir.reachable() == ["a", "s", "r", "_return"]
    assert "unused" in ir.topological_order()


def test_phases_split_at_keep():
    ir = compile((PROGRAMS / "job_recommendations.quasar").read_text())
    first, second = ir.phases()
    assert isinstance(ir.node(first[-1]), Keep) and "cheap_score" in first and "treeModel" not in first
    assert second[:4] == ["treeModel", "tree_score", "glmix", "score"] and second[-1] == "_return"
    assert ir.node("ranked").inputs == ("_keep_1", "score")  # DOCUMENTS after KEEP = the kept ones
    assert [n.id for n in ir.trainables()] == ["treeModel", "glmix"]
    assert all(isinstance(ir.node(f), Input) for f in ir.features())
    order = ir.topological_order()
    assert all(order.index(i) < order.index(n.id) for n in ir.nodes for i in n.inputs)


def test_trainable_nodes_carry_a_state_ref():
    ir = compile((PROGRAMS / "job_recommendations.quasar").read_text())
    tree = ir.node("treeModel")
    assert isinstance(tree, Trainable) and tree.state_ref == "treeModel" and not tree.implicit
