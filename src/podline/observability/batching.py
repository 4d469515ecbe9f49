"""Batched, fail-safe writing of observations: what the status and logging observers share.

Function nodes report packets a batch at a time (``on_packets_start`` / ``on_packets_end``,
with Arrow columns); the views turn each batch into an Arrow table part with no per-row Python
objects. The per-packet hooks (``on_packet_start`` and friends, which other callers may still
use) only append to per-node column lists, turned into a part when needed. A node view's
buffer is written with one store write when the node ends, when it holds ``batch_rows`` rows,
``flush_seconds`` after its oldest buffered row (a timer thread, so a packet whose call runs
for minutes shows as RUNNING to readers meanwhile), and when the run ends (which also catches
nodes that raised before ending).

Observing must never break a run: a batch that cannot be built or written is dropped with an
``ObservationWarning`` naming the node and the store path.

The root observer holds the run (its id and pipeline URI); ``contextualize(*identity_path)``
gives each node a view that buffers that node's rows for the table of its label and pipeline
hash (``table_path``). Hooks called on the root itself (without ``contextualize``) go to a view
named after the node's label.
"""

from __future__ import annotations

import functools
import threading
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import is_system_tag
from podline.conversion import table_from_columns
from podline.datagrams import Tag
from podline.errors import ConfigurationError, FunctionCallError
from podline.executors import CallCapture
from podline.functions import RowStatus
from podline.nodes.observers import Observer
from podline.observability.columns import (
    NODE,
    NODE_HASH,
    PIPELINE_URI,
    RECORD_ID,
    RUN_ID,
    SEQUENCE,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    State,
)
from podline.runtime import paused_gc
from podline.schema import Schema
from podline.stores import Store

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_FLUSH_SECONDS",
    "EQUAL_PACKET_FAILED",
    "ROW_STATES",
    "STATE_INDEX",
    "BatchedObserver",
    "Buffer",
    "NodeView",
    "ObservationWarning",
    "PacketBatchLike",
    "PacketOutcomesLike",
    "Rows",
    "error_parts",
    "state_names",
    "table_path",
    "timestamps",
]

#: Rows a node view buffers before writing them: two of a function node's batches of input
#: rows (16,384), so that the store commits a node's observations while the node goes on,
#: and a packet's RUNNING and terminal states meet in one buffer and are written as one row
#: (see ``status.py``).
DEFAULT_BATCH_ROWS = 32_768
#: Seconds after which buffered rows are written, even if no hook comes (a timer thread).
DEFAULT_FLUSH_SECONDS = 10.0


#: A state's index in ``State`` (buffers and parts hold indexes, not names).
STATE_INDEX: dict[State, int] = {state: index for index, state in enumerate(State)}
_RUN_TO_STATE = {
    RowStatus.COMPUTED: State.SUCCESS,
    RowStatus.CACHED: State.CACHED,
    RowStatus.SKIPPED: State.SKIPPED,
    RowStatus.FAILED: State.FAILED,
}


@functools.cache
def _state_names() -> pa.Array:
    # Built on first use: pa.array of Python values imports pandas (when installed) at import.
    return pa.array([state.value for state in State], pa.large_string())


#: ``ROW_STATES[code]``: the state index of a node's ``RowStatus`` code.
ROW_STATES = np.array([STATE_INDEX[_RUN_TO_STATE[s]] for s in RowStatus], dtype=np.int8)
#: The error of a row that failed because an equal packet's call failed (it never ran).
EQUAL_PACKET_FAILED = (None, "an equal packet's call failed")


def table_path(identity_path: Sequence[str]) -> tuple[str, ...]:
    """Where a node's rows are stored: its label and pipeline-hash prefix, the first two
    parts of its identity path (``Node.identity_path``).

    Not the content-hash prefix after them: that changes with the node's input, so a source
    gaining rows at every run would make a new table at every run, each holding one run's
    rows. Every row names the node's content hash (``NODE_HASH``), and the reader picks a
    tag's rows by the latest run that touched it, whatever the input's version.
    """
    return tuple(identity_path[:2])


def state_names(indexes: np.ndarray) -> pa.Array:
    """State names of state indexes (negative: null), in one vectorized step."""
    codes = np.asarray(indexes, dtype=np.int8)
    names = _state_names().take(pa.array(np.maximum(codes, 0)))
    if (codes < 0).any():
        names = pc.if_else(pa.array(codes >= 0), names, pa.scalar(None, pa.large_string()))
    return names


