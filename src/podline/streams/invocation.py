"""Streams produced by applying an operator or a function pod to input streams.

An *invocation* is (producer, inputs). Its result is a ``ProducedStream``: lazy (nothing runs
until rows are read), with an identity made of the producer's identity and its inputs'
identities, so hashing a pipeline never computes data. A producer says how its inputs count
through ``argument_identity``: an ordered tuple, or ``Unordered`` for commutative producers.

Every invocation is announced to the active trackers (see ``tracking``); a pipeline uses this
to record what was applied inside its ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, runtime_checkable

from podline.hashing import PipelineElement
from podline.schema import Schema
from podline.streams.base import Stream
from podline.streams.display import Shown
from podline.streams.lazy import LazyStream
from podline.streams.table_stream import TableStream

__all__ = ["ProducedStream", "Producer", "Tracker", "invoke", "tracking"]


@runtime_checkable
class Producer(PipelineElement, Protocol):
    """What turns input streams into an output stream: an operator or a function pod."""

    @property
    def label(self) -> str:
        """A human-readable name (not part of any identity)."""
        ...

    def output_schema(self, *inputs: Stream, system_tags: bool = False) -> tuple[Schema, Schema]:
        """The (tag, packet) schemas of the output for these inputs, computing nothing."""
        ...

    def process(self, *inputs: Stream) -> TableStream:
        """Compute the output rows."""
        ...

    def argument_identity(self, inputs: Sequence[Stream]) -> Any:
        """How the inputs enter the identity: ``tuple(inputs)`` or ``Unordered(inputs)``."""
        ...


class ProducedStream(LazyStream):
    """The lazy result of one invocation; computed once, on first read."""

    def __init__(
        self, producer: Producer, upstreams: Sequence[Stream], *, label: str | None = None
    ) -> None:
        super().__init__(label=label or producer.label)
        self.producer = producer
        self.upstreams: tuple[Stream, ...] = tuple(upstreams)

    def _compute(self) -> TableStream:
        return self.producer.process(*self.upstreams)

    def output_schema(self, *, system_tags: bool = False) -> tuple[Schema, Schema]:
        return self.producer.output_schema(*self.upstreams, system_tags=system_tags)

    def keys(self, *, system_tags: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags, packets = self.output_schema(system_tags=system_tags)
        return tuple(tags), tuple(packets)

    def _shown(self) -> Shown:
        # The producer derives the schema from the inputs' schemas: nothing is computed.
        return Shown(
            type(self.producer).__name__, self._computed, self.output_schema(), self.upstreams
        )

    def identity_structure(self) -> Any:
        return {
            "producer": self.producer,
            "inputs": self.producer.argument_identity(self.upstreams),
        }


class Tracker(Protocol):
    """Receives every invocation made while it is active (see ``tracking``)."""

    def record(self, stream: ProducedStream) -> None:
        """Called once per invocation, with its (not yet computed) result stream."""
        ...


_active: ContextVar[tuple[Tracker, ...]] = ContextVar("podline_trackers", default=())

S = TypeVar("S", bound=ProducedStream)


@contextmanager
def tracking(tracker: Tracker) -> Iterator[Tracker]:
    """Make ``tracker`` receive every invocation in this context (nesting adds trackers)."""
    token = _active.set((*_active.get(), tracker))
    try:
        yield tracker
    finally:
        _active.reset(token)


def invoke(stream: S) -> S:
    """Announce a freshly built invocation result to the active trackers and return it."""
    for tracker in _active.get():
        tracker.record(stream)
    return stream
