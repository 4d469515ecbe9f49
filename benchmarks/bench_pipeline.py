"""Pipeline runs: source (N rows) -> function pod (``a + b``) on the Delta store.

For N = 10,000 and 100,000, each in a fresh process: the first run, then a fully cached re-run
in another fresh process. Reports µs per packet of ``pipeline.run()`` (store flushes and run
records included; no observer, as observability has its own benchmark), the ratio to a bare
Python loop calling the same function on the same rows (measured in the same process), the
time to build the pipeline before the run (sources hashed, graph compiled), the peak RSS of the
first run's process with the share the imported libraries hold before any data exists, and how
the per-packet cost grows from 10,000 to 100,000 rows.

Targets: first run at most 10 µs per packet, cached re-run at most 2 µs per packet, peak
memory under 300 MB at 100,000 rows, and the 100,000-row per-packet figure at most 1.2x the
10,000-row one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_JOB = textwrap.dedent(
    """
    import json, time
    import numpy as np, pyarrow as pa
    import podline
    from podline import function_pod
    from podline.pipeline import NoOpObserver, Pipeline
    from podline.stores import DeltaStore

    @function_pod("total", live_output=False)
    def add(a: int, b: int) -> int:
        return a + b

    def status_mb(key):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
        return float("nan")

    # RSS counts the pages of the libraries' code that happen to be mapped (more of them when
    # the files are fresh in the page cache), so the process's own memory (RssAnon) is
    # sampled too, every 10 ms, for its peak.
    peak_own = [status_mb("RssAnon:")]

    def sample():
        while True:
            peak_own[0] = max(peak_own[0], status_mb("RssAnon:"))
            time.sleep(0.01)

    import threading
    threading.Thread(target=sample, daemon=True).start()
    libraries, libraries_own = status_mb("VmRSS:"), status_mb("RssAnon:")
    n = {n}
    ints = np.arange(n)
    table = pa.table({{"k": ints, "a": ints, "b": ints * 2}})
    source = podline.ArrowTableSource(table, ["k"], source_id="bench")
    start = time.perf_counter()
    with Pipeline("bench", DeltaStore({root!r})) as pipeline:
        add.pod(source)
    build = time.perf_counter() - start
    start = time.perf_counter()
    result = pipeline.run(observer=NoOpObserver())
    seconds = time.perf_counter() - start
    rows = table.select(["a", "b"]).to_pylist()
    start = time.perf_counter()
    [add.packet_function.fn(**row) for row in rows]
    bare = time.perf_counter() - start
    counts = result.counts["add"]
    print(json.dumps({{"seconds": seconds, "bare": bare, "build": build,
                       "peak": status_mb("VmHWM:"), "libraries": libraries,
                       "peak_own": peak_own[0], "libraries_own": libraries_own,
                       "computed": counts.computed, "cached": counts.cached}}))
    """
)


def _job(n: int, root: str) -> dict[str, float]:
    # A file, not ``-c``: podline hashes the function's source, which must be readable.
    script = Path(root) / "job.py"
    script.write_text(_JOB.format(n=n, root=str(Path(root) / "store")))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False) -> None:
    sizes = (2_000, 10_000) if quick else (10_000, 100_000)
    per_packet: dict[int, float] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as root:
            first = _job(n, root)
            again = _job(n, root)
        assert first["computed"] == n, first
        assert again["cached"] == n, again
        first_us, again_us = first["seconds"] / n * 1e6, again["seconds"] / n * 1e6
        bare_us = first["bare"] / n * 1e6
        per_packet[n] = first_us
        print(f"N = {n:,}: bare loop {bare_us:.2f} µs/packet")
        print(
            f"  first run:        {first_us:7.2f} µs/packet  ({first_us / bare_us:5.1f}x bare)"
            f"  target <= 10: {'met' if first_us <= 10 else 'NOT met'}"
        )
        print(
            f"  cached re-run:    {again_us:7.2f} µs/packet  ({again_us / bare_us:5.1f}x bare)"
            f"  target <= 2: {'met' if again_us <= 2 else 'NOT met'}"
        )
        print(
            f"  building the pipeline (sources hashed, compiled):"
            f" {first['build'] / n * 1e6:.2f} µs/packet"
        )
        print(
            f"  peak RSS (first run's process): {first['peak']:.0f} MB"
            f" (libraries alone, before any data: {first['libraries']:.0f} MB)"
            f"  target < 300 MB: {'met' if first['peak'] < 300 else 'NOT met'}"
        )
        print(
            f"  of which the process's own memory (RssAnon, sampled): peak"
            f" {first['peak_own']:.0f} MB, {first['libraries_own']:.0f} MB after the imports"
        )
    small, large = sizes
    growth = per_packet[large] / per_packet[small]
    print(
        f"per-packet growth {small:,} -> {large:,}: {growth:.2f}x"
        f"  target <= 1.2: {'met' if growth <= 1.2 else 'NOT met'}"
    )
