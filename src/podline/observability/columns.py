"""What observations look like in a store: where they live, their columns and their states.

This module owns the naming contract shared by the observers that write observations
(``status.py``, ``logs.py``) and the reader that reads them back (``reader.py``), so a fresh
process can read what another one wrote without any pipeline code.

**Layout.** A pipeline named ``<name>`` keeps, below ``pipelines/<name>/``:

* ``status/<node identity path>``: one table per node of packet state transitions (a fully
  cached run of a node writes one row for all its packets: ``compact.py``);
* ``logs/<node identity path>``: one table per node of captured call output;
* ``runs``: one run record per node and run (written by ``Pipeline``), which holds the one
  status row of a node the run served wholly from stored results (``carried.py``).

A node's identity path is ``(label, pipeline hash prefix, content hash prefix)``, so a node
whose code or input changed writes a table of its own, beside the old one.

**Columns.** Fixed columns are meta columns (``__meta:<name>``, see ``podline.columns``); user
tag columns keep their names and system tags their ``__tag:...`` names. The reserved ``__``
prefix therefore keeps fixed columns from ever colliding with user tags. Readers show the
friendly names: the meta name without its prefix, system tags without the leading ``__``, and a
user tag whose name equals a fixed column's friendly name as ``tag:<name>``.
"""

from __future__ import annotations

import enum

import pyarrow as pa

from podline.columns import META_PREFIX, RESERVED_PREFIX, is_system_tag, meta_column
from podline.stores import RECORD_ID

__all__ = [
    "ATTEMPTS",
    "CACHED",
    "DURATION",
    "ERROR_MESSAGE",
    "ERROR_TYPE",
    "LOGS_SCOPE",
    "LOG_RECORDS",
    "LOG_RECORD_TYPE",
    "NODE",
    "NODE_HASH",
    "PACKETS",
    "PIPELINES",
    "PIPELINE_URI",
    "REASON",
    "RECORD_ID",
    "RUNS_PATH",
    "RUN_ID",
    "SAME_AS",
    "SEQUENCE",
    "STARTED_AT",
    "STATE",
    "STATUS_SCOPE",
    "STDERR",
    "STDOUT",
    "SUCCESS",
    "TIMESTAMP",
    "TIMESTAMP_TYPE",
    "TRACEBACK",
    "State",
    "friendly_name",
    "is_fixed",
]

# --------------------------------------------------------------------------- layout

#: The store segment under which every pipeline keeps its own records.
PIPELINES = "pipelines"
#: Below ``pipelines/<name>``: the status scope, the logs scope and the run records' path.
STATUS_SCOPE = "status"
LOGS_SCOPE = "logs"
RUNS_PATH = "runs"


# --------------------------------------------------------------------------- states


class State(enum.StrEnum):
    """The state a packet reached in a run.

    ``RUNNING``: the packet was taken up. Then exactly one of: ``SUCCESS`` (computed in this
    run), ``CACHED`` (its result was already stored), ``SKIPPED`` (it produced no output,
    computed or stored) and ``FAILED`` (its call raised, or its output did not fit). A
    ``RUNNING`` packet with no later state in a run that ended means the run crashed there.
    """

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


#: States in the order ``status()`` lists them: what needs attention first.
STATE_ORDER: tuple[State, ...] = (
    State.FAILED,
    State.RUNNING,
    State.SKIPPED,
    State.SUCCESS,
    State.CACHED,
)

# --------------------------------------------------------------------------- columns

RUN_ID = meta_column("run_id")
PIPELINE_URI = meta_column("pipeline_uri")
NODE = meta_column("node")
NODE_HASH = meta_column("node_hash")
#: Order of the rows one node view wrote in one run: ties timestamps apart.
SEQUENCE = meta_column("sequence")
TIMESTAMP = meta_column("timestamp")
#: When the packet went RUNNING (status rows; on a RUNNING row, equal to the timestamp).
STARTED_AT = meta_column("started_at")
STATE = meta_column("state")
#: True when the packet was not computed in this run (its result or skip was stored).
CACHED = meta_column("cached")
ERROR_TYPE = meta_column("error_type")
ERROR_MESSAGE = meta_column("error_message")
#: How many times the packet's call ran in this run (more than 1: failures were retried;
#: null where no call ran).
ATTEMPTS = meta_column("attempts")
#: Why a computed packet's call replaced a stored result (recompute requested, an output file
#: missing or changed); null for every other row.
REASON = meta_column("reason")
#: On a status row that stands for many packets of one run, all served from stored results
#: (see ``podline.observability.compact``): how many; null on a row of one packet.
PACKETS = meta_column("packets")
#: On such a row: the run whose rows of the same node hash list those packets.
SAME_AS = meta_column("same_as")
# Logs only.
SUCCESS = meta_column("success")
DURATION = meta_column("duration")
STDOUT = meta_column("stdout")
STDERR = meta_column("stderr")
LOG_RECORDS = meta_column("log_records")
TRACEBACK = meta_column("traceback")

#: Every timestamp is UTC, to the microsecond (the zone every store backend keeps).
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
#: One Python logging record emitted during a call.
LOG_RECORD_TYPE = pa.struct(
    [
        pa.field("time", TIMESTAMP_TYPE),
        pa.field("level", pa.large_string()),
        pa.field("logger", pa.large_string()),
        pa.field("message", pa.large_string()),
    ]
)

_FIXED = frozenset(
    (
        RUN_ID,
        PIPELINE_URI,
        NODE,
        NODE_HASH,
        SEQUENCE,
        TIMESTAMP,
        STARTED_AT,
        STATE,
        CACHED,
        ERROR_TYPE,
        ERROR_MESSAGE,
        ATTEMPTS,
        REASON,
        PACKETS,
        SAME_AS,
        SUCCESS,
        DURATION,
        STDOUT,
        STDERR,
        LOG_RECORDS,
        TRACEBACK,
    )
)
#: The friendly names of the fixed columns (and of the run-record columns readers show).
FIXED_FRIENDLY = frozenset(name[len(META_PREFIX) :] for name in _FIXED) | {
    "finished_at",
    "seconds",
}


def is_fixed(name: str) -> bool:
    """True for a fixed observation column (or the record id)."""
    return name in _FIXED or name == RECORD_ID


def friendly_name(name: str) -> str:
    """The name a reader shows for a stored observation column."""
    if name.startswith(META_PREFIX):
        return name[len(META_PREFIX) :]
    if is_system_tag(name):
        return name[len(RESERVED_PREFIX) :]
    if name in FIXED_FRIENDLY:
        return f"tag:{name}"
    return name
