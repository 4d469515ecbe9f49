"""One table of a ``DeltaStore`` in memory, and reading it.

``TableState`` holds what the store keeps for one path: its Delta logs, the batches
buffered for it and the id indexes that keep writes write-once (``CommittedIds``, kept
current by reading the id column of the data files added since, and keeping only hashes:
``TableIds`` reads the table to confirm a match). ``stored_rows`` reads the
committed rows (projected, filtered, or picked by id), and ``merge_buffered`` adds the buffered
rows to them, so reads see every write, committed or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pafs

from podline.errors import StoreError
from podline.matching import Ids, Positions, is_in, rows_in_order
from podline.stores._common import RowFilter, conform, evolve_schema, path_text
from podline.stores._delta_format import (
    ParquetSettings,
    check_data_files,
    parquet_settings,
    path_schema,
    read_column,
    read_parquet,
    read_row_groups,
)
from podline.stores._delta_log import TableLog, first_line, local_filesystem
from podline.stores._delta_open import Opener
from podline.stores._delta_prune import Select, id_select, may_hold, read_matching
from podline.stores._index import HeldIds, IdIndex
from podline.stores.base import StorePath

__all__ = [
    "FEW_IDS",
    "SMALL_TABLE_BYTES",
    "Buffered",
    "CommittedIds",
    "TableIds",
    "TableState",
    "committed_rows",
    "merge_buffered",
    "stored_rows",
]


#: A read of at most this many ids reads only the files and row groups that may hold them
#: (``_delta_prune``); a larger one (a run reading back its records) reads the columns whole,
#: which spares a lookup of every id per file.
FEW_IDS = 1024
#: A table whose data files hold at most this many bytes is read whole, even for a few ids.
SMALL_TABLE_BYTES = 1 << 16


class Buffered(NamedTuple):
    """A batch written and not yet committed."""

    #: The id column it was written with.
    column: str
    #: The rows, conformed to the path's schema of their time.
    rows: pa.Table
    #: Appended (``Store.append``): ids new by the writer's word, never checked.
    fresh: bool = False


class TableIds:
    """The ids of one column of a Delta table, read from the table: the ``IdSource`` of its
    committed index, which then keeps nothing but hashes (see ``_index``).

    A hash match is confirmed against the table at its latest version, not against the
    files the index was built from: another writer may have compacted those away since (a
    compaction keeps every id, and a vacuum may delete the files it replaced). The id column is
    read a row group at a time, so a confirmation holds one piece of it, never all of it."""

    __slots__ = ("_log", "_opener", "_path", "_uri", "column", "local_root")

    def __init__(
        self, column: str, uri: str, path: StorePath, opener: Opener, local_root: str | None
    ) -> None:
        self.column = column
        self.local_root = local_root
        self._uri = uri
        self._path = path
        self._opener = opener
        # Its own handle on the table, opened at the first confirmation: the store's handles
        # serve its reads and its flushing thread.
        self._log: TableLog | None = None

    def added(self, ids: Ids) -> None:
        pass  # they are in the table's files

    def holding(self, candidates: Ids) -> np.ndarray:
        self._log = self._opener.latest(self._log, self._uri, self._path)
        if self._log is None or self.column not in self._log.schema().names:
            return np.zeros(len(candidates), dtype=bool)
        # The distinct candidates, hashed and sorted once: each piece of the table then costs
        # what it holds, however many candidates there are.
        wanted = pc.unique(candidates.cast(pa.large_string()))
        lookup = Positions(wanted)
        found = np.zeros(len(wanted), dtype=bool)
        for ids in self.batches(self._log, self._log.data_files()):
            at = lookup.positions(ids)
            found[at[at >= 0]] = True
            if found.all():
                break
        return is_in(candidates, wanted.filter(pa.array(found)))

    def batches(self, log: TableLog, files: dict[str, int]) -> Iterator[pa.Array]:
        """The ids in these data ``files`` of the table at ``log``, a row group at a time, as
        ``large_string``.

        For a local table (``local_root``, its directory) the files are read through Arrow's
        own file system, which reads a column about twice as fast as the one delta-rs
        provides."""
        filesystem = (
            log.delta_table().to_pyarrow_dataset().filesystem
            if self.local_root is None
            else local_filesystem(self.local_root)
        )
        table = f"the Delta table at {log.uri}"
        # As ``large_string`` whatever the writer chose (delta-rs writes string views).
        return (
            ids.cast(pa.large_string())
            for ids in read_column(files, self.column, filesystem, table)
        )


class CommittedIds:
    """The ids of one column of a Delta table as of ``version``, kept current by reading only
    the files added since (a full reload only when files were removed); hash matches are
    confirmed by reading the table (``TableIds``)."""

    __slots__ = ("files", "index", "source", "version")

    def __init__(self, source: TableIds) -> None:
        self.version = -1
        self.files: frozenset[str] = frozenset()
        self.source = source
        self.index = IdIndex(source)

    def sync(self, log: TableLog | None) -> bool:
        """Catch up with the table at ``log``'s version; True if ids were added."""
        if log is None or log.version() == self.version:
            return False
        written = log.data_files()
        files = frozenset(written)
        if not self.files <= files:
            # Files were removed (compaction by another writer, or a delete): start over.
            self.index = IdIndex(self.source)
            self.files = frozenset()
        new = {name: size for name, size in written.items() if name not in self.files}
        added = False
        if new and self.source.column in log.schema().names:
            before = len(self.index)
            self.index.extend(self.source.batches(log, new))
            added = len(self.index) > before
        self.version = log.version()
        self.files = files
        return added

    def record(self, log: TableLog, base_version: int, ids: pa.ChunkedArray) -> None:
        """Account for our own commit, made on ``base_version``, without reading it back."""
        if self.version != base_version:
            return  # not in step; the next sync reads the new files
        self.index.add(ids)
        self.version = log.version()
        self.files = frozenset(log.data_files())

    def rewritten(self, log: TableLog, base_version: int) -> None:
        """Account for our own compaction on ``base_version``: same ids, other files."""
        if self.version == base_version and log.version() == base_version + 1:
            self.version = log.version()
            self.files = frozenset(log.data_files())


