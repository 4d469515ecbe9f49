"""Streams: the ``Stream`` protocol, ``TableStream`` and lazily computed streams."""

from podline.streams.base import Stream
from podline.streams.lazy import DelegatingStream, LazyStream
from podline.streams.table_stream import StreamMixin, TableStream

__all__ = ["DelegatingStream", "LazyStream", "Stream", "StreamMixin", "TableStream"]
