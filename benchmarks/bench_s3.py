"""A cached re-run on object storage: source (N rows) -> function pod (``a + b``), on a Delta
store on a local S3-compatible server, against the same runs on a local directory.

For each store: a first run, then cached re-runs, each in a fresh process (so nothing is cached
in memory). Reports the re-run's wall time (median and range) and, on S3, the requests it made
(from the server's request log), and the ratio S3 / local. The server is the one the tests use
(``tests/services.py``: ``PODLINE_TEST_S3_SERVER`` or ``moto_server`` on PATH); without one the
benchmark says so and skips. A local moto server answers in about a millisecond; a real object
store's round trips (10-50 ms) multiply the request count, which is why it is reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOB = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, pyarrow as pa
    import podline
    from podline import function_pod
    from podline.pipeline import NoOpObserver, Pipeline
    from podline.stores import open_store

    @function_pod("total", live_output=False)
    def add(a: int, b: int) -> int:
        return a + b

    config, n = sys.argv[1], int(sys.argv[2])
    ints = np.arange(n)
    source = podline.ArrowTableSource(
        pa.table({"k": ints, "a": ints, "b": ints * 2}), tag_columns=["k"], source_id="s"
    )
    store = open_store(config)
    with Pipeline("bench", store) as pipeline:
        add.pod(source)
    started = time.perf_counter()
    result = pipeline.run(observer=NoOpObserver())
    seconds = time.perf_counter() - started
    store.close()
    print(json.dumps({"seconds": seconds, "computed": result.counts["add"].computed}))
    """
)


def rerun_job(script: Path, config: str, n: int) -> dict[str, float]:
    """Run ``JOB`` (written to ``script``) on the store ``config`` names with ``n`` rows, in a
    fresh process: its run's seconds and how many calls it computed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(script), config, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def run(quick: bool) -> None:
    from tests.services import S3Server, s3_server_command

    command = s3_server_command()
    if command is None:
        print("  skipped: no S3 server (set PODLINE_TEST_S3_SERVER to a moto_server)")
        return
    n, repeats = (2_000, 2) if quick else (100_000, 5)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        script = work / "job.py"
        script.write_text(JOB)
        server = S3Server(command, work / "s3.log")
        os.environ.update(server.credentials())
        try:
            s3_root, local_root = server.new_root(), str(work / "local")
            key = s3_root.removeprefix(f"s3://{server.bucket}/")
            from podline.stores import DeltaStore

            options = server.storage_options()
            s3_config = DeltaStore(s3_root, storage_options=options).to_config()
            for config in (s3_config, local_root):
                assert rerun_job(script, config, n)["computed"] == n
            times: dict[str, list[float]] = {"s3": [], "local": []}
            requests: list[int] = []
            for _ in range(repeats):  # interleaved, so both see the same machine load
                before = server.requests(key)
                times["s3"].append(rerun_job(script, s3_config, n)["seconds"])
                requests.append(server.requests(key) - before)
                times["local"].append(rerun_job(script, local_root, n)["seconds"])
        finally:
            server.stop()
    s3, local = (statistics.median(times[k]) for k in ("s3", "local"))
    print(f"  cached re-run of {n:,} rows, {repeats} runs each, fresh processes:")
    for name in ("s3", "local"):
        median, low, high = statistics.median(times[name]), min(times[name]), max(times[name])
        span = f"{low * 1e3:.1f}-{high * 1e3:.1f}"
        print(f"    {name:5} median {median * 1e3:7.1f} ms (range {span})")
    print(f"    S3 / local: {s3 / local:.2f}x; S3 requests per re-run: {sorted(set(requests))}")
