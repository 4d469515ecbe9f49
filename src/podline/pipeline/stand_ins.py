"""Stand-ins for the parts of a loaded pipeline that cannot be built again.

A loaded pipeline's node keeps the identity (content and pipeline hash) and schema its
specification recorded, so that it finds what the stored run wrote under that identity:
provenance records, function results, operator logs. When the node itself cannot be built
again (its function cannot be imported, its source was built from Python data) or it depends
on such a node, its stream is one of these stand-ins. Reads are served from the store as for
any node; computing raises ``ReadOnlyNodeError`` naming the node and the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from podline.errors import ReadOnlyNodeError
from podline.functions import FunctionPod, PacketFunction
from podline.hashing import ContentHash
from podline.pipeline.spec import decode_schema, user_tags
from podline.schema import Schema
from podline.streams import DelegatingStream, ProducedStream, Shown, Stream, TableStream

__all__ = ["StoredFunction", "StoredOperator", "StoredProducedStream", "StoredSource"]


def _refuse(label: str, reason: str) -> NoReturn:
    raise ReadOnlyNodeError(
        f"node {label!r} of this loaded pipeline is read-only: {reason}; its stored results "
        "stay readable"
    )


class _StoredIdentity:
    """The identity and schema a node's specification recorded."""

    def __init__(self, node: dict[str, Any]) -> None:
        self._content = ContentHash.parse(node["content_hash"])
        self._pipeline = ContentHash.parse(node["pipeline_hash"])
        self._tags = decode_schema(node["tags"])
        self._packets = decode_schema(node["packets"])

    def content_hash(self) -> ContentHash:
        return self._content

    def pipeline_hash(self) -> ContentHash:
        return self._pipeline

    def identity_structure(self) -> Any:
        return str(self._content)

    def output_schema(self, *inputs: Stream, system_tags: bool = False) -> tuple[Schema, Schema]:
        return (self._tags if system_tags else user_tags(self._tags)), self._packets

    def keys(self, *, system_tags: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags, packets = self.output_schema(system_tags=system_tags)
        return tuple(tags), tuple(packets)


class StoredSource(_StoredIdentity, DelegatingStream):
    """A source known only by its specification: it has no rows to give."""

    def __init__(self, node: dict[str, Any], reason: str) -> None:
        super().__init__(node)
        self.label: str = node["label"]
        self.reason = reason
        self._source_id: str | None = node.get("source_id")

    @property
    def stamped_source_id(self) -> str | None:
        """The source id the stored run's rows were stamped with (``StampedSource``): the
        nodes below serve the results of those rows, not of other versions of the data.
        None for specifications written before podline recorded it."""
        return self._source_id

    def _stream(self) -> TableStream:
        _refuse(self.label, self.reason)

    def _shown(self) -> Shown:
        return Shown(
            "StoredSource",
            None,
            self.output_schema(),
            pending=f"read-only: {self.reason}",
            waiting="read-only",
        )


class StoredProducedStream(_StoredIdentity, ProducedStream):
    """The result of an invocation, with the identity and schema the specification
    recorded (the producer computes it, if it can)."""

    def __init__(
        self, node: dict[str, Any], producer: Any, upstreams: Sequence[Stream], reason: str
    ) -> None:
        _StoredIdentity.__init__(self, node)
        ProducedStream.__init__(self, producer, upstreams, label=node["label"])
        self.reason = reason

    def _compute(self) -> TableStream:
        _refuse(self.label, self.reason)


class StoredOperator(_StoredIdentity):
    """An operator whose parameters have no JSON form: it can say its schema, not compute."""

    def __init__(self, node: dict[str, Any], reason: str) -> None:
        super().__init__(node)
        self.label = node["operator"]["class"].rpartition(":")[2]
        self._node = node["label"]
        self.reason = reason

    def process(self, *inputs: Stream) -> TableStream:
        _refuse(self._node, self.reason)

    def argument_identity(self, inputs: Sequence[Stream]) -> Any:
        return tuple(inputs)

    def pipeline_identity_structure(self) -> Any:
        return str(self._pipeline)


class StoredFunction(PacketFunction):
    """A packet function known only by its specification: name, version, schemas, output
    keys and identity, enough to find its stored results; calling it raises."""

    def __init__(self, spec: dict[str, Any], node_label: str, reason: str) -> None:
        # Not PacketFunction.__init__: there is no function to inspect.
        self.name = spec["name"]
        self.version = spec["version"]
        self.identity_mode = spec["identity"]
        self.is_async = bool(spec.get("is_async", False))
        self.output_keys = tuple(spec["output_keys"])
        self.input_schema = decode_schema(spec["input_schema"])
        self.output_schema = decode_schema(spec["output_schema"])
        self.positional = None
        self.dependencies = dict(spec.get("depends_on", {}))
        self.code = None  # the cached property: no code to describe
        self.reference = f"{spec.get('module')}:{spec.get('qualname')}"
        self._content_hash_cache = ContentHash.parse(spec["content_hash"])
        self._pipeline_hash_cache = ContentHash.parse(spec["pipeline_hash"])
        self.node_label = node_label
        self.reason = reason
        self.fn = self._missing

    def _missing(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self.node_label, self.reason)

    def __repr__(self) -> str:
        return f"StoredFunction({self.name!r}, {self.reference})"


def stored_pod(node: dict[str, Any], reason: str) -> FunctionPod:
    """A pod over a ``StoredFunction``, with the stored column mapping."""
    function = node["function"]
    return FunctionPod(
        StoredFunction(function, node["label"], reason), inputs=function.get("inputs") or None
    )
