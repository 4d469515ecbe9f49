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
    TIMESTAMP,
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


class _StatusView(NodeView):
    """One node's status rows: ``(state index, started, time, tag, cached, error)`` tuples.

    ``open`` maps each started, not yet ended packet (by ``id`` of its tag object, which the
    entry keeps alive so the id cannot be reused) to its RUNNING row's index in the buffer
    (-1 once that row was written) and its start time. A packet that ends while its RUNNING
    row is still buffered replaces that row, so a packet usually costs one row, not two.
    """

    def __init__(self, owner: BatchedObserver, identity_path: tuple[str, ...]) -> None:
        super().__init__(owner, identity_path)
        self.open: dict[int, tuple[Tag, int, float]] = {}

    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None:
        now = time()
        with self.lock:
            rows = self.rows
            self.open[id(tag)] = (tag, len(rows), now)
            rows.append((_RUNNING, now, now, tag, None, None))
            buffered = len(rows)
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
        with self.lock:
            entry = self.open.pop(id(tag), None)
            started = None
            if entry is not None and entry[0] is tag:
                started = entry[2]
                if entry[1] >= 0:
                    self.rows[entry[1]] = (state, started, now, tag, cached, error)
                    return
            self.rows.append((state, started, now, tag, cached, error))
            buffered = len(self.rows)
        self.added(buffered)

    def swapped(self) -> None:
        # The buffered RUNNING rows are about to be written: later ends append new rows.
        self.open = {key: (tag, -1, started) for key, (tag, _, started) in self.open.items()}

    def finish(self) -> None:
        super().finish()
        self.open = {}

    def build(self, rows: list[tuple[Any, ...]]) -> dict[str, pa.Array]:
        states, started, times, tags, cached, errors = zip(*rows, strict=True)
        codes = pa.array(np.asarray(states, dtype=np.int8))
        starts = np.asarray([np.nan if s is None else s for s in started], dtype=np.float64)
        columns = {
            TIMESTAMP: timestamps(times),
            STARTED_AT: timestamps(starts),
            STATE: _STATE_NAMES.take(codes),
            CACHED: pa.array(cached, pa.bool_()),
        }
        if any(e is not None for e in errors):
            parts = [error_parts(e) for e in errors]
            columns[ERROR_TYPE] = pa.array([p[0] for p in parts], pa.large_string())
            columns[ERROR_MESSAGE] = pa.array([p[1] for p in parts], pa.large_string())
        else:
            columns[ERROR_TYPE] = columns[ERROR_MESSAGE] = pa.nulls(len(rows), pa.large_string())
        columns.update(self.tag_columns(tags))
        return columns


StatusObserver.view_class = _StatusView
