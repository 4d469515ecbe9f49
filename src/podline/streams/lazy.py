"""Streams whose rows live elsewhere: delegation to a ``TableStream``, computed lazily once.

``DelegatingStream`` is the base of every stream that is not itself a table (sources, operator
and function-pod results): it answers every data question from the ``TableStream`` returned
by ``_stream()``. ``LazyStream`` computes that table on first use and keeps it; its identity
comes from what will produce the rows, so hashing a lazy stream computes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.hashing import IdentityMixin
from podline.schema import Schema
from podline.streams.chunked import ChunkedTableStream
from podline.streams.display import Shown
from podline.streams.table_stream import StreamMixin, TableStream

__all__ = ["DelegatingStream", "LazyStream"]


class DelegatingStream(StreamMixin, IdentityMixin):
    """A stream that serves its rows from the ``TableStream`` given by ``_stream()``."""

    label: str

    def _stream(self) -> TableStream:
        raise NotImplementedError(f"{type(self).__name__} must implement _stream()")

    def keys(self, *, system_tags: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self._stream().keys(system_tags=system_tags)

    def output_schema(self, *, system_tags: bool = False) -> tuple[Schema, Schema]:
        return self._stream().output_schema(system_tags=system_tags)

    def iter_packets(self) -> Iterator[tuple[Tag, Packet]]:
        return self._stream().iter_packets()

    def iter_chunks(self, rows: int) -> Iterator[TableStream]:
        """The rows in pieces of at most ``rows`` rows (see ``TableStream.iter_chunks``)."""
        return self._stream().iter_chunks(rows)

    def __len__(self) -> int:
        return len(self._stream())

    def chunked_rows(self) -> ChunkedTableStream | None:
        """The rows as a ``ChunkedTableStream`` if that is how they are served (a file
        source read in chunks), else None."""
        rows = self._stream()
        return rows if isinstance(rows, ChunkedTableStream) else None

    def as_table(self, **options: Any) -> pa.Table:
        """The rows as an Arrow table; the options are those of ``Stream.as_table``."""
        return self._stream().as_table(**options)

    def packet_hashes(self) -> pa.Array:
        """Every row's packet content hash, computed in one call (see ``TableStream``)."""
        return self._stream().packet_hashes()

    def _shown(self) -> Shown:
        # Not lazy: the rows are already there (a source, a node's kept output).
        rows = self._stream()
        return Shown(type(self).__name__, rows, rows.output_schema())


class LazyStream(DelegatingStream):
    """A stream computed by ``_compute()`` on first use, then cached for its lifetime.

    Subclasses implement ``_compute()`` and the identity structures. Concurrent first uses
    compute once.
    """

    def __init__(self, *, label: str | None = None) -> None:
        self.label = label or type(self).__name__
        self._computed: TableStream | None = None
        self._compute_lock = threading.Lock()

    def _compute(self) -> TableStream:
        raise NotImplementedError(f"{type(self).__name__} must implement _compute()")

    def _stream(self) -> TableStream:
        if self._computed is None:
            with self._compute_lock:
                if self._computed is None:
                    self._computed = self._compute()
        return self._computed

    @property
    def is_computed(self) -> bool:
        """Whether the rows have been computed yet."""
        return self._computed is not None

    def _shown(self) -> Shown:
        # Only computing tells a generic lazy stream's schema; display never computes.
        rows = self._computed
        schema = None if rows is None else rows.output_schema()
        return Shown(type(self).__name__, rows, schema)
