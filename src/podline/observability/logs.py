"""``LoggingObserver``: one row per executed packet with everything its call left behind.

A row holds the call's captured stdout, stderr and Python logging records, its traceback,
whether it raised, when it started and how long it took, the packet's final state in the run
(``SUCCESS``, ``SKIPPED`` or ``FAILED``) and the packet's tag columns, system tags included.
Packets served from stored results are not logged unless ``log_cached=True`` (then they get a
``CACHED`` or ``SKIPPED`` row with no output). Rows go to the node's table (see
``batching.table_path``) and are written in batches.

**Batch hooks.** A function node's ``on_packets_end`` carries, by row, the capture of every
call it computed, and each row's status and tags as columns: the rows are built from those.

**Per-packet hooks.** Callers that report packet by packet hand a call's capture to the logger
made by ``create_packet_logger(tag, packet)``, whose ``tag`` may carry only the user tag
columns. They fire a computed packet's ``on_packet_start`` just before the batch of calls that
computes it and create the loggers in the same order; so a node view pairs each new logger
with the oldest started packet not yet paired, which gives it the full tag (system tags
included). The row is completed when the packet's end or crash hook arrives with that same tag
object, which also gives its final state. A started packet that ends without a call (a cache
hit) leaves the queue at its end. A capture whose packet never ends (the run was interrupted)
is written when the node or run ends, without a state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from time import time
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.executors import CallCapture, LogEntry
from podline.observability.batching import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_FLUSH_SECONDS,
    EQUAL_PACKET_FAILED,
    ROW_STATES,
    STATE_INDEX,
    BatchedObserver,
    NodeView,
    PacketBatchLike,
    PacketOutcomesLike,
    Rows,
    error_parts,
    state_names,
    timestamps,
)
from podline.observability.columns import (
    CACHED,
    DURATION,
    ERROR_MESSAGE,
    ERROR_TYPE,
    LOG_RECORD_TYPE,
    LOG_RECORDS,
    STATE,
    STDERR,
    STDOUT,
    SUCCESS,
    TIMESTAMP,
    TRACEBACK,
    State,
)
from podline.stores import Store

__all__ = ["LoggingObserver"]

_NO_STATE = -1
_SUCCESS = STATE_INDEX[State.SUCCESS]
_CACHED = STATE_INDEX[State.CACHED]
_SKIPPED = STATE_INDEX[State.SKIPPED]
_FAILED = STATE_INDEX[State.FAILED]
_LOG_LIST = pa.large_list(LOG_RECORD_TYPE)
_TEXT = pa.large_string()


class LoggingObserver(BatchedObserver):
    """Records each executed packet's captured output in ``store`` (see the module docs).

    ``log_cached=True`` also writes a row for every packet served from stored results.
    """

    kind: ClassVar[str] = "log"

    def __init__(
        self,
        store: Store,
        *,
        log_cached: bool = False,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        flush_seconds: float | None = DEFAULT_FLUSH_SECONDS,
    ) -> None:
        super().__init__(store, batch_rows=batch_rows, flush_seconds=flush_seconds)
        self.log_cached = log_cached

    def __repr__(self) -> str:
        return f"LoggingObserver({self.store.to_config()!r}, log_cached={self.log_cached})"


class _PacketLogger:
    """Receives one call's capture and parks it until its packet ends."""

    __slots__ = ("key", "view")

    def __init__(self, view: _LogView, key: int) -> None:
        self.view = view
        self.key = key

    def record(self, capture: CallCapture) -> None:
        self.view.pending[self.key] = capture


class _LogRows(Rows):
    """Log rows from per-packet hooks (``times``: when the call started)."""

    __slots__ = ("captures", "errors", "states")

    def __init__(self) -> None:
        super().__init__()
        self.states: list[int] = []  # indexes into State; _NO_STATE: never ended
        self.captures: list[CallCapture | None] = []  # None: not computed in this run
        self.errors: dict[int, BaseException] = {}  # by row: why a packet failed


