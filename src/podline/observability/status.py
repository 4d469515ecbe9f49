"""``StatusObserver``: an append-only log of every packet's state transitions.

Each function-node packet goes ``RUNNING`` when it is taken up, then reaches one terminal state:
``SUCCESS`` (computed), ``CACHED`` (served from stored results), ``SKIPPED`` (no output) or
``FAILED`` (with the error's type and message). Rows are only ever appended. A packet whose
end arrives while its ``RUNNING`` row is still buffered is written as one row: its terminal
state, with the time it started in ``started_at``; a ``RUNNING`` row reaches the store when a
batch is written while the packet is still running (a slow call, a crash). So the latest row
of a packet is its current state, and a ``RUNNING`` row with no later row in a run that ended
marks where that run crashed.

Rows go to ``store.at(*identity_path)`` of each node: the fixed columns of
``podline.observability.columns`` (run id, pipeline URI, node label and hash, sequence, UTC
timestamp and start time, state, cached flag, error type and message) and the packet's tag
columns, system tags included, typed by the tag schema the node announced in
``on_node_start``.
"""

from __future__ import annotations

from time import time
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.observability.batching import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_FLUSH_SECONDS,
    BatchedObserver,
    Buffer,
    NodeView,
    error_parts,
    timestamps,
)
from podline.observability.columns import (
    CACHED,
    ERROR_MESSAGE,
    ERROR_TYPE,
    STARTED_AT,
    STATE,
    State,
)
from podline.stores import Store

__all__ = ["StatusObserver"]

# Row tuples hold a state's index in _STATES; the names are taken in one vectorized step.
_STATES = tuple(State)
_STATE_NAMES = pa.array([s.value for s in _STATES], pa.large_string())
_RUNNING = _STATES.index(State.RUNNING)
_SUCCESS = _STATES.index(State.SUCCESS)
_CACHED = _STATES.index(State.CACHED)
_SKIPPED = _STATES.index(State.SKIPPED)
_FAILED = _STATES.index(State.FAILED)
_UNKNOWN = float("nan")


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
    ) -> None:
        super().__init__(store, batch_rows=batch_rows, flush_seconds=flush_seconds)

    def __repr__(self) -> str:
        return f"StatusObserver({self.store.to_config()!r})"


class _StatusBuffer(Buffer):
    """Status rows as columns (``times``: when the state was reached)."""

    __slots__ = ("cached", "errors", "started", "states")

    def __init__(self) -> None:
        super().__init__()
        self.states: list[int] = []  # indexes into _STATES
        self.started: list[float] = []  # NaN: unknown (the RUNNING row was written apart)
        self.cached: list[bool | None] = []
        self.errors: dict[int, BaseException] = {}  # by row; failures are rare


class _StatusView(NodeView[_StatusBuffer]):
    """One node's status rows.

    ``open`` maps each started, not yet ended packet (by ``id`` of its tag object) to its
    RUNNING row in the buffer, or to -1 once that row was written (its start time then moves
    to ``open_start``). A packet that ends while its RUNNING row is still buffered replaces
    that row, so a packet usually costs one row, not two. Both maps hold plain numbers only,
    which keeps them out of the collector's way. A tag object stays alive from its packet's
    start to its end (the node holds it), so its ``id`` cannot be reused meanwhile; the
    buffer's own reference double-checks a match before a row is replaced.
    """

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        super().__init__(owner, identity_path)
        self.open: dict[int, int] = {}
        self.open_start: dict[int, float] = {}

    def new_buffer(self) -> _StatusBuffer:
        return _StatusBuffer()

    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None:
        now = time()
        with self.lock:
            buffer = self.buffer
            self.open[id(tag)] = len(buffer.times)
            buffer.states.append(_RUNNING)
            buffer.started.append(now)
            buffer.times.append(now)
            buffer.tags.append(tag)
            buffer.cached.append(None)
            buffered = len(buffer.times)
        if buffered >= self.limit or self.timer is None:
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
        now = time()
        key = id(tag)
        with self.lock:
            buffer = self.buffer
            row = self.open.pop(key, None)
            if row is not None and row >= 0 and buffer.tags[row] is tag:
                buffer.states[row] = state
                buffer.times[row] = now
                buffer.cached[row] = cached
                if error is not None:
                    buffer.errors[row] = error
                return
            if error is not None:
                buffer.errors[len(buffer.times)] = error
            buffer.states.append(state)
            buffer.started.append(self.open_start.pop(key, _UNKNOWN))
            buffer.times.append(now)
            buffer.tags.append(tag)
            buffer.cached.append(cached)
            buffered = len(buffer.times)
        if buffered >= self.limit or self.timer is None:
            self.added(buffered)

    def swapped(self, buffer: _StatusBuffer) -> None:
        # The buffered RUNNING rows are about to be written: their packets' ends, when they
        # come, append rows of their own.
        started = buffer.started
        for key, row in self.open.items():
            if row >= 0:
                self.open_start[key] = started[row]
        self.open = dict.fromkeys(self.open, -1)

    def finish(self) -> None:
        super().finish()
        self.open = {}
        self.open_start = {}

    def build(self, buffer: _StatusBuffer) -> dict[str, pa.Array]:
        n = len(buffer)
        columns = {
            STARTED_AT: timestamps(buffer.started),
            STATE: _STATE_NAMES.take(pa.array(np.asarray(buffer.states, dtype=np.int8))),
            CACHED: pa.array(buffer.cached, pa.bool_()),
        }
        text = pa.large_string()
        if buffer.errors:
            parts = {row: error_parts(error) for row, error in buffer.errors.items()}
            none = (None, None)
            columns[ERROR_TYPE] = pa.array([parts.get(i, none)[0] for i in range(n)], text)
            columns[ERROR_MESSAGE] = pa.array([parts.get(i, none)[1] for i in range(n)], text)
        else:
            columns[ERROR_TYPE] = columns[ERROR_MESSAGE] = pa.nulls(n, text)
        return columns


StatusObserver.view_class = _StatusView
