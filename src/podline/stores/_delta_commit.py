"""The committer of a ``DeltaStore``'s write buffer: how buffered records become Delta commits.

**When.** ``write`` checks records and buffers them (``delta``); the buffer is committed when
it holds ``flush_rows`` records or ``flush_seconds`` after its oldest record was buffered (both
by a background committer thread, so writers go on while the Parquet writer runs without the
GIL; a writer more than ``_BACKLOG`` times ``flush_rows`` ahead waits), and on ``flush()`` and
``close()`` (which wait for the committer first). Each table's share of a flush is one Delta
commit, so readers see all of it or none of it. A flush that fails raises ``StoreError`` and
keeps the records buffered; a background flush that fails raises on the next ``write``,
``flush`` or ``close``. A flush that leaves a table due for compaction has the backend compact
it (``_delta_maintenance``).

**Concurrency.** A commit is attempted only on the table version its rows were deduplicated
against (the next log entry, created only if absent); if another writer committed first, the
store reloads the table, drops the ids that writer added, and tries again. On local paths
writers of one table also take an ``flock`` on ``<table>/_podline.lock``, which spares them
wasted attempts; object stores rely on the optimistic protocol alone (and on delta-rs
committing atomically, which on S3 means conditional writes).

**Crash safety.** A Delta commit is one atomic log entry, so a process killed at any point
leaves every earlier commit intact and the table readable; at most it leaves data files no
commit refers to, which ``compact`` removes. A table exists (to ``list``, ``exists`` and every
reader) once its log holds a commit. Local commits are synced to disk before they are
published, so a power loss cannot publish an entry whose data file is missing.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.errors import StoreError
from podline.runtime import thread_pool, wait_all
from podline.stores._common import conform, evolve_schema, path_text
from podline.stores._delta_format import path_schema, table_lock
from podline.stores._delta_local import LocalLog
from podline.stores._delta_log import TableLog, first_line, write_with_delta_rs
from podline.stores._delta_maintenance import Maintenance
from podline.stores._delta_table import Buffered, CommittedIds, TableState
from podline.stores.base import StorePath

__all__ = ["MAX_COMMIT_ATTEMPTS", "Committer"]

#: Commits a writer attempts before giving up on others committing first.
MAX_COMMIT_ATTEMPTS = 64

#: Tables a flush commits at once (``_flush_tables``).
_PARALLEL_COMMITS = 4
#: Properties of the tables the store creates. A checkpoint every 10 commits (Delta's
#: default is 100) keeps opening a table cheap: a table that gains a commit per run (status,
#: logs, run records) would otherwise replay up to 99 log files at every open. Checkpoints
#: list no removed files (Delta keeps them a week by default): a table compacted every 64
#: runs would otherwise carry a row per file it ever had into every checkpoint, and every
#: open would read them. Only a vacuum that does not list the table's files needs them, and
#: the store's own list them (``vacuum(full=True)``).
_TABLE_CONFIGURATION: dict[str, str | None] = {
    "delta.checkpointInterval": "10",
    "delta.deletedFileRetentionDuration": "interval 0 seconds",
}
#: How many ``flush_rows`` may wait for the background committer before writers wait too.
_BACKLOG = 4
#: Id indexes smaller than this (hashes) are kept however long their table goes unwritten:
#: they cost a few megabytes at most, less than reading their ids back would.
_IDLE_INDEX_HASHES = 1 << 18


class Committer(ABC):
    """The half of ``delta._DeltaBackend`` that commits its write buffer: the flush timer,
    the background committer thread, and each table's commit with its retries.

    A base class of the backend rather than an object it holds: committing needs the
    backend's table handles (opening, refreshing, the id indexes, maintenance), so a held
    object would point back at the backend, and that cycle would keep a dropped store (its
    delta-rs handles, its exit hook) alive until the cyclic collector runs instead of freeing
    it at once. The backend supplies the attributes annotated here and the abstract methods.
    """

    # Supplied by the backend.
    root: str
    local: Path | None
    storage_options: dict[str, str]
    maintenance: Maintenance
    _tables: dict[StorePath, TableState]

    def __init__(self, flush_rows: int, flush_seconds: float | None) -> None:
        if flush_rows < 1:
            raise StoreError(f"flush_rows must be at least 1, got {flush_rows}")
        if flush_seconds is not None and flush_seconds <= 0:
            raise StoreError(f"flush_seconds must be positive or None, got {flush_seconds}")
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        # ``_lock`` guards the tables' state and is held only briefly; ``_flushing`` is held
        # for a whole flush, so flushes never overlap. Always take ``_flushing`` first.
        self._lock = threading.RLock()
        self._flushing = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._buffered = 0
        self._timer: threading.Timer | None = None
        self._background_error: BaseException | None = None
        #: Rows committed by this store's flushes so far: the clock of ``_release_idle``.
        self._flushed_rows = 0
        self._flush_wanted = False
        self._stopping = False
        self._committer: threading.Thread | None = None

    # -- what the backend supplies

    @abstractmethod
    def _open(
        self, uri: str, path: StorePath, version: int | None = None, *, files: bool = True
    ) -> TableLog | None:
        """The table's log at ``version`` (default: the latest), None while none exists."""

    @abstractmethod
    def _refresh_for_write(self, state: TableState, path: StorePath) -> TableLog | None:
        """The write log at the table's latest version (None while no table exists)."""

    @abstractmethod
    def _committed(self, state: TableState, column: str, path: StorePath) -> CommittedIds:
        """The index of the ids committed to ``column`` of the table."""

    @abstractmethod
    def _local_root(self, state: TableState) -> str | None:
        """The directory of a local table, or None on an object store."""

    @abstractmethod
    def _maintain(self, path: StorePath, state: TableState) -> None:
        """Compact a table a flush left due for it (see ``Maintenance.due``)."""

    # -- the buffer's bounds (all with ``_lock`` held)

    def _wait_for_room(self) -> None:
        """Wait until the buffer has room for a write, raising a background flush's error."""
        self._raise_background_error()
        # A writer far ahead of the background committer waits for it (bounded memory),
        # before adding its rows: a large write then goes on at once, committed while the
        # writer does other work.
        self._changed.wait_for(
            lambda: (
                self._buffered < _BACKLOG * self.flush_rows or self._background_error is not None
            )
        )
        self._raise_background_error()

    def _buffer_grew(self, rows: int) -> None:
        """Count ``rows`` more buffered records, and have them committed in time."""
        self._buffered += rows
        if self._buffered >= self.flush_rows:
            # Committed by a background thread while the caller goes on (delta-rs writes
            # without the GIL).
            self._request_flush()
        else:
            self._start_timer()

    def _stop_committer(self) -> None:
        """Cancel the timer and end the background committer (after a flush)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._stopping = True
            self._changed.notify_all()
            committer = self._committer
            self._committer = None
        if committer is not None:
            committer.join()
        with self._lock:
            self._stopping = False

    # -- flushing

    def _start_timer(self) -> None:
        if self.flush_seconds is None or self._timer is not None:
            return
        self._timer = threading.Timer(self.flush_seconds, self._timed_flush)
        self._timer.daemon = True
        self._timer.start()

    def _timed_flush(self) -> None:
        with self._lock:
            if self._timer is threading.current_thread():
                self._timer = None
            self._request_flush()

    def _request_flush(self) -> None:
        """Have the background committer flush everything buffered (call with ``_lock``)."""
        self._flush_wanted = True
        if self._committer is None:
            self._committer = threading.Thread(
                target=self._commit_in_background, name="podline-delta-commit", daemon=True
            )
            self._committer.start()
        self._changed.notify_all()

    def _commit_in_background(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._flush_wanted or self._stopping)
                if not self._flush_wanted:
                    return
                self._flush_wanted = False
            try:
                self._flush_all()
            except Exception as exc:  # re-raised on the caller's next write/flush/close
                with self._lock:
                    self._background_error = exc
                    self._changed.notify_all()

    def _raise_background_error(self) -> None:
        error, self._background_error = self._background_error, None
        if error is not None:
            raise StoreError(f"a background flush of {self.root} failed: {error}") from error

    def _flush_all(self) -> None:
        """Commit what is buffered now, table by table (never with ``_lock`` held: the
        background committer may need it to finish the flush this one waits for)."""
        with self._flushing:
            with self._lock:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                work = [(p, s, len(s.pending)) for p, s in self._tables.items() if s.pending]
            failures = self._flush_tables(work)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise StoreError(
                f"flushing {len(failures)} tables failed: " + "; ".join(map(str, failures))
            ) from failures[0]

    def _flush_tables(self, work: list[tuple[StorePath, TableState, int]]) -> list[StoreError]:
        """Commit each table's share of a flush; returns the failures in ``work``'s order.

        Tables commit side by side (writing Parquet and syncing release the GIL), so a flush
        of several tables, such as a run's status tables, waits for about one commit rather
        than one per table. The flush returns only once every commit is over, even when
        Ctrl-C interrupts the wait, so no commit is under way after it (and none is cut
        short: they run outside the main thread). At interpreter exit, when no thread can
        start, the tables commit one after another."""
        tasks: dict[int, Future[None]] = {}
        if len(work) > 1:
            try:
                pool = thread_pool("podline-commit", _PARALLEL_COMMITS)
                for i, item in enumerate(work):
                    tasks[i] = pool.submit(self._flush_table, *item)
            except RuntimeError:  # the interpreter is exiting: no new threads
                pass
        outcomes: dict[int, BaseException | None] = {}
        try:
            for i, item in enumerate(work):
                if i not in tasks:
                    outcomes[i] = _outcome(self._flush_table, *item)
        finally:
            wait_all(list(tasks.values()))
        outcomes.update((i, future.exception()) for i, future in tasks.items())
        failures = []
        for i in sorted(outcomes):
            error = outcomes[i]
            if isinstance(error, StoreError):
                failures.append(error)
            elif error is not None:
                raise error
        return failures

    def _flush_table(self, path: StorePath, state: TableState, count: int) -> None:
        """Commit the first ``count`` buffered batches of a table. The commit itself runs
        without ``_lock``, so writes and reads go on meanwhile: new writes queue behind the
        batches being committed, and reads still see those as buffered (``merge_buffered``
        drops any that a read also finds committed)."""
        with self._table_lock(state, path):
            for attempt in range(MAX_COMMIT_ATTEMPTS):
                with self._lock:
                    log = self._refresh_for_write(state, path)
                    base = None if log is None else log.version()
                    schema = state.schema(path)
                    assert schema is not None  # there are buffered rows
                    if log is not None:
                        # Columns committed since the read log last looked are kept too.
                        schema = evolve_schema(path_schema(log.schema()), schema, path)
                    self._drop_committed(state, path, log)
                    batches = state.pending[:count]
                    rows = pa.concat_tables([conform(b.rows, schema, path) for b in batches])
                if rows.num_rows:
                    try:
                        log = self._commit(state, path, log, rows, schema)
                    except Exception as exc:  # delta-rs raises bare Exceptions
                        what = f"writing {rows.num_rows} records to"
                        self._after_failed_commit(
                            state, path, base, attempt=attempt, error=exc, what=what
                        )
                        continue
                with self._lock:
                    if rows.num_rows:
                        assert log is not None
                        self._committed_after(state, path, log, base, batches)
                        self._flushed_rows += rows.num_rows
                        state.indexed_at = self._flushed_rows
                        self._release_idle()
                    state.pending = state.pending[count:]
                    state.pending_ids = {}
                    state.pending_rows = sum(b.rows.num_rows for b in state.pending)
                    if not state.pending:
                        state.pending_schema = None
                    self._buffered = sum(t.pending_rows for t in self._tables.values())
                    self._changed.notify_all()
                if rows.num_rows and log is not None and self.maintenance.due(log):
                    self._maintain(path, state)
                return
        raise self._overtaken(state, path, "committing to")

    def _release_idle(self) -> None:
        """Let go of the id indexes of tables this store has stopped writing (with
        ``_lock``): a table with nothing buffered whose indexes hold at least
        ``_IDLE_INDEX_HASHES`` hashes, and which no write or commit used since the store
        committed at least as many rows (``TableState.indexed_at``).

        Why: a sync run writes its nodes one after another, and a finished node's indexes
        (5 bytes a record, two tables a node) would otherwise stay in memory to the end of
        the process. A write to the table later rebuilds them from its id column, as a
        store opened afresh does; since at least as many rows were committed between its last
        use and the release, the rebuilds cost at most as much reading as the store did
        committing, however writes alternate between tables. Reads lose only the index's
        shortcut (``_files_to_read``)."""
        for state in self._tables.values():
            if not state.committed or state.pending:
                continue
            held = sum(len(ids.index) for ids in state.committed.values())
            if held >= _IDLE_INDEX_HASHES and self._flushed_rows - state.indexed_at >= held:
                state.committed.clear()

    def _drop_committed(self, state: TableState, path: StorePath, log: TableLog | None) -> None:
        """Drop buffered rows whose ids the table (at ``log``) gained since they were
        checked.

        Buffered rows are always disjoint from their column's committed index (``write``
        checks them, and this keeps it so), so only a sync that added ids calls for a check.
        """
        for column in {b.column for b in state.pending if not b.fresh}:
            committed = self._committed(state, column, path)
            if committed.sync(log):
                state.pending = [
                    b._replace(rows=b.rows.filter(~committed.index.contains(b.rows[column])))
                    if b.column == column and not b.fresh
                    else b
                    for b in state.pending
                ]

    def _commit(
        self,
        state: TableState,
        path: StorePath,
        log: TableLog | None,
        rows: pa.Table,
        schema: pa.Schema,
    ) -> TableLog:
        """Commit ``rows`` on ``log``'s version (a new table if None); returns the log at the
        new version."""
        settings = state.parquet_settings(rows)
        if log is not None:
            log.append(rows, schema, settings)
            return log
        if self.local is not None:
            local = LocalLog.create(state.uri, rows, schema, settings, _TABLE_CONFIGURATION)
            if local is not None:
                return local
        options = self.storage_options or None
        write_with_delta_rs(
            state.uri,
            rows,
            schema,
            settings,
            storage_options=options,
            configuration=_TABLE_CONFIGURATION,
        )
        # We created the table: version 0 holds exactly our rows.
        created = self._open(state.uri, path, version=0)
        assert created is not None
        return created

    def _committed_after(
        self,
        state: TableState,
        path: StorePath,
        log: TableLog,
        base: int | None,
        batches: list[Buffered],
    ) -> None:
        """Account for the commit of ``batches`` on version ``base`` (``log``: after it)."""
        state.write_log = log
        if state.log is None:
            state.log = self._open(state.uri, path)
        written: dict[str, list[pa.Array]] = {}
        for column, rows, _ in batches:
            written.setdefault(column, []).extend(rows[column].chunks)
        for column, chunks in written.items():
            committed = state.committed.get(column)
            if committed is None:
                continue  # only appended so far: no index to keep (one syncs when needed)
            ids = pa.chunked_array(chunks, type=pa.large_string())
            committed.record(log, -1 if base is None else base, ids)

    def _after_failed_commit(
        self,
        state: TableState,
        path: StorePath,
        base: int | None,
        *,
        attempt: int,
        error: Exception,
        what: str,
    ) -> None:
        """A commit made on version ``base`` failed with ``error``. If another writer committed
        meanwhile, wait (a random backoff of up to a second, so racing writers spread out)
        and return: the caller tries again on the new version. Otherwise raise a
        ``StoreError`` saying ``what`` failed (``"writing 3 records to"``) and why."""
        if not self._moved(state, path, base):
            raise StoreError(
                f"{what} {path_text(path)} at {state.uri} failed: {first_line(error)}"
            ) from error
        time.sleep(min(1.0, 0.005 * 2**attempt) * random.random())

    @staticmethod
    def _overtaken(state: TableState, path: StorePath, what: str) -> StoreError:
        """The error of a commit (``what``: ``"committing to"``) that other writers overtook
        ``MAX_COMMIT_ATTEMPTS`` times in a row."""
        return StoreError(
            f"{what} {path_text(path)} at {state.uri} gave up: other writers committed first "
            f"{MAX_COMMIT_ATTEMPTS} times in a row"
        )

    def _moved(self, state: TableState, path: StorePath, base: int | None) -> bool:
        """Whether the table moved past ``base`` (so a failed commit met a concurrent one)."""
        try:
            latest = self._open(state.uri, path, files=False)
        except StoreError:
            return False
        return latest is not None and latest.version() != base

    @contextlib.contextmanager
    def _table_lock(self, state: TableState, path: StorePath) -> Iterator[None]:
        if self.local is None:
            yield
            return
        with table_lock(Path(state.uri), path_text(path)):
            yield


def _outcome(task: Callable[..., None], *args: Any) -> BaseException | None:
    """What ``task(*args)`` raised (an Exception), or None."""
    try:
        task(*args)
    except Exception as exc:
        return exc
    return None
