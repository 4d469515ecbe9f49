"""``DeltaStore``: the embedded default store, one Delta Lake table per path.

**Layout** (``_delta_format``). Path ``("a", "b")`` is the Delta table ``<root>/a/b.delta``;
its records are plain columns with plain Arrow/Delta types, so polars, DuckDB or Spark read it
without podline. Sub-paths live beside a table, never inside it.

**Writes** are checked (ids, types, duplicates) when ``write`` is called and buffered; reads
see buffered and committed records alike (``_delta_table``). The buffer is committed by size,
by age, on ``flush()`` and on ``close()``, one Delta commit per table, retried when another
writer committed first (``_delta_commit``, which also says what a crash leaves).

**Logs** (``_delta_log``, ``_delta_local``). Plain local tables are read from, appended to
and created by podline itself, as the Delta protocol lays them out, which spares delta-rs's
fixed cost per table opened and per commit; object stores, tables with features podline does
not read, schema changes and compaction go through delta-rs.

**Maintenance** (``_delta_maintenance``): a flush that leaves a table with ``compact_files``
small data files has it compacted into files of at most ``compact_bytes`` (on a local table
podline merges itself, by a background thread while flushes go on), and removes files
unreferenced for longer than ``retention_hours``; ``compact()`` does the same on request.

**Verification** (``_delta_verify``): ``verify()`` reads every table through podline and
through delta-rs, compares them, and lists what writers left behind.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
from pyarrow import fs as pafs

from podline.errors import StoreError
from podline.matching import rows_in_order
from podline.runtime import thread_pool, wait_all
from podline.stores._common import (
    add_query,
    check_columns,
    conform,
    evolve_schema,
    join_path,
    local_directory,
    path_text,
    pieces,
    record_path,
    row_filter,
    split_query,
)
from podline.stores._delta_commit import MAX_COMMIT_ATTEMPTS, Committer
from podline.stores._delta_format import TABLE_SUFFIX, encode_segment, table_paths
from podline.stores._delta_local import has_log
from podline.stores._delta_log import TableLog, first_line
from podline.stores._delta_maintenance import (
    DEFAULT_COMPACT_BYTES,
    DEFAULT_COMPACT_FILES,
    DEFAULT_RETENTION_HOURS,
    Maintenance,
    commit_merged,
    delete_unreferenced,
    merge_small_files,
    rewrite_small_files,
)
from podline.stores._delta_open import Opener
from podline.stores._delta_table import (
    Buffered,
    CommittedIds,
    TableIds,
    TableState,
    merge_buffered,
    stored_pieces,
    stored_rows,
)
from podline.stores._delta_verify import VerifyReport, verify_tables
from podline.stores.base import PathLike, StorePath
from podline.stores.scoped import ScopedStore

__all__ = ["DeltaStore"]

DEFAULT_FLUSH_ROWS = 10_000
DEFAULT_FLUSH_SECONDS = 10.0

# Storage options that look like credentials are left out of configs; pass them through the
# environment (which delta-rs reads) instead.
_SECRET = re.compile(r"secret|token|password|key|credential|sas", re.IGNORECASE)

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- backend


class _DeltaBackend(Committer):
    """Every table of one DeltaStore root, with the write buffer (committed by ``Committer``)."""

    def __init__(
        self,
        root: str,
        local: Path | None,
        storage_options: Mapping[str, str] | None,
        flush_rows: int,
        flush_seconds: float | None,
        *,
        maintenance: Maintenance,
    ) -> None:
        super().__init__(flush_rows, flush_seconds)
        self.root = root
        self.local = local
        self.storage_options = dict(storage_options or {})
        self._opener = Opener(local is not None, self.storage_options or None)
        compact_files = maintenance.compact_files
        if compact_files is not None and compact_files < 2:
            raise StoreError(f"compact_files must be at least 2 or None, got {compact_files}")
        if maintenance.retention_hours < 0:
            raise StoreError(f"retention_hours may not be negative: {maintenance.retention_hours}")
        if maintenance.compact_bytes < 1:
            raise StoreError(f"compact_bytes must be positive, got {maintenance.compact_bytes}")
        self.maintenance = maintenance
        self._tables = {}
        #: Merges under way in the background, by table (see ``_maintain``).
        self._merges: dict[StorePath, Future[None]] = {}
        # Buffered records must not vanish at interpreter exit, and delta-rs handles are let go
        # of before the interpreter shuts down (see podline.shutdown); the hook holds only a
        # weak reference and goes away with the backend.
        hook = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(hook)
        weakref.finalize(self, atexit.unregister, hook).atexit = False

    # -- tables and handles

    def _uri(self, path: StorePath) -> str:
        *dirs, leaf = (encode_segment(segment) for segment in path)
        return "/".join([self.root, *dirs, leaf + TABLE_SUFFIX])

    def _table(self, path: StorePath, *, files: bool = True) -> TableState:
        """The state of ``path``, its table opened if it was not; with ``files``, its read
        log knows the table's data files (appending needs only its version and schema)."""
        state = self._tables.get(path)
        if state is None:
            state = self._tables[path] = TableState(self._uri(path))
            state.log = self._open(state.uri, path, files=files)
        elif files and state.log is not None:
            state.log = self._opener.with_files(state.log, state.uri, path)
        return state

    def _open(
        self, uri: str, path: StorePath, version: int | None = None, *, files: bool = True
    ) -> TableLog | None:
        return self._opener.open(uri, path, version, files=files)

    def _refresh(self, state: TableState, path: StorePath) -> TableLog | None:
        """The read log at the table's latest version (None while no table exists)."""
        state.log = self._opener.latest(state.log, state.uri, path)
        return state.log

    def _refresh_for_write(self, state: TableState, path: StorePath) -> TableLog | None:
        """The write log at the table's latest version (None while no table exists), knowing
        the table's data files where write-once needs them (appended rows alone do not)."""
        if state.write_log is None and state.log is not None:
            # A copy of the read log where that is cheap: reading the log once, not twice, is
            # most of what appending to a table costs a store that just opened it.
            state.write_log = state.log.fork()
        files = bool(state.committed) or not all(b.fresh for b in state.pending)
        state.write_log = self._opener.latest(state.write_log, state.uri, path, files=files)
        return state.write_log

    def _local_root(self, state: TableState) -> str | None:
        """The directory of a local table, or None on an object store."""
        return None if self.local is None else state.uri

    def _committed(self, state: TableState, column: str, path: StorePath) -> CommittedIds:
        ids = state.committed.get(column)
        if ids is None:
            source = TableIds(column, state.uri, path, self._opener, self._local_root(state))
            ids = state.committed[column] = CommittedIds(source)
            ids.sync(state.log)
        return ids

    def _readable(
        self, path: StorePath, columns: Sequence[str]
    ) -> tuple[TableState, pa.Schema] | None:
        """A path's state at the table's latest version and its schema, the ``columns`` a
        read asks for checked against it; None while nothing was written there (with
        ``_lock`` held)."""
        state = self._table(path)
        self._refresh(state, path)
        schema = state.schema(path)
        if schema is None:
            return None
        check_columns(columns, schema, path)
        return state, schema

    def _files_to_read(
        self, state: TableState, column: str, ids: pa.Array
    ) -> Mapping[str, int] | None:
        """The committed data files (path -> size) that may hold any of ``ids``; None: any
        of them. The table's id index (kept by this store's writes) covers the files it was
        synced with or wrote: when it holds none of ``ids``, only the files it does not cover
        may. That is none while it is in step with the read log, which spares a run looking
        up what it is about to compute a read of every row it committed so far; and while a
        commit of this store is published but not yet recorded in the index (the flushing
        thread works without ``_lock``), or another writer committed, it is the files those
        commits added, never the whole table. (The index is not synced here: the flush relies
        on a sync that adds ids to check buffered rows against them.)"""
        committed = state.committed.get(column)
        # A hash match is not confirmed (that reads the id column): the files are read anyway.
        if committed is None or state.log is None or committed.index.may_contain(ids):
            return None
        covered = committed.files
        return {name: size for name, size in state.log.data_files().items() if name not in covered}

    # -- Backend protocol

    def write(self, path: StorePath, table: pa.Table, id_column: str, *, fresh: bool) -> int:
        with self._lock:
            self._wait_for_room()
            state = self._table(path, files=not fresh)
            schema = evolve_schema(state.schema(path), table.schema, path)
            pending = state.pending_index(id_column)
            if not fresh:
                ids = table[id_column]
                seen = self._committed(state, id_column, path).index.contains(ids)
                state.indexed_at = self._flushed_rows
                if pending is not None:
                    seen |= pending.contains(ids)
                if seen.any():
                    table = table.filter(~seen)
            if not table.num_rows:
                return 0
            state.pending.append(Buffered(id_column, conform(table, schema, path), fresh))
            state.pending_schema = schema
            if pending is not None:
                pending.add(table[id_column])
            state.pending_rows += table.num_rows
            self._buffer_grew(table.num_rows)
            return table.num_rows

    def read(
        self, path: StorePath, ids: pa.Array, columns: list[str] | None, id_column: str
    ) -> pa.Table | None:
        with self._lock:
            found = self._readable(path, [id_column, *(columns or ())])
            if found is None:
                return None
            state, schema = found
            wanted = columns or schema.names
            fetch = _unique([*wanted, id_column, *(b.column for b in state.pending)])
            stored = None
            files = self._files_to_read(state, id_column, ids)
            if files is None or files:
                root = self._local_root(state)
                stored = stored_rows(
                    state, schema, fetch, path, root, ids=(id_column, ids), files=files
                )
            found = merge_buffered(stored, state.pending, schema, fetch, path, ids=(id_column, ids))
            if state.pending:  # stored rows come in the order of ``ids``; buffered ones not
                found = rows_in_order(found, ids, id_column)
        return found.select(wanted)

    def scan(
        self, path: StorePath, columns: list[str] | None, where: Mapping[str, Any] | None
    ) -> pa.Table | None:
        with self._lock:
            found = self._readable(path, columns or ())
            if found is None:
                return None
            state, schema = found
            rows = row_filter(where, schema, path)
            wanted = columns or schema.names
            fetch = _unique([*wanted, *(where or ()), *(b.column for b in state.pending)])
            stored = stored_rows(state, schema, fetch, path, self._local_root(state), where=rows)
            found = merge_buffered(stored, state.pending, schema, fetch, path)
        if rows is not None:
            found = rows.apply(found)
        return found.select(wanted)

    def scan_batches(self, path: StorePath, columns: list[str] | None) -> Iterator[pa.Table] | None:
        with self._lock:
            readable = self._readable(path, columns or ())
            if readable is None:
                return None
            state, schema = readable
            wanted = columns or schema.names
            found = None
            if not state.pending:  # (buffered rows are merged by ``scan``)
                found = stored_pieces(state, schema, wanted, path, self._local_root(state))
        # Buffered rows, or a table delta-rs reads: read whole.
        return pieces(self.scan(path, columns, None)) if found is None else found

    def exists(self, path: StorePath) -> bool:
        with self._lock:
            state = self._tables.get(path)
            if state is not None and state.pending:
                return True
            uri = self._uri(path)
        if self.local is not None:
            return has_log(uri)
        from deltalake import DeltaTable

        try:
            return DeltaTable.is_deltatable(uri, self.storage_options or None)
        except Exception as exc:  # delta-rs raises OSError or bare exceptions for I/O
            raise StoreError(
                f"cannot tell whether {path_text(path)} exists at {uri}: {first_line(exc)}"
            ) from exc

    def paths(self, prefix: StorePath) -> Iterable[StorePath]:
        with self._lock:
            found = {p for p, s in self._tables.items() if s.pending and p[: len(prefix)] == prefix}
        if prefix and self.exists(prefix):
            found.add(prefix)
        filesystem, base = self._filesystem()
        directory = "/".join([*([base] if base else []), *map(encode_segment, prefix)])
        tables = table_paths(filesystem, directory, prefix)
        if self.local is not None:  # only tables with a commit, as ``exists`` says
            tables = (p for p in tables if has_log(self._uri(p)))
        found.update(tables)
        return found

    def _filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A filesystem for listing the root, and the root's path in it."""
        if self.local is not None:
            return pafs.LocalFileSystem(), self.local.as_posix()
        from deltalake.fs import DeltaStorageHandler

        handler = DeltaStorageHandler(self.root, self.storage_options or None)
        return pafs.PyFileSystem(handler), ""

    def flush(self) -> None:
        with self._lock:
            self._raise_background_error()
        self._flush_all()
        self._wait_for_merges()

    def close(self) -> None:
        self.flush()
        self._stop_committer()
        self._wait_for_merges()  # any the committer's last flush started
        with self._lock:
            self._tables.clear()

    def config(self) -> str:
        options = {k: v for k, v in self.storage_options.items() if not _SECRET.search(k)}
        if self.flush_rows != DEFAULT_FLUSH_ROWS:
            options["flush_rows"] = str(self.flush_rows)
        if self.flush_seconds != DEFAULT_FLUSH_SECONDS:
            options["flush_seconds"] = str(self.flush_seconds).lower()
        if self.maintenance.compact_files != DEFAULT_COMPACT_FILES:
            options["compact_files"] = str(self.maintenance.compact_files).lower()
        if self.maintenance.retention_hours != DEFAULT_RETENTION_HOURS:
            options["retention_hours"] = str(self.maintenance.retention_hours)
        if self.maintenance.compact_bytes != DEFAULT_COMPACT_BYTES:
            options["compact_bytes"] = str(self.maintenance.compact_bytes)
        base = self.local.as_uri() if self.local is not None else self.root
        return add_query(base, options)

    def arguments(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "storage_options": self.storage_options,
            "flush_rows": self.flush_rows,
            "flush_seconds": self.flush_seconds,
            "compact_files": self.maintenance.compact_files,
            "retention_hours": self.maintenance.retention_hours,
            "compact_bytes": self.maintenance.compact_bytes,
        }

    # -- deletion

    def delete(self, path: StorePath, ids: pa.Array, id_column: str) -> int:
        # Buffered rows are committed first: the deletion is then one delta-rs merge on the
        # stored rows (a commit of its own, like compaction), and readers see all or none.
        # Another writer committing meanwhile (on an object store, where no file lock keeps
        # writers apart: two users recomputing or invalidating a shared function's rows at
        # once) makes delta-rs refuse the merge ("a concurrent transaction deleted data this
        # operation read"): as for appends, the table is read again and the merge made
        # again on it (deleting what is already gone deletes nothing).
        self.flush()
        with self._flushing, self._lock:
            state = self._table(path)
            with self._table_lock(state, path):
                column = id_column.replace('"', '""')
                source = pa.table({id_column: ids.cast(pa.large_string())})
                for attempt in range(MAX_COMMIT_ATTEMPTS):
                    log = self._refresh_for_write(state, path)
                    if log is None or id_column not in log.schema().names:
                        return 0
                    base = log.version()
                    try:
                        metrics = (
                            log.delta_table()
                            .merge(
                                source=source,
                                predicate=f't."{column}" = s."{column}"',
                                source_alias="s",
                                target_alias="t",
                            )
                            .when_matched_delete()
                            .execute()
                        )
                        log.update()
                        break
                    except Exception as exc:  # see _open
                        what = f"deleting {len(ids)} record(s) of"
                        self._after_failed_commit(
                            state, path, base, attempt=attempt, error=exc, what=what
                        )
                else:
                    raise self._overtaken(state, path, f"deleting {len(ids)} record(s) of")
            # The id indexes hold the removed ids: rebuilt from the table when next needed.
            state.committed.clear()
            self._refresh(state, path)
            return int(metrics.get("num_target_rows_deleted", 0))

    # -- maintenance (_delta_maintenance)

    def compact(self, prefix: StorePath, retention_hours: int | None) -> None:
        self.flush()
        hours = self.maintenance.retention_hours if retention_hours is None else retention_hours
        for path in sorted(self.paths(prefix)):
            with self._flushing, self._lock:
                state = self._table(path)
                with self._table_lock(state, path):
                    self._compact_table(path, state, hours, least=None)

    def _maintain(self, path: StorePath, state: TableState) -> None:
        """Compact a table whose log lists ``compact_files`` small data files, after a flush
        that committed to it (by the flushing thread, with the table's lock held). The flush
        stands whatever happens here, so a failure is a warning, and the next flush tries
        again.

        A table podline merges itself is merged in the background (``_merge``): the merge is
        written while flushes go on, and only its commit waits for them. Merged in the flush,
        it held up the whole store: at 10,000,000 rows writers spent a third of a run waiting
        for room in the buffer while the committer merged."""
        least = (self.maintenance.compact_files or 2) // 2
        with self._lock:
            if path in self._merges:
                return  # under way: the next flush after it looks again
        log = state.write_log
        fork = log.fork() if log is not None and log.mergeable() else None
        if fork is not None:
            with self._lock:
                try:
                    self._merges[path] = thread_pool("podline-merge", 1).submit(
                        self._merge, path, state, fork, least
                    )
                    return
                except RuntimeError:  # the interpreter is exiting: no new threads
                    pass
        try:
            self._compact_table(path, state, self.maintenance.retention_hours, least=least)
        except StoreError as exc:
            _log.warning("automatic %s", exc)

    def _merge(self, path: StorePath, state: TableState, log: TableLog, least: int) -> None:
        """Merge a table's small files (``log``: a log of the merge's own, at the version the
        flush that found the table due committed), then commit the merge between flushes."""
        try:
            self._merge_and_commit(path, state, log, least)
        except StoreError as exc:
            _log.warning("automatic %s", exc)
        except Exception:  # no caller to raise it to: the flush that asked stands
            _log.warning("automatic compacting of %s failed", path_text(path), exc_info=True)
        finally:
            with self._lock:
                del self._merges[path]

    def _merge_and_commit(
        self, path: StorePath, state: TableState, log: TableLog, least: int
    ) -> None:
        plain = state.plain_columns()
        try:
            merge = merge_small_files(log, self.maintenance.compact_bytes, least, plain)
        except Exception as exc:  # see _open
            raise StoreError(
                f"compacting {path_text(path)} at {state.uri} failed: {first_line(exc)}"
            ) from exc
        if merge is None:
            return
        with self._flushing, self._table_lock(state, path):
            try:
                with self._lock:
                    latest = self._refresh_for_write(state, path)
            except BaseException:
                merge.discard()  # not committed: no commit refers to its files
                raise
            if latest is None:
                merge.discard()
                return
            self._compacted(
                path,
                state,
                latest,
                self.maintenance.retention_hours,
                lambda log: commit_merged(log, merge),
            )

    def _wait_for_merges(self) -> None:
        """Return once no merge this store started is under way (see ``_maintain``)."""
        while True:
            with self._lock:
                merges = list(self._merges.values())
            if not merges:
                return
            wait_all(merges)

    def _compact_table(
        self, path: StorePath, state: TableState, retention_hours: int, *, least: int | None
    ) -> None:
        """Rewrite a table's small files (the newest, at least ``least``; all without, see
        ``merge_size``) into files of at most ``compact_bytes`` and
        delete files unreferenced for ``retention_hours`` (with ``_flushing`` and the table's
        lock held)."""
        log = self._refresh_for_write(state, path)
        if log is None:
            return
        plain = state.plain_columns()
        cap = self.maintenance.compact_bytes
        self._compacted(
            path,
            state,
            log,
            retention_hours,
            lambda log: rewrite_small_files(log, cap, least, plain),
        )

    def _compacted(
        self,
        path: StorePath,
        state: TableState,
        log: TableLog,
        retention_hours: int,
        compaction: Callable[[TableLog], bool],
    ) -> None:
        """Run ``compaction`` on the write ``log`` (at the table's latest version; True if it
        committed), account for it in the id indexes, then delete the files unreferenced for
        ``retention_hours`` (with ``_flushing`` and the table's lock held)."""
        base = log.version()
        try:
            if compaction(log):
                with self._lock:
                    for ids in state.committed.values():
                        ids.rewritten(log, base)
            delete_unreferenced(log, retention_hours, self._local_root(state))
        except Exception as exc:  # see _open
            raise StoreError(
                f"compacting {path_text(path)} at {state.uri} failed: {first_line(exc)}"
            ) from exc

    # -- verification

    def verify(self, prefix: StorePath) -> VerifyReport:
        """See ``DeltaStore.verify``."""
        # A new backend reads each table as a new store object would: none of this one's
        # buffers, handles or id indexes take part.
        fresh = _DeltaBackend(
            self.root,
            self.local,
            self.storage_options,
            self.flush_rows,
            None,
            maintenance=self.maintenance,
        )

        def read(path: StorePath) -> tuple[TableLog | None, pa.Table | None]:
            rows = fresh.scan(path, None, None)
            return fresh._tables[path].log, rows

        filesystem, base = self._filesystem()
        options = self.storage_options or None
        return verify_tables(filesystem, base, prefix, read, uri=self._uri, storage_options=options)


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _close_at_exit(ref: weakref.ref[_DeltaBackend]) -> None:
    backend = ref()
    if backend is None:
        return
    try:
        backend.close()
    except StoreError as exc:
        # Nobody can catch it at exit, and atexit would print a traceback (after the same
        # error, raised by the run, already had one): say once what was not committed.
        print(f"podline: at exit, {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- public class


class DeltaStore(ScopedStore[_DeltaBackend]):
    """A store of Delta Lake tables under ``root``: a local directory (``str``, ``Path`` or
    ``file://`` URL) or an object-store URL (``s3://``, ``gs://``, ``az://``, ...) reached with
    ``storage_options`` (delta-rs option names). See the module docs for the design."""

    __slots__ = ()

    schemes = ("", "file", "s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure", "lakefs")

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, str] | None = None,
        flush_rows: int = DEFAULT_FLUSH_ROWS,
        flush_seconds: float | None = DEFAULT_FLUSH_SECONDS,
        compact_files: int | None = DEFAULT_COMPACT_FILES,
        retention_hours: int = DEFAULT_RETENTION_HOURS,
        compact_bytes: int = DEFAULT_COMPACT_BYTES,
    ) -> None:
        text = os.fspath(root)
        local = local_directory(text, self.schemes)
        uri = local.as_posix() if local is not None else text.rstrip("/")
        maintenance = Maintenance(compact_files, retention_hours, compact_bytes)
        super().__init__(
            _DeltaBackend(
                uri, local, storage_options, flush_rows, flush_seconds, maintenance=maintenance
            )
        )

    @property
    def root(self) -> str:
        """The root directory or URL of the store."""
        return self._backend.root

    def table_uri(self, path: PathLike) -> str:
        """Where the Delta table of ``path`` (below this view) lives, for other readers."""
        return self._backend._uri(record_path(self._prefix, path))

    def compact(self, path: PathLike = (), *, retention_hours: int | None = None) -> None:
        """Flush, then compact every table at or below ``path``: small files are rewritten
        into large ones, and files no commit has referred to for ``retention_hours`` (default:
        the store's, a week unless set) are deleted: old versions, leftovers of failed or
        killed writers. A table with nothing to do is left as it is. Readers of versions older
        than the retention lose them, and a writer slower than that could lose its files: keep
        the default unless no one else uses the store. The store also compacts a table by
        itself once it holds ``compact_files`` small data files (see ``_delta_maintenance``).
        No merge reads or writes a file larger than ``compact_bytes``, and files larger than
        half of it are left as they are."""
        self._backend.compact(join_path(self._prefix, path), retention_hours)

    def verify(self, path: PathLike = ()) -> VerifyReport:
        """Read every table at or below ``path`` through podline and through delta-rs,
        compare what they read, and list what writers left behind (see ``VerifyReport``).
        Only committed records are read: flush first to include buffered ones. Meant for a
        store no one is writing to; paths in the report are relative to this view."""
        report = self._backend.verify(join_path(self._prefix, path))
        cut = len(self._prefix)
        return VerifyReport(
            tuple(p[cut:] for p in report.tables),
            tuple(dataclasses.replace(f, path=f.path[cut:]) for f in report.problems),
            tuple(dataclasses.replace(f, path=f.path[cut:]) for f in report.leftovers),
        )

    @classmethod
    def from_base(cls, base: str) -> Self:
        if "://" not in base:
            return cls(base)
        local_directory(base, cls.schemes)  # before splitting, which makes "s3://" "s3:"
        location, query = split_query(base)
        options: dict[str, Any] = {}
        try:
            if "flush_rows" in query:
                options["flush_rows"] = int(query.pop("flush_rows"))
            if "flush_seconds" in query:
                seconds = query.pop("flush_seconds")
                options["flush_seconds"] = None if seconds == "none" else float(seconds)
            if "compact_files" in query:
                files = query.pop("compact_files")
                options["compact_files"] = None if files == "none" else int(files)
            if "retention_hours" in query:
                options["retention_hours"] = int(query.pop("retention_hours"))
            if "compact_bytes" in query:
                options["compact_bytes"] = int(query.pop("compact_bytes"))
        except ValueError as exc:
            raise StoreError(f"invalid option in store config {base!r}: {exc}") from exc
        return cls(location, storage_options=query or None, **options)