class _LogView(NodeView[_LogRows]):
    """One node's log rows.

    For per-packet hooks: ``started`` queues the tags of started packets not yet paired with
    a call; ``calls`` maps ``id`` of each paired packet's tag object to the tag, and
    ``pending`` to its call's capture, until the packet ends (a tag object stays alive from
    its packet's start to its end: the node holds it). A call that cannot be paired keeps the
    logger's own tag.
    """

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        super().__init__(owner, identity_path)
        assert isinstance(owner, LoggingObserver)
        self.log_cached = owner.log_cached
        self.started: deque[Tag] = deque()
        self.calls: dict[int, Tag] = {}
        self.pending: dict[int, CallCapture] = {}

    def new_rows(self) -> _LogRows:
        return _LogRows()

    # ------------------------------------------------------------------ batch hooks
    def on_packets_start(
        self, *, node_label: str, node_hash: str, batch: PacketBatchLike, **kwargs: Any
    ) -> None:
        """Nothing to log before the calls ran."""

    def on_packets_end(
        self, *, node_label: str, node_hash: str, batch: PacketOutcomesLike, **kwargs: Any
    ) -> None:
        now = time()
        codes = np.asarray(batch.codes)
        states = ROW_STATES[codes]
        computed = np.asarray(batch.computed, dtype=bool)
        logged = computed | (states == _FAILED)
        if self.log_cached:
            logged[:] = True
        rows = np.flatnonzero(logged)
        if not len(rows):
            return
        # Only the calls that printed, logged or failed have captures; the rest are columns
        # of nulls, so the work here grows with those calls, not with the batch.
        captures: dict[int, CallCapture] = {}
        if batch.captures:
            keys = np.fromiter(batch.captures, np.int64, len(batch.captures))
            at = np.minimum(np.searchsorted(rows, keys), len(rows) - 1)
            for key, position in zip(keys.tolist(), at.tolist(), strict=True):
                if rows[position] == key:
                    captures[position] = batch.captures[key]
        errors: dict[int, BaseException] = {}
        if batch.errors:
            at = np.searchsorted(rows, list(batch.errors))
            errors = {
                int(i): e
                for (r, e), i in zip(batch.errors.items(), at, strict=True)
                if i < len(rows) and rows[i] == r
            }
        times = (
            _capture_times(len(rows), captures)
            if batch.call_times is None
            else np.asarray(batch.call_times)[rows]
        )
        columns = _columns(
            states[rows], captures, errors, now, times, unexplained=states[rows] == _FAILED
        )
        tags = batch.tags().take(pa.array(rows, pa.int64()))
        for name in tags.column_names:
            columns[name] = tags.column(name)
        self.add_part(pa.table(columns))

    # ------------------------------------------------------------------ per-packet hooks
    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None:
        self.started.append(tag)

    def create_packet_logger(self, tag: Tag, packet: Packet) -> _PacketLogger:
        started = self.started
        full = started.popleft() if started else tag
        key = id(full)
        self.calls[key] = full
        return _PacketLogger(self, key)

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
        started = self.started
        if started and started[-1] is tag:
            started.pop()  # served without a call: it started just before ending
        key = id(tag)
        capture = self.pending.pop(key, None)
        if capture is not None:
            del self.calls[key]
            self._add(_SKIPPED if output_packet is None else _SUCCESS, tag, capture, None)
        elif cached and self.log_cached:
            self._add(_SKIPPED if output_packet is None else _CACHED, tag, None, None)

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
        started = self.started
        if started and started[-1] is tag:
            started.pop()
        key = id(tag)
        self.calls.pop(key, None)
        self._add(_FAILED, tag, self.pending.pop(key, None), error)

    def _add(
        self, state: int, tag: Tag, capture: CallCapture | None, error: BaseException | None
    ) -> None:
        with self.lock:
            rows = self.buffer.rows
            if error is not None:
                rows.errors[len(rows.times)] = error
            rows.states.append(state)
            rows.times.append(capture.start if capture is not None else time())
            rows.tags.append(tag)
            rows.captures.append(capture)
            buffered = len(self.buffer)
        self.added(buffered)

    def finish(self) -> None:
        """Log the captures whose packets never ended, with no state (the run was cut
        short), then write everything."""
        self.started.clear()
        pending, self.pending = self.pending, {}
        calls, self.calls = self.calls, {}
        for key, capture in pending.items():
            self._add(_NO_STATE, calls[key], capture, None)
        super().finish()

    def build(self, rows: _LogRows) -> dict[str, pa.Array]:
        states = np.asarray(rows.states, dtype=np.int8)
        captures = {i: c for i, c in enumerate(rows.captures) if c is not None}
        times = _capture_times(len(states), captures)
        return _columns(states, captures, rows.errors, rows.times, times)


