"""Compact status rows: a fully cached run of a node recorded as one row, not one per packet.

A fully cached re-run of a node adds nothing to its results, yet a status row per packet made
every such run grow the store by what the node's first run had written (18 MB per re-run of
a million packets), and had the status table compacted over and over as it aged. So when every
packet of a node in a run was served from stored results (``CACHED``), the status observer
writes one row for all of them: ``PACKETS`` says how many, ``SAME_AS`` names an earlier run
whose own rows, for the same node hash, list exactly those packets. The node hash covers the
node's input data, so two runs of one node hash see the same packets, and an earlier run that
ended as many packets as this one ended them all (``find_base``). The rows read back
(``expand``) are those the observer would have written: one per packet, ``CACHED``, with the
compact row's run, times and sequence, and the listed run's tag values.

A run whose packets are not all cached, or for which no earlier run lists the same number of
packets (the first run after a crash that lost status rows, results computed by another
pipeline), writes a row per packet as before.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from podline.errors import StoreError
from podline.observability.batching import timestamps
from podline.observability.columns import (
    ATTEMPTS,
    CACHED,
    ERROR_MESSAGE,
    ERROR_TYPE,
    NODE_HASH,
    PACKETS,
    REASON,
    RUN_ID,
    SAME_AS,
    STARTED_AT,
    STATE,
    TIMESTAMP,
    State,
    is_fixed,
)
from podline.stores import Store, StorePath

__all__ = ["compact_row", "expand", "find_base", "packet_weight"]

_BASE = "__podline_base"


def find_base(store: Store, path: StorePath, node_hash: str, packets: int) -> str | None:
    """The latest run whose own status rows at ``path`` list ``packets`` packets of node
    hash ``node_hash``, each at its end (a compact run counts as the run it names); None if
    there is none."""
    wanted = [RUN_ID, STATE, TIMESTAMP]
    try:
        rows = store.scan(path, columns=[*wanted, PACKETS, SAME_AS], where={NODE_HASH: node_hash})
    except StoreError:  # a table no compact row was written to yet: it has no such columns
        rows = store.scan(path, columns=wanted, where={NODE_HASH: node_hash})
    if rows is None or not rows.num_rows:
        return None
    frame = _with_compact_columns(_polars(rows))
    runs = (
        frame.filter(pl.col(STATE) != State.RUNNING.value)
        .group_by(RUN_ID)
        .agg(
            packet_weight().sum().alias("n"),
            pl.col(PACKETS).is_null().all().alias("own"),
            pl.col(PACKETS).is_not_null().all().alias("compact"),
            pl.col(SAME_AS).drop_nulls().first().alias(_BASE),
            pl.col(TIMESTAMP).max().alias("last"),
        )
        .filter((pl.col("n") == packets) & (pl.col("own") | pl.col("compact")))
        .with_columns(
            pl.when(pl.col("own")).then(pl.col(RUN_ID)).otherwise(pl.col(_BASE)).alias(_BASE)
        )
        .drop_nulls(_BASE)
        .sort("last")
    )
    return str(runs[_BASE][-1]) if runs.height else None


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
    return pl.col(PACKETS).fill_null(1)


def expand(frame: pl.DataFrame) -> pl.DataFrame:
    """Status rows (stored column names) with each compact row replaced by the rows it
    stands for, and without the compact columns."""
    if PACKETS not in frame.columns:
        return frame
    compact = frame.filter(pl.col(PACKETS).is_not_null())
    rows = frame.filter(pl.col(PACKETS).is_null())
    if compact.height:
        tags = [c for c in frame.columns if not is_fixed(c)]
        listed = (
            rows.filter(pl.col(STATE) != State.RUNNING.value)
            .select(pl.col(RUN_ID).alias(SAME_AS), NODE_HASH, *tags)
            .unique(maintain_order=True)
        )
        copies = (
            compact.drop(tags)
            .join(listed, on=[SAME_AS, NODE_HASH], how="inner")
            .with_columns(
                pl.lit(None, pl.String).alias(c) for c in (ERROR_TYPE, ERROR_MESSAGE, REASON)
            )
            .with_columns(pl.lit(None, pl.Int64).alias(ATTEMPTS))
            .select(frame.columns)
        )
        rows = pl.concat([rows, copies], how="vertical_relaxed")
    return rows.drop(PACKETS, SAME_AS, strict=False)


def _with_compact_columns(frame: pl.DataFrame) -> pl.DataFrame:
    missing = {PACKETS: pl.Int64, SAME_AS: pl.String}
    return frame.with_columns(
        pl.lit(None, t).alias(name) for name, t in missing.items() if name not in frame.columns
    )


def _polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
