"""Packet hashing throughput: 1,000,000 rows of (int, float, str).

Baseline, measured in the same run: ``pa.Table.from_pylist`` on the same rows (a common,
well-optimized per-row Arrow operation). Target: at least 1,000,000 packet hashes per second
on one core. Also reports the hashlib-only path (what runs without ``polars-hash``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from podline.hashing import digest, row_hash_strings


def _best_of(repeats: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool = False) -> None:
    # One core, as the target says: keep polars (and Arrow) from using a second thread.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    pa.set_cpu_count(1)
    n = 20_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "count": pa.array(rng.integers(0, 1 << 40, n)),
            "score": pa.array(rng.random(n)),
            "label": pa.array([f"sample-{i:07d}" for i in range(n)], pa.large_string()),
        }
    )
    rows = table.to_pylist()
    repeats = 1 if quick else 3

    row_hash_strings(table.slice(0, 1000))  # warm up imports and the accelerator check
    podline_s = _best_of(repeats, lambda: row_hash_strings(table))
    baseline_s = _best_of(repeats, lambda: pa.Table.from_pylist(rows))

    accelerated = digest._polars_hash_ok()
    original = digest._VECTOR_THRESHOLD
    digest._VECTOR_THRESHOLD = n + 1  # force the hashlib path
    try:
        hashlib_s = _best_of(1, lambda: row_hash_strings(table))
    finally:
        digest._VECTOR_THRESHOLD = original

    print(f"rows: {n:,} of (int, float, str); polars-hash accelerator: {accelerated}")
    print(f"podline row hashes:          {n / podline_s:>12,.0f} rows/s  ({podline_s:.3f} s)")
    print(f"  hashlib-only path:         {n / hashlib_s:>12,.0f} rows/s  ({hashlib_s:.3f} s)")
    print(f"baseline pa.Table.from_pylist:{n / baseline_s:>12,.0f} rows/s  ({baseline_s:.3f} s)")
    print(f"ratio podline / baseline time: {podline_s / baseline_s:.2f}")
    print(f"target >= 1,000,000 rows/s: {'met' if n / podline_s >= 1_000_000 else 'NOT met'}")
