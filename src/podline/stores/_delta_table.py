"""One table of a ``DeltaStore`` in memory, and reading it.

``TableState`` holds what the store keeps for one path: its Delta handles, the batches
buffered for it and the id indexes that keep writes write-once. ``stored_rows`` reads the
committed rows (projected, filtered, or picked by id), and ``merge_buffered`` adds the buffered
rows to them, so reads see every write, committed or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable, WriterProperties
from pyarrow import fs as pafs

from podline.matching import is_in
from podline.stores._common import RowFilter, conform, evolve_schema, order_by_ids
from podline.stores._delta_format import CommittedIds, path_schema, read_parquet
from podline.stores._index import IdIndex
from podline.stores.base import StorePath

__all__ = ["Buffered", "TableState", "committed_rows", "merge_buffered", "stored_rows"]


class Buffered(NamedTuple):
    """A batch written and not yet committed."""

    #: The id column it was written with.
    column: str
    #: The rows, conformed to the path's schema of their time.
    rows: pa.Table
    #: Appended (``Store.append``): ids new by the writer's word, never checked.
    fresh: bool = False


@dataclass
class TableState:
    """What the store holds for one path: the Delta handle, buffered batches and id sets."""

    uri: str
    #: The handle reads use (refreshed by them).
    handle: DeltaTable | None = None
    #: The handle commits use, touched only by the thread flushing (``delta._flush_table``):
    #: a delta-rs handle must not be refreshed or read while a write through it runs.
    write_handle: DeltaTable | None = None
    handle_schema: tuple[int, pa.Schema] | None = None
    pending: list[Buffered] = field(default_factory=list)
    pending_schema: pa.Schema | None = None
    pending_ids: dict[str, IdIndex] = field(default_factory=dict)
    pending_rows: int = 0
    committed: dict[str, CommittedIds] = field(default_factory=dict)
    #: Parquet settings for commits, and the schema they were decided for.
    writer: tuple[pa.Schema, WriterProperties] | None = None

    def stored_schema(self) -> pa.Schema | None:
        """The schema of the Delta table at the handle's version."""
        if self.handle is None:
            return None
        version = self.handle.version()
        if self.handle_schema is None or self.handle_schema[0] != version:
            self.handle_schema = (version, path_schema(self.handle))
        return self.handle_schema[1]

    def schema(self, path: StorePath) -> pa.Schema | None:
        """The path's schema: the stored one extended by the buffered batches."""
        stored = self.stored_schema()
        if self.pending_schema is None:
            return stored
        return evolve_schema(stored, self.pending_schema, path)

    def pending_index(self, column: str) -> IdIndex | None:
        """The buffered ids of ``column``, indexed when first needed: a batch written and
        flushed alone never needs it."""
        index = self.pending_ids.get(column)
        if index is None:
            batches = [b.rows[column] for b in self.pending if b.column == column]
            if not batches:
                return None
            index = self.pending_ids[column] = IdIndex()
            for ids in batches:
                index.add(ids)
        return index


def stored_rows(
    state: TableState,
    schema: pa.Schema,
    columns: list[str],
    path: StorePath,
    local_root: str | None,
    *,
    where: RowFilter | None = None,
    ids: tuple[str, pa.Array] | None = None,
) -> pa.Table | None:
    """Committed rows projected to ``columns``, in the path's types: with ``ids`` =
    (column, values), the rows holding those ids, in their order; ``where`` is applied to
    the columns the table has (callers filter the result exactly)."""
    stored = state.stored_schema()
    if stored is None:
        return None
    names = set(stored.names)
    present = [c for c in columns if c in names]
    table = committed_rows(
        state, local_root, present, path, where.restricted(names) if where else None
    )
    if ids is not None:
        # Picked before conform, which would otherwise convert every stored row.
        # (No stored row has the id column yet: none matches.)
        column, values = ids
        table = order_by_ids(table, values, column) if column in names else table.slice(0, 0)
    return conform(table, pa.schema([schema.field(c) for c in columns]), path)


def committed_rows(
    state: TableState,
    local_root: str | None,
    columns: list[str],
    path: StorePath,
    where: RowFilter | None = None,
) -> pa.Table:
    """The committed rows of a table (in ``local_root``; None: an object store), projected
    to ``columns`` (which it has) and filtered by ``where``."""
    handle, stored = state.handle, state.stored_schema()
    assert handle is not None
    assert stored is not None
    if (
        local_root is None
        or handle.protocol().min_reader_version > 1
        or handle.metadata().partition_columns
    ):
        # Object stores, deletion vectors, column mapping or partitions (tables podline did
        # not write): delta-rs interprets them, through Arrow's dataset engine.
        if local_root is None:
            dataset = handle.to_pyarrow_dataset()
        else:
            local = pafs.SubTreeFileSystem(local_root, pafs.LocalFileSystem())
            dataset = handle.to_pyarrow_dataset(filesystem=local)
        return dataset.to_table(columns=columns, filter=where and where.expression())
    # Plain local tables are read as the Parquet files they are, in the types podline
    # wrote them in: delta-rs's dataset would convert every large string to a string
    # (and ``conform`` back again), which doubles the cost of a read.
    # Files in the order they were written, so rows come back in the order they were
    # written: a run that reads back what it wrote then matches ids without searching.
    # (Unpartitioned: every file sits in the table's directory; log paths are escaped.)
    added = pa.table(handle.get_add_actions(flatten=False)).select(["path", "modification_time"])
    order = sorted(
        range(added.num_rows), key=added.column("modification_time").to_pylist().__getitem__
    )
    names = added.column("path").to_pylist()
    written = pa.schema([stored.field(c) for c in columns])
    paths = [str(Path(local_root, unquote(names[i]))) for i in order]
    parts = [conform(part, written, path) for part in read_parquet(paths, columns)]
    table = pa.concat_tables(parts) if parts else written.empty_table()
    return table if where is None else where.apply(table)


def merge_buffered(
    stored: pa.Table | None,
    pending: list[Buffered],
    schema: pa.Schema,
    columns: list[str],
    path: StorePath,
    *,
    ids: tuple[str, pa.Array] | None = None,
) -> pa.Table:
    """Committed rows followed by buffered ones, all projected to ``columns``; a buffered row
    whose id another writer committed meanwhile is dropped, as its flush will drop it. With
    ``ids`` = (column, values), only buffered rows holding one of those ids are kept."""
    target = pa.schema([schema.field(c) for c in columns])
    parts = [] if stored is None else [stored]
    for column, batch, _ in pending:
        rows = conform(batch, schema, path).select(columns)
        if ids is not None:
            rows = rows.filter(pa.array(is_in(rows[ids[0]], ids[1])))
        if stored is not None and stored.num_rows:
            rows = rows.filter(pa.array(~is_in(rows[column], stored[column])))
        parts.append(rows)
    return pa.concat_tables(parts) if parts else target.empty_table()
