"""Pictures of Quasar programs: the pure-Python SVG of every golden program, DOT text, Graphviz fallback."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import pytest

from proml_lab.errors import ProMLError
from proml_lab.quasar.ir import IR, Keep, compile
from proml_lab.quasar.render import (
    DOTSource,
    GraphvizNotFoundError,
    QuasarDiagram,
    RenderError,
    layout,
    render_svg,
    to_dot,
)
from tests.quasar.test_check import make_catalog

# Registers the operators the expression zoo calls (Score, Linear, Bucket), as test_ir does.
from tests.quasar.test_ir import PROGRAMS  # noqa: F401  (import for its side effect too)

SVG = "{http://www.w3.org/2000/svg}"
NAMES = sorted(p.stem for p in PROGRAMS.glob("*.quasar"))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return make_catalog(tmp_path_factory.mktemp("render_catalog"))


@pytest.fixture(scope="module")
def programs(catalog) -> dict[str, IR]:
    """Every golden program compiled as test_ir does (slide with the test catalog).

    The expression zoo deliberately fails the scope check (a MEMBER-scope DIVERSIFY key); it is drawn
    with that one key switched to a DOCUMENT input so that its two extra KEEPs and unused nodes are drawn.
    """
    old = Path.cwd()
    os.chdir(PROGRAMS)  # EXTENDS paths resolve next to the extending file
    try:
        out = {}
        for name in NAMES:
            source = (PROGRAMS / f"{name}.quasar").read_text()
            if name == "expressions":
                source = source.replace("Bucket(c, 10)", "Bucket(a, 10)")
            out[name] = compile(source, catalog=catalog if name == "slide" else None,
                                filename=f"{name}.quasar")
        return out
    finally:
        os.chdir(old)


def _no_dot(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent-quasar-render-test")


@pytest.mark.parametrize("name", NAMES)
def test_svg_of_each_golden_program(name, programs):
    ir = programs[name]
    svg = render_svg(ir, engine="python")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"

    groups = [g for g in root.iter(f"{SVG}g") if g.get("data-node") is not None]
    assert sorted(g.get("data-node") for g in groups) == sorted(n.id for n in ir.nodes)

    edges = [p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "").split()]
    want = sorted((src, n.id) for n in ir.nodes for src in n.inputs)
    assert sorted((p.get("data-source"), p.get("data-target")) for p in edges) == want
    assert all(p.get("marker-end", "").startswith("url(#") for p in edges)

    reach = set(ir.reachable())
    marked = {g.get("data-node") for g in groups if "unreachable" in g.get("class").split()}
    assert marked == {n.id for n in ir.nodes} - reach

    trainable = {g.get("data-node") for g in groups if "kind-trainable" in g.get("class").split()}
    assert trainable == {t.id for t in ir.trainables()}
    for g in groups:
        if g.get("data-node") in trainable:
            assert "trainable" in "".join(g.itertext())

    keeps = [n.id for n in ir.nodes if isinstance(n, Keep)]
    lines = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "phase-line"]
    assert [ln.get("data-keep") for ln in lines] == keeps
    for ln in lines:
        assert ln.get("stroke-dasharray") and ln.get("x1") == "0"

    assert any(g.get("class") == "legend" for g in root.iter(f"{SVG}g"))
    assert render_svg(ir, engine="python") == svg  # deterministic


def test_the_golden_programs_show_what_they_should(programs):
    jr = programs["job_recommendations"]
    assert "request_query" not in jr.reachable()  # declared but unused: greyed out
    assert [n.id for n in jr.nodes if isinstance(n, Keep)] == ["_keep_1"]
    zoo = programs["expressions"]
    assert len([n for n in zoo.nodes if isinstance(n, Keep)]) == 3
    assert len(zoo.nodes) - len(zoo.reachable()) > 10
    slide_svg = render_svg(programs["slide"], engine="python")
    assert "score · DecisionTreesScorer · double" in slide_svg
    assert 'class="phase-line"' not in slide_svg


@pytest.mark.parametrize("name", NAMES)
def test_layout_boxes_do_not_overlap_and_phases_are_separated(name, programs):
    ir = programs[name]
    lay = layout(ir)
    assert len(lay.nodes) == len(ir.nodes)
    for a, b in combinations(lay.nodes, 2):
        assert not a.overlaps(b), (a.id, b.id)
    for box in lay.nodes:
        assert 0 <= box.x and box.right <= lay.width and 0 <= box.y and box.bottom <= lay.height
    assert len(lay.edges) == sum(len(n.inputs) for n in ir.nodes)
    for e in lay.edges:
        src, dst = lay.box(e.source), lay.box(e.target)
        assert e.points[0] == (round(src.x + src.w / 2, 1), src.bottom)
        assert dst.y == e.points[-1][1] and dst.x <= e.points[-1][0] <= dst.right
        assert src.layer < dst.layer  # every edge points down
    # every node of phase k is drawn between the phase lines around it
    ys = [pl.y for pl in lay.phase_lines]
    for p, members in enumerate(ir.phases()):
        for node_id in members:
            box = lay.box(node_id)
            if p > 0:
                assert box.y > ys[p - 1]
            if p < len(ys):
                assert box.bottom < ys[p]


def test_labels_are_escaped():
    ir = compile("MODEL a_b;\nINPUT DOCUMENT double a;\ndouble s = 2 * a;\n"
                 "r = ORDER DOCUMENTS BY s WITH DESC;\nRETURN r;")
    data = ir.to_json()
    for node in data["nodes"]:
        if node["id"] == "s":
            node["type"] = "Map<String & double>"
    ir = IR.from_json(data)
    svg = render_svg(ir, engine="python", title='<"quoted"> & more')
    root = ET.fromstring(svg)
    assert "Map&lt;String &amp; double&gt;" in svg and "<String" not in svg
    texts = "".join(root.itertext())
    assert "s · Mul · Map<String & double>" in texts
    assert '<"quoted"> & more' in texts
    dot = to_dot(ir)
    assert '"s · Mul · Map<String & double>"' in dot


@pytest.mark.parametrize("name", NAMES)
def test_dot_mentions_every_node_and_edge(name, programs):
    ir = programs[name]
    dot = to_dot(ir)
    assert isinstance(dot, DOTSource) and dot.startswith("digraph ") and dot.rstrip().endswith("}")
    for n in ir.nodes:
        assert f'"{n.id}" [label=' in dot
        for src in n.inputs:
            assert f'"{src}" -> "{n.id}"' in dot
    assert dot.count(" -> ") == sum(len(n.inputs) for n in ir.nodes)
    keeps = sum(isinstance(n, Keep) for n in ir.nodes)
    assert dot.count("subgraph ") == (keeps + 1 if keeps else 0)
    assert to_dot(ir) == dot


def test_graphviz_engine_without_dot_names_how_to_install(programs, monkeypatch):
    _no_dot(monkeypatch)
    with pytest.raises(GraphvizNotFoundError) as info:
        render_svg(programs["slide"], engine="graphviz")
    assert isinstance(info.value, ProMLError) and isinstance(info.value, RenderError)
    assert "apt-get install graphviz" in str(info.value)
    # auto falls back to the built-in layout
    assert render_svg(programs["slide"], engine="auto") == render_svg(programs["slide"], engine="python")
    with pytest.raises(RenderError, match="unknown engine"):
        render_svg(programs["slide"], engine="neato")


def test_graphviz_engine_pipes_dot_text_through_the_dot_binary(programs, monkeypatch, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text(f'#!/bin/sh\n[ "$1" = "-Tsvg" ] || exit 3\ncat > "{tmp_path}/got.dot"\n'
                    "printf '<?xml version=\"1.0\"?>\\n'\n"
                    "printf '<svg xmlns=\"http://www.w3.org/2000/svg\"><g/></svg>\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), "/usr/bin", "/bin"]))  # ours first
    ir = programs["slide"]
    for engine in ("graphviz", "auto"):
        svg = render_svg(ir, engine=engine)
        assert svg.startswith("<svg") and ET.fromstring(svg) is not None
        assert (tmp_path / "got.dot").read_text(encoding="utf-8") == to_dot(ir)
    fake.write_text("#!/bin/sh\necho 'syntax error in line 1' >&2\nexit 1\n")
    with pytest.raises(RenderError, match="syntax error in line 1"):
        render_svg(ir, engine="graphviz")


def test_diagram_wrapper(programs, monkeypatch, tmp_path):
    _no_dot(monkeypatch)
    ir = programs["job_recommendations"]
    diagram = QuasarDiagram(ir, title="Job recs")
    svg = diagram._repr_svg_()
    assert svg == render_svg(ir, engine="python", title="Job recs")
    assert "Job recs" in svg
    saved = diagram.save(tmp_path / "jr.svg")
    assert saved.read_text(encoding="utf-8") == svg
    assert diagram.save(tmp_path / "jr.dot").read_text(encoding="utf-8") == to_dot(ir, title="Job recs")
    assert "job_recommendations" in repr(diagram)
