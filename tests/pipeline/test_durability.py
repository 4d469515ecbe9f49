"""Finished work survives: SIGKILL loses at most the last durability window, Ctrl-C loses none.

Each trial runs a pipeline of a slow function in a child process, stops it at a random moment
(a real SIGKILL or SIGINT), then runs it again and compares what the second run computed with
what the first had finished. The child logs every finished call with its end time, so the test
knows exactly which calls finished before the signal. Results are read back through delta-rs
to check that no row is lost or stored twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

N = 1500
CALL_SECONDS = 0.002
COMMIT_SECONDS = 1.0

JOB = textwrap.dedent(
    """
    import json, os, sys, time
    import podline
    from podline import function_pod
    from podline.pipeline import Pipeline
    from podline.stores import DeltaStore

    root, log_path, orchestrator = sys.argv[1], sys.argv[2], sys.argv[3]
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    finished = []

    @function_pod("y", live_output=False)
    def slow(a: int) -> int:
        time.sleep({call_seconds})
        # One write per finished call: what the parent reads after killing us.
        os.write(log, f"{{a}} {{time.time()}}\\n".encode())
        finished.append(a)
        return a * a

    rows = [{{"id": i, "a": i}} for i in range({n})]
    with Pipeline("durable", DeltaStore(root)) as pipeline:
        slow.pod(podline.DictSource(rows, tag_columns=["id"], source_id="numbers"))
    os.write(log, b"start\\n")
    try:
        result = pipeline.run(orchestrator=orchestrator, commit_seconds={commit})
    except KeyboardInterrupt:
        print(json.dumps({{"interrupted": True, "finished": finished}}))
        sys.exit(130)
    counts = result.counts["slow"]
    print(json.dumps({{"computed": finished, "cached": counts.cached, "rows": counts.rows}}))
    """
)


def _start(tmp_path: Path, orchestrator: str, log: Path) -> subprocess.Popen[str]:
    script = tmp_path / "job.py"
    script.write_text(JOB.format(n=N, call_seconds=CALL_SECONDS, commit=COMMIT_SECONDS))
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "store"), str(log), orchestrator],
        stdout=subprocess.PIPE,
        text=True,
    )


def _finished(log: Path) -> dict[int, float]:
    """The calls the child finished, with their end times."""
    ends: dict[int, float] = {}
    for line in log.read_text().splitlines():
        if line != "start" and line.count(" ") == 1:
            a, at = line.split()
            ends[int(a)] = float(at)
    return ends


def _wait_for_start(log: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and "start" in log.read_text():
            return
        time.sleep(0.02)
    raise AssertionError("the child never started its run")


def _stored_results(root: Path) -> list[str]:
    """Record ids of the function's memo, read by delta-rs."""
    tables = [p for p in (root / "results").rglob("*.delta") if (p / "_delta_log").exists()]
    assert len(tables) == 1
    return (
        DeltaTable(str(tables[0])).to_pyarrow_table(columns=["__record_id"]).column(0).to_pylist()
    )


def _interrupt(tmp_path: Path, orchestrator: str, sig: signal.Signals, after: float) -> dict:
    log = tmp_path / "first.log"
    process = _start(tmp_path, orchestrator, log)
    _wait_for_start(log, process)
    time.sleep(after)
    assert process.poll() is None, "the run ended before the signal"
    stopped_at = time.time()
    process.send_signal(sig)
    out, _ = process.communicate(timeout=60)
    finished = _finished(log)
    rerun_log = tmp_path / "second.log"
    second = _start(tmp_path, orchestrator, rerun_log)
    summary = json.loads(second.communicate(timeout=120)[0].strip().splitlines()[-1])
    assert second.returncode == 0
    recomputed = set(summary["computed"])
    assert summary["rows"] == N
    assert summary["cached"] + len(recomputed) == N
    ids = _stored_results(tmp_path / "store")
    assert len(ids) == len(set(ids)) == N  # every result stored, none twice
    return {
        "out": out,
        "returncode": process.returncode,
        "finished": finished,
        "stopped_at": stopped_at,
        "lost": sorted(a for a in finished if a in recomputed),
    }


