"""Drawing a pipeline's node graph: Mermaid, Graphviz DOT, SVG (through Graphviz's ``dot``),
terminal text, and Jupyter display, with a run's counts per node coloured by state.

A ``GraphDrawing`` is built from plain ``GraphNode`` descriptions (label, kind, detail,
upstream labels) and optional counts per node label, so it needs no live pipeline:
``GraphDrawing.of(nodes, result)`` describes compiled nodes, and a caller holding only what a
store recorded builds the ``GraphNode`` values itself. ``Pipeline.show_graph()`` adds the
counts of the pipeline's latest recorded run (docs/graphs.md).

Safety and determinism: node ids are ``n0``, ``n1``, ... in the given node order, never made
from labels, and every piece of text passes through one escaping per format (after control
characters became visible escapes such as ``\\n``), so no label (quotes, brackets, ``-->``,
newlines, markup) can change a drawing's structure or a terminal's state. The same nodes and
counts always give the same text.
"""

from __future__ import annotations

import html
import importlib.util
import shutil
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from podline.errors import ConfigurationError, GraphError, MissingDependencyError, format_names
from podline.nodes import FunctionNode, Node, OperatorNode
from podline.pipeline.orchestration import NodeCounts, OrchestratorResult

if TYPE_CHECKING:
    from podline.observability import PipelineObservations
    from podline.pipeline.pipeline import Pipeline

__all__ = [
    "STATE_COLOURS",
    "GraphDrawing",
    "GraphNode",
    "NodeKind",
    "NodeState",
    "describe_nodes",
    "dot_available",
    "draw_pipeline",
    "render_svg",
    "stored_counts",
]

NodeKind = Literal["source", "function", "operator"]
#: ``not run``: no counts for the node; ``ran``: counts without packet calls (a source, an
#: operator, a function node with no input); otherwise the most telling of its packets'
#: outcomes, in this order: any failed, any computed, any cached, only skipped.
NodeState = Literal["not run", "ran", "failed", "computed", "cached", "skipped"]

#: (fill, border) colour of each state, the same in every format.
STATE_COLOURS: dict[NodeState, tuple[str, str]] = {
    "not run": ("#ffffff", "#9e9e9e"),
    "ran": ("#eceff1", "#607d8b"),
    "failed": ("#ffcdd2", "#c62828"),
    "computed": ("#c8e6c9", "#2e7d32"),
    "cached": ("#bbdefb", "#1565c0"),
    "skipped": ("#eeeeee", "#757575"),
}
_TEXT_COLOUR = "#212121"
_KINDS: tuple[NodeKind, ...] = ("source", "function", "operator")
# Mermaid shapes (open, close) and Graphviz node attributes per kind.
_MERMAID_SHAPES = {"source": ('[("', '")]'), "function": ('("', '")'), "operator": ('{{"', '"}}')}
_DOT_SHAPES = {
    "source": 'shape=cylinder, style="filled"',
    "function": 'shape=box, style="rounded,filled"',
    "operator": 'shape=hexagon, style="filled"',
}
# Kept as they are in Mermaid labels; every other character becomes an entity (``#35;``).
_MERMAID_PLAIN = frozenset(" _-.,:/()")
_SUFFIXES = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot"}
_SUFFIXES |= {".svg": "svg", ".txt": "text"}

Counts = Mapping[str, NodeCounts]


@dataclass(frozen=True)
class GraphNode:
    """One node as drawn: its unique ``label``, its ``kind``, a ``detail`` (the source's
    type, the function's name and version, the operator's kind) and its upstreams' labels
    in input order."""

    label: str
    kind: NodeKind
    detail: str = ""
    upstreams: tuple[str, ...] = ()


def describe_nodes(nodes: Iterable[Node]) -> tuple[GraphNode, ...]:
    """The ``GraphNode`` of each compiled node, in the given order."""
    described = []
    for node in nodes:
        if isinstance(node, FunctionNode):
            function = node.pod.packet_function
            detail = f"{function.name} {function.version}"
        elif isinstance(node, OperatorNode):
            detail = type(node.producer).__name__
        else:
            detail = type(node.stream).__name__
        upstreams = tuple(u.label for u in node.upstreams)
        described.append(GraphNode(node.label, node.node_type, detail, upstreams))
    return tuple(described)


