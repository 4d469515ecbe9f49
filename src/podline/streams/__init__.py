"""Streams: the ``Stream`` protocol, ``TableStream``, lazy streams and invocation results."""

from podline.streams.base import Stream
from podline.streams.display import Showable, Shown
from podline.streams.invocation import ProducedStream, Producer, Tracker, invoke, tracking
from podline.streams.lazy import DelegatingStream, LazyStream
from podline.streams.table_stream import StreamMixin, TableStream

__all__ = [
    "DelegatingStream",
    "LazyStream",
    "ProducedStream",
    "Producer",
    "Showable",
    "Shown",
    "Stream",
    "StreamMixin",
    "TableStream",
    "Tracker",
    "invoke",
    "tracking",
]
