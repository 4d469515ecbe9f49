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
from time import time
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.datagrams import Packet, Tag
from podline.executors import CallCapture
from podline.observability.batching import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_FLUSH_SECONDS,
    BatchedObserver,
    NodeView,
    error_parts,
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

    __slots__ = ("tag", "view")

    def __init__(self, view: _LogView, tag: Tag) -> None:
        self.view = view
        self.tag = tag

    def record(self, capture: CallCapture) -> None:
        self.view.pending[id(self.tag)] = (self.tag, capture)


class _LogView(NodeView):
    """One node's log rows: ``(state index, time, tag, capture, error)`` tuples."""

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        super().__init__(owner, identity_path)
        assert isinstance(owner, LoggingObserver)
        self.log_cached = owner.log_cached
        #: Started packets not yet paired with a call (see the module docs).
        self.started: deque[Tag] = deque()
        #: Captures waiting for their packet's end, by ``id`` of the packet's tag object.
        self.pending: dict[int, tuple[Tag, CallCapture]] = {}

    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None:
        self.started.append(tag)

    def create_packet_logger(self, tag: Tag, packet: Packet) -> _PacketLogger:
        started = self.started
        full = started.popleft() if started else tag
        return _PacketLogger(self, full)

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
        entry = self.pending.pop(id(tag), None)
        row: tuple[int, float, Tag, CallCapture | None]
        if entry is not None:
            capture = entry[1]
            row = (_SKIPPED if output_packet is None else _SUCCESS, capture.start, tag, capture)
        elif cached and self.log_cached:
            row = (_SKIPPED if output_packet is None else _CACHED, time(), tag, None)
        else:
            return
        with self.lock:
            self.rows.append((*row, None))
            buffered = len(self.rows)
        self.added(buffered)

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
        entry = self.pending.pop(id(tag), None)
        capture = entry[1] if entry is not None else None
        at = capture.start if capture is not None else time()
        with self.lock:
            self.rows.append((_FAILED, at, tag, capture, error))
            buffered = len(self.rows)
        self.added(buffered)

    def finish(self) -> None:
        """Queue captures whose packets never ended, with no state (the run was cut short),
        then write everything."""
        self.started.clear()
        pending, self.pending = self.pending, {}
        with self.lock:
            for tag, capture in pending.values():
                self.rows.append((_NO_STATE, capture.start, tag, capture, None))
        super().finish()

    def build(self, rows: list[tuple[Any, ...]]) -> dict[str, pa.Array]:
        states, times, tags, captures, errors = zip(*rows, strict=True)
        codes = np.asarray(states, dtype=np.int8)
        names = _STATE_NAMES.take(pa.array(np.maximum(codes, 0)))
        if (codes < 0).any():
            names = pc.if_else(pa.array(codes >= 0), names, None)
        error_type = [c.error_type if c is not None else None for c in captures]
        error_message = [c.error_message if c is not None else None for c in captures]
        for i, error in enumerate(errors):
            if error is not None and error_type[i] is None:
                # The call returned, but its output was rejected (or it never ran): say why.
                error_type[i], error_message[i] = error_parts(error)
        text = pa.large_string()

        def each(attribute: str, type_: pa.DataType) -> pa.Array:
            return pa.array(
                [getattr(c, attribute) if c is not None else None for c in captures], type_
            )

        return {
            TIMESTAMP: timestamps(times),
            STATE: names,
            # Not computed in this run: no capture, and not a failure (whose call never ran
            # because an equal packet's call failed).
            CACHED: pa.array((codes != _FAILED) & np.array([c is None for c in captures])),
            SUCCESS: each("succeeded", pa.bool_()),
            DURATION: each("duration", pa.float64()),
            STDOUT: each("stdout", text),
            STDERR: each("stderr", text),
            LOG_RECORDS: pa.array([_log_records(c) for c in captures], _LOG_LIST),
            ERROR_TYPE: pa.array(error_type, text),
            ERROR_MESSAGE: pa.array(error_message, text),
            TRACEBACK: each("traceback", text),
            **self.tag_columns(tags),
        }


def _log_records(capture: CallCapture | None) -> list[dict[str, Any]]:
    if capture is None or not capture.logs:
        return []
    return [
        {
            "time": round(entry.time * 1e6),
            "level": entry.level,
            "logger": entry.logger,
            "message": entry.message,
        }
        for entry in capture.logs
    ]


LoggingObserver.view_class = _LogView
