"""Nodes: the compiled form of a pipeline's streams, and the protocols orchestrators see.

A node stands for one stream of a pipeline (a source, an operator invocation or a function-pod
invocation) and has the same identity as that stream. Nodes own execution: ``execute`` computes
(and persists, where a store is attached) and keeps the output; reads (``iter_packets``,
``as_table``, ...) are passive and never compute. Before a node has run, reads give a
zero-row table with the node's schema.

Orchestrators dispatch on the ``node_type`` of the three protocols through the TypeGuard
functions below, never on concrete classes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal, Protocol, TypeGuard, runtime_checkable

import pyarrow as pa

from podline.columns import source_info_column
from podline.datagrams import Packet, Tag
from podline.executors import Executor
from podline.functions import RowStatus
from podline.hashing import ContentHash
from podline.schema import Schema
from podline.streams import DelegatingStream, Shown, Stream, StreamMixin, TableStream

__all__ = [
    "FunctionNodeProtocol",
    "Node",
    "NodeOutput",
    "NodeType",
    "OperatorNodeProtocol",
    "SourceNodeProtocol",
    "empty_output",
    "is_function_node",
    "is_operator_node",
    "is_source_node",
]

NodeType = Literal["source", "function", "operator"]


@runtime_checkable
class NodeProtocol(Protocol):
    """What every node offers an orchestrator."""

    node_type: str
    label: str
    upstreams: tuple[Any, ...]

    def content_hash(self) -> ContentHash: ...

    def pipeline_hash(self) -> ContentHash: ...

    def output_schema(self, *, system_tags: bool = False) -> tuple[Schema, Schema]: ...

    def set_output(self, stream: TableStream) -> None: ...


@runtime_checkable
class SourceNodeProtocol(NodeProtocol, Protocol):
    """A node with no upstream: ``execute()`` returns its rows."""

    def execute(self, **kwargs: Any) -> TableStream: ...


@runtime_checkable
class FunctionNodeProtocol(NodeProtocol, Protocol):
    """A function-pod node: ``execute(input, observer=..., error_policy=...)`` for a whole
    input, or ``begin()``, ``execute_batch(chunk)`` per chunk and ``finish()`` for an
    orchestrator that streams; ``invalidate(**tag_values)`` forgets stored results.

    What orchestrators read: ``executor`` (the node's own, which wins over every other),
    ``pod_executor`` (its pod's own), ``max_concurrency`` (calls in flight when no executor
    is given), ``is_async`` (whether its function is ``async def``), and after a run its
    ``counts`` per ``RowStatus``, how many rows ``recomputed`` (replaced stored results) and
    how many ``output_rows`` it gave (kept or not: see ``begin(keep_output=...)``).
    """

    executor: Executor | None
    max_concurrency: int | None
    counts: dict[RowStatus, int]
    recomputed: int
    output_rows: int

    @property
    def pod_executor(self) -> Executor | None: ...

    @property
    def is_async(self) -> bool: ...

    def execute(self, stream: Stream, **kwargs: Any) -> TableStream: ...

    def begin(
        self,
        *,
        commit_seconds: float = ...,
        timeout: float | None = None,
        recompute: bool = False,
        stop: threading.Event | None = None,
        keep_output: bool = True,
    ) -> None: ...

    def execute_batch(self, batch: Stream, **kwargs: Any) -> TableStream: ...

    def finish(self) -> TableStream: ...

    def release_output(self) -> None: ...

    def invalidate(self, **tag_values: Any) -> int: ...


@runtime_checkable
class OperatorNodeProtocol(NodeProtocol, Protocol):
    """An operator node: ``execute(*inputs)`` in its declared upstream order."""

    def execute(self, *streams: Stream, **kwargs: Any) -> TableStream: ...


def is_source_node(node: object) -> TypeGuard[SourceNodeProtocol]:
    """Whether ``node`` is a source node (by its ``node_type``)."""
    return getattr(node, "node_type", None) == "source"


def is_function_node(node: object) -> TypeGuard[FunctionNodeProtocol]:
    """Whether ``node`` is a function node (by its ``node_type``)."""
    return getattr(node, "node_type", None) == "function"


def is_operator_node(node: object) -> TypeGuard[OperatorNodeProtocol]:
    """Whether ``node`` is an operator node (by its ``node_type``)."""
    return getattr(node, "node_type", None) == "operator"


class Node(StreamMixin):
    """Shared behaviour: identity of the wrapped stream, passive reads of the kept output."""

    node_type: ClassVar[NodeType]

    def __init__(self, stream: Stream, upstreams: Sequence[Node], label: str) -> None:
        self.stream = stream
        self.upstreams: tuple[Node, ...] = tuple(upstreams)
        self.label = label
        self._output: TableStream | None = None

    # ------------------------------------------------------------------ identity
    def content_hash(self) -> ContentHash:
        return self.stream.content_hash()

    def pipeline_hash(self) -> ContentHash:
        return self.stream.pipeline_hash()

    def identity_structure(self) -> Any:
        return self.stream.identity_structure()

    def pipeline_identity_structure(self) -> Any:
        return self.stream.pipeline_identity_structure()

    @property
    def identity_path(self) -> tuple[str, ...]:
        """How stores and observers name this node: its label and identity prefixes."""
        return (self.label, self.pipeline_hash().short(16), self.content_hash().short(16))

    @property
    def store_path(self) -> tuple[str, ...]:
        """Where the node keeps its rows in the pipeline's store (``identity_path`` unless a
        kind keys its rows more broadly)."""
        return self.identity_path

    # ------------------------------------------------------------------ schema
    def output_schema(self, *, system_tags: bool = False) -> tuple[Schema, Schema]:
        return self.stream.output_schema(system_tags=system_tags)

    def keys(self, *, system_tags: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags, packets = self.output_schema(system_tags=system_tags)
        return tuple(tags), tuple(packets)

    # ------------------------------------------------------------------ output
    def set_output(self, stream: TableStream) -> None:
        """Keep ``stream`` as this node's output (called by ``execute`` and orchestrators)."""
        self._output = stream

    @property
    def has_output(self) -> bool:
        """Whether the node holds an output (it ran, or its results were loaded)."""
        return self._output is not None

    def _kept(self) -> TableStream:
        if self._output is None:
            return empty_output(self)
        return self._output

    def _read_through(self) -> TableStream:
        """What a function node below reads as its current input before a run: the kept
        output, except that an operator that has not run applies itself to its inputs'
        reads (rows are rearranged, no function is called; the node keeps nothing)."""
        return self._kept()

    def _shown(self) -> Shown:
        # Display is passive like every read, and reads no store: a node that has not run
        # in this process says so.
        return Shown(
            type(self).__name__,
            self._output,
            self.output_schema(),
            self.upstreams,
            pending="not run yet (run() computes it; as_table() reads stored results)",
            waiting="not run",
        )

    # Passive reads: never compute.
    def iter_packets(self) -> Iterator[tuple[Tag, Packet]]:
        return self._kept().iter_packets()

    def __len__(self) -> int:
        return len(self._kept())

    def as_table(self, **options: Any) -> pa.Table:
        return self._kept().as_table(**options)


