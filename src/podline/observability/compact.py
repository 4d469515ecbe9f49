"""Compact status rows: the cached packets of a node in a run recorded as one row.

A fully cached re-run of a node adds nothing to its results, yet a status row per packet made
every such run grow the store by what the node's first run had written (18 MB per re-run of
a million packets), and had the status table compacted over and over as it aged. So the
packets of a node that a run served from stored results (``CACHED``) get one row: ``PACKETS``
says how many, ``SAME_AS`` names an earlier run whose own rows, for the same node hash, list
every packet of that node hash. The node hash covers the node's input data, so two runs of one
node hash see the same packets: the compact row stands for the listed run's packets that have
no row of their own in its run (those it computed, skipped or failed). The rows read back
(``expand``) are those the observer would have written: one per packet, ``CACHED``, with the
compact row's run, times and sequence, and the listed run's tag values.

The run that lists them is found through a *marker* (``marker_row``): a run that wrote a row
for each packet of a node (no compact row), ended them all and ended the node writes one,
once its rows are committed, in a small table beside the status table (``markers_path``),
keyed by the node hash. A later run looks it up by id when its first cached packet ends
(``find_base``), without opening the status table, which grows at every run; with no marker,
it writes a row per packet and leaves the marker itself.

Under ``Pipeline.run``, a node whose compact row is its only row in the run hands it to the
run record instead of its status table (``carried.py``); the reader reads it back as a row of
that table, so ``expand`` sees the same rows either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from podline.observability.batching import timestamps
from podline.observability.columns import (
    ATTEMPTS,
    CACHED,
    ERROR_MESSAGE,
    ERROR_TYPE,
    NODE,
    NODE_HASH,
    PACKETS,
    REASON,
    RECORD_ID,
    RUN_ID,
    SAME_AS,
    SEQUENCE,
    STARTED_AT,
    STATE,
    TIMESTAMP,
    State,
    is_fixed,
)
from podline.stores import Store, StorePath

if TYPE_CHECKING:  # polars is the reader's: the observer writing rows does without it
    import polars as pl

__all__ = [
    "compact_row",
    "expand",
    "find_base",
    "is_markers_path",
    "marker_id",
    "marker_row",
    "markers_path",
    "packet_weight",
]


#: The last segment of the table beside a node's status table that holds its markers.
MARKERS = "listed"


def markers_path(path: StorePath) -> StorePath:
    """Where the markers of the status table at ``path`` are kept: a small table beside it,
    written by the runs that wrote a row per packet only, so a lookup opens a table of a few
    files, not the status table, which gains a file at every run."""
    return (*path, MARKERS)


def is_markers_path(path: StorePath) -> bool:
    """Whether ``path``, below a status scope, holds markers rather than status rows."""
    return len(path) > 1 and path[-1] == MARKERS


def marker_id(node_hash: str) -> str:
    """The record id of the marker naming the run that lists the packets of node hash
    ``node_hash``."""
    return node_hash


def marker_row(node: str, node_hash: str, packets: int, run_id: str, at: float) -> pa.Table:
    """The marker (see ``marker_id``): written once, by the first run (``run_id``) of
    ``node_hash`` that wrote a row for each of its ``packets`` packets."""
    return pa.table(
        {
            RECORD_ID: pa.array([marker_id(node_hash)], pa.large_string()),
            RUN_ID: pa.array([run_id], pa.large_string()),
            NODE: pa.array([node], pa.large_string()),
            NODE_HASH: pa.array([node_hash], pa.large_string()),
            PACKETS: pa.array([packets], pa.int64()),
            TIMESTAMP: timestamps([at]),
        }
    )


def find_base(store: Store, path: StorePath, node_hash: str) -> str | None:
    """The run whose own status rows at ``path`` list every packet of node hash
    ``node_hash``, from its marker; None if no run left one."""
    found = store.read(markers_path(path), [marker_id(node_hash)], columns=[RUN_ID])
    if found is None or not found.num_rows:
        return None
    return str(found.column(RUN_ID)[0].as_py())


def compact_row(packets: int, base: str, started: float, ended: float) -> pa.Table:
    """The status row standing for ``packets`` cached packets listed by run ``base``: the
    columns a batch part has (``status._part``) but the tags, plus the two compact ones."""
    return pa.table(
        {
            TIMESTAMP: timestamps([ended]),
            STARTED_AT: timestamps([started]),
            STATE: pa.array([State.CACHED.value], pa.large_string()),
            CACHED: pa.array([True]),
            PACKETS: pa.array([packets], pa.int64()),
            SAME_AS: pa.array([base], pa.large_string()),
        }
    )


def packet_weight() -> pl.Expr:
    """How many packets a status row stands for: one, or a compact row's ``PACKETS``."""
    import polars as pl

    return pl.col(PACKETS).fill_null(1)


def expand(frame: pl.DataFrame, *, latest: bool = False) -> pl.DataFrame:
    """Status rows (stored column names) with each compact row replaced by the rows it
    stands for, and without the compact columns.

    ``latest``: only what the latest state of each packet needs. A compact row stands for
    every packet of its node hash but those its run wrote rows of, so the latest compact row
    of a node hash leaves nothing of the earlier ones that a later row does not replace, and
    only it is expanded (a store run a thousand times is not read as a thousand copies)."""
    import polars as pl

    if PACKETS not in frame.columns:
        return frame
    compact = frame.filter(pl.col(PACKETS).is_not_null())
    rows = frame.filter(pl.col(PACKETS).is_null())
    if latest and compact.height > 1:
        compact = compact.sort([TIMESTAMP, SEQUENCE]).unique(
            subset=[NODE_HASH], keep="last", maintain_order=True
        )
    if compact.height:
        tags = [c for c in frame.columns if not is_fixed(c)]
        ended = rows.filter(pl.col(STATE) != State.RUNNING.value)
        listed = ended.select(pl.col(RUN_ID).alias(SAME_AS), NODE_HASH, *tags).unique()
        # The packets a compact row's run wrote rows of its own for (not cached) are not
        # among those it stands for.
        own = rows.select(RUN_ID, NODE_HASH, *tags).unique()
        copies = (
            compact.drop(tags)
            .join(listed, on=[SAME_AS, NODE_HASH], how="inner", nulls_equal=True)
            .join(own, on=[RUN_ID, NODE_HASH, *tags], how="anti", nulls_equal=True)
            .with_columns(
                pl.lit(None, pl.String).alias(c) for c in (ERROR_TYPE, ERROR_MESSAGE, REASON)
            )
            .with_columns(pl.lit(None, pl.Int64).alias(ATTEMPTS))
            .select(frame.columns)
        )
        rows = pl.concat([rows, copies], how="vertical_relaxed")
    return rows.drop(PACKETS, SAME_AS, strict=False)