@dataclass
class TableState:
    """What the store holds for one path: the Delta logs, buffered batches and id sets."""

    uri: str
    #: The log reads use (refreshed by them).
    log: TableLog | None = None
    #: The log commits use, touched only by the thread flushing (``_delta_commit``):
    #: a delta-rs handle must not be refreshed or read while a write through it runs.
    write_log: TableLog | None = None
    log_schema: tuple[int, pa.Schema] | None = None
    pending: list[Buffered] = field(default_factory=list)
    pending_schema: pa.Schema | None = None
    pending_ids: dict[str, IdIndex] = field(default_factory=dict)
    pending_rows: int = 0
    committed: dict[str, CommittedIds] = field(default_factory=dict)
    #: The store's count of committed rows (``Committer._flushed_rows``) when a write or a
    #: commit last used this table's id indexes (see ``Committer._release_idle``).
    indexed_at: int = 0
    #: Parquet settings for commits, and the schema they were decided for.
    writer: tuple[pa.Schema, ParquetSettings] | None = None

    def stored_schema(self) -> pa.Schema | None:
        """The schema of the Delta table at the read log's version."""
        if self.log is None:
            return None
        version = self.log.version()
        if self.log_schema is None or self.log_schema[0] != version:
            self.log_schema = (version, path_schema(self.log.schema()))
        return self.log_schema[1]

    def schema(self, path: StorePath) -> pa.Schema | None:
        """The path's schema: the stored one extended by the buffered batches."""
        stored = self.stored_schema()
        if self.pending_schema is None:
            return stored
        return evolve_schema(stored, self.pending_schema, path)

    def parquet_settings(self, rows: pa.Table) -> ParquetSettings:
        """The Parquet settings for committing ``rows``, decided from the table's first batch
        (of each schema): its columns keep their character from batch to batch."""
        if self.writer is None or self.writer[0] != rows.schema:
            self.writer = (rows.schema, parquet_settings(rows))
        return self.writer[1]

    def plain_columns(self) -> frozenset[str]:
        """The columns this table's files are written without a dictionary (so merges keep
        them so), as decided for its commits; none before its first commit here."""
        return frozenset() if self.writer is None else self.writer[1].plain

    def pending_index(self, column: str) -> IdIndex | None:
        """The buffered ids of ``column``, indexed when first needed: a batch written and
        flushed alone never needs it."""
        index = self.pending_ids.get(column)
        if index is None:
            batches = [b.rows[column] for b in self.pending if b.column == column]
            if not batches:
                return None
            index = self.pending_ids[column] = IdIndex(HeldIds())
            index.extend(batches)
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
    files: Mapping[str, int] | None = None,
) -> pa.Table | None:
    """Committed rows projected to ``columns``, in the path's types: with ``ids`` =
    (column, values), the rows holding those ids, in their order; ``where`` is applied to
    the columns the table has (callers filter the result exactly). ``files``: the only data
    files that may hold the ``ids`` (see ``committed_rows``)."""
    stored = state.stored_schema()
    if stored is None:
        return None
    names = set(stored.names)
    present = [c for c in columns if c in names]
    few = ids is not None and (len(ids[1]) <= FEW_IDS or files is not None)
    picked = ids if few and ids is not None and ids[0] in names else None
    restricted = where.restricted(names) if where else None
    table = committed_rows(
        state, local_root, present, path, where=restricted, ids=picked, files=files
    )
    if ids is not None:
        # Picked before conform, which would otherwise convert every stored row.
        # (No stored row has the id column yet: none matches.)
        column, values = ids
        table = rows_in_order(table, values, column) if column in names else table.slice(0, 0)
    return conform(table, pa.schema([schema.field(c) for c in columns]), path)


