"""``StatusObserver``: an append-only log of every packet's state transitions.

Each function-node packet goes ``RUNNING`` when it is taken up, then reaches one terminal state:
``SUCCESS`` (computed), ``CACHED`` (served from stored results), ``SKIPPED`` (no output) or
``FAILED`` (with the error's type and message). Rows are only ever appended. A packet whose
end arrives while its ``RUNNING`` row is still buffered is written as one row: its terminal
state, with the time it started in ``started_at``; a ``RUNNING`` row reaches the store when a
batch is written while the packet is still running (a slow call, a crash). So the latest row
of a packet is its current state, and a ``RUNNING`` row with no later row in a run that ended
marks where that run crashed.

Rows go to the node's table (see ``batching.table_path``): the fixed columns of
``podline.observability.columns`` (run id, pipeline URI, node label and hash, sequence, UTC
timestamp and start time, state, cached flag, error type and message, attempts) and the packet's tag
columns, system tags included, typed like the node's tag columns.

The packets of a node that a run served from stored results get one row for all of them
instead, when an earlier run of the same node hash wrote a row for each of its packets (see
``podline.observability.compact``): the view counts them and writes that row when the node
ends. Such a run leaves a marker when the node ends. Given a ``CarriedRows`` (``carried``,
as ``Pipeline.run`` does), a node whose only row in the run is that one hands it there, for
the run record to carry, instead of writing it (see ``podline.observability.carried``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from time import time
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.observability.batching import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_FLUSH_SECONDS,
    EQUAL_PACKET_FAILED,
    ROW_STATES,
    STATE_INDEX,
    BatchedObserver,
    NodeView,
    ObservationWarning,
    PacketBatchLike,
    PacketOutcomesLike,
    Rows,
    error_parts,
    state_names,
    timestamps,
)
from podline.observability.carried import CarriedRows
from podline.observability.columns import (
    ATTEMPTS,
    CACHED,
    ERROR_MESSAGE,
    ERROR_TYPE,
    PACKETS,
    REASON,
    SAME_AS,
    STARTED_AT,
    STATE,
    TIMESTAMP,
    State,
)
from podline.observability.compact import compact_row, find_base, marker_row, markers_path
from podline.stores import Store

__all__ = ["StatusObserver"]

_RUNNING = STATE_INDEX[State.RUNNING]
_SUCCESS = STATE_INDEX[State.SUCCESS]
_CACHED = STATE_INDEX[State.CACHED]
_SKIPPED = STATE_INDEX[State.SKIPPED]
_FAILED = STATE_INDEX[State.FAILED]
_UNKNOWN = float("nan")
_TEXT = pa.large_string()
_COUNT = pa.int64()
#: ``_StatusView.base`` before the marker was looked up (a run id is never empty).
_UNKNOWN_BASE = ""


class StatusObserver(BatchedObserver):
    """Records every packet's state transitions in ``store`` (see the module docs).

    ``batch_rows`` and ``flush_seconds`` bound how many rows, and for how long, a node keeps
    in memory before writing them.
    """

    kind: ClassVar[str] = "status"

    def __init__(
        self,
        store: Store,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        flush_seconds: float | None = DEFAULT_FLUSH_SECONDS,
        compact_cached: bool = True,
        carried: CarriedRows | None = None,
    ) -> None:
        super().__init__(store, batch_rows=batch_rows, flush_seconds=flush_seconds)
        #: Whether cached packets are written as one row where they can be (False: a row
        #: per packet always, as before ``compact.py``).
        self.compact_cached = compact_cached
        #: Where a node whose only row in the run is its compact row hands that row, for the
        #: run record (None: written to the status table like every row).
        self.carried = carried
        #: The markers of the run's node views that listed their packets: written at the
        #: run's end, once their rows are committed.
        self.markers: list[tuple[tuple[str, ...], pa.Table]] = []

    def on_run_end(self, *, run_id: str, **kwargs: Any) -> None:
        super().on_run_end(run_id=run_id, **kwargs)
        markers, self.markers = self.markers, []
        if not markers:
            return
        try:
            self.store.flush()  # raises if the rows are not all committed: then no marker
            for path, marker in markers:
                self.store.write(path, marker)
            if self.commit_at_run_end:
                self.store.flush()
        except Exception as exc:  # observing must never break a run
            warnings.warn(
                f"podline could not mark the status rows of run {run_id!r}: "
                f"{type(exc).__name__}: {exc}",
                ObservationWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"StatusObserver({self.store.to_config()!r})"


class _StatusRows(Rows):
    """Status rows from per-packet hooks (``times``: when the state was reached)."""

    __slots__ = ("cached", "errors", "started", "states")

    def __init__(self) -> None:
        super().__init__()
        self.states: list[int] = []  # indexes into State
        self.started: list[float] = []  # NaN: unknown (the RUNNING row was written apart)
        self.cached: list[bool | None] = []
        self.errors: dict[int, BaseException] = {}  # by row; failures are rare

    def append(self, state: int, started: float, at: float, tag: Tag, cached: bool | None) -> int:
        """Add a row; returns its position."""
        self.states.append(state)
        self.started.append(started)
        self.times.append(at)
        self.tags.append(tag)
        self.cached.append(cached)
        return len(self.times) - 1


class _StatusView(NodeView[_StatusRows]):
    """One node's status rows.

    **Batch hooks.** ``on_packets_start`` buffers a part of RUNNING rows and remembers it in
    ``open_parts``; the node's next ``on_packets_end`` normally covers exactly those packets
    (its ``started`` rows, in the same order: checked, tag values included), so if the
    RUNNING parts are still buffered they are dropped and the terminal rows carry their start
    times instead. Otherwise (an orchestrator that interleaves differently) every row is kept.

    **Per-packet hooks.** ``open`` maps each started, not yet ended packet (by ``id`` of its
    tag object) to its RUNNING row in the lists, or to -1 once that row left them (its start
    time then moves to ``open_start``); an end whose RUNNING row is still listed replaces it.
    Both maps hold plain numbers, which keeps them out of the collector's way. A tag object
    stays alive from its packet's start to its end (the node holds it), so its ``id`` cannot
    be reused meanwhile; the lists' own reference double-checks a match.
    """

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        super().__init__(owner, identity_path)
        #: Since the last batch end: (tags, RUNNING part, time) of each batch start.
        self.open_parts: list[tuple[pa.Table, pa.Table, float]] = []
        self.open: dict[int, int] = {}
        self.open_start: dict[int, float] = {}
        #: The run listing every packet of the node hash (from its marker; None: no run
        #: does, and this one writes a row per packet).
        self.base: str | None = _UNKNOWN_BASE
        #: Cached packets counted, not written, and when the first of them ended.
        self.compact_count = 0
        self.compact_since = 0.0
        self.ended = False
        #: Packets that ended in this run (each ends once), for the marker.
        self.ended_packets = 0

    def new_rows(self) -> _StatusRows:
        return _StatusRows()

    # ------------------------------------------------------------------ batch hooks
    def on_packets_start(
        self, *, node_label: str, node_hash: str, batch: PacketBatchLike, **kwargs: Any
    ) -> None:
        now = time()
        n = len(batch)
        if not n:
            return
        tags = batch.tags()
        times = np.full(n, now)
        states = np.full(n, _RUNNING, np.int8)
        part = _part(
            tags,
            states,
            times=times,
            started=times,
            cached=pa.nulls(n, pa.bool_()),
            attempts=pa.nulls(n, _COUNT),
        )
        with self.lock:
            self.open_parts.append((tags, part, now))
        self.add_part(part, final=False)

    def on_packets_end(
        self, *, node_label: str, node_hash: str, batch: PacketOutcomesLike, **kwargs: Any
    ) -> None:
        now = time()
        n = len(batch)
        with self.lock:
            opened, self.open_parts = self.open_parts, []
        if not n:
            return
        states = ROW_STATES[np.asarray(batch.codes)]
        announced = np.asarray(batch.started, dtype=bool)
        compact = (states == _CACHED) & ~announced
        if not opened and compact.all() and self._compacting():
            # A batch served whole from stored results: counted, and nothing to build.
            self.ended_packets += n
            self._count_compact(n, now)
            return
        tags = batch.tags()
        computed = np.asarray(batch.computed, dtype=bool)
        started = np.full(n, now)
        if _same_packets([t for t, _, _ in opened], tags, announced):
            sizes = [t.num_rows for t, _, _ in opened]
            started[announced] = np.repeat([at for _, _, at in opened], sizes)
        else:  # not (only) the packets this end covers: keep their RUNNING rows
            started[announced] = _UNKNOWN
            opened = []
        cached = ~computed & (states != _FAILED)
        attempts = _attempts(batch, computed)
        reasons = _reasons(batch.reasons, n)
        part = _part(
            tags,
            states,
            times=np.full(n, now),
            started=started,
            cached=pa.array(cached),
            attempts=attempts,
            reasons=reasons,
        )
        if batch.errors or (states == _FAILED).any():
            part = _with_errors(part, states, batch.errors)
        if opened:
            with self.lock:
                self.drop_parts([p for _, p, _ in opened])
        self.ended_packets += n
        if compact.any() and self._compacting():
            self._count_compact(int(compact.sum()), now)
            part = part.filter(pa.array(~compact))
        if part.num_rows:
            self.add_part(part)

    def _count_compact(self, packets: int, now: float) -> None:
        """Count ``packets`` cached packets that ended at ``now`` for the compact row."""
        if not self.compact_count:
            self.compact_since = now
        self.compact_count += packets

    # ------------------------------------------------------------------ compact cached rows
    def _compacting(self) -> bool:
        """Whether cached packets are counted instead of written: when an earlier run of
        this node hash wrote a row for each of its packets (looked up once per run)."""
        assert isinstance(self.owner, StatusObserver)
        if not self.owner.compact_cached:
            return False
        if self.base == _UNKNOWN_BASE:
            try:
                self.base = find_base(self.owner.store, self.path, self.node_hash)
            except Exception:  # observing must never break a run: write a row per packet
                self.base = None
        return self.base is not None

    def _write_compact(self) -> None:
        """The node ended: one row for the cached packets counted (see ``compact.py``),
        held for the run record when it is the node's only row in the run (``carried``)."""
        if not (self.compact_count and self.base):
            return
        row = compact_row(self.compact_count, self.base, self.compact_since, time())
        assert isinstance(self.owner, StatusObserver)
        carried = self.owner.carried
        if carried is None or self.lost or len(self.buffer) or self.written():
            self.add_part(row)
        else:
            carried.hold(self.owner.store, self.path, self.table([row], 1, 0))

    def _mark(self) -> None:
        """The node ended, and this run wrote a row for each of its packets, all ended:
        have the run leave the marker that lets later runs name it (see ``compact.py``)."""
        if self.base or self.lost or self.open or self.open_parts or not self.ended_packets:
            return  # a run that found a marker may have counted packets, not listed them
        assert isinstance(self.owner, StatusObserver)
        marker = marker_row(
            self.node_label, self.node_hash, self.ended_packets, self.owner.run_id, time()
        )
        self.owner.markers.append((markers_path(self.path), marker))

    def on_node_end(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None:
        self.ended = True
        super().on_node_end(node_label=node_label, node_hash=node_hash, **kwargs)

    # ------------------------------------------------------------------ per-packet hooks
    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None:
        now = time()
        with self.lock:
            self.open[id(tag)] = self.buffer.rows.append(_RUNNING, now, now, tag, None)
            buffered = len(self.buffer)
        self.added(buffered)

    def on_packet_end(
        self,
        *,
        node_label: str,
        node_hash: str,
        tag: Tag,
        input_packet: Packet,
        output_packet: Packet | None,
        cached: bool,
        **kwargs: Any,
    ) -> None:
        state = _SKIPPED if output_packet is None else _CACHED if cached else _SUCCESS
        self._end(state, tag, cached, None)

    def on_packet_crash(
        self,
        *,
        node_label: str,
        node_hash: str,
        tag: Tag,
        packet: Packet,
        error: BaseException,
        **kwargs: Any,
    ) -> None:
        self._end(_FAILED, tag, False, error)

    def _end(self, state: int, tag: Tag, cached: bool, error: BaseException | None) -> None:
        self.ended_packets += 1
        now = time()
        key = id(tag)
        with self.lock:
            rows = self.buffer.rows
            row = self.open.pop(key, None)
            if row is not None and row >= 0 and rows.tags[row] is tag:
                rows.states[row] = state
                rows.times[row] = now
                rows.cached[row] = cached
                if error is not None:
                    rows.errors[row] = error
                return
            added = rows.append(state, self.open_start.pop(key, _UNKNOWN), now, tag, cached)
            if error is not None:
                rows.errors[added] = error
            buffered = len(self.buffer)
        self.added(buffered)

    def sealed(self, rows: _StatusRows) -> None:
        # The listed RUNNING rows are leaving the lists: their packets' ends, when they come,
        # append rows of their own.
        started = rows.started
        for key, row in self.open.items():
            if row >= 0:
                self.open_start[key] = started[row]
        self.open = dict.fromkeys(self.open, -1)

    def finish(self) -> None:
        if self.ended:
            self._write_compact()
        # A node that raised: the cached packets counted are not written (a compact row
        # would stand for the packets the run never reached too).
        super().finish()
        if self.ended:
            self._mark()
        self.ended_packets = 0
        self.lost = False
        self.open_parts = []
        self.open = {}
        self.open_start = {}
        self.base = _UNKNOWN_BASE
        self.compact_count = 0
        self.ended = False

    def build(self, rows: _StatusRows) -> dict[str, pa.Array]:
        n = len(rows)
        states = np.asarray(rows.states, dtype=np.int8)
        columns = {
            STARTED_AT: timestamps(rows.started),
            STATE: state_names(states),
            CACHED: pa.array(rows.cached, pa.bool_()),
            ERROR_TYPE: pa.nulls(n, _TEXT),
            ERROR_MESSAGE: pa.nulls(n, _TEXT),
            ATTEMPTS: pa.nulls(n, _COUNT),  # per-packet hooks do not see captures
            REASON: pa.nulls(n, _TEXT),  # nor why a call ran
            **_not_compact(n),
        }
        if rows.errors:
            parts = {row: error_parts(error) for row, error in rows.errors.items()}
            none = (None, None)
            columns[ERROR_TYPE] = pa.array([parts.get(i, none)[0] for i in range(n)], _TEXT)
            columns[ERROR_MESSAGE] = pa.array([parts.get(i, none)[1] for i in range(n)], _TEXT)
        return columns


def _same_packets(starts: list[pa.Table], tags: pa.Table, announced: np.ndarray) -> bool:
    """Whether the started batches' tags are, in order, the announced rows of ``tags``."""
    if sum(t.num_rows for t in starts) != int(announced.sum()):
        return False
    if not starts:
        return True
    try:
        started = pa.concat_tables(starts) if len(starts) > 1 else starts[0]
        return bool(started.equals(tags.filter(pa.array(announced))))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # different columns: not the same packets
        return False


def _attempts(batch: PacketOutcomesLike, computed: np.ndarray) -> pa.Array:
    """Per row, how many times its call ran (null where none ran). Only calls that told
    something keep a capture, and a retried call always did (it says so on stderr)."""
    attempts = np.ones(len(computed), dtype=np.int64)
    for row, capture in batch.captures.items():
        attempts[row] = capture.attempts
    return pa.array(attempts, _COUNT, mask=~computed)


def _reasons(reasons: Mapping[int, str], n: int) -> pa.Array:
    if not reasons:
        return pa.nulls(n, _TEXT)
    return pa.array([reasons.get(row) for row in range(n)], _TEXT)


def _part(
    tags: pa.Table,
    states: np.ndarray,
    *,
    times: np.ndarray,
    started: np.ndarray,
    cached: pa.Array,
    attempts: pa.Array,
    reasons: pa.Array | None = None,
) -> pa.Table:
    """A status part from a batch hook: the same columns ``build`` gives listed rows."""
    n = len(states)
    columns = {
        TIMESTAMP: timestamps(times),
        STARTED_AT: timestamps(started),
        STATE: state_names(states),
        CACHED: cached,
        ERROR_TYPE: pa.nulls(n, _TEXT),
        ERROR_MESSAGE: pa.nulls(n, _TEXT),
        ATTEMPTS: attempts,
        REASON: pa.nulls(n, _TEXT) if reasons is None else reasons,
        **_not_compact(n),
    }
    for name in tags.column_names:
        columns[name] = tags.column(name)
    return pa.table(columns)


def _not_compact(n: int) -> dict[str, pa.Array]:
    """The compact columns of ``n`` rows of one packet each: null. Written from a table's
    first row on, so that its first compact row does not change its schema."""
    return {PACKETS: pa.nulls(n, _COUNT), SAME_AS: pa.nulls(n, _TEXT)}


def _with_errors(part: pa.Table, states: np.ndarray, errors: Any) -> pa.Table:
    """``part`` with the error columns of its failed rows filled in."""
    kinds: list[str | None] = [None] * len(states)
    messages: list[str | None] = [None] * len(states)
    for row in np.flatnonzero(states == _FAILED).tolist():
        error = errors.get(row)
        kinds[row], messages[row] = error_parts(error) if error is not None else EQUAL_PACKET_FAILED
    part = part.set_column(
        part.schema.get_field_index(ERROR_TYPE), ERROR_TYPE, pa.array(kinds, _TEXT)
    )
    return part.set_column(
        part.schema.get_field_index(ERROR_MESSAGE), ERROR_MESSAGE, pa.array(messages, _TEXT)
    )


StatusObserver.view_class = _StatusView
