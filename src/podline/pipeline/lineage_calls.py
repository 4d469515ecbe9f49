"""What lineage reads about one function call of a traced row: the function's identity, the
row's provenance record (status, result id) and the run that computed it.

Records are shared by every input version of a node (``nodes/<label>/<pipeline hash>/<pod>``),
so the same source records can have several records when their values changed between runs.
The record of the row is the one whose result id the row's source-info token names, in a
read of the node (``NodeRows.held``: its current input's results); when the read holds no
such row, or several versions of it (a loaded pipeline whose input cannot be read serves
every stored result), and several records match, the step says so instead of picking one
(``ambiguous``).

The computing run is the one run record of the node (``pipelines/<name>/runs``: a row per
node and run) whose time span holds the result's ``computed_at`` in the memo. Where that does
not decide (a run that crashed before recording itself, two runs at once), it is found in the
node's status records: the latest ``SUCCESS`` of the row's
system tags that started at or before the result's ``computed_at`` in the memo (a call starts,
its result is written, then its end is reported); a result computed elsewhere (another
pipeline sharing the memo) names the first run of this pipeline that served it (``CACHED``).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import parse_token, source_info_column
from podline.functions.memo import COMPUTED_AT_COLUMN
from podline.nodes import Node
from podline.nodes.records import RESULT_ID, STATUS
from podline.observability.batching import table_path
from podline.observability.columns import (
    PIPELINES,
    RUN_ID,
    RUNS_PATH,
    STARTED_AT,
    STATE,
    STATUS_SCOPE,
    TIMESTAMP,
    State,
)
from podline.pipeline.lineage_report import Step
from podline.pipeline.lineage_rows import (
    LineageScope,
    NodeRows,
    RecordedNode,
    match,
    packet_function,
)
from podline.stores import Store

__all__ = ["call"]


def call(
    scope: LineageScope,
    node: Node,
    key: dict[str, Any],
    step: Step,
    found: pa.Table | None = None,
) -> None:
    """Fill a function step: identity, record status and result id, computing run.
    ``found``: the node's rows of the step (default: every row ``key`` names)."""
    function = packet_function(node)
    if function is None:
        return
    step.function_version = function.version
    code = function.code_hash
    step.code_identity = None if code is None else code.short(16)
    step.function_identity = function.content_hash().short(16)
    records = scope.rows.recorded(node, key)
    if records is None or not records.num_rows:
        step.status = "no record"
        return
    if records.num_rows > 1:
        records = _current(scope.rows, node, key, records, found)
        if records.num_rows != 1:
            step.status = "ambiguous"
            return
    step.status = str(records.column(STATUS)[0].as_py())
    step.result_id = str(records.column(RESULT_ID)[0].as_py())
    computed_at = _computed_at(node, step.result_id)
    during = None
    if step.status == "computed" and computed_at is not None:
        during = _run_during(scope.store, scope.name, node.label, computed_at)
    step.run_id = during or _run(scope.store, scope.name, node, key, computed_at)


def _current(
    rows: NodeRows,
    node: Node,
    key: dict[str, Any],
    records: pa.Table,
    found: pa.Table | None = None,
) -> pa.Table:
    """The records of ``key`` whose results the node's rows read now name (several input
    versions share the records). A read that holds several versions of the row (a loaded
    pipeline whose input cannot be read serves every stored result) names several calls, and
    no row read: all of them, left ambiguous."""
    function = packet_function(node)
    if function is None or not function.output_keys:
        return records
    if found is None:
        found = rows.find(node, key)
    info = source_info_column(function.output_keys[0])
    if found is None or not found.num_rows or info not in found.column_names:
        return records
    calls = {parse_token(str(token)).record for token in found.column(info).to_pylist()}
    hexes = pc.utf8_slice_codeunits(records.column(RESULT_ID), 5)  # after "pod3:"
    named = [pc.starts_with(hexes, call_id) for call_id in sorted(calls)]
    return records.filter(functools.reduce(pc.or_, named))


def _computed_at(node: Node, result_id: str) -> dt.datetime | None:
    records = node.records if isinstance(node, RecordedNode) else None
    if records is None or records.memo is None:
        return None
    # Only the time: a memo lookup would read every column of the result (values, tokens).
    memo = records.memo
    found = memo.store.read(memo.path, [result_id], columns=[COMPUTED_AT_COLUMN])
    if found is None or not found.num_rows:
        return None
    value = found.column(COMPUTED_AT_COLUMN)[0].as_py()
    return value if isinstance(value, dt.datetime) else None


def _run_during(store: Store, pipeline: str, label: str, moment: dt.datetime) -> str | None:
    """The one run of the pipeline that computed rows of node ``label`` while ``moment``
    passed, from the run records (a row per node and run: small); None if not exactly one."""
    runs = store.scan(
        (PIPELINES, pipeline, RUNS_PATH),
        columns=["run_id", "computed", "seconds", "finished_at"],
        where={"node": label},
    )
    if runs is None:
        return None
    found = {
        run["run_id"]
        for run in runs.to_pylist()
        if run["computed"]
        and run["finished_at"] - dt.timedelta(seconds=run["seconds"]) <= moment
        and moment <= run["finished_at"]
    }
    return found.pop() if len(found) == 1 else None


def _run(
    store: Store, pipeline: str, node: Node, key: dict[str, Any], computed_at: dt.datetime | None
) -> str | None:
    """The run that computed the result (see the module docs); None when no status says."""
    path = (PIPELINES, pipeline, STATUS_SCOPE, *table_path(node.identity_path))
    if not store.exists(path):
        return None
    scalar = {k: v for k, v in key.items() if not isinstance(v, list)}
    rows = store.scan(path, columns=[RUN_ID, STATE, STARTED_AT, TIMESTAMP, *key], where=scalar)
    if rows is None:
        return None
    if len(scalar) < len(key):
        rows = rows.filter(pa.array(match(rows, key)))
    for state in (State.SUCCESS, State.CACHED):
        found = rows.filter(pc.equal(rows.column(STATE), str(state)))
        if not found.num_rows:
            continue
        # A computing call started before its result was written (and ended after).
        moment = STARTED_AT if state is State.SUCCESS else TIMESTAMP
        times = pc.coalesce(found.column(moment), found.column(TIMESTAMP)).to_pylist()
        picked = _pick(times, computed_at, latest_before=state is State.SUCCESS)
        if picked is not None:
            return str(found.column(RUN_ID)[picked].as_py())
    return None


def _pick(
    times: list[dt.datetime], computed_at: dt.datetime | None, *, latest_before: bool
) -> int | None:
    """The latest time at or before ``computed_at`` (``latest_before``), else the earliest
    at or after it; without ``computed_at``, the earliest."""
    if not times:
        return None
    order = np.argsort(np.array([t.timestamp() for t in times]))
    if computed_at is None:
        return int(order[0])
    if latest_before:
        before = [int(i) for i in order if times[i] <= computed_at]
        return before[-1] if before else None
    after = [int(i) for i in order if times[i] >= computed_at]
    return after[0] if after else None