def stored_pieces(
    state: TableState,
    schema: pa.Schema,
    columns: list[str],
    path: StorePath,
    local_root: str | None,
) -> Iterator[pa.Table] | None:
    """The committed rows projected to ``columns``, in the path's types, a row group at a
    time, of the table as it is now; None where podline does not read the files itself
    (see ``committed_rows``): the caller then reads the table whole."""
    log, stored = state.log, state.stored_schema()
    target = pa.schema([schema.field(c) for c in columns])
    if stored is None:
        return iter([target.empty_table()])
    if local_root is None or log is None or not log.direct():
        return None
    names = set(stored.names)
    present = [c for c in columns if c in names]
    written = pa.schema([stored.field(c) for c in present])
    files = dict(log.data_files())  # this version's files, whenever the pieces are read
    filesystem = local_filesystem(local_root)
    table = f"the Delta table at {log.uri}"
    check_data_files(files, filesystem, table)

    def read() -> Iterator[pa.Table]:
        yielded = False
        for part in read_row_groups(files, present, filesystem, table):
            yielded = True
            yield conform(conform(part, written, path), target, path)
        if not yielded:
            yield target.empty_table()

    return read()


def committed_rows(
    state: TableState,
    local_root: str | None,
    columns: list[str],
    path: StorePath,
    *,
    where: RowFilter | None = None,
    ids: tuple[str, pa.Array] | None = None,
    files: Mapping[str, int] | None = None,
) -> pa.Table:
    """The committed rows of a table (in ``local_root``; None: an object store), projected
    to ``columns`` (which it has) and filtered by ``where``; with ``ids`` = (column, values),
    rows without one of those ids may be left out (``_delta_prune`` reads only what may
    hold them). ``files`` (path -> size; None: all): the only data files that may hold the
    rows asked for, the others being known not to (the store's id index covers them), so
    that a lookup costs the files its index has not seen yet, not the table. (Tables that
    delta-rs reads are read whole.)"""
    log, stored = state.log, state.stored_schema()
    assert log is not None
    assert stored is not None
    if local_root is None or not log.direct():
        return _read_by_delta_rs(log, local_root, columns, path, where)
    # Plain local tables are read as the Parquet files they are, in the types podline
    # wrote them in: delta-rs's dataset would convert every large string to a string
    # (and ``conform`` back again), which doubles the cost of a read.
    # Files in the order they were written, so rows come back in the order they were
    # written: a run that reads back what it wrote then matches ids without searching.
    written = pa.schema([stored.field(c) for c in columns])
    filesystem = local_filesystem(local_root)
    where = where if where is None or where.tests else None
    candidates = log.data_files() if files is None else files
    # A small table (a pipeline's specifications, a node's markers: a few rows read at every
    # run) is read whole: that costs a third of finding the files and row groups that may
    # hold a few ids, and the caller picks the rows (``stored_rows``, ``where.apply``).
    small = sum(candidates.values()) <= SMALL_TABLE_BYTES
    if (where is None and ids is None) or small:
        read = read_parquet(candidates, columns, filesystem, f"the Delta table at {log.uri}")
    else:
        read = _lookup(
            log, stored, columns, path, filesystem, candidates=candidates, where=where, ids=ids
        )
    parts = [conform(part, written, path) for part in read]
    table = pa.concat_tables(parts) if parts else written.empty_table()
    return table if where is None else where.apply(table)