def _columns(
    states: np.ndarray,
    captures: Mapping[int, CallCapture],
    errors: Mapping[int, BaseException],
    not_run: float | Sequence[float],
    times: np.ndarray,
    *,
    unexplained: np.ndarray | None = None,
) -> dict[str, pa.Array]:
    """The log columns (timestamp included) of rows with these state indexes, captures by
    row (the calls that printed, logged or failed; any other row's call was quiet, or did
    not run), errors by row, and ``times``: per row, the call's start and end (NaN: it did
    not run). ``not_run`` is the timestamp of rows not computed (one for all, or one per
    row); ``unexplained`` marks failed rows that may lack an error (an equal packet's call
    failed)."""
    n = len(states)
    start, end = times[:, 0], times[:, 1]
    ran = ~np.isnan(start)
    names = (STDOUT, STDERR, ERROR_TYPE, ERROR_MESSAGE, TRACEBACK)
    text: dict[str, list[str | None]] = {name: [None] * n for name in names}
    raised = np.zeros(n, dtype=bool)
    records: list[list[dict[str, Any]]] | None = None
    for row, capture in captures.items():
        text[STDOUT][row] = capture.stdout or None
        text[STDERR][row] = capture.stderr or None
        text[TRACEBACK][row] = capture.traceback
        if capture.error_type is not None or capture.error_message is not None:
            raised[row] = capture.error_type is not None
            text[ERROR_TYPE][row] = capture.error_type
            text[ERROR_MESSAGE][row] = capture.error_message
        if capture.logs:
            if records is None:
                records = [_NO_RECORDS] * n
            records[row] = _log_records(capture.logs)
    error_type, error_message = text[ERROR_TYPE], text[ERROR_MESSAGE]
    for row, error in errors.items():
        if error_type[row] is None:
            # The call returned, but its output was rejected: say why.
            error_type[row], error_message[row] = error_parts(error)
    if unexplained is not None:
        for row in np.flatnonzero(unexplained).tolist():
            if error_type[row] is None and error_message[row] is None:
                error_type[row], error_message[row] = EQUAL_PACKET_FAILED
    return {
        TIMESTAMP: timestamps(np.where(ran, start, np.asarray(not_run, dtype=np.float64))),
        STATE: state_names(states),
        # Not computed in this run, and not a failure (whose call never ran because an equal
        # packet's call failed).
        CACHED: pa.array(~ran & (states != _FAILED)),
        SUCCESS: pa.array(~raised, mask=~ran),
        DURATION: pa.array(end - start, mask=~ran),
        LOG_RECORDS: _no_records(n) if records is None else pa.array(records, _LOG_LIST),
        **{name: _text(values) for name, values in text.items()},
    }


def _capture_times(n: int, captures: Mapping[int, CallCapture]) -> np.ndarray:
    """The start and end of each row's call from the captures by row (NaN: none)."""
    times = np.full((n, 2), np.nan)
    if captures:
        rows = list(captures)
        times[rows, 0] = [captures[row].start for row in rows]
        times[rows, 1] = [captures[row].end for row in rows]
    return times


def _no_records(n: int) -> pa.Array:
    """``n`` empty lists of log records, built without a Python list per row."""
    offsets = pa.array(np.zeros(n + 1, dtype=np.int64))
    return pa.LargeListArray.from_arrays(offsets, pa.array([], LOG_RECORD_TYPE), type=_LOG_LIST)


def _text(values: list[str | None]) -> pa.Array:
    """A text column, where empty captured output is already null: Delta writes empty
    strings several times slower than nulls; readers show "" again for calls that ran."""
    if values.count(None) == len(values):
        return pa.nulls(len(values), _TEXT)
    return pa.array(values, _TEXT)


_NO_RECORDS: list[dict[str, Any]] = []


def _log_records(logs: Sequence[LogEntry]) -> list[dict[str, Any]]:
    return [
        {
            "time": round(entry.time * 1e6),
            "level": entry.level,
            "logger": entry.logger,
            "message": entry.message,
        }
        for entry in logs
    ]


LoggingObserver.view_class = _LogView
