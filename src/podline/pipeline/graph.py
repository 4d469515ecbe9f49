"""``PipelineGraph``: compiled nodes in topological order, and the pipeline's URI.

Compilation turns the streams a pipeline recorded into nodes: each recorded invocation becomes
an operator or function node, each upstream that is not an invocation becomes a source node.
Identical invocations (equal content hashes) merge into one node. Labels come from the streams
(explicit labels, else the producer's or source's name); repeats are numbered ``_1``, ``_2``,
... in compile order, which is deterministic. Compiling again (after more invocations were
recorded) keeps every node of the earlier graph that is still there, so node objects and what
they hold (a kept output, counts) survive.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from podline.functions import FunctionPod, PacketFunction
from podline.hashing import ContentHash
from podline.nodes import CacheMode, FunctionNode, Node, OperatorNode, SourceNode
from podline.stores import Store
from podline.streams import ProducedStream, Stream

if TYPE_CHECKING:
    from podline.pipeline.graph_render import GraphDrawing
    from podline.pipeline.orchestration import NodeCounts, OrchestratorResult

__all__ = ["PipelineGraph", "compile_graph"]


@dataclass
class PipelineGraph:
    """Nodes in a topological order (every node after all of its upstreams)."""

    nodes: tuple[Node, ...]
    by_label: dict[str, Node] = field(init=False)
    _successors: dict[int, list[Node]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_label = {node.label: node for node in self.nodes}
        self._successors = {id(node): [] for node in self.nodes}
        for node in self.nodes:
            for upstream in node.upstreams:
                self._successors[id(upstream)].append(node)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def packet_functions(self) -> dict[str, PacketFunction]:
        """The function of each function node, by node label."""
        return {
            node.label: node.pod.packet_function
            for node in self.nodes
            if isinstance(node, FunctionNode)
        }

    def successors(self, node: Node) -> list[Node]:
        """The nodes that read ``node``'s output (once per edge)."""
        return list(self._successors[id(node)])

    def snapshot_hash(self) -> str:
        """16 hex digits over the nodes' content hashes (in a canonical topological order)
        and the edges: changes whenever a node or an edge changes."""
        if not self.nodes:
            return ""
        order = _canonical_order(self.nodes, self._successors)
        edges = sorted(
            (str(u.content_hash()), str(n.content_hash())) for n in self.nodes for u in n.upstreams
        )
        text = "\n".join([*(str(n.content_hash()) for n in order), *(f"{a}>{b}" for a, b in edges)])
        return ContentHash.of(text.encode()).short(16)

    # ------------------------------------------------------------------ drawing
    # Drawing lives in ``graph_render`` (docs/graphs.md); ``result`` is a run's
    # ``OrchestratorResult`` or counts by label, drawn on the nodes and coloured by state.
    def drawing(
        self, result: OrchestratorResult | Mapping[str, NodeCounts] | None = None
    ) -> GraphDrawing:
        """This graph as a ``GraphDrawing``, with ``result``'s counts if given."""
        from podline.pipeline.graph_render import GraphDrawing

        return GraphDrawing.of(self.nodes, result)

    def to_mermaid(
        self, result: OrchestratorResult | Mapping[str, NodeCounts] | None = None
    ) -> str:
        """Mermaid flowchart text of the graph."""
        return self.drawing(result).to_mermaid()

    def to_dot(self, result: OrchestratorResult | Mapping[str, NodeCounts] | None = None) -> str:
        """Graphviz DOT text of the graph."""
        return self.drawing(result).to_dot()

    def to_svg(self, result: OrchestratorResult | Mapping[str, NodeCounts] | None = None) -> str:
        """SVG of the graph, drawn by Graphviz's ``dot`` (the ``graphs`` extra)."""
        return self.drawing(result).to_svg()

    def to_text(self, result: OrchestratorResult | Mapping[str, NodeCounts] | None = None) -> str:
        """The graph as a plain-text table for terminals."""
        return self.drawing(result).to_text()

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        return self.drawing()._repr_mimebundle_(include, exclude)


def _canonical_order(nodes: Sequence[Node], successors: Mapping[int, list[Node]]) -> list[Node]:
    """Kahn's algorithm with ties broken by content hash: the same order for the same graph."""
    position = {id(n): i for i, n in enumerate(nodes)}
    waiting = {id(n): len(n.upstreams) for n in nodes}
    ready = [(str(n.content_hash()), i) for i, n in enumerate(nodes) if not n.upstreams]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        _, i = heapq.heappop(ready)
        node = nodes[i]
        order.append(node)
        for other in successors[id(node)]:
            waiting[id(other)] -= 1
            if waiting[id(other)] == 0:
                heapq.heappush(ready, (str(other.content_hash()), position[id(other)]))
    return order


def compile_graph(
    recorded: Iterable[ProducedStream],
    *,
    result_store: Store | None,
    node_store: Store | None,
    cache_modes: Mapping[str, CacheMode] | None = None,
    previous: PipelineGraph | None = None,
) -> PipelineGraph:
    """Build the node graph of the recorded invocations (see the module docs).

    Nodes of ``previous`` (an earlier compile of the same pipeline) that the graph still has,
    same identity and same label, are kept as they are, with what they hold: recompiling to
    add invocations never replaces a node.
    """
    by_hash: dict[str, Node] = {}
    labels: dict[str, int] = {}
    ordered: list[Node] = []
    modes = dict(cache_modes or {})
    kept = {(str(n.content_hash()), n.label): n for n in previous or ()}

    def unique_label(base: str) -> str:
        count = labels.get(base, 0)
        labels[base] = count + 1
        return base if count == 0 else f"{base}_{count}"

    def node_for(stream: Stream) -> Node:
        key = str(stream.content_hash())
        existing = by_hash.get(key)
        if existing is not None:
            return existing
        # Upstreams first, then the label: labels are numbered in the same order as before.
        upstreams = (
            [node_for(u) for u in stream.upstreams] if isinstance(stream, ProducedStream) else []
        )
        label = unique_label(stream.label)
        node = kept.get((key, label))
        same_inputs = (
            node is not None
            and len(node.upstreams) == len(upstreams)
            and all(a is b for a, b in zip(node.upstreams, upstreams, strict=True))
        )
        if node is None or not same_inputs:
            node = _new_node(
                stream,
                upstreams,
                label,
                result_store=result_store,
                node_store=node_store,
                modes=modes,
            )
        by_hash[key] = node
        ordered.append(node)
        return node

    for stream in recorded:
        node_for(stream)
    return PipelineGraph(tuple(ordered))


def _new_node(
    stream: Stream,
    upstreams: Sequence[Node],
    label: str,
    *,
    result_store: Store | None,
    node_store: Store | None,
    modes: Mapping[str, CacheMode],
) -> Node:
    if not isinstance(stream, ProducedStream):
        return SourceNode(stream, (), label)
    node: FunctionNode | OperatorNode
    if isinstance(stream.producer, FunctionPod):
        node = FunctionNode(stream, upstreams, label, result_store=result_store)
    else:
        mode = modes.get(label, modes.get(type(stream.producer).__name__, CacheMode.OFF))
        node = OperatorNode(stream, upstreams, label, cache_mode=mode)
    if node_store is not None:
        node.store = node_store.at(*node.store_path)
    return node
