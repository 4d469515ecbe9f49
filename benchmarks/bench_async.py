"""The async orchestrator: overlapping I/O-bound calls, and its overhead on a fast pipeline.

1. An I/O-bound ``async def`` function (``await asyncio.sleep(0.01)``) over 1,000 packets
   with ``max_concurrency=100``: the wall time of ``pipeline.run`` on an in-memory store and
   its ratio to the ideal 0.1 s (1,000 calls x 10 ms / 100 in flight). Target: at most 1.5x.
   For reference only, the same run on a Delta store, whose flush to disk and run records
   add a fixed few tens of ms (``bench_stores`` measures stores).
2. The ``a + b`` pipeline of ``bench_pipeline`` (source -> function pod, 100,000 rows; quick:
   10,000) run by the async orchestrator and by the sync one, in this process, each on a fresh
   Delta store with ``NoOpObserver()``: the ratio of their wall times. Target: at most 2x.

Each figure is the best of two runs (fresh stores each time), so that one slow moment of a
shared machine does not decide it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

import podline
from podline import function_pod
from podline.pipeline import (
    AsyncPipelineOrchestrator,
    NoOpObserver,
    Pipeline,
    SyncPipelineOrchestrator,
)
from podline.stores import DeltaStore, MemoryStore


@function_pod("fetched", live_output=False)
async def fetch(k: int) -> int:
    await asyncio.sleep(0.01)
    return k


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


def _best(runs: int, once: Callable[[], float]) -> float:
    return min(once() for _ in range(runs))


def _io_bound(n: int, on_disk: bool) -> float:
    table = pa.table({"id": np.arange(n), "k": np.arange(n)})
    with tempfile.TemporaryDirectory() as root:
        source = podline.ArrowTableSource(table, ["id"], source_id="io")
        store = DeltaStore(root) if on_disk else MemoryStore()
        with Pipeline("io", store, observe=False) as pipeline:
            fetch.pod(source)
        orchestrator = AsyncPipelineOrchestrator(max_concurrency=100)
        start = time.perf_counter()
        result = pipeline.run(orchestrator=orchestrator, observer=NoOpObserver())
        seconds = time.perf_counter() - start
    assert result.counts["fetch"].computed == n, result
    return seconds


def _sum(n: int, orchestrator: SyncPipelineOrchestrator | AsyncPipelineOrchestrator) -> float:
    ints = np.arange(n)
    table = pa.table({"k": ints, "a": ints, "b": ints * 2})
    with tempfile.TemporaryDirectory() as root:
        source = podline.ArrowTableSource(table, ["k"], source_id="bench")
        with Pipeline("bench", DeltaStore(root), observe=False) as pipeline:
            add.pod(source)
        start = time.perf_counter()
        result = pipeline.run(orchestrator=orchestrator, observer=NoOpObserver())
        seconds = time.perf_counter() - start
    assert result.counts["add"].computed == n, result
    return seconds


def run(quick: bool = False) -> None:
    n = 1_000
    ideal = n * 0.01 / 100
    seconds = _best(2, lambda: _io_bound(n, on_disk=False))
    ratio = seconds / ideal
    print(
        f"I/O-bound async def, {n:,} packets x 10 ms, max_concurrency=100: {seconds:.3f} s"
        f" ({ratio:.2f}x the ideal {ideal:.1f} s)  target <= 1.5x:"
        f" {'met' if ratio <= 1.5 else 'NOT met'}"
    )
    on_disk = _best(2, lambda: _io_bound(n, on_disk=True))
    print(f"  the same on a Delta store (flush and run records included): {on_disk:.3f} s")

    rows = 10_000 if quick else 100_000
    sync = _best(2, lambda: _sum(rows, SyncPipelineOrchestrator()))
    async_ = _best(2, lambda: _sum(rows, AsyncPipelineOrchestrator()))
    ratio = async_ / sync
    print(
        f"a + b over {rows:,} rows: sync {sync:.3f} s ({sync / rows * 1e6:.2f} µs/packet),"
        f" async {async_:.3f} s ({async_ / rows * 1e6:.2f} µs/packet): {ratio:.2f}x"
        f"  target <= 2x: {'met' if ratio <= 2 else 'NOT met'}"
    )