@dataclass(frozen=True)
class GraphDrawing:
    """A node graph to draw, with optional counts by node label (see the module docs).

    ``str(drawing)`` is the terminal text; in Jupyter it displays as SVG where Graphviz's
    ``dot`` is installed, else as Mermaid (which JupyterLab 4.1+ renders).
    """

    nodes: tuple[GraphNode, ...]
    counts: Counts = field(default_factory=dict)
    title: str = ""

    def __post_init__(self) -> None:
        labels = [node.label for node in self.nodes]
        repeated = {label for label in labels if labels.count(label) > 1}
        if repeated:
            raise GraphError(
                f"a graph's node labels must be unique; repeated: {format_names(repeated)}"
            )
        unknown_kinds = {node.kind for node in self.nodes} - set(_KINDS)
        if unknown_kinds:
            raise GraphError(
                f"unknown node kind(s) {format_names(unknown_kinds)}; kinds are "
                f"{format_names(_KINDS)}"
            )
        missing = {u for node in self.nodes for u in node.upstreams} - set(labels)
        if missing:
            raise GraphError(f"edges name node(s) not in the graph: {format_names(missing)}")

    @classmethod
    def of(
        cls,
        nodes: Iterable[Node],
        result: OrchestratorResult | Counts | None = None,
        *,
        title: str = "",
    ) -> GraphDrawing:
        """The drawing of compiled nodes, with the counts of ``result`` (a run's
        ``OrchestratorResult`` or counts by label) if given."""
        counts = result.counts if isinstance(result, OrchestratorResult) else result
        if not title and isinstance(result, OrchestratorResult):
            title = f"run {result.run_id}"
        return cls(describe_nodes(nodes), dict(counts or {}), title)

    # ------------------------------------------------------------------ per node
    def state(self, node: GraphNode) -> NodeState:
        """The state a node is coloured by (see ``NodeState``)."""
        counts = self.counts.get(node.label)
        if counts is None:
            return "not run"
        return next((state for state, n in _outcomes(counts).items() if n), "ran")

    def lines(self, node: GraphNode) -> list[str]:
        """A node's text, line by line, as every format shows it (before escaping)."""
        kind = f"{node.kind}: {node.detail}" if node.detail else node.kind
        lines = [_printable(node.label), _printable(kind)]
        counts = self.counts.get(node.label)
        if counts is not None:
            lines.append(_counts_text(node, counts))
        return lines

    # ------------------------------------------------------------------ formats
    def to_mermaid(self) -> str:
        """Mermaid flowchart text (``flowchart TD``)."""
        ids = self._ids()
        out = ["flowchart TD"]
        for node in self.nodes:
            opening, closing = _MERMAID_SHAPES[node.kind]
            text = "<br>".join(_mermaid_text(line) for line in self.lines(node))
            out.append(f"    {ids[node.label]}{opening}{text}{closing}")
        out.extend(f"    {a} --> {b}" for a, b in self._edges(ids))
        for state, members in self._by_state().items():
            fill, stroke = STATE_COLOURS[state]
            name = _state_class(state)
            out.append(f"    classDef {name} fill:{fill},stroke:{stroke},color:{_TEXT_COLOUR}")
            out.append(f"    class {','.join(ids[n.label] for n in members)} {name}")
        return "\n".join(out) + "\n"

    def to_dot(self) -> str:
        """Graphviz DOT text (a ``digraph``, top to bottom)."""
        ids = self._ids()
        out = ["digraph pipeline {", '    graph [rankdir=TB, fontname="Helvetica"];']
        if self.title:
            out.append(f"    graph [labelloc=t, label=<{_dot_html(_printable(self.title))}>];")
        out.append(f'    node [fontname="Helvetica", fontsize=11, fontcolor="{_TEXT_COLOUR}"];')
        out.append('    edge [color="#616161"];')
        for node in self.nodes:
            fill, stroke = STATE_COLOURS[self.state(node)]
            first, *rest = (_dot_html(line) for line in self.lines(node))
            label = "<BR/>".join([f"<B>{first}</B>", *rest])
            out.append(
                f"    {ids[node.label]} [{_DOT_SHAPES[node.kind]}, "
                f'fillcolor="{fill}", color="{stroke}", label=<{label}>];'
            )
        out.extend(f"    {a} -> {b};" for a, b in self._edges(ids))
        out.append("}")
        return "\n".join(out) + "\n"

    def to_svg(self) -> str:
        """SVG drawn by Graphviz's ``dot`` (``MissingDependencyError`` without it)."""
        return render_svg(self.to_dot())

    def to_text(self) -> str:
        """A plain-text table for terminals: one line per node in graph order, with its
        kind, detail, inputs (``<- a, b``) and counts."""
        rows = [
            (
                _printable(node.label),
                node.kind,
                _printable(node.detail),
                "<- " + ", ".join(_printable(u) for u in node.upstreams) if node.upstreams else "",
                _counts_text(node, self.counts[node.label]) if node.label in self.counts else "",
            )
            for node in self.nodes
        ]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
        head = _printable(self.title) if self.title else "pipeline graph"
        lines = [f"{head}: {len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}"]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append(("  " + "  ".join([*cells, row[4]])).rstrip())
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write the drawing to ``path`` as ``format`` (``"mermaid"``, ``"dot"``, ``"svg"``
        or ``"text"``; ``None``: from the suffix, ``.mmd``/``.mermaid``, ``.dot``/``.gv``,
        ``.svg``, ``.txt``). Returns the path."""
        path = Path(path)
        chosen = format or _SUFFIXES.get(path.suffix.lower())
        renderers = {"mermaid": self.to_mermaid, "dot": self.to_dot, "svg": self.to_svg}
        renderers["text"] = self.to_text
        if chosen not in renderers:
            raise ConfigurationError(
                f"cannot tell how to draw {str(path)!r}: give format= one of "
                f"{format_names(renderers)}, or a suffix among {format_names(_SUFFIXES)}"
            )
        path.write_text(renderers[chosen](), encoding="utf-8")
        return path

    def __str__(self) -> str:
        return self.to_text()

    # ------------------------------------------------------------------ Jupyter
    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        """SVG (and the same inline in HTML) where ``dot`` is installed, else Mermaid, which
        JupyterLab 4.1+ renders; always the text table for frontends that show neither."""
        bundle = {"text/plain": self.to_text()}
        svg = self._repr_svg_()
        if svg is None:
            bundle["text/vnd.mermaid"] = self.to_mermaid()
        else:
            bundle["image/svg+xml"] = svg
            bundle["text/html"] = _svg_in_html(svg)
        return bundle

    def _repr_svg_(self) -> str | None:
        """The SVG, or None (IPython's "no such form") where ``dot`` is missing."""
        return self.to_svg() if dot_available() else None

    def _repr_html_(self) -> str | None:
        """The SVG inline in HTML, or None where ``dot`` is missing: an HTML form would
        win over the Mermaid form in JupyterLab, which draws Mermaid itself."""
        svg = self._repr_svg_()
        return None if svg is None else _svg_in_html(svg)

    # ------------------------------------------------------------------ helpers
    def _ids(self) -> dict[str, str]:
        return {node.label: f"n{i}" for i, node in enumerate(self.nodes)}

    def _edges(self, ids: Mapping[str, str]) -> list[tuple[str, str]]:
        """(upstream id, node id) per edge, by node, in input order."""
        return [(ids[u], ids[node.label]) for node in self.nodes for u in node.upstreams]

    def _by_state(self) -> dict[NodeState, list[GraphNode]]:
        """Nodes by state, states in ``STATE_COLOURS`` order, ``not run`` left out."""
        grouped: dict[NodeState, list[GraphNode]] = {}
        for node in self.nodes:
            grouped.setdefault(self.state(node), []).append(node)
        return {s: grouped[s] for s in STATE_COLOURS if s in grouped and s != "not run"}


def stored_counts(
    observations: PipelineObservations,
    *,
    run_id: str | None = None,
    pipeline_uri: str | None = None,
) -> tuple[str | None, dict[str, NodeCounts]]:
    """The id and counts by node of a recorded run (``run_id=None``: the latest, of
    ``pipeline_uri`` only when given), read from the store; ``(None, {})`` if none."""
    frame = observations.node_counts(run_id, pipeline_uri=pipeline_uri)
    counts = {
        row["node"]: NodeCounts(
            computed=row["computed"],
            cached=row["cached"],
            skipped=row["skipped"],
            failed=row["failed"],
            rows=row["rows"],
        )
        for row in frame.iter_rows(named=True)
    }
    return (frame["run_id"][0] if frame.height else None), counts


def draw_pipeline(
    pipeline: Pipeline, result: OrchestratorResult | None = None, *, counts: bool = True
) -> GraphDrawing:
    """``pipeline.show_graph()``: its compiled graph titled by its name, with ``result``'s
    counts, else (``counts=True``) those of the latest recorded run of the same graph (same
    URI: counts of an earlier graph could belong to other nodes)."""
    graph = pipeline.graph if pipeline.graph is not None else pipeline.compile()
    if result is not None:
        return GraphDrawing.of(graph, result, title=f"{pipeline.name}, run {result.run_id}")
    found: dict[str, NodeCounts] = {}
    run_id = None
    if counts:
        run_id, found = stored_counts(pipeline.observations, pipeline_uri=pipeline.uri)
    title = pipeline.name if run_id is None else f"{pipeline.name}, run {run_id}"
    return GraphDrawing.of(graph, found, title=title)


def dot_available() -> bool:
    """Whether SVG can be drawn here: the ``graphviz`` package and the ``dot`` program."""
    return importlib.util.find_spec("graphviz") is not None and shutil.which("dot") is not None


def render_svg(dot: str) -> str:
    """``dot`` (DOT text) drawn as SVG by Graphviz; ``MissingDependencyError`` naming what
    to install when the ``graphviz`` package or the ``dot`` program is missing."""
    try:
        import graphviz
    except ImportError as exc:
        raise MissingDependencyError(
            "drawing a graph as SVG needs the Python package graphviz, which is not "
            "installed: pip install 'podline[graphs]' (Mermaid and DOT text need nothing)"
        ) from exc
    try:
        svg: str = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as exc:
        raise MissingDependencyError(
            "drawing a graph as SVG needs Graphviz's dot program, which is not on PATH: "
            "install Graphviz (apt-get install graphviz, brew install graphviz or conda "
            "install graphviz); Mermaid and DOT text need nothing"
        ) from exc
    return svg


# ---------------------------------------------------------------------- text helpers
def _counts_text(node: GraphNode, counts: NodeCounts) -> str:
    if node.kind != "function":
        return f"{counts.rows} rows"
    order: tuple[NodeState, ...] = ("computed", "cached", "skipped", "failed")
    outcomes = _outcomes(counts)
    parts = [f"{outcomes[name]} {name}" for name in order if outcomes[name]]
    if counts.recomputed:
        parts.append(f"{counts.recomputed} recomputed")
    return ", ".join(parts) or "no packets"


def _outcomes(counts: NodeCounts) -> dict[NodeState, int]:
    """Packets per outcome, in the order that decides a node's state (see ``NodeState``)."""
    return {
        "failed": counts.failed,
        "computed": counts.computed,
        "cached": counts.cached,
        "skipped": counts.skipped,
    }


def _printable(text: str) -> str:
    """``text`` with control, format and separator characters (newlines, escapes, bidi
    overrides, ...) written as visible escapes, the way ``repr`` writes them."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch)[0] in "CZ" and ch != " "
        else ch
        for ch in text
    )


def _mermaid_text(text: str) -> str:
    """Mermaid label text: letters, digits and a few safe marks as they are, every other
    character as a numeric entity (``#35;``), which Mermaid draws as the character."""
    return "".join(
        ch if ch in _MERMAID_PLAIN or (ch.isalnum() and ch.isprintable()) else f"#{ord(ch)};"
        for ch in text
    )


def _dot_html(text: str) -> str:
    """Text for a Graphviz HTML-like label: markup characters as XML entities, backslashes
    doubled (Graphviz expands ``\\N``, ``\\G``, ... in HTML-like labels too, after entities:
    ``\\N`` would draw the node's id instead of the label's text), and ``]`` as an entity
    too: Graphviz's parser rejects a label whose text is only ``]`` characters."""
    return html.escape(text, quote=True).replace("\\", "\\\\").replace("]", "&#93;")


def _state_class(state: str) -> str:
    return state.replace(" ", "_")


def _svg_in_html(svg: str) -> str:
    # Inline SVG must start at the <svg> element: no XML declaration or doctype in HTML.
    return f"<div>{svg[svg.find('<svg') :]}</div>"
