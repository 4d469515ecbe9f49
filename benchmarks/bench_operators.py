"""Join throughput: two sources of 1,000,000 rows joined on one integer tag column.

Baseline, measured in the same run: a plain ``polars`` inner join of the same two tables'
user columns (no provenance, no ordering), on the same threads. podline's join returns an
Arrow-backed stream that also carries every system tag and source-info column, renames the
system tags per input, and puts the rows in canonical order. Target: within 3x of the
baseline. Source construction is not timed.

Two layouts are measured: one input stored in tag order (common: tables keyed by id), which
lets the join keep that order instead of sorting, and both inputs shuffled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from podline import ArrowTableSource
from podline.operators import Join


def _best_of_interleaved(repeats: int, *fns: Callable[[], Any]) -> list[float]:
    """Each function's best time; runs alternate so that machine load affects all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _tables(n: int, *, left_sorted: bool) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(0)
    ids = np.arange(n)
    left_ids = ids if left_sorted else rng.permutation(n)
    left = pa.table({"id": left_ids, "x": rng.random(n)})
    right = pa.table({"id": rng.permutation(n), "y": rng.integers(0, 100, n)})
    return left, right


def _measure(n: int, repeats: int, *, left_sorted: bool) -> tuple[float, float, int]:
    left, right = _tables(n, left_sorted=left_sorted)
    a, b = ArrowTableSource(left, ["id"]), ArrowTableSource(right, ["id"])
    frames = [pl.from_arrow(t) for t in (left, right)]
    assert all(isinstance(f, pl.DataFrame) for f in frames)

    def podline_join() -> pa.Table:
        return Join()(a, b).as_table(system_tags=True, source_info=True)

    def polars_join() -> pl.DataFrame:
        return frames[0].join(frames[1], on="id")

    columns = podline_join().num_columns  # also warms up both paths
    polars_join()
    podline_s, polars_s = _best_of_interleaved(repeats, podline_join, polars_join)
    return podline_s, polars_s, columns


def run(quick: bool = False) -> None:
    n = 20_000 if quick else 1_000_000
    repeats = 3 if quick else 9
    print(
        f"rows: {n:,} per input, joined on one int64 tag; polars threads: {pl.thread_pool_size()}"
    )
    for left_sorted, layout in ((True, "one input in tag order"), (False, "both inputs shuffled")):
        podline_s, polars_s, columns = _measure(n, repeats, left_sorted=left_sorted)
        ratio = podline_s / polars_s
        print(f"{layout}:")
        print(f"  podline Join ({columns} columns with provenance): {podline_s:.3f} s")
        print(f"  plain polars join (4 user columns):              {polars_s:.3f} s")
        verdict = "met" if ratio <= 3 else "NOT met"
        print(f"  ratio podline / polars: {ratio:.2f}  (target <= 3: {verdict})")
