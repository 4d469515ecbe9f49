"""Processes that imported podline exit with the status their work deserves
(``podline.shutdown``), even when delta-rs and Arrow worked until their last line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from podline.shutdown import settle_native_threads

# A process that imported podline and, last of all, reads a Delta table with delta-rs (what a
# user checking results does): the read leaves Arrow's threads releasing buffers of
# delta-rs's Python file system while the interpreter shuts down.
_JOB = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    import podline
    from deltalake import DeltaTable, write_deltalake

    rows = pa.table({"k": list(range(1000)), "s": [str(i) for i in range(1000)]})
    for part in range(5):
        write_deltalake(sys.argv[1], rows, mode="append")
    assert DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows == 5000
    """
)
_BURN = "import time\nend = time.time() + 120\nwhile time.time() < end:\n    pass\n"


@pytest.mark.slow
def test_processes_exit_cleanly_under_load(tmp_path: Path) -> None:
    """Fresh processes, four at a time, while others keep every core busy. Without the exit
    hook a quarter of them aborted (exit status 134) after finishing their work: 12 of 44 on
    a loaded two-core machine, against none of 76 with it."""
    job = tmp_path / "job.py"
    job.write_text(_JOB)
    burners = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(os.cpu_count() or 2)]
    statuses: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 90  # bounded, whatever the machine
        while len(statuses) < 16 and time.monotonic() < deadline:
            wave = [
                subprocess.Popen(
                    [sys.executable, str(job), str(tmp_path / f"t{len(statuses)}-{i}")],
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(4)
            ]
            for process in wave:
                _, err = process.communicate(timeout=120)
                statuses.append((process.returncode, err[-300:]))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert len(statuses) >= 8
    assert [s for s in statuses if s[0] != 0] == []


def test_settling_returns_at_once_when_nothing_runs() -> None:
    start = time.monotonic()
    assert settle_native_threads(limit=5)
    assert time.monotonic() - start < 1
