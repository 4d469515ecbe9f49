"""Streams: the ``Stream`` protocol, ``TableStream``, lazy streams and invocation results."""

from podline.streams.base import Stream
from podline.streams.chunked import (
    ChunkedRows,
    ChunkedTableStream,
    SpillBuffer,
    stream_chunks,
)
from podline.streams.display import Showable, Shown
from podline.streams.invocation import ProducedStream, Producer, Tracker, invoke, tracking
from podline.streams.lazy import DelegatingStream, LazyStream
from podline.streams.table_stream import StreamMixin, TableStream

__all__ = [
    "ChunkedRows",
    "ChunkedTableStream",
    "DelegatingStream",
    "LazyStream",
    "ProducedStream",
    "Producer",
    "Showable",
    "Shown",
    "SpillBuffer",
    "Stream",
    "StreamMixin",
    "TableStream",
    "Tracker",
    "invoke",
    "stream_chunks",
    "tracking",
]
