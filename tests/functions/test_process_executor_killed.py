"""A process running a pipeline on a ``ProcessExecutor``, killed with SIGKILL, leaves no process
behind: its workers, forkserver and resource tracker end, and let go of its stdout and stderr."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

JOB = textwrap.dedent(
    """
    import os, sys, time
    import podline
    from podline import ProcessExecutor, function_pod
    from podline.stores import MemoryStore

    if sys.argv[2] == "polling":  # at import, so the forkserver and its workers lack it too
        del os.pidfd_open

    CALLS = sys.argv[1]  # shipped with the function, which reads it

    @function_pod("y", live_output=False)
    def slow(x: int) -> int:
        time.sleep(0.02)
        with open(CALLS, "a") as calls:
            calls.write(f"{time.time()}\\n")
        return x

    if __name__ == "__main__":
        source = podline.DictSource([{"k": i, "x": i} for i in range(5000)], tag_columns=["k"])
        with podline.Pipeline("killed", MemoryStore(), observe=False) as pipeline:
            slow.pod(source)
        with ProcessExecutor(max_workers=2) as executor:
            pipeline.run(executor=executor)
    """
)


def _marked(marker: str) -> list[int]:
    """The running processes whose environment holds ``marker`` (zombies have none)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker.encode() in environ.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


def _read_to_eof(pipes: list[int], deadline: float) -> bool:
    """Read ``pipes`` until each reaches end of file (True) or the deadline passes (False)."""
    open_pipes = list(pipes)
    while open_pipes:
        ready, _, _ = select.select(open_pipes, [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        open_pipes = [fd for fd in open_pipes if fd not in ready or os.read(fd, 65536)]
    return True


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")
@pytest.mark.parametrize("watch", ["pidfd", "polling"])
def test_a_killed_run_leaves_no_process_and_no_open_pipe(tmp_path: Path, watch: str) -> None:
    calls = tmp_path / "calls.log"
    script = tmp_path / "job.py"
    script.write_text(JOB)
    marker = f"PODLINE_KILLED_RUN={uuid.uuid4().hex}"
    name, _, value = marker.partition("=")
    process = subprocess.Popen(
        [sys.executable, str(script), str(calls), watch],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, name: value, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        deadline = time.monotonic() + 60
        while not (calls.exists() and len(calls.read_text().splitlines()) >= 20):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.05)
        # The run, the resource tracker, the forkserver and at least one worker.
        assert len(_marked(marker)) >= 4
        process.kill()
        process.wait()
        killed = time.monotonic()

        pipes_closed = _read_to_eof([process.stdout.fileno(), process.stderr.fileno()], killed + 5)
        while (left := _marked(marker)) and time.monotonic() < killed + 5:
            time.sleep(0.05)
        assert left == []
        assert pipes_closed
    finally:
        for pid in _marked(marker):  # what a failure left behind, by pid
            os.kill(pid, signal.SIGKILL)
        process.stdout.close()
        process.stderr.close()