class ObservationWarning(RuntimeWarning):
    """Observations could not be recorded; the run itself goes on unaffected."""


class PacketBatchLike(Protocol):
    """What the views read from a batch of started packets (``on_packets_start``)."""

    def __len__(self) -> int: ...

    def tags(self) -> pa.Table:
        """The tag and system-tag columns of the rows."""
        ...


class PacketOutcomesLike(PacketBatchLike, Protocol):
    """What the views read from a batch of ended packets (``on_packets_end``): per row its
    ``RowStatus`` index (``codes``), whether its call ran in this run (``computed``),
    whether ``on_packets_start`` announced it (``started``), by row the errors of failed
    rows and the captures of the calls that printed, logged or failed, every call's start
    and end (``call_times``; NaN where no call ran), and by row why a call replaced a stored
    result (``reasons``)."""

    @property
    def codes(self) -> np.ndarray: ...

    @property
    def computed(self) -> np.ndarray: ...

    @property
    def started(self) -> np.ndarray: ...

    @property
    def errors(self) -> Mapping[int, BaseException]: ...

    @property
    def captures(self) -> Mapping[int, CallCapture]: ...

    @property
    def call_times(self) -> np.ndarray | None: ...

    @property
    def reasons(self) -> Mapping[int, str]: ...


class BatchedObserver(Observer):
    """The root of a batching observer: run state, node views, and the final flush."""

    #: The node-view class this observer hands out (set by subclasses).
    view_class: ClassVar[type[NodeView[Any]]]
    #: What the rows are, for warnings ("status", "log").
    kind: ClassVar[str] = "observation"
    #: Whether the run's end commits the rows (``store.flush()``). ``Pipeline.run`` turns it
    #: off for its default observers: it commits the store itself before it returns, the
    #: rows with the run record, in one round of commits instead of two.
    commit_at_run_end: bool = True

    def __init__(
        self,
        store: Store,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        flush_seconds: float | None = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        if batch_rows < 1:
            raise ConfigurationError(f"batch_rows must be at least 1, got {batch_rows}")
        self.store = store
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.run_id = ""
        self.pipeline_uri = ""
        self._views: list[NodeView[Any]] = []
        self._by_label: dict[str, NodeView[Any]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ run
    def on_run_start(self, *, run_id: str, pipeline_uri: str, **kwargs: Any) -> None:
        self.flush()  # rows left over from an earlier run that never ended
        self.run_id = run_id
        self.pipeline_uri = pipeline_uri

    def on_run_end(self, *, run_id: str, **kwargs: Any) -> None:
        with self._lock:
            views = list(self._views)
        for view in views:
            view.finish()
        with self._lock:
            self._views = []
            self._by_label = {}
        if not self.commit_at_run_end:
            return
        try:
            self.store.flush()
        except Exception as exc:  # observing must never break a run
            warnings.warn(
                f"podline could not flush {self.kind} rows of run {run_id!r}: {exc}",
                ObservationWarning,
                stacklevel=2,
            )

    def flush(self) -> None:
        """Write every node view's buffered rows (each failure is only warned about)."""
        with self._lock:
            views = list(self._views)
        for view in views:
            view.flush()

    # ------------------------------------------------------------------ node views
    def contextualize(self, *identity_path: str) -> NodeView[Any]:
        view = self.view_class(self, identity_path)
        with self._lock:
            self._views.append(view)
        return view

    def _view(self, node_label: str) -> NodeView[Any]:
        view = self._by_label.get(node_label)
        if view is None:
            view = self._by_label[node_label] = self.contextualize(node_label)
        return view

    # Hooks called on the root (no ``contextualize``) go to a view per node label.
    def on_node_start(
        self, *, node_label: str, node_hash: str, tag_schema: Schema, **kwargs: Any
    ) -> None:
        self._view(node_label).on_node_start(
            node_label=node_label, node_hash=node_hash, tag_schema=tag_schema, **kwargs
        )

    def on_node_end(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None:
        self._view(node_label).on_node_end(node_label=node_label, node_hash=node_hash, **kwargs)

    def on_packet_start(self, *, node_label: str, **kwargs: Any) -> None:
        self._view(node_label).on_packet_start(node_label=node_label, **kwargs)

    def on_packet_end(self, *, node_label: str, **kwargs: Any) -> None:
        self._view(node_label).on_packet_end(node_label=node_label, **kwargs)

    def on_packet_crash(self, *, node_label: str, **kwargs: Any) -> None:
        self._view(node_label).on_packet_crash(node_label=node_label, **kwargs)

    def on_packets_start(self, *, node_label: str, **kwargs: Any) -> None:
        self._view(node_label).on_packets_start(node_label=node_label, **kwargs)

    def on_packets_end(self, *, node_label: str, **kwargs: Any) -> None:
        self._view(node_label).on_packets_end(node_label=node_label, **kwargs)

    def on_commit(self, *, node_label: str, **kwargs: Any) -> None:
        self._view(node_label).on_commit(node_label=node_label, **kwargs)


class Rows:
    """Rows from per-packet hooks, as column lists (one list per column, so buffering a row
    allocates no tuple: the collector, which the nodes trigger often, then has little to
    rescan). Subclasses add their columns."""

    __slots__ = ("tags", "times")

    def __init__(self) -> None:
        self.tags: list[Tag | None] = []
        #: When each row's state was reached (epoch seconds).
        self.times: list[float] = []

    def __len__(self) -> int:
        return len(self.times)


R = TypeVar("R", bound=Rows)


class Buffer(Generic[R]):
    """What a node view holds: Arrow table ``parts`` (from batch hooks, or sealed rows), in
    the order they came, then the ``rows`` of per-packet hooks since."""

    __slots__ = ("part_rows", "parts", "rows")

    def __init__(self, rows: R) -> None:
        self.parts: list[pa.Table] = []
        self.part_rows = 0
        self.rows = rows

    def __len__(self) -> int:
        return self.part_rows + len(self.rows)


class NodeView(Observer, Generic[R]):
    """One node's observer: buffers its rows and writes them in batches.

    Batch hooks add Arrow parts with ``add_part``. Per-packet hooks append to
    ``buffer.rows`` while holding ``lock``, then call ``added(len(buffer))`` (needed only
    when that reaches ``limit`` or no ``timer`` runs). Subclasses implement ``new_rows()``
    and ``build(rows)``, the node-specific columns of listed rows. The lock exists for the
    timed flush, which runs in a timer thread: with it, nothing is added to a buffer that is
    being written.
    """

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        self.owner = owner
        self.path = table_path(identity_path)
        self.node_label = identity_path[0] if identity_path else ""
        self.node_hash = ""
        self.tag_schema: Schema | None = None
        self.buffer: Buffer[R] = Buffer(self.new_rows())
        self.lock = threading.Lock()
        self.limit = owner.batch_rows
        self.timer: threading.Timer | None = None
        # Record ids: a random prefix per view and a sequence number, built in one vectorized
        # step per batch (a uuid per row would cost more than the rest of the hook).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._sequence = 0
        #: Whether a batch of this node's rows could not be written (see ``flush``).
        self.lost = False
        self._constant_columns: tuple[dict[str, str], dict[str, pa.Array]] | None = None

    # ------------------------------------------------------------------ node hooks
    def on_node_start(
        self, *, node_label: str, node_hash: str, tag_schema: Schema, **kwargs: Any
    ) -> None:
        self.node_label = node_label
        self.node_hash = node_hash
        self.tag_schema = tag_schema

    def on_node_end(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None:
        self.finish()

    def on_commit(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None:
        # The node made its results durable: make the rows about them durable too.
        self.flush()
        try:
            self.owner.store.flush()
        except Exception as exc:  # observing must never break a run
            warnings.warn(
                f"podline could not commit {self.owner.kind} rows of node {node_label!r}: {exc}",
                ObservationWarning,
                stacklevel=2,
            )

    def finish(self) -> None:
        """The node or the run ended: write what is buffered and stop the timer."""
        self.flush()
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    def added(self, buffered: int) -> None:
        """Called after rows were added: write the batch when it is full, and make sure a
        buffered row is written within ``flush_seconds`` even if no hook comes (a slow call
        keeps its packet's RUNNING row in memory otherwise)."""
        if buffered >= self.limit:
            self.flush()
        elif self.timer is None and self.owner.flush_seconds is not None:
            timer = threading.Timer(self.owner.flush_seconds, self._timed_flush)
            timer.daemon = True
            self.timer = timer
            timer.start()

    def _timed_flush(self) -> None:
        self.timer = None
        self.flush()

    # ------------------------------------------------------------------ buffering
    def new_rows(self) -> R:
        """Empty row lists."""
        raise NotImplementedError

    def build(self, rows: R) -> dict[str, pa.Array]:
        """The node-specific columns of listed rows (not the tags or the timestamp)."""
        raise NotImplementedError

    def sealed(self, rows: R) -> None:
        """Called (holding ``lock``) when ``rows`` left the lists (for a part, or a write)."""

    def add_part(self, part: pa.Table, *, final: bool = True) -> None:
        """Buffer the rows of a batch hook (its columns: what ``_part`` builds from rows).

        Rows that are not ``final`` (RUNNING rows, which the batch's end normally replaces
        at once) cause a write only when they alone fill a batch: otherwise the write waits
        for the terminal rows, and RUNNING rows are not written just to be superseded."""
        with self.lock:
            buffer = self.buffer
            if len(buffer.rows):
                self._seal(buffer)
            buffer.parts.append(part)
            buffer.part_rows += part.num_rows
            buffered = len(buffer)
        self.added(buffered if final else part.num_rows)

    def drop_parts(self, parts: Sequence[pa.Table]) -> bool:
        """Take ``parts`` out of the buffer if all of them are still there (holding
        ``lock``); whether they were."""
        buffer = self.buffer
        if not all(any(p is q for q in buffer.parts) for p in parts):
            return False
        buffer.parts = [q for q in buffer.parts if not any(p is q for p in parts)]
        buffer.part_rows -= sum(p.num_rows for p in parts)
        return True

    def _seal(self, buffer: Buffer[R]) -> None:
        """Turn the listed rows into a part (holding ``lock``)."""
        rows = buffer.rows
        buffer.rows = self.new_rows()
        self.sealed(rows)
        with paused_gc():
            part = self._part(rows)
        buffer.parts.append(part)
        buffer.part_rows += part.num_rows

    def _part(self, rows: R) -> pa.Table:
        columns = {TIMESTAMP: timestamps(rows.times), **self.build(rows)}
        columns.update(self.tag_columns(rows.tags))
        return pa.table(columns)

    # ------------------------------------------------------------------ writing
    def flush(self) -> None:
        """Write the buffered rows as one batch; a failure is warned about, never raised."""
        with self.lock:
            buffer = self.buffer
            n = len(buffer)
            if not n:
                return
            self.buffer = Buffer(self.new_rows())
            rows = buffer.rows
            self.sealed(rows)
            first = self._sequence
            self._sequence += n
        try:
            # Building the columns allocates a few objects per row that die right away; with
            # the collector on, it would rescan every live buffered object (and the packets
            # the nodes hold) again and again. The batch is bounded by ``batch_rows``.
            with paused_gc():
                parts = [*buffer.parts, self._part(rows)] if len(rows) else buffer.parts
                table = self.table(parts, n, first)
            self.owner.store.append(self.path, table)
        except Exception as exc:  # observing must never break a run
            self.lost = True
            warnings.warn(
                f"podline could not record {n} {self.owner.kind} row(s) of node "
                f"{self.node_label!r} at {'/'.join(self.path)!r}: {type(exc).__name__}: {exc}",
                ObservationWarning,
                stacklevel=2,
            )

    def written(self) -> int:
        """How many rows this view wrote (or tried to) in the run."""
        return self._sequence

    def table(self, parts: list[pa.Table], n: int, first: int) -> pa.Table:
        """The batch ``parts`` (``n`` rows, numbered from ``first``) as stored: with the
        record ids and the columns every row of the node repeats."""
        if len(parts) == 1:
            body = parts[0]
        elif all(p.schema == parts[0].schema for p in parts):
            body = pa.concat_tables(parts)
        else:  # e.g. a part whose error columns hold text, another with null ones
            body = pa.concat_tables(parts, promote_options="permissive")
        sequence = np.arange(first, first + n, dtype=np.int64)
        columns: dict[str, pa.Array] = {
            RECORD_ID: _record_ids(self._id_prefix, sequence),
            **self._constants(n),
            SEQUENCE: pa.array(sequence),
        }
        for name in body.column_names:
            columns[name] = body.column(name)
        table = pa.table(columns)
        if all(f.nullable for f in table.schema):
            return table
        # Every column nullable: a later batch may lack a value the first one had.
        return table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))

    def _constants(self, n: int) -> dict[str, pa.Array]:
        """The columns every row of this node's batches repeats, ``n`` rows of each: built
        once per node and run for the largest batch, then sliced (fresh copies of megabytes
        per batch cost more in page faults than in copying)."""
        values = {
            RUN_ID: self.owner.run_id,
            PIPELINE_URI: self.owner.pipeline_uri,
            NODE: self.node_label,
            NODE_HASH: self.node_hash,
        }
        cached = self._constant_columns
        if cached is None or cached[0] != values or len(cached[1][RUN_ID]) < n:
            cached = (values, {name: _constant(value, n) for name, value in values.items()})
            self._constant_columns = cached
        return {name: column.slice(0, n) for name, column in cached[1].items()}

    def tag_columns(self, tags: Sequence[Tag | None]) -> dict[str, pa.Array]:
        """Typed columns of the tags' values, system tags included (null where unknown).

        Types come from the tag schema announced at node start; every column is nullable so
        that a row without a tag (a call that could not be matched to its packet) still fits.
        """
        schema = self.tag_schema
        if schema is None:
            names = _names(tags)
            schema = Schema(dict.fromkeys(names, str))
        present = [t for t in tags if t is not None]
        # One copy of each tag's system tags, read for every system-tag column.
        system = list(map(Tag.system_tags, present)) if any(map(is_system_tag, schema)) else []
        values: dict[str, list[Any]] = {}
        for name in schema:
            if is_system_tag(name):
                column = list(map(dict.get, system, repeat(name)))
            else:
                column = list(map(Tag.get, present, repeat(name)))
            if len(present) != len(tags):
                filled = iter(column)
                column = [None if t is None else next(filled) for t in tags]
            values[name] = column
        nullable = Schema({name: tp | None for name, tp in schema.items()})
        try:
            table = table_from_columns(values, nullable)
        except Exception:  # e.g. values that no longer fit the announced type: keep them as text
            return {
                name: pa.array([None if v is None else str(v) for v in column], pa.large_string())
                for name, column in values.items()
            }
        return {name: table.column(name).combine_chunks() for name in table.column_names}


def _names(tags: Iterable[Tag | None]) -> list[str]:
    names: dict[str, None] = {}
    for tag in tags:
        if tag is not None:
            names.update(dict.fromkeys(tag.keys(system_tags=True)))
    return list(names)


# The columns of a written batch are assembled from NumPy buffers rather than with compute
# kernels: a kernel releases the GIL and must get it back, which, while the store's
# background committer runs Python, can cost milliseconds per column.


def _constant(value: str, n: int) -> pa.Array:
    """``value`` ``n`` times, as a large string array."""
    data = value.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(data)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SEQUENCE_DIGITS = 12


def _record_ids(prefix: str, sequence: np.ndarray) -> pa.Array:
    """``<prefix>-<sequence number as 12 hex digits>`` for each number (below 16**12)."""
    head = f"{prefix}-".encode()
    n, width = len(sequence), len(head) + _SEQUENCE_DIGITS
    matrix = np.empty((n, width), dtype=np.uint8)
    matrix[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    # Digit by digit: one (n, 12) array of int64 intermediates would be 12 times the ids'
    # own size, in fresh pages.
    for digit in range(_SEQUENCE_DIGITS):
        shift = 4 * (_SEQUENCE_DIGITS - 1 - digit)
        matrix[:, len(head) + digit] = _HEX[(sequence >> shift) & 0xF]
    offsets = np.arange(n + 1, dtype=np.int64) * width
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(matrix))


def timestamps(seconds: Sequence[float] | np.ndarray) -> pa.Array:
    """Epoch seconds as UTC microsecond timestamps (NaN: null), converted in one step."""
    values = np.asarray(seconds, dtype=np.float64)
    missing = np.isnan(values)
    micros = np.round(np.where(missing, 0.0, values) * 1e6).astype(np.int64)
    return pa.array(micros, pa.int64(), mask=missing if missing.any() else None).cast(
        TIMESTAMP_TYPE
    )


def error_parts(error: BaseException | None) -> tuple[str | None, str | None]:
    """(type name, message) of the error a function raised.

    Nodes report ``FunctionCallError`` wrapping the function's own exception; the observations
    name the function's exception, which is what the user wrote and can search for.
    """
    if error is None:
        return None, None
    cause = error.__cause__
    if isinstance(error, FunctionCallError) and cause is not None:
        error = cause
    return type(error).__qualname__, str(error)