def _lookup(
    log: TableLog,
    stored: pa.Schema,
    columns: list[str],
    path: StorePath,
    filesystem: pafs.FileSystem,
    *,
    candidates: Mapping[str, int],
    where: RowFilter | None,
    ids: tuple[str, pa.Array] | None,
) -> Iterator[pa.Table]:
    """The rows of ``candidates``, files of a plain local table, that pass ``where`` or hold
    one of ``ids``, reading only the files and row groups that may hold them (see
    ``_delta_prune``; files are told apart by their statistics only for a few ids)."""
    if where is not None:
        lookup: dict[str, list[Any]] = {
            name: [None if value is None else value.as_py()] for name, value in where.tests
        }
        select: Select = where.mask
        keys = pa.schema([stored.field(name) for name in lookup])
    else:
        assert ids is not None
        # (Bounds of random hashes rarely exclude one of many ids: not worth testing each.)
        lookup = {ids[0]: ids[1].drop_null().to_pylist()} if len(ids[1]) <= FEW_IDS else {}
        select = id_select(*ids)
        keys = pa.schema([stored.field(ids[0])])
    stats = log.file_stats() if lookup else {}
    files = {
        name: size
        for name, size in candidates.items()
        if not lookup or may_hold(stats.get(name), lookup, stored)
    }
    check_data_files(candidates, filesystem, f"the Delta table at {log.uri}")
    return read_matching(
        files,
        columns,
        keys,
        select,
        filesystem=filesystem,
        path=path,
        table=f"the Delta table at {log.uri}",
    )


def _read_by_delta_rs(
    log: TableLog,
    local_root: str | None,
    columns: list[str],
    path: StorePath,
    where: RowFilter | None,
) -> pa.Table:
    """Rows of a table on an object store, or with features podline does not read itself
    (partitions, deletion vectors, a log it is not sure of): delta-rs interprets them,
    through Arrow's dataset engine."""
    if local_root is not None:  # Arrow's file system reads files whole, whatever the log says
        filesystem = local_filesystem(local_root)
        check_data_files(log.data_files(), filesystem, f"the Delta table at {log.uri}")
    try:
        table = log.delta_table()
        dataset = (
            table.to_pyarrow_dataset()
            if local_root is None
            else table.to_pyarrow_dataset(filesystem=filesystem)
        )
        import pyarrow.dataset as ds  # (loaded by delta-rs's dataset already)

        # podline's own files' page checksums are checked here too (see ``WRITE_CHECKSUMS``).
        checked = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
        return dataset.to_table(
            columns=columns, filter=where and where.expression(), fragment_scan_options=checked
        )
    except Exception as exc:  # delta-rs raises bare Exceptions for I/O and log errors
        raise StoreError(
            f"cannot read version {log.version()} of the table of {path_text(path)} at "
            f"{log.uri}: {first_line(exc)}"
        ) from exc


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