class NodeOutput(DelegatingStream):
    """A node's materialized output that keeps the node's identity.

    Downstream operators name system tags after their inputs' pipeline hashes, so a buffer
    handed to them must hash like the stream it materializes, not like an anonymous table.
    """

    def __init__(self, node: Node, rows: TableStream) -> None:
        self.node = node
        self.rows = rows
        self.label = node.label

    def _stream(self) -> TableStream:
        return self.rows

    def content_hash(self) -> ContentHash:
        return self.node.content_hash()

    def pipeline_hash(self) -> ContentHash:
        return self.node.pipeline_hash()

    def identity_structure(self) -> Any:
        return self.node.identity_structure()

    def pipeline_identity_structure(self) -> Any:
        return self.node.pipeline_identity_structure()

    def packet_hashes(self) -> pa.Array:
        return self.rows.packet_hashes()


def empty_output(node: Node) -> TableStream:
    """A zero-row stream with the node's schema, hidden columns included."""
    tags, packets = node.output_schema(system_tags=True)
    fields = [*tags.to_arrow(), *packets.to_arrow()]
    fields += [pa.field(source_info_column(name), pa.large_string()) for name in packets]
    user_tags, _ = node.output_schema()
    return TableStream(pa.schema(fields).empty_table(), tuple(user_tags), label=node.label)
