"""A store as it ages: the same fully cached pipeline run again and again on one DeltaStore.

A source of 1,000 rows feeds a function pod (``a + b``); the first run computes, every later
one is fully cached. Each run builds the pipeline and opens the store anew (as a new process
would, without the imports) and runs with the default observers, so every run appends a run
record and status rows: the tables that grow with a store's age. Reports the time of a run
around runs 10, 100 and 1,000 (the median of the nine runs around each), as wall time and as
the CPU time of the process (all its threads), which other load on a shared machine disturbs
far less; and the data files and log entries of the store at the end. Once with automatic
maintenance as configured by default, once with it turned off (``compact_files=None``). The
mean CPU time of the 64 runs around each mark shows what runs cost on average, the runs that
compact included (the medians leave those out).

Target: a run after 1,000 runs takes at most 1.2x a run after 10. ``--quick`` ages the store
to 60 runs only (a smoke run; its figures are not meaningful).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore

TARGET = 1.2


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


def _age(root: Path, runs: int, **options: Any) -> tuple[list[float], list[float]]:
    """Run the pipeline ``runs`` times on the store at ``root``: the wall and CPU time of
    each run."""
    ints = np.arange(1_000)
    table = pa.table({"k": ints, "a": ints, "b": ints * 2})
    wall, cpu = [], []
    for _ in range(runs):
        source = podline.ArrowTableSource(table, ["k"], source_id="aging")
        start, start_cpu = time.perf_counter(), time.process_time()
        store = DeltaStore(root, **options)
        with Pipeline("aging", store) as pipeline:
            add.pod(source)
        result = pipeline.run()
        store.close()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        assert result.counts["add"].cached == len(ints) or len(wall) == 1
    return wall, cpu


def _around(times: list[float], run: int) -> float:
    """The median time of the nine runs around run number ``run`` (1-based)."""
    window = times[max(0, run - 5) : run + 4]
    return statistics.median(window)


def _mean_around(times: list[float], run: int) -> float:
    """The mean time of the 64 runs around run number ``run`` (1-based; the first run, which
    computes, left out): what runs cost on average, the compactions among them included."""
    window = times[max(1, run - 32) : run + 32]
    return statistics.fmean(window)


def _footprint(root: Path) -> tuple[int, int]:
    """Data files and log entries of every table under ``root``."""
    files = sum(1 for _ in root.rglob("*.parquet") if "_delta_log" not in _.parts)
    entries = sum(1 for _ in root.rglob("_delta_log/*.json"))
    return files, entries


def run(quick: bool = False) -> None:
    runs = 60 if quick else 1_005
    marks = (10, 50) if quick else (10, 100, 1_000)
    work = Path(tempfile.mkdtemp(prefix="podline-aging-"))
    try:
        for name, options in (("maintained", {}), ("never compacted", {"compact_files": None})):
            root = work / name.replace(" ", "-")
            wall, cpu = _age(root, runs, **options)
            files, entries = _footprint(root)
            print(
                f"{name}: {files} data files, {entries} log entries after {runs:,} runs;"
                f" slowest run {max(wall[1:]) * 1000:.0f} ms"
            )
            for label, times in (("wall", wall), ("CPU", cpu)):
                figures = "  ".join(
                    f"run {m:>5,}: {_around(times, m) * 1000:6.1f} ms" for m in marks
                )
                ratio = _around(times, marks[-1]) / _around(times, marks[0])
                verdict = "met" if ratio <= TARGET else "NOT met"
                print(
                    f"  {label:<5} {figures}   run {marks[-1]:,} / run {marks[0]}: {ratio:.2f}"
                    f" (target <= {TARGET}: {verdict})"
                )
            means = "  ".join(f"run {m:>5,}: {_mean_around(cpu, m) * 1000:6.1f} ms" for m in marks)
            ratio = _mean_around(cpu, marks[-1]) / _mean_around(cpu, marks[0])
            print(f"  CPU mean of 64 runs around {means}   ratio {ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
