"""A pipeline process killed with SIGKILL resumes without recomputing what it persisted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from podline.stores import DeltaStore

N = 4 * 8192

JOB = textwrap.dedent(
    """
    import json, sys, time
    import podline
    from podline import function_pod
    from podline.pipeline import Pipeline
    from podline.stores import DeltaStore

    calls = 0

    @function_pod("y", live_output=False)
    def slow_square(a: int) -> int:
        global calls
        calls += 1
        time.sleep(0.00015)
        return a * a

    rows = [{{"id": i, "a": i}} for i in range({n})]
    store = DeltaStore({root!r}, flush_rows=1000)
    with Pipeline("killed", store) as pipeline:
        slow_square.pod(podline.DictSource(rows, tag_columns=["id"], source_id="numbers"))
    result = pipeline.run()
    counts = result.counts["slow_square"]
    rows = len(pipeline.slow_square)
    print(json.dumps({{"calls": calls, "cached": counts.cached, "rows": rows}}))
    """
)


def _stored_results(root: Path) -> int:
    tables = [p for p in (root / "results").rglob("*.delta") if (p / "_delta_log").exists()]
    return sum(DeltaTable(str(t)).to_pyarrow_table().num_rows for t in tables)


@pytest.mark.slow
def test_sigkill_mid_run_resumes_without_recomputing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    script = tmp_path / "job.py"
    script.write_text(JOB.format(n=N, root=str(root)))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 120
    persisted = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            persisted = _stored_results(root)
        except Exception:  # the table may be mid-creation; look again
            persisted = 0
        if persisted >= 8192:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the job finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    persisted = _stored_results(root)
    assert 0 < persisted < N
    # podline reads every table as delta-rs does; the kill left at most what no reader sees.
    report = DeltaStore(root).verify()
    assert report.ok, report
    killed = {"unreferenced-file", "temporary-file", "half-created"}
    assert {f.kind for f in report.leftovers} <= killed, report

    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True
    ).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rows"] == N
    assert summary["calls"] == N - persisted  # nothing persisted was computed again
    assert summary["cached"] == persisted
    assert _stored_results(root) == N  # and nothing was stored twice
    assert DeltaStore(root).verify().ok
