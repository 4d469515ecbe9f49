"""Observability cost: the ``a + b`` pipeline (N rows, one function pod) on the Delta store.

Three first runs of the same pipeline, each in a fresh process on a fresh store:

* ``NoOpObserver()``: no packet hooks at all (the baseline);
* an ``Observer`` subclass whose batch hooks (``on_packets_start``/``on_packets_end``) do
  nothing: what delivering packets to observers costs the nodes (with nodes that still call
  the per-packet hooks, it gets those, also doing nothing);
* the defaults (``observer=None``): ``StatusObserver`` + ``LoggingObserver`` writing status
  rows and captured output to the store.

Reports µs per packet of ``pipeline.run()`` (store flushes and run records included) and the
ratio of the defaults to the baseline; target at most 1.30x. It also splits the extra cost
into hook delivery (do-nothing observer - baseline) and what the observers themselves add
(defaults - do-nothing observer). Each configuration is measured seven times, interleaved,
and the best and the median are reported (the figures are noisy on a shared machine). The
ratio is the median over the seven repetitions of the defaults run's time over the baseline
run's time in the same repetition. N = 100,000 (quick: 10,000, once).
"""

from __future__ import annotations

import json
import statistics
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
    from podline.pipeline import NoOpObserver, Observer, Pipeline
    from podline.stores import DeltaStore

    @function_pod("total", live_output=False)
    def add(a: int, b: int) -> int:
        return a + b

    class Silent(Observer):
        def on_packets_start(self, **kwargs):
            pass

        def on_packets_end(self, **kwargs):
            pass

    n = {n}
    ints = np.arange(n)
    table = pa.table({{"k": ints, "a": ints, "b": ints * 2}})
    source = podline.ArrowTableSource(table, ["k"], source_id="bench")
    with Pipeline("bench", DeltaStore({root!r})) as pipeline:
        add.pod(source)
    pipeline.compile()
    observer = {{"noop": NoOpObserver(), "silent": Silent(), "default": None}}[{mode!r}]
    start = time.perf_counter()
    result = pipeline.run(observer=observer)
    seconds = time.perf_counter() - start
    rows = None
    if {mode!r} == "default":
        rows = [len(pipeline.status()), len(pipeline.logs())]
    print(json.dumps({{"seconds": seconds, "computed": result.counts["add"].computed,
                       "rows": rows}}))
    """
)

_MODES = ("noop", "silent", "default")


def _job(n: int, mode: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as root:
        # A file, not ``-c``: podline hashes the function's source, which must be readable.
        script = Path(root) / "job.py"
        script.write_text(_JOB.format(n=n, root=str(Path(root) / "store"), mode=mode))
        done = subprocess.run(
            [sys.executable, str(script)], check=False, capture_output=True, text=True
        )
    if done.returncode:
        raise RuntimeError(f"the {mode!r} job failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(quick: bool = False) -> None:
    n = 10_000 if quick else 100_000
    repeats = 1 if quick else 7
    seconds: dict[str, list[float]] = {mode: [] for mode in _MODES}
    for _ in range(repeats):
        for mode in _MODES:  # interleaved, so load changes hit every mode alike
            job = _job(n, mode)
            assert job["computed"] == n, job
            if mode == "default":
                assert job["rows"] == [n, n], job  # a status and a log row per packet
            seconds[mode].append(float(job["seconds"]))  # type: ignore[arg-type]
    us = {mode: min(seconds[mode]) / n * 1e6 for mode in _MODES}
    median = {mode: statistics.median(seconds[mode]) / n * 1e6 for mode in _MODES}
    # Each repetition's defaults run against the baseline run next to it: the median of those
    # paired ratios shrugs off the machine's drifts, which move the best of each mode apart.
    paired = [d / b for d, b in zip(seconds["default"], seconds["noop"], strict=True)]
    ratio = statistics.median(paired)
    print(f"N = {n:,} packets, {repeats} run(s) each, first run on a Delta store (best, median):")
    for mode, title in (
        ("noop", "NoOpObserver (baseline)"),
        ("silent", "do-nothing observer"),
        ("default", "default status + logs"),
    ):
        print(f"  {title + ':':30} {us[mode]:7.2f} µs/packet  {median[mode]:7.2f}")
    verdict = "met" if ratio <= 1.3 else "NOT met"
    print(
        f"  defaults / baseline: {ratio:.2f}x (median of {repeats} paired runs, from"
        f" {min(paired):.2f} to {max(paired):.2f}; best / best {us['default'] / us['noop']:.2f})"
        f"  target <= 1.30: {verdict}"
    )
    print(
        f"  extra per packet: hook delivery by the nodes {us['silent'] - us['noop']:.2f} µs,"
        f" status + logging observers {us['default'] - us['silent']:.2f} µs"
    )
