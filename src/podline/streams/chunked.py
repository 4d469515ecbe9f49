"""Streams whose rows are never held whole: ``ChunkedTableStream`` and ``SpillBuffer``.

A ``ChunkedTableStream`` is a ``TableStream`` whose rows come, chunk by chunk, from a reader it
can call again (a file source's reader, or a spill file): ``iter_chunks`` and ``iter_packets``
hold one chunk at a time; ``as_table`` gathers every chunk into one table, which then costs
what the table itself costs. Every other question (keys, schemas, length) is answered without
reading any row.

A ``SpillBuffer`` collects a node's output chunk by chunk. Up to ``SPILL_BYTES`` of Arrow data
it keeps the chunks in memory and gives back a plain ``TableStream``; past that it writes them
to an Arrow IPC file in the temporary directory and gives back a ``ChunkedTableStream`` over
that file. The file is unlinked as soon as it is open for reading (where the system allows;
else when the stream is collected), so nothing outlives the process, even after a kill.

``stream_chunks(stream, rows)`` is how consumers read any stream in pieces: chunked streams
stream, every other stream is sliced.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from podline.conversion import regrouped
from podline.datagrams import Packet, Tag
from podline.hashing import hash_table
from podline.schema import PodType
from podline.streams.base import Stream
from podline.streams.table_stream import TableStream

__all__ = [
    "SPILL_BYTES",
    "ChunkedRows",
    "ChunkedTableStream",
    "SpillBuffer",
    "stream_chunks",
]

#: Arrow bytes a ``SpillBuffer`` keeps in memory before it writes its chunks to disk.
SPILL_BYTES = 64 << 20

#: Reads a stream's rows again from the start, as tables or record batches in order.
ChunkReader = Callable[[], Iterable[pa.Table | pa.RecordBatch]]


@runtime_checkable
class ChunkedRows(Protocol):
    """A stream that hands out its rows in pieces of at most ``rows`` rows, in order."""

    def iter_chunks(self, rows: int) -> Iterator[TableStream]: ...


def stream_chunks(stream: Stream, rows: int) -> Iterator[TableStream]:
    """``stream``'s rows in pieces of at most ``rows`` rows (at least one piece, maybe
    empty), every hidden column included; a chunked stream is read piece by piece."""
    if isinstance(stream, ChunkedRows):
        return stream.iter_chunks(rows)
    tags, _ = stream.keys()
    table = TableStream(stream.as_table(system_tags=True, source_info=True), tags)
    return table.iter_chunks(rows)


class ChunkedTableStream(TableStream):
    """A ``TableStream`` over rows read chunk by chunk by ``read`` (see the module docs).

    ``schema`` is the schema of every chunk ``read`` gives (hidden columns included) and
    ``num_rows`` their total; ``read`` must give the same rows each time it is called.
    """

    def __init__(
        self,
        schema: pa.Schema,
        tag_columns: Iterable[str],
        read: ChunkReader,
        num_rows: int,
        *,
        label: str | None = None,
        types: Mapping[str, PodType] | None = None,
    ) -> None:
        tags = tuple(tag_columns)
        super().__init__(schema.empty_table(), tags, label=label, types=types)
        self._read = read
        self._num_rows = num_rows
        self._types = dict(types) if types else None
        self._tag_names = tags

    def __len__(self) -> int:
        return self._num_rows

    def relabelled(self, label: str) -> ChunkedTableStream:
        """The same rows under another label (nothing is read)."""
        return ChunkedTableStream(
            self._table.schema,
            self._tag_names,
            self._read,
            self._num_rows,
            label=label,
            types=self._types,
        )

    def _chunk(self, data: pa.Table | pa.RecordBatch) -> TableStream:
        return TableStream(data, self._tag_names, label=self.label, types=self._types)

    def iter_chunks(self, rows: int) -> Iterator[TableStream]:
        """The rows in pieces of ``rows`` rows (the last one shorter), read as they are asked
        for: larger chunks are cut, smaller ones joined (without copying their data)."""
        tables = (
            data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
            for data in self._read()
        )
        sent = False
        for table in regrouped(tables, rows):
            sent = True
            yield self._chunk(table)
        if not sent:
            yield self._chunk(self._table)

    def _whole(self) -> TableStream:
        tables = [
            pa.Table.from_batches([d]) if isinstance(d, pa.RecordBatch) else d for d in self._read()
        ]
        return self._chunk(pa.concat_tables(tables or [self._table]))

    # Data questions read the chunks; nothing read is kept.
    def as_table(self, **options: Any) -> pa.Table:
        if options.get("sort_by_tags"):
            return self._whole().as_table(**options)
        # Chunk by chunk: the columns not asked for (source info, system tags) are dropped
        # as each is read, never held for the whole stream. Those asked for are copied out:
        # a batch read from a spill file is one buffer, which any column of it would keep
        # whole (at 10M rows, reading two small columns back held 1.2 GB of hashes).
        parts = [_owned(self._chunk(data).as_table(**options)) for data in self._read()]
        if not parts:
            return self._chunk(self._table).as_table(**options)
        return pa.concat_tables(parts)

    def packet_hashes(self) -> pa.Array:
        parts = [chunk.packet_hashes() for chunk in self.iter_chunks(1 << 16)]
        return pa.concat_arrays(parts) if parts else pa.array([], pa.large_string())

    def iter_packets(self) -> Iterator[tuple[Tag, Packet]]:
        for chunk in self.iter_chunks(1 << 14):
            yield from chunk.iter_packets()

    @classmethod
    def identity_kind(cls) -> str:
        # Where the rows are read from is not part of their identity.
        return "TableStream"

    def identity_structure(self) -> Any:
        return {"tag_columns": sorted(self._tag_names), "table": hash_table(self._whole()._table)}


class SpillBuffer:
    """Collects the chunks of one stream in order, spilling them to disk past
    ``limit`` bytes (see the module docs); ``result()`` gives the stream of them all."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = SPILL_BYTES if limit is None else limit
        self._held: list[TableStream] = []
        self._bytes = 0
        self._rows = 0
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._path: str | None = None
        self._schema: pa.Schema | None = None
        #: The first chunk's tags and declared types, which the result keeps.
        self._first: tuple[tuple[str, ...], dict[str, Any]] | None = None

    def add(self, chunk: TableStream) -> None:
        if not len(chunk) and (self._held or self._writer is not None):
            return  # an empty chunk only matters as the type of an empty result
        if self._first is None:
            self._first = chunk.keys()[0], _types(chunk)
        self._held.append(chunk)
        self._rows += len(chunk)
        self._bytes += chunk.as_table(system_tags=True, source_info=True).nbytes
        if self._bytes > self.limit:
            self._spill()

    def _spill(self) -> None:
        if self._writer is None:
            self._schema = _table_of(self._held[0]).schema
            handle, self._path = tempfile.mkstemp(prefix="podline-spill-", suffix=".arrow")
            os.close(handle)
            self._writer = pa.ipc.new_file(self._path, self._schema)
        assert self._schema is not None
        for chunk in self._held:
            table = _table_of(chunk)
            if not table.schema.equals(self._schema):
                table = table.cast(self._schema)
            self._writer.write_table(table)
        self._held, self._bytes = [], 0

    def discard(self) -> None:
        """Drop what was collected (and its file)."""
        if self._writer is not None:
            self._writer.close()
        if self._path is not None:
            _unlink(self._path)
        self._held, self._writer, self._path = [], None, None

    def result(self, template: TableStream) -> TableStream:
        """Every collected row as one stream, typed and labelled like ``template`` (which
        is also the result when nothing was collected)."""
        tags, types = self._first or (template.keys()[0], _types(template))
        if self._writer is None:
            if not self._held:
                return template
            tables = [_table_of(c) for c in self._held]
            self._held = []
            return TableStream(pa.concat_tables(tables), tags, label=template.label, types=types)
        self._spill()
        self._writer.close()
        assert self._path is not None
        assert self._schema is not None
        reader = _SpillFile(self._path)
        self._writer, self._path = None, None
        return ChunkedTableStream(
            self._schema, tags, reader.batches, self._rows, label=template.label, types=types
        )


def _owned(table: pa.Table) -> pa.Table:
    """``table`` in buffers of its own, sharing none with what it was selected from."""
    columns = [pa.concat_arrays(c.chunks) if c.num_chunks else c for c in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema)


class _SpillFile:
    """An open spill file, read batch by batch; unlinked at once where the system allows,
    else when the last stream reading it is collected."""

    def __init__(self, path: str) -> None:
        self._file = pa.OSFile(path, "rb")
        unlinked = _unlink(path)
        weakref.finalize(self, _close, self._file, None if unlinked else path)

    def batches(self) -> Iterator[pa.RecordBatch]:
        reader = pa.ipc.open_file(self._file)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _close(handle: pa.NativeFile, path: str | None) -> None:
    handle.close()
    if path is not None:
        _unlink(path)


def _unlink(path: str) -> bool:
    with contextlib.suppress(OSError):
        os.unlink(path)
        return True
    return False


def _table_of(chunk: TableStream) -> pa.Table:
    return chunk.as_table(system_tags=True, source_info=True)


def _types(stream: TableStream) -> dict[str, Any]:
    tags, packets = stream.output_schema()
    return {**tags, **packets}
