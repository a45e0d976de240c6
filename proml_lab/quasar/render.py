"""Pictures of a Quasar program: its IR as a DAG, in SVG (for notebooks) or Graphviz DOT.

>>> from proml_lab.quasar.ir import compile
>>> ir = compile('''INPUT DOCUMENT double job_seniority;
... double score = 0.5 * job_seniority;
... ranked = ORDER DOCUMENTS BY score WITH DESC;
... RETURN ranked;''')
>>> svg = render_svg(ir, engine="python")
>>> svg.startswith("<svg") and 'data-node="score"' in svg
True
>>> "job_seniority -> score" in to_dot(ir).replace('"', '')
True

``render_svg(engine="python")`` uses a small built-in layered (Sugiyama-style) layout, so it works
without any system package; ``engine="graphviz"`` pipes :func:`to_dot` through the ``dot`` binary and
``engine="auto"`` (the default) uses ``dot`` when it is on ``PATH``.

The built-in SVG is meant to be read by code too: every node is a ``<g class="node ..."
data-node="ID">``, every edge a ``<path class="edge" data-source=... data-target=...>``, nodes the
output does not depend on carry the class ``unreachable`` (a lazy engine never computes them) and
each ``KEEP`` draws a dashed ``<line class="phase-line" data-keep=...>`` across the picture.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from proml_lab.errors import ProMLError
from proml_lab.quasar.ir import IR, Input, IRNode, Keep, Op, Trainable

__all__ = [
    "DOTSource",
    "EdgePath",
    "GraphvizNotFoundError",
    "Layout",
    "NodeBox",
    "PhaseLine",
    "QuasarDiagram",
    "RenderError",
    "layout",
    "node_label",
    "render_svg",
    "to_dot",
]


class RenderError(ProMLError):
    """A Quasar program could not be drawn."""


class GraphvizNotFoundError(RenderError):
    """``engine="graphviz"`` was asked for but the ``dot`` binary is not on ``PATH``."""

    def __init__(self) -> None:
        super().__init__(
            "engine='graphviz' needs the Graphviz 'dot' program, which is not on PATH. Install it "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; conda: conda install "
            "graphviz) or use engine='python' / engine='auto' for the built-in layout."
        )


# ---- styling ------------------------------------------------------------------------------------------

LIST_KINDS = ("order", "top", "filter", "diversify", "keep", "return")

INPUT_FILL = {"member": "#dbeafe", "document": "#dcfce7", "request": "#fef3c7", "constant": "#f3f4f6"}
INPUT_STROKE = {"member": "#2563eb", "document": "#16a34a", "request": "#d97706", "constant": "#6b7280"}
OP_FILL, OP_STROKE = "#ffffff", "#475569"
TRAINABLE_FILL, TRAINABLE_STROKE = "#fce7f3", "#be185d"
LIST_FILL, LIST_STROKE = "#ede9fe", "#7c3aed"
MUTED_FILL, MUTED_STROKE, MUTED_TEXT = "#f3f4f6", "#cbd5e1", "#9ca3af"
EDGE_COLOR, MUTED_EDGE = "#64748b", "#d1d5db"

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
FONT_SIZE = 12
CHAR_W = 7.4  # average advance of a 12px monospace glyph
BOX_H = 34.0
PAD_X = 12.0
BADGE_W = 66.0
H_GAP = 28.0
V_GAP = 56.0
MARGIN = 24.0
TITLE_H = 28.0
LEGEND_H = 64.0


def node_label(node: IRNode) -> str:
    """``id · operator · type``.

    ``score · DecisionTreesScorer · double``, ``job_seniority · INPUT DOCUMENT · double``,
    ``ranked · ORDER · List``.
    """
    if isinstance(node, (Op, Trainable)):
        what = node.op
    elif isinstance(node, Input):
        what = f"INPUT {node.scope.upper()}"
    else:
        what = node.kind.upper()
    return f"{node.id} · {what} · {node.type}"


def _fill_stroke(node: IRNode) -> tuple[str, str]:
    if isinstance(node, Input):
        return INPUT_FILL.get(node.scope, OP_FILL), INPUT_STROKE.get(node.scope, OP_STROKE)
    if isinstance(node, Trainable):
        return TRAINABLE_FILL, TRAINABLE_STROKE
    if node.kind in LIST_KINDS:
        return LIST_FILL, LIST_STROKE
    return OP_FILL, OP_STROKE


# ---- layout -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeBox:
    """Where a node is drawn: top-left corner ``(x, y)``, size ``(w, h)``, and what it shows."""

    id: str
    kind: str
    scope: str
    label: str
    layer: int
    x: float
    y: float
    w: float
    h: float
    reachable: bool

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def overlaps(self, other: NodeBox) -> bool:
        """True when the two boxes share interior area (touching edges do not count)."""
        return (self.x < other.right and other.x < self.right
                and self.y < other.bottom and other.y < self.bottom)


@dataclass(frozen=True)
class EdgePath:
    """One IR edge (``source`` is the ``index``-th input of ``target``) as a cubic Bézier: 4 points."""

    source: str
    target: str
    index: int
    points: tuple[tuple[float, float], ...]
    reachable: bool


@dataclass(frozen=True)
class PhaseLine:
    """The dashed line under a ``KEEP``: phase ``phase`` ends at height ``y``."""

    keep: str
    phase: int
    y: float


@dataclass(frozen=True)
class Layout:
    """Geometry of the pure-Python drawing (what :func:`render_svg` draws)."""

    width: float
    height: float
    nodes: tuple[NodeBox, ...]
    edges: tuple[EdgePath, ...]
    phase_lines: tuple[PhaseLine, ...]
    layers: tuple[tuple[str, ...], ...]

    def box(self, node_id: str) -> NodeBox:
        for b in self.nodes:
            if b.id == node_id:
                return b
        raise KeyError(node_id)


def _layers(ir: IR) -> tuple[dict[str, int], list[tuple[Keep, int]]]:
    """Layer of each node: the longest path from the inputs.

    Nodes of a later phase go strictly below the ``KEEP`` that closed the phase before, and a ``KEEP`` is
    at least as deep as every node of its own phase, so the phase line can run straight across.
    """
    by_id = {n.id: n for n in ir.nodes}
    phase_of: dict[str, int] = {}
    keeps: list[Keep] = []
    for n in ir.nodes:
        phase_of[n.id] = len(keeps)
        if isinstance(n, Keep):
            keeps.append(n)
    layer: dict[str, int] = {}
    floor = {0: 0}
    deepest: dict[int, int] = {}
    for node_id in ir.topological_order():
        node = by_id[node_id]
        phase = phase_of[node_id]
        lv = max([floor.get(phase, 0)] + [layer[i] + 1 for i in node.inputs])
        if isinstance(node, Keep):
            lv = max(lv, deepest.get(phase, 0))
            floor[phase + 1] = lv + 1
        layer[node_id] = lv
        deepest[phase] = max(deepest.get(phase, 0), lv)
    keep_layers = [(k, layer[k.id]) for k in keeps]
    return layer, keep_layers


def _order_layers(ir: IR, layer: dict[str, int], sweeps: int = 4) -> list[list[str]]:
    """Nodes per layer, ordered by a few barycenter sweeps (down by inputs, up by consumers)."""
    topo = ir.topological_order()
    n_layers = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(n_layers)]
    for node_id in topo:
        rows[layer[node_id]].append(node_id)
    preds = {n.id: list(n.inputs) for n in ir.nodes}
    succs: dict[str, list[str]] = {n.id: [] for n in ir.nodes}
    for n in ir.nodes:
        for i in n.inputs:
            succs[i].append(n.id)

    def position() -> dict[str, float]:
        pos: dict[str, float] = {}
        for row in rows:
            for k, node_id in enumerate(row):
                pos[node_id] = (k + 0.5) / len(row)  # relative place, so wide and narrow layers compare
        return pos

    for sweep in range(sweeps):
        down = sweep % 2 == 0
        order = range(n_layers) if down else range(n_layers - 1, -1, -1)
        for li in order:
            pos = position()
            row = rows[li]
            neighbours = preds if down else succs

            def key(item: tuple[int, str], pos: dict[str, float] = pos, nb: dict = neighbours) -> tuple:
                k, node_id = item
                others = [pos[o] for o in nb[node_id]]
                bary = sum(others) / len(others) if others else pos[node_id]
                return (round(bary, 9), k)

            rows[li] = [node_id for _, node_id in sorted(enumerate(row), key=key)]
    return rows


def layout(ir: IR, *, title: str | None = None) -> Layout:
    """Place the nodes of *ir* top to bottom (inputs first) and route its edges; deterministic."""
    by_id = {n.id: n for n in ir.nodes}
    reach = set(ir.reachable())
    layer, keep_layers = _layers(ir)
    rows = _order_layers(ir, layer)
    top = MARGIN + (TITLE_H if title else 0.0)

    widths: dict[str, float] = {}
    for n in ir.nodes:
        w = len(node_label(n)) * CHAR_W + 2 * PAD_X
        if isinstance(n, Trainable):
            w += BADGE_W
        widths[n.id] = round(w, 1)
    row_widths = [sum(widths[i] for i in row) + H_GAP * max(len(row) - 1, 0) for row in rows]
    inner = max(row_widths, default=0.0)
    width = max(inner + 2 * MARGIN, 420.0)

    boxes: dict[str, NodeBox] = {}
    for li, row in enumerate(rows):
        x = (width - row_widths[li]) / 2
        y = top + li * (BOX_H + V_GAP)
        for node_id in row:
            n = by_id[node_id]
            boxes[node_id] = NodeBox(node_id, n.kind, n.scope, node_label(n), li, round(x, 1), round(y, 1),
                                     widths[node_id], BOX_H, node_id in reach)
            x += widths[node_id] + H_GAP

    edges: list[EdgePath] = []
    for n in ir.nodes:
        t = boxes[n.id]
        k = len(n.inputs)
        for idx, src in enumerate(n.inputs):
            s = boxes[src]
            sx, sy = s.x + s.w / 2, s.bottom
            tx, ty = t.x + t.w * (idx + 1) / (k + 1), t.y
            dy = max((ty - sy) / 2, 20.0)
            pts = ((sx, sy), (sx, sy + dy), (tx, ty - dy), (tx, ty))
            edges.append(EdgePath(src, n.id, idx, tuple((round(a, 1), round(b, 1)) for a, b in pts),
                                  src in reach and n.id in reach))

    phase_lines = tuple(
        PhaseLine(k.id, p + 1, round(top + lv * (BOX_H + V_GAP) + BOX_H + V_GAP / 2, 1))
        for p, (k, lv) in enumerate(keep_layers)
    )
    height = top + len(rows) * (BOX_H + V_GAP) - V_GAP + MARGIN + LEGEND_H
    if keep_layers and keep_layers[-1][1] == len(rows) - 1:
        height += V_GAP / 2  # the last line sits under the last layer
    return Layout(round(width, 1), round(height, 1), tuple(boxes[i] for i in ir.topological_order()),
                  tuple(edges), phase_lines, tuple(tuple(r) for r in rows))


# ---- SVG ----------------------------------------------------------------------------------------------


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(v: float) -> str:
    """A coordinate, short and stable: ``12``, ``12.5``."""
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _svg_python(ir: IR, title: str | None) -> str:
    lay = layout(ir, title=title)
    uid = "qz" + hashlib.sha1(ir.dumps().encode()).hexdigest()[:8]
    out: list[str] = []
    w, h = _n(lay.width), _n(lay.height)
    out.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
               f'class="quasar-dag" data-model="{_esc(ir.name or "")}" font-family="{FONT}" '
               f'font-size="{FONT_SIZE}" style="max-width: 100%; height: auto">')  # fits a notebook cell
    out.append(f"<title>{_esc(title or ir.name or 'Quasar program')}</title>")
    out.append("<defs>")
    for name, color in (("arrow", EDGE_COLOR), ("arrow-muted", MUTED_EDGE)):
        out.append(f'<marker id="{uid}-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                   f'fill="{color}"/></marker>')
    out.append("</defs>")
    out.append(f'<rect class="background" x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>')
    if title:
        out.append(f'<text class="title" x="{_n(MARGIN)}" y="{_n(MARGIN + 12)}" font-size="15" '
                   f'font-weight="bold" fill="#111827">{_esc(title)}</text>')

    out.append('<g class="phase-lines">')
    for pl in lay.phase_lines:
        out.append(f'<line class="phase-line" data-keep="{_esc(pl.keep)}" x1="0" y1="{_n(pl.y)}" x2="{w}" '
                   f'y2="{_n(pl.y)}" stroke="#7c3aed" stroke-width="1.2" stroke-dasharray="6 4"/>')
        out.append(f'<text class="phase-label" x="{_n(lay.width - 6)}" y="{_n(pl.y - 4)}" text-anchor="end" '
                   f'font-size="10" fill="#7c3aed">{_esc(pl.keep)} · phase {pl.phase} ↓ phase '
                   f'{pl.phase + 1}</text>')
    out.append("</g>")

    out.append('<g class="edges" fill="none">')
    for e in lay.edges:
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = e.points
        d = f"M{_n(x0)},{_n(y0)} C{_n(x1)},{_n(y1)} {_n(x2)},{_n(y2)} {_n(x3)},{_n(y3)}"
        color, marker, cls = ((EDGE_COLOR, "arrow", "edge") if e.reachable
                              else (MUTED_EDGE, "arrow-muted", "edge unreachable"))
        out.append(f'<path class="{cls}" data-source="{_esc(e.source)}" data-target="{_esc(e.target)}" '
                   f'data-index="{e.index}" d="{d}" stroke="{color}" stroke-width="1.3" '
                   f'marker-end="url(#{uid}-{marker})"/>')
    out.append("</g>")

    out.append('<g class="nodes">')
    for b in lay.nodes:
        node = ir.node(b.id)
        fill, stroke = _fill_stroke(node)
        text_color = "#111827"
        classes = ["node", f"kind-{b.kind}", f"scope-{b.scope}"]
        dash = ""
        if not b.reachable:
            classes.append("unreachable")
            fill, stroke, text_color, dash = MUTED_FILL, MUTED_STROKE, MUTED_TEXT, ' stroke-dasharray="4 3"'
        rx = 12 if b.kind in LIST_KINDS else 3
        out.append(f'<g class="{" ".join(classes)}" data-node="{_esc(b.id)}" data-kind="{b.kind}" '
                   f'data-scope="{_esc(b.scope)}">')
        out.append(f"<title>{_esc(b.label)}</title>")
        out.append(f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.w)}" height="{_n(b.h)}" rx="{rx}" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="1.3"{dash}/>')
        text_w = b.w - (BADGE_W if b.kind == "trainable" else 0)
        out.append(f'<text x="{_n(b.x + text_w / 2)}" y="{_n(b.y + b.h / 2 + 4)}" text-anchor="middle" '
                   f'fill="{text_color}">{_esc(b.label)}</text>')
        if b.kind == "trainable":
            bx = b.right - BADGE_W + 2
            out.append(f'<g class="badge"><rect x="{_n(bx)}" y="{_n(b.y + 8)}" width="{_n(BADGE_W - 8)}" '
                       f'height="18" rx="9" fill="{stroke}"/><text x="{_n(bx + (BADGE_W - 8) / 2)}" '
                       f'y="{_n(b.y + 21)}" text-anchor="middle" font-size="10" fill="#ffffff">trainable'
                       f'</text></g>')
        out.append("</g>")
    out.append("</g>")

    out.extend(_legend(lay))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(lay: Layout) -> list[str]:
    y = lay.height - LEGEND_H + 14
    items = [
        ("input member", INPUT_FILL["member"], INPUT_STROKE["member"], 3, ""),
        ("input document", INPUT_FILL["document"], INPUT_STROKE["document"], 3, ""),
        ("input request", INPUT_FILL["request"], INPUT_STROKE["request"], 3, ""),
        ("operator", OP_FILL, OP_STROKE, 3, ""),
        ("trainable", TRAINABLE_FILL, TRAINABLE_STROKE, 3, ""),
        ("list operation", LIST_FILL, LIST_STROKE, 9, ""),
        ("not needed by RETURN", MUTED_FILL, MUTED_STROKE, 3, ' stroke-dasharray="4 3"'),
    ]
    out = ['<g class="legend" font-size="10">']
    x = MARGIN
    row_y = y
    for label, fill, stroke, rx, dash in items:
        item_w = 22 + len(label) * 6.2 + 18
        if x + item_w > max(lay.width - MARGIN, MARGIN + item_w):
            x, row_y = MARGIN, row_y + 20
        out.append(f'<rect x="{_n(x)}" y="{_n(row_y)}" width="16" height="12" rx="{rx}" fill="{fill}" '
                   f'stroke="{stroke}"{dash}/>')
        out.append(f'<text x="{_n(x + 22)}" y="{_n(row_y + 10)}" fill="#374151">{_esc(label)}</text>')
        x += item_w
    out.append(f'<line x1="{_n(x)}" y1="{_n(row_y + 6)}" x2="{_n(x + 24)}" y2="{_n(row_y + 6)}" '
               f'stroke="#7c3aed" stroke-dasharray="6 4"/>')
    out.append(f'<text x="{_n(x + 30)}" y="{_n(row_y + 10)}" fill="#374151">KEEP phase boundary</text>')
    out.append("</g>")
    return out


# ---- DOT / Graphviz -----------------------------------------------------------------------------------


class DOTSource(str):
    """Graphviz DOT text (a ``str``); :meth:`save` writes it to a file."""

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self, encoding="utf-8")
        return path


def _dot_q(text: object) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(ir: IR, *, title: str | None = None) -> DOTSource:
    """The DAG in Graphviz DOT, same styling as the SVG; ``KEEP`` phases become clusters."""
    reach = set(ir.reachable())
    phases: list[list[IRNode]] = [[]]
    for n in ir.nodes:
        phases[-1].append(n)
        if isinstance(n, Keep):
            phases.append([])
    if not phases[-1]:
        phases.pop()
    lines = [f"digraph {_dot_q(ir.name or 'quasar')} {{",
             "  rankdir=TB;",
             f"  graph [fontname={_dot_q('monospace')}, fontsize=12"
             + (f", label={_dot_q(title)}, labelloc=t" if title else "") + "];",
             f"  node [shape=box, style=filled, fontname={_dot_q('monospace')}, fontsize=11];",
             f"  edge [color={_dot_q(EDGE_COLOR)}, arrowsize=0.7];"]

    def node_line(n: IRNode, indent: str) -> str:
        fill, stroke = _fill_stroke(n)
        font = "#111827"
        style = "filled,rounded" if n.kind in LIST_KINDS else "filled"
        label = node_label(n) + (" [trainable]" if isinstance(n, Trainable) else "")
        if n.id not in reach:
            fill, stroke, font, style = MUTED_FILL, MUTED_STROKE, MUTED_TEXT, style + ",dashed"
        return (f"{indent}{_dot_q(n.id)} [label={_dot_q(label)}, fillcolor={_dot_q(fill)}, "
                f"color={_dot_q(stroke)}, fontcolor={_dot_q(font)}, style={_dot_q(style)}, "
                f"class={_dot_q(n.kind)}];")

    if len(phases) > 1:
        for p, members in enumerate(phases):
            lines.append(f"  subgraph {_dot_q(f'cluster_phase_{p + 1}')} {{")
            lines.append(f"    label={_dot_q(f'phase {p + 1}')}; style=dashed; color={_dot_q(LIST_STROKE)};")
            lines.extend(node_line(n, "    ") for n in members)
            lines.append("  }")
    else:
        lines.extend(node_line(n, "  ") for n in ir.nodes)
    for n in ir.nodes:
        for src in n.inputs:
            extra = "" if (src in reach and n.id in reach) else f" [color={_dot_q(MUTED_EDGE)}]"
            lines.append(f"  {_dot_q(src)} -> {_dot_q(n.id)}{extra};")
    lines.append("}")
    return DOTSource("\n".join(lines) + "\n")


def _svg_graphviz(ir: IR, title: str | None, dot: str) -> str:
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=to_dot(ir, title=title).encode("utf-8"),
                              capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RenderError(f"running Graphviz ({dot} -Tsvg) failed: {err}") from err
    if proc.returncode != 0:
        raise RenderError(f"Graphviz ({dot} -Tsvg) exited with {proc.returncode}: "
                          f"{proc.stderr.decode('utf-8', 'replace').strip()}")
    text = proc.stdout.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text  # drop the XML prolog/doctype so it can be inlined


def render_svg(ir: IR, *, engine: str = "auto", title: str | None = None) -> str:
    """The DAG of *ir* as a standalone SVG document (a string).

    ``engine``: ``"python"`` (built-in layered layout, see :func:`layout`), ``"graphviz"`` (the ``dot``
    binary; :class:`GraphvizNotFoundError` when it is missing) or ``"auto"`` (Graphviz when present).
    """
    if engine not in ("auto", "python", "graphviz"):
        raise RenderError(f"unknown engine {engine!r}; use 'auto', 'python' or 'graphviz'")
    if engine != "python":
        dot = shutil.which("dot")
        if dot is not None:
            return _svg_graphviz(ir, title, dot)
        if engine == "graphviz":
            raise GraphvizNotFoundError()
    return _svg_python(ir, title)


class QuasarDiagram:
    """A notebook-friendly picture of a program: Jupyter shows it through :meth:`_repr_svg_`."""

    def __init__(self, ir: IR, *, engine: str = "auto", title: str | None = None) -> None:
        self.ir = ir
        self.engine = engine
        self.title = title
        self._svg: str | None = None

    @property
    def svg(self) -> str:
        if self._svg is None:
            self._svg = render_svg(self.ir, engine=self.engine, title=self.title)
        return self._svg

    def _repr_svg_(self) -> str:
        return self.svg

    def to_dot(self) -> DOTSource:
        return to_dot(self.ir, title=self.title)

    def save(self, path: str | Path) -> Path:
        """Write the SVG (or DOT text when *path* ends in ``.dot`` / ``.gv``); returns the path."""
        path = Path(path)
        text = self.to_dot() if path.suffix in (".dot", ".gv") else self.svg
        path.write_text(text, encoding="utf-8")
        return path

    def __repr__(self) -> str:
        return f"QuasarDiagram({self.ir.name or 'quasar'!r}, {len(self.ir.nodes)} nodes)"
