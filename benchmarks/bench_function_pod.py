"""Function-pod overhead: ``a + b`` over 100,000 packets with ``LocalExecutor``.

Baseline, measured in the same run: a bare Python loop calling the same function on the same
rows (already converted to Python). Reports µs per packet, the overhead per packet over the
baseline, and peak memory of a fresh process doing the pod run (target: at most 3 µs overhead
per packet and under 200 MB at 100,000 rows). Also shows a ``ProcessExecutor`` speed-up on a
CPU-bound function against ``LocalExecutor``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa

import podline
from podline.executors import LocalExecutor, ProcessExecutor
from podline.functions import function_pod


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


@function_pod("value", live_output=False)
def burn(n: int) -> int:
    """CPU-bound: a pure-Python loop."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def _source(n: int) -> podline.Source:
    ints = np.arange(n)
    return podline.ArrowTableSource(pa.table({"k": ints, "a": ints, "b": ints * 2}), ["k"])


def _pod_seconds(n: int) -> float:
    source = _source(n)
    add.pod(source).as_table()  # warm-up: imports, accelerator check
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        add.pod(source).as_table()  # a fresh lazy stream each time; no store, no memo
        best = min(best, time.perf_counter() - start)
    return best


def _bare_seconds(n: int) -> float:
    rows = _source(n).as_table().select(["a", "b"]).to_pylist()
    fn = add.packet_function.fn
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        [fn(**row) for row in rows]
        best = min(best, time.perf_counter() - start)
    return best


_PEAK_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})

    def peak_mb():
        # VmHWM is this process's own peak RSS; ru_maxrss can carry the parent's peak.
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    from bench_function_pod import _source, add
    source = _source({n})
    add.pod(_source(10)).as_table()  # load every lazily imported module first
    before = peak_mb()
    add.pod(source).as_table()
    print(before, peak_mb())
    """
)


def _peak_mb(n: int) -> tuple[float, float]:
    script = _PEAK_SCRIPT.format(here=os.path.dirname(__file__), n=n)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def run(quick: bool = False) -> None:
    n = 5_000 if quick else 100_000
    pod_s, bare_s = _pod_seconds(n), _bare_seconds(n)
    per_packet = pod_s / n * 1e6
    overhead = (pod_s - bare_s) / n * 1e6
    base_mb, peak_mb = _peak_mb(n)
    print(f"packets: {n:,} of a + b, LocalExecutor, no store")
    print(f"function pod:   {per_packet:8.2f} µs/packet ({pod_s:.3f} s)")
    print(f"bare loop:      {bare_s / n * 1e6:8.2f} µs/packet ({bare_s:.3f} s)")
    print(f"overhead:       {overhead:8.2f} µs/packet  (ratio pod/bare {pod_s / bare_s:.1f}x)")
    print(f"target overhead <= 3 µs/packet: {'met' if overhead <= 3 else 'NOT met'}")
    run_mb = peak_mb - base_mb
    print(
        f"peak RSS of a fresh process: {peak_mb:.0f} MB; before the run (libraries loaded, "
        f"source built) {base_mb:.0f} MB; added by the run {run_mb:.0f} MB"
    )
    print(f"target < 200 MB for the run: {'met' if run_mb < 200 else 'NOT met'}")

    calls, size = (8, 20_000) if quick else (32, 400_000)
    work = podline.ListSource("n", [size + i for i in range(calls)])  # distinct calls
    start = time.perf_counter()
    burn.with_options(executor=LocalExecutor()).pod(work).as_table()
    local_s = time.perf_counter() - start
    with ProcessExecutor(max_workers=2) as executor:
        # Workers start on demand: warm both up before timing.
        burn.with_options(executor=executor).pod(podline.ListSource("n", [1, 2])).as_table()
        start = time.perf_counter()
        burn.with_options(executor=executor).pod(work).as_table()
        process_s = time.perf_counter() - start
    print(
        f"CPU-bound ({calls} calls): LocalExecutor {local_s:.2f} s, ProcessExecutor(2) "
        f"{process_s:.2f} s, speed-up {local_s / process_s:.2f}x on {os.cpu_count()} cores"
    )