@pytest.mark.slow
@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_sigkill_loses_at_most_the_last_window(tmp_path: Path, orchestrator: str) -> None:
    after = random.uniform(1.2, 2.2)
    trial = _interrupt(tmp_path, orchestrator, signal.SIGKILL, after)
    assert trial["returncode"] == -signal.SIGKILL
    finished, lost = trial["finished"], trial["lost"]
    assert len(finished) > COMMIT_SECONDS / CALL_SECONDS / 4  # the trial means something
    # Every call lost finished within the last window before the kill (plus the time a
    # commit itself takes on a loaded machine).
    oldest_lost = min((finished[a] for a in lost), default=trial["stopped_at"])
    assert oldest_lost >= trial["stopped_at"] - COMMIT_SECONDS - 0.5, (
        f"{len(lost)} of {len(finished)} finished calls were lost, the oldest "
        f"{trial['stopped_at'] - oldest_lost:.2f} s before the kill"
    )


@pytest.mark.slow
@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_ctrl_c_commits_every_finished_call(tmp_path: Path, orchestrator: str) -> None:
    after = random.uniform(0.3, 2.0)
    trial = _interrupt(tmp_path, orchestrator, signal.SIGINT, after)
    assert trial["returncode"] == 130
    report = json.loads(trial["out"].strip().splitlines()[-1])
    assert report["interrupted"]
    assert len(report["finished"]) > 0
    # A call whose function returned while Ctrl-C landed in podline's own bookkeeping of it
    # may be recomputed; any other finished call must not be.
    assert len(trial["lost"]) <= 1, trial["lost"]


def test_a_run_commits_while_calls_are_still_running(tmp_path: Path) -> None:
    """Without any crash: results appear in the store, for another reader, within the
    window, long before the run ends."""
    log = tmp_path / "first.log"
    process = _start(tmp_path, "sync", log)
    try:
        _wait_for_start(log, process)
        deadline = time.monotonic() + 30
        seen = 0
        while time.monotonic() < deadline and process.poll() is None and not seen:
            try:
                seen = len(_stored_results(tmp_path / "store"))
            except (AssertionError, OSError, ValueError):
                seen = 0  # not created yet
            time.sleep(0.05)
        running = process.poll() is None
    finally:
        process.kill()
        process.wait()
    assert seen > 0, "no result was committed while the run went on"
    assert running
    assert seen < N


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_ctrl_c_inside_a_call_does_not_swallow_later_output(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import podline
    from podline import function_pod

    @function_pod("y", live_output=False)
    def interrupted(a: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted.execute(podline.DictSource([{"id": 1, "a": 1}], tag_columns=["id"]))
    print("after the interrupt")
    assert "after the interrupt" in capfd.readouterr().out


def test_observers_hear_of_calls_as_they_finish() -> None:
    """A batch of slow calls is reported in windows, not all at once at its end."""
    import podline
    from podline import function_pod
    from podline.pipeline import Observer, Pipeline
    from podline.stores import MemoryStore

    @function_pod("y", live_output=False)
    def slow(a: int) -> int:
        time.sleep(0.005)
        return a

    ends: list[tuple[float, int]] = []

    class Watch(Observer):
        def on_packets_end(self, *, batch: object, **kwargs: object) -> None:
            ends.append((time.time(), len(batch)))  # type: ignore[arg-type]

    rows = [{"id": i, "a": i} for i in range(300)]
    with Pipeline("progress", MemoryStore(), observe=False) as pipeline:
        slow.pod(podline.DictSource(rows, tag_columns=["id"]))
    pipeline.run(observer=Watch())
    finished = time.time()
    assert sum(n for _, n in ends) == 300
    assert len(ends) >= 2, ends
    assert ends[0][0] < finished - 0.4  # the first calls were reported while others ran
