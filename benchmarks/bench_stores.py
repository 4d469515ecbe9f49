"""DeltaStore lookups and appends against a Delta table of 1,000,000 records.

Records are an id (32 hex characters, like a content hash) plus three columns (int, float,
str); both tables are built by the same ten plain appends, so their files are alike.

Baselines, measured in the same run with plain ``deltalake`` + ``pyarrow`` and no podline:
* lookup: ``DeltaTable(uri).to_pyarrow_table()`` filtered with ``pc.is_in`` on the ids (faster
  here than a dataset filter); podline also returns the rows in the order asked;
* append: ``write_deltalake(uri, batch, mode="append")``; podline also checks every new id
  against the stored ones (write once), with a new store object ("cold": it first loads the
  table's ids) and with one that has already written to the table ("warm");
* rewrite: a batch of ids all stored already, against plain ``deltalake``'s write-once
  ``merge(...).when_not_matched_insert_all()``; podline writes none of them (the warm store
  confirms its index's hash matches by reading the table's id column).

Target: within 1.5x of the baseline. For scale, the cold append is also compared with how
plain ``deltalake`` writes once: ``merge(...).when_not_matched_insert_all()``. Small appends
(100 records, the median of many) show a commit's fixed costs, podline's syncs to disk
included (``stores/_durable.py``).

The store's write-once index (``stores._index.IdIndex``) grows by a batch per flush: a table
written in flushes of 10,000 rows adds 1,000 batches by 10M ids. Growing it batch by batch is
compared with sorting the same hashes once (what an index built in one go costs; target: at
most ``GROWTH_TARGET`` times that, whatever the number of batches, where merging every batch
into one sorted array took 60-90x at 1,000 batches and grew with them), and its probes with
probes of one array holding them all (target 1.5x). Packed ids, so that hashing them costs
nothing and the index alone is timed.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from podline.matching import id_hashes, sorted_hits
from podline.stores import RECORD_ID, DeltaStore
from podline.stores._index import IdIndex

TARGET = 1.5
GROWTH_TARGET = 10


def _records(start: int, count: int, rng: np.random.Generator) -> pa.Table:
    high = rng.integers(0, 1 << 63, count, dtype=np.uint64)
    ids = [f"{h:016x}{start + i:016x}" for i, h in enumerate(high.tolist())]
    return pa.table(
        {
            RECORD_ID: pa.array(ids, pa.large_string()),
            "count": pa.array(rng.integers(0, 1 << 40, count)),
            "score": pa.array(rng.random(count)),
            "label": pa.array([f"sample-{start + i}" for i in range(count)], pa.large_string()),
        }
    )


def _write_once_merge(uri: str, rows: pa.Table) -> Callable[[], object]:
    """delta-rs's write-once append of ``rows`` (insert those whose id is not stored), ready
    to run: the baseline of a store write."""
    merge = DeltaTable(uri).merge(
        rows, predicate=f"t.{RECORD_ID} = s.{RECORD_ID}", source_alias="s", target_alias="t"
    )
    return merge.when_not_matched_insert_all().execute


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _line(label: str, podline_s: float, baseline_s: float, target: float = TARGET) -> None:
    ratio = podline_s / baseline_s
    verdict = "met" if ratio <= target else "NOT met"
    print(
        f"{label:<22} podline {podline_s * 1000:8.1f} ms   baseline {baseline_s * 1000:8.1f} ms"
        f"   ratio {ratio:5.2f}  (target <= {target}: {verdict})"
    )


def run(quick: bool = False) -> None:
    n = 20_000 if quick else 1_000_000
    k = n // 10
    repeats = 1 if quick else 7
    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="podline-bench-"))
    try:
        store_root = work / "store"
        podline_uri = DeltaStore(store_root).table_uri("bench")
        baseline_uri = str(work / "baseline")
        for part in range(10):
            chunk = _records(part * k, k, rng)
            write_deltalake(podline_uri, chunk, mode="append")
            write_deltalake(baseline_uri, chunk, mode="append")
        stored_ids = DeltaTable(baseline_uri).to_pyarrow_table(columns=[RECORD_ID])[RECORD_ID]
        wanted = stored_ids.take(pa.array(rng.choice(n, k, replace=False))).combine_chunks()
        batches = [_records(n + r * k, k, rng) for r in range(4 * repeats)]

        def baseline_lookup() -> pa.Table:
            table = DeltaTable(baseline_uri).to_pyarrow_table()
            return table.filter(pc.is_in(table[RECORD_ID], value_set=wanted))

        def podline_lookup() -> pa.Table | None:
            return DeltaStore(store_root).read("bench", wanted)

        baseline_lookup(), podline_lookup()  # warm up the page cache and imports
        # Alternate the two, and keep the best of each: other load on the machine then
        # slows both alike.
        lookup_base, lookup = [], []
        for _ in range(repeats):
            lookup_base.append(_timed(baseline_lookup))
            lookup.append(_timed(podline_lookup))

        def append(store: DeltaStore, batch: pa.Table) -> None:
            store.write("bench", batch)
            store.flush()

        cold, cold_base, warm, warm_base = [], [], [], []
        warm_store = DeltaStore(store_root, flush_rows=2 * k)
        for r in range(repeats):
            batch = batches[r]
            cold_base.append(_timed(lambda: write_deltalake(baseline_uri, batch, mode="append")))  # noqa: B023
            cold.append(_timed(lambda: append(DeltaStore(store_root), batch)))  # noqa: B023
        append(warm_store, batches[repeats])  # loads the ids once
        write_deltalake(baseline_uri, batches[repeats], mode="append")
        for r in range(repeats + 1, 2 * repeats + 1):
            batch = batches[r]
            warm_base.append(_timed(lambda: write_deltalake(baseline_uri, batch, mode="append")))  # noqa: B023
            warm.append(_timed(lambda: append(warm_store, batch)))  # noqa: B023
        # A write repeating stored ids (a recompute, a memo shared between pipelines): every
        # hash matches, and the store confirms the matches by reading the table's id column.
        stored_rows = DeltaTable(podline_uri).to_pyarrow_table()
        rewrite, rewrite_base = [], []
        for _ in range(repeats):
            again = stored_rows.take(pa.array(rng.choice(n, k, replace=False)))
            rewrite.append(_timed(lambda: append(warm_store, again)))  # noqa: B023
            rewrite_base.append(_timed(_write_once_merge(baseline_uri, again)))
        warm_store.close()
        merged = []
        for batch in batches[3 * repeats :]:
            merged.append(_timed(_write_once_merge(baseline_uri, batch)))

        # Small commits, where a commit's fixed costs (its syncs to disk, delta-rs's setup) are
        # all there is: 100 records at a time, as a run's status rows and run records come.
        small, small_base = [], []
        small_store = DeltaStore(store_root, flush_rows=10 * k)
        for r in range(3 * repeats):
            batch = _records(2 * n + r * 100, 100, rng)
            small_base.append(_timed(lambda: write_deltalake(baseline_uri, batch, mode="append")))  # noqa: B023
            small.append(_timed(lambda: append(small_store, batch)))  # noqa: B023
        small_store.close()

        final = DeltaTable(podline_uri).to_pyarrow_table(columns=[RECORD_ID])
        assert final.num_rows == pc.count_distinct(final[RECORD_ID]).as_py()

        print(f"table: {n:,} records (id + 3 columns); lookup of {k:,} ids; append of {k:,}")
        _line("lookup", min(lookup), min(lookup_base))
        _line("append (cold store)", min(cold), min(cold_base))
        _line("append (warm store)", min(warm), min(warm_base))
        _line("append of 100 (warm)", statistics.median(small), statistics.median(small_base))
        _line("rewrite of stored ids", min(rewrite), min(rewrite_base))
        print(
            f"{'':<22} cold append / plain write-once merge: "
            f"{min(cold) * 1000:.1f} / {min(merged) * 1000:.1f} ms = {min(cold) / min(merged):.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _index_growth(100 if quick else 1_000, 10_000)


class _NoIds:
    """An ``IdSource`` for ids that are all new: the index never asks it to confirm."""

    def added(self, ids: pa.Array | pa.ChunkedArray) -> None:
        pass

    def holding(self, candidates: pa.Array | pa.ChunkedArray) -> np.ndarray:
        raise AssertionError("a new id matched a stored hash")


def _index_growth(batches: int, size: int) -> None:
    rng = np.random.default_rng(3)

    def packed(count: int) -> pa.Array:
        data = pa.py_buffer(rng.bytes(32 * count))
        return pa.Array.from_buffers(pa.binary(32), count, [None, data])

    added = [packed(size) for _ in range(batches)]
    probes = [packed(size) for _ in range(batches)]
    index = IdIndex(_NoIds())
    grow = probe = 0.0
    for batch, new in zip(added, probes, strict=True):
        grow += _timed(lambda batch=batch: index.add(batch))
        probe += _timed(lambda new=new: index.contains(new))
    hashes = [id_hashes(batch) for batch in added]
    every = np.concatenate(hashes)
    one_sort = min(_timed(every.copy().sort) for _ in range(3))
    every.sort()
    one_probe = sum(_timed(lambda new=new: sorted_hits(every, id_hashes(new))) for new in probes)
    print(f"write-once index: {batches:,} batches of {size:,} new ids, probed after each")
    _line("index growth", grow, one_sort, GROWTH_TARGET)
    _line("index probes", probe, one_probe)
