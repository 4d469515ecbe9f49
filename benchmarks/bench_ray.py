"""``RayExecutor`` on a local 2-CPU Ray cluster against ``LocalExecutor``, same run.

1. CPU-bound: a pure-Python function of about 20 ms a call × 2,000 distinct packets (target:
   Ray at least 1.7x faster than ``LocalExecutor``). ``ProcessExecutor(2)`` runs too, as a
   reference for what two worker processes reach on the machine at that moment.
2. Trivial ``a + b`` × 100,000 packets: the overhead per packet of ``RayExecutor`` over
   ``LocalExecutor`` (target: at most 20 µs).

The runs are interleaved (local, Ray, local, Ray, ...) and repeated; each figure is given as a
range with the ratio of each pair. No store: the pods run on fresh lazy streams, so every call
is made. The cluster is started before timing (its start, ~5-10 s, is not counted) and shut
down at the end. Skipped when Ray is not installed (``pip install 'podline[ray]'``).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

# The same pods as the LocalExecutor and ProcessExecutor figures (run.py puts this folder on
# sys.path).
from bench_function_pod import add, burn

import podline
from podline.executors import Executor, LocalExecutor, ProcessExecutor


def _steps_for(seconds: float) -> int:
    """Loop steps of ``burn`` that take about ``seconds`` here."""
    fn = burn.packet_function.fn
    steps = 10_000
    while True:
        start = time.perf_counter()
        fn(steps)
        took = time.perf_counter() - start
        if took > 0.005:
            return int(steps * seconds / took)
        steps *= 4


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _rounds(repeats: int, runs: list[Callable[[], float]]) -> list[list[float]]:
    """Each run's times over ``repeats`` rounds, the runs interleaved within each round."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for timed, one in zip(times, runs, strict=True):
            timed.append(one())
    return times


def _span(values: list[float], scale: float = 1.0, unit: str = "s") -> str:
    low, high = min(values) * scale, max(values) * scale
    return f"{low:.2f}-{high:.2f} {unit}" if len(values) > 1 else f"{low:.2f} {unit}"


def run(quick: bool = False) -> None:
    if importlib.util.find_spec("ray") is None:
        print("skipped: Ray is not installed (pip install 'podline[ray]')")
        return
    from podline.executors.ray import RayExecutor

    calls, trivial, repeats = (100, 5_000, 1) if quick else (2_000, 100_000, 2)
    steps = _steps_for(0.02)
    work = podline.ListSource("n", [steps + i for i in range(calls)])  # distinct calls
    ints = np.arange(trivial)
    rows = podline.ArrowTableSource(pa.table({"k": ints, "a": ints, "b": ints * 2}), ["k"])

    def cpu(executor: Executor) -> float:
        return _timed(lambda: burn.with_options(executor=executor).pod(work).as_table())

    def overhead(executor: Executor) -> float:
        return _timed(lambda: add.with_options(executor=executor).pod(rows).as_table())

    with RayExecutor(init={"num_cpus": 2}) as ray_executor:
        started = time.perf_counter()
        workers = ray_executor.max_workers  # starts the local cluster
        took = time.perf_counter() - started
        print(f"local Ray cluster: {workers} CPUs, started in {took:.1f} s")
        # Warm-up: worker processes start and import podline and the functions.
        burn.with_options(executor=ray_executor).pod(podline.ListSource("n", [1, 2, 3])).as_table()
        add.with_options(executor=ray_executor).pod(
            podline.ArrowTableSource(pa.table({"k": [1], "a": [1], "b": [2]}), ["k"])
        ).as_table()
        with ProcessExecutor(max_workers=2) as processes:
            cpu(processes)  # workers start on demand: warm them up
            local_cpu, process_cpu, ray_cpu = _rounds(
                repeats,
                [lambda: cpu(LocalExecutor()), lambda: cpu(processes), lambda: cpu(ray_executor)],
            )
        local_add, ray_add = _rounds(
            repeats, [lambda: overhead(LocalExecutor()), lambda: overhead(ray_executor)]
        )

    speedups = [lo / ra for lo, ra in zip(local_cpu, ray_cpu, strict=True)]
    per_call = sum(local_cpu) / len(local_cpu) / calls * 1e3
    print(f"CPU-bound: {calls:,} calls of ~{per_call:.1f} ms (LocalExecutor), {repeats} rounds")
    print(f"  LocalExecutor      {_span(local_cpu)}")
    print(f"  RayExecutor (2)    {_span(ray_cpu)}")
    reference = [lo / pr for lo, pr in zip(local_cpu, process_cpu, strict=True)]
    print(
        f"  ProcessExecutor(2) {_span(process_cpu)}: what two worker processes reach here "
        f"now, speed-up {_span(reference, unit='x')}"
    )
    print(
        f"  speed-up           {_span(speedups, unit='x')} (target >= 1.7x: "
        f"{'met' if min(speedups) >= 1.7 else 'NOT met'} in the worst round)"
    )
    extra = [(ra - lo) / trivial * 1e6 for lo, ra in zip(local_add, ray_add, strict=True)]
    print(f"trivial a + b: {trivial:,} packets, {repeats} rounds")
    print(f"  LocalExecutor      {_span(local_add, 1e6 / trivial, 'µs/packet')}")
    print(f"  RayExecutor (2)    {_span(ray_add, 1e6 / trivial, 'µs/packet')}")
    print(
        f"  overhead           {_span(extra, unit='µs/packet')} (target <= 20 µs: "
        f"{'met' if max(extra) <= 20 else 'NOT met'} in the worst round)"
    )
    print(f"  (machine: {os.cpu_count()} cores, shared with other work while measured)")
