"""``LoggingObserver``: one row per executed packet with everything its call left behind.

A row holds the call's captured stdout, stderr and Python logging records, its traceback,
whether it raised, when it started and how long it took, the packet's final state in the run
(``SUCCESS``, ``SKIPPED`` or ``FAILED``) and the packet's tag columns, system tags included.
Packets served from stored results are not logged unless ``log_cached=True`` (then they get a
``CACHED`` or ``SKIPPED`` row with no output). Rows go to ``store.at(*identity_path)`` of each
node and are written in batches.

**Matching a capture to its packet.** Executors hand a call's capture to the logger made by
``create_packet_logger(tag, packet)`` for that call, and that ``tag`` carries only the user tag
columns. Nodes fire a computed packet's ``on_packet_start`` just before the batch of calls that
computes it, in call order, and create the loggers in the same order; so a node view pairs
each new logger with the oldest started packet not yet paired, which gives it the full tag
(system tags included). The row is completed when the packet's end or crash hook arrives with
that same tag object, which also gives its final state. A started packet that ends without a
call (a cache hit) leaves the queue at its end. A capture whose packet never ends (the run was
interrupted) is written when the node or run ends, without a state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from operator import attrgetter
from time import time
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.datagrams import Packet, Tag
from podline.executors import CallCapture, LogEntry
from podline.observability.batching import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_FLUSH_SECONDS,
    BatchedObserver,
    Buffer,
    NodeView,
    error_parts,
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
    TRACEBACK,
    State,
)
from podline.stores import Store

__all__ = ["LoggingObserver"]

_STATES = tuple(State)
_STATE_NAMES = pa.array([s.value for s in _STATES], pa.large_string())
_NO_STATE = -1
_SUCCESS = _STATES.index(State.SUCCESS)
_CACHED = _STATES.index(State.CACHED)
_SKIPPED = _STATES.index(State.SKIPPED)
_FAILED = _STATES.index(State.FAILED)
_LOG_LIST = pa.large_list(LOG_RECORD_TYPE)


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


class _LogBuffer(Buffer):
    """Log rows as columns (``times``: when the call started)."""

    __slots__ = ("captures", "errors", "states")

    def __init__(self) -> None:
        super().__init__()
        self.states: list[int] = []  # indexes into _STATES; _NO_STATE: never ended
        self.captures: list[CallCapture | None] = []  # None: not computed in this run
        self.errors: dict[int, BaseException] = {}  # by row: why a packet failed


class _LogView(NodeView[_LogBuffer]):
    """One node's log rows.

    ``started`` queues the tags of started packets not yet paired with a call; ``calls``
    maps ``id`` of each paired packet's tag object to the tag, and ``pending`` to its
    call's capture, until the packet ends (a tag object stays alive from its packet's start
    to its end: the node holds it). A call that cannot be paired keeps the logger's own tag.
    """

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        super().__init__(owner, identity_path)
        assert isinstance(owner, LoggingObserver)
        self.log_cached = owner.log_cached
        self.started: deque[Tag] = deque()
        self.calls: dict[int, Tag] = {}
        self.pending: dict[int, CallCapture] = {}

    def new_buffer(self) -> _LogBuffer:
        return _LogBuffer()

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
            buffer = self.buffer
            if error is not None:
                buffer.errors[len(buffer.times)] = error
            buffer.states.append(state)
            buffer.times.append(capture.start if capture is not None else time())
            buffer.tags.append(tag)
            buffer.captures.append(capture)
            buffered = len(buffer.times)
        if buffered >= self.limit or self.timer is None:
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

    def build(self, buffer: _LogBuffer) -> dict[str, pa.Array]:
        n = len(buffer)
        codes = np.asarray(buffer.states, dtype=np.int8)
        names = _STATE_NAMES.take(pa.array(np.maximum(codes, 0)))
        if (codes < 0).any():
            names = pc.if_else(pa.array(codes >= 0), names, pa.scalar(None, pa.large_string()))
        # Packets not computed in this run have no capture: a stand-in with no values lets
        # every column come out of one C-level ``map`` over the buffer.
        captures = [_NOT_RUN if c is None else c for c in buffer.captures]
        ran = np.fromiter((c is not _NOT_RUN for c in captures), dtype=bool, count=n)

        def each(attribute: str) -> list[Any]:
            return list(map(attrgetter(attribute), captures))

        error_type, error_message = each("error_type"), each("error_message")
        succeeded = np.fromiter((e is None for e in error_type), dtype=bool, count=n)
        for row, error in buffer.errors.items():
            if error_type[row] is None:
                # The call returned, but its output was rejected (or it never ran): say why.
                error_type[row], error_message[row] = error_parts(error)
        starts = np.asarray(each("start"), dtype=np.float64)
        ends = np.asarray(each("end"), dtype=np.float64)
        records: list[list[dict[str, Any]]] = [_NO_RECORDS] * n
        for row, capture in enumerate(captures):
            if capture.logs:
                records[row] = _log_records(capture.logs)
        text = pa.large_string()
        return {
            STATE: names,
            # Not computed in this run, and not a failure (whose call never ran because an
            # equal packet's call failed).
            CACHED: pa.array(~ran & (codes != _FAILED)),
            SUCCESS: pa.array(succeeded, mask=~ran),
            DURATION: pa.array(ends - starts, mask=~ran),
            STDOUT: pa.array(each("stdout"), text),
            STDERR: pa.array(each("stderr"), text),
            LOG_RECORDS: pa.array(records, _LOG_LIST),
            ERROR_TYPE: pa.array(error_type, text),
            ERROR_MESSAGE: pa.array(error_message, text),
            TRACEBACK: pa.array(each("traceback"), text),
        }


class _NotRun:
    """The capture columns of a packet that was not computed: all null."""

    start = end = 0.0
    stdout = stderr = traceback = error_type = error_message = None
    logs: tuple[LogEntry, ...] = ()


_NOT_RUN = _NotRun()
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
