"""Lineage queries on a 1,000,000-row pipeline with three joins.

Four sources of N rows (``id`` tag, one packet column each) joined in three steps, then a
function pod (``a + b + c + d``) over the joined rows, run once on a Delta store (not timed).
Measured, each as the best of several interleaved repeats over different rows:

* ``trace("add", id=k)`` and ``impact("A", record_id=...)`` in the process that ran the
  pipeline (node outputs held in memory), and each from its own fresh pipeline object over
  the same store (as a new process has it: the query reads the function node's stored
  results first, passively, and the read stays on the node);
* the baseline, in the same run: a full scan of the node tables answering the same question
  (every stored table of the pipeline read whole, every held output filtered whole).

Memory: the growth of the process's own memory (RssAnon, sampled every 5 ms) while each kind of
query runs alone, after the timed rounds. Target: a trace of one row with the node's rows at
hand well under a second at N = 1,000,000.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from podline import ArrowTableSource, function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore, Store


@function_pod("total", live_output=False)
def add(a: float, b: float, c: float, d: float) -> float:
    return a + b + c + d


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Peak:
    """The peak RssAnon while the block runs, sampled in a thread."""

    def __enter__(self) -> _Peak:
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _pipeline(store: Store, n: int) -> Pipeline:
    rng = np.random.default_rng(0)
    sources = [
        ArrowTableSource(
            pa.table({"id": rng.permutation(n), name: rng.random(n)}),
            ["id"],
            label=name.upper(),
            source_id=name.upper(),
        )
        for name in "abcd"
    ]
    with Pipeline("lineage", store=store, observe=True) as pipeline:
        joined = sources[0].join(sources[1]).join(sources[2]).join(sources[3])
        add.pod(joined)
    return pipeline


def _full_scan(pipeline: Pipeline, key: int) -> int:
    """The same question answered by reading every node table whole: how many rows of all
    tables hold ``id == key``."""
    found = 0
    for path in pipeline.store.list():
        table = pipeline.store.scan(path)
        if table is not None and "id" in table.column_names:
            frame = pl.from_arrow(table.select(["id"]))
            assert isinstance(frame, pl.DataFrame)
            found += frame.filter(pl.col("id") == key).height
    for node in pipeline.nodes.values():
        if node.has_output:
            frame = pl.from_arrow(node.as_table(system_tags=True).select(["id"]))
            assert isinstance(frame, pl.DataFrame)
            found += frame.filter(pl.col("id") == key).height
    return found


def _best(repeats: int, fns: dict[str, Callable[[int], Any]]) -> dict[str, list[float]]:
    """Each query's times over ``repeats`` rounds, queries interleaved in every round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(round_)
            times[name].append(time.perf_counter() - start)
    return times


def run(quick: bool = False) -> None:
    n = 20_000 if quick else 1_000_000
    repeats = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        store = DeltaStore(Path(tmp) / "store")
        started = time.perf_counter()
        ran = _pipeline(store, n)
        ran.run()
        setup = time.perf_counter() - started
        print(f"  setup: {n:,} rows, three joins and a function, run in {setup:.1f} s")
        # One fresh object per query: each query is the first on its object, as in a new
        # process (a trace reads the traced node, and the read is kept on the node).
        fresh = {
            name: [_pipeline(DeltaStore(Path(tmp) / "store"), n) for _ in range(repeats + 1)]
            for name in ("trace", "impact")
        }
        keys = np.random.default_rng(1).integers(0, n, repeats + 1).tolist()

        def check(trace: Any) -> None:
            assert trace.records().height == 4, trace

        queries: dict[str, Callable[[int], Any]] = {
            "trace, held outputs": lambda i: check(ran.trace("add", id=keys[i])),
            "trace, fresh object (store)": lambda i: check(
                fresh["trace"][i].trace("add", id=keys[i])
            ),
            "impact, held outputs": lambda i: ran.impact("A", record_id=f"#{keys[i]}"),
            "impact, fresh object (store)": lambda i: fresh["impact"][i].impact(
                "A", record_id=f"#{keys[i]}"
            ),
            "baseline: full scan of node tables": lambda i: _full_scan(ran, keys[i]),
        }
        times = _best(repeats, queries)
        base = min(times["baseline: full scan of node tables"])
        for name, spent in times.items():
            print(
                f"  {name:38s} best {min(spent) * 1e3:8.1f} ms, worst {max(spent) * 1e3:8.1f} ms"
                f"  ({min(spent) / base:.2f}x the full scan)"
            )
        # Memory per kind of query, each measured alone after the timed rounds (a peak over
        # the interleaved rounds would be the full scan's).
        for name, query in queries.items():
            with _Peak() as peak:
                query(repeats)
            print(f"  memory, {name:38s} +{peak.peak - peak.start:6.0f} MB RssAnon (peak)")


if __name__ == "__main__":
    run()
