"""Compact status rows carried by the run record: a fully cached node's one status row kept
in its row of the run records instead of in its status table.

A node whose every packet a run served from stored results writes one status row
(``compact.py``). Kept in the node's status table, that row cost a table open and a commit
per node at the run's end, beside the run record's own. ``Pipeline.run`` gives its status
observer a ``CarriedRows``: a node that wrote no other status row in the run hands its compact
row there (``hold``) instead, and the run record carries it in columns of the node's row
(``add_to``), so a fully cached run commits one table however many nodes it has, and the row
is committed with the run record, never without it. Nodes that computed, skipped or failed
anything write their status tables as before.

The reader rebuilds each carried row as the status observer would have stored it
(``status_rows``) and reads it with its status table's rows, so every query answers as it did
from the status tables; stores written before (compact rows in status tables), and a mix of
both, read alike. A held row that no run-record row takes (the run raised, or its run record
could not be written) is written to its status table as before (``release``).
"""

from __future__ import annotations

import threading
import warnings
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from podline.observability.batching import ObservationWarning
from podline.observability.columns import (
    CACHED,
    NODE,
    NODE_HASH,
    PACKETS,
    PIPELINE_URI,
    RECORD_ID,
    RUN_ID,
    SAME_AS,
    SEQUENCE,
    STARTED_AT,
    STATE,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    State,
)
from podline.stores import Store, StorePath

__all__ = ["CARRIED_COLUMNS", "CarriedRows", "status_rows"]

_TEXT = pa.large_string()
#: The run-record columns carrying a node's compact status row (null on the rows of nodes
#: whose status rows are in their status table), and where each comes from in that row.
CARRIED_COLUMNS: dict[str, tuple[str, pa.DataType]] = {
    "status_table": ("", pa.list_(_TEXT)),  # the status table's path below the status scope
    "status_node_hash": (NODE_HASH, _TEXT),
    "status_same_as": (SAME_AS, _TEXT),
    "status_packets": (PACKETS, pa.int64()),
    "status_started_at": (STARTED_AT, TIMESTAMP_TYPE),
    "status_timestamp": (TIMESTAMP, TIMESTAMP_TYPE),
}
_PATH = "status_table"
_MARK = "status_same_as"
#: The run record's own columns naming the row's run, pipeline and node.
_RUN, _URI, _NODE = "run_id", "pipeline_uri", "node"


class _Held(NamedTuple):
    store: Store
    path: StorePath
    row: pa.Table  # one status row, as the status observer appends it


class CarriedRows:
    """The compact status rows of a run's fully cached nodes, held for its run record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[_Held] = []

    def hold(self, store: Store, path: StorePath, row: pa.Table) -> None:
        """Keep ``row``, the only status row a node wrote in the run, which it would have
        appended at ``path`` of ``store``, for the run record."""
        with self._lock:
            self._held.append(_Held(store, tuple(path), row))

    def add_to(self, records: pa.Table) -> tuple[pa.Table, list[_Held]]:
        """``records`` (the run's run-record rows) with the carried columns, filled on the row
        of each node whose held row names the same run, pipeline URI and node; and the held
        rows so placed (``forget`` them once ``records`` is written)."""
        with self._lock:
            held = list(self._held)
        by_key: dict[tuple[str, str, str], _Held] = {}
        for entry in held:
            key = tuple(entry.row.column(c)[0].as_py() for c in (RUN_ID, PIPELINE_URI, NODE))
            # Sequence 0: the node's only row in the run (the reader rebuilds it so).
            if entry.row.column(SEQUENCE)[0].as_py() == 0 and key not in by_key:
                by_key[key] = entry
        keys = zip(*(records.column(c).to_pylist() for c in (_RUN, _URI, _NODE)), strict=True)
        found = [by_key.get(key) for key in keys]
        placed = [f for f in found if f is not None]
        rows = pa.concat_tables([p.row for p in placed]) if placed else None
        where = iter(range(len(placed)))
        picks = pa.array([None if f is None else next(where) for f in found], pa.int64())
        for name, (source, kind) in CARRIED_COLUMNS.items():
            if not source:
                values = pa.array([None if f is None else list(f.path) for f in found], kind)
            elif rows is None:
                values = pa.nulls(len(found), kind)
            else:
                values = rows.column(source).take(picks).cast(kind)
            records = records.append_column(pa.field(name, kind), values)
        return records, placed

    def forget(self, placed: list[_Held]) -> None:
        """Drop the held rows a written run record carries."""
        with self._lock:
            self._held = [h for h in self._held if not any(h is p for p in placed)]

    def release(self) -> None:
        """Write every row still held to its status table (no run record carries it)."""
        with self._lock:
            held, self._held = self._held, []
        for entry in held:
            try:
                entry.store.append(entry.path, entry.row)
            except Exception as exc:  # observing must never break a run
                warnings.warn(
                    f"podline could not record the status row of node "
                    f"{entry.row.column(NODE)[0].as_py()!r} at {'/'.join(entry.path)!r}: "
                    f"{type(exc).__name__}: {exc}",
                    ObservationWarning,
                    stacklevel=2,
                )


def status_rows(records: pa.Table) -> dict[StorePath, pa.Table]:
    """The compact status rows that run records ``records`` carry, by status table path,
    in the columns and types the status observer stores them with (``RECORD_ID``: the run
    record's)."""
    if _MARK not in records.column_names:  # run records written before
        return {}
    carried = records.filter(pc.is_valid(records.column(_MARK)))
    paths: dict[StorePath, list[int]] = {}
    for i, path in enumerate(carried.column(_PATH).to_pylist()):
        paths.setdefault(tuple(path), []).append(i)
    return {path: _rebuilt(carried.take(pa.array(rows))) for path, rows in paths.items()}


def _rebuilt(carried: pa.Table) -> pa.Table:
    n = carried.num_rows

    def text(name: str) -> pa.ChunkedArray:
        return carried.column(name).cast(_TEXT)

    def column(target: str) -> pa.ChunkedArray:
        name = next(k for k, (source, _) in CARRIED_COLUMNS.items() if source == target)
        return carried.column(name).cast(CARRIED_COLUMNS[name][1])

    return pa.table(
        {
            RECORD_ID: text(RECORD_ID),
            RUN_ID: text(_RUN),
            PIPELINE_URI: text(_URI),
            NODE: text(_NODE),
            NODE_HASH: column(NODE_HASH),
            SEQUENCE: pa.array([0] * n, pa.int64()),
            TIMESTAMP: column(TIMESTAMP),
            STARTED_AT: column(STARTED_AT),
            STATE: pa.array([State.CACHED.value] * n, _TEXT),
            CACHED: pa.array([True] * n),
            PACKETS: column(PACKETS),
            SAME_AS: column(SAME_AS),
        }
    )
