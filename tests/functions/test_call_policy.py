"""How calls run, whatever the executor: time limits, retries, bounded captured output, and a
call that kills its worker process failing alone."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import podline
from podline import function_pod
from podline.errors import FunctionDefinitionError, WorkerCrashedError
from podline.executors import (
    CallOutcome,
    CallPolicy,
    CallTimeoutError,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    ThreadExecutor,
    in_input_order,
)
from podline.functions import RowStatus
from podline.pipeline import Pipeline
from podline.stores import DeltaStore, MemoryStore


def run(executor: Executor, fn: Callable[..., Any], n: int, policy: CallPolicy) -> list[Any]:
    arguments = [(i,) for i in range(n)]
    return in_input_order(executor.execute(fn, arguments, policy=policy), n)


def numbers(n: int) -> podline.Source:
    return podline.DictSource([{"id": i, "a": i} for i in range(n)], tag_columns=["id"])


# --------------------------------------------------------------------------- time limits


def sleeps_on_one(a: int) -> int:
    if a == 1:
        time.sleep(30)
    return a


def spins_on_one(a: int) -> int:
    if a == 1:
        while True:  # pure Python: stoppable only between bytecodes
            pass
    return a


async def naps_on_one(a: int) -> int:
    if a == 1:
        await asyncio.sleep(30)
    return a


LIMITED = CallPolicy(live=False, timeout=0.3)


def _check_timed_out(outcomes: list[CallOutcome], took: float) -> None:
    assert took < 10, f"the late call was not stopped ({took:.1f} s)"
    assert [o.value for o in outcomes] == [0, None, 2]
    error = outcomes[1].error
    assert isinstance(error, CallTimeoutError)
    assert str(error) == "the call ran longer than its time limit of 0.3 s and was stopped"
    assert outcomes[1].capture.error_type == "CallTimeoutError"


@pytest.mark.parametrize(
    ("executor", "fn"),
    [
        (LocalExecutor(), sleeps_on_one),  # main thread: a timer signal stops the sleep
        (LocalExecutor(), spins_on_one),
        (ThreadExecutor(2), spins_on_one),  # other threads: the watchdog stops Python code
        (LocalExecutor(), naps_on_one),  # async: cancelled
        (ThreadExecutor(2), naps_on_one),
    ],
    ids=["local-sleep", "local-spin", "threads-spin", "local-async", "threads-async"],
)
def test_a_late_call_is_stopped_and_fails_alone(executor: Executor, fn: Any) -> None:
    started = time.perf_counter()
    outcomes = run(executor, fn, 3, LIMITED)
    _check_timed_out(outcomes, time.perf_counter() - started)


def test_a_late_call_off_the_main_thread_is_stopped() -> None:
    # The async orchestrator runs a node's calls on a worker thread: the watchdog applies.
    found: list[Any] = []
    worker = threading.Thread(
        target=lambda: found.append(run(LocalExecutor(), spins_on_one, 3, LIMITED))
    )
    started = time.perf_counter()
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    _check_timed_out(found[0], time.perf_counter() - started)


@pytest.mark.slow
def test_a_late_call_in_a_worker_process_is_stopped() -> None:
    with ProcessExecutor(2) as executor:
        started = time.perf_counter()
        outcomes = run(executor, sleeps_on_one, 3, LIMITED)
    _check_timed_out(outcomes, time.perf_counter() - started)


def test_timeouts_per_pod_and_per_run() -> None:
    slow = function_pod("y", live_output=False, timeout=0.3)(sleeps_on_one)
    result = slow.execute(numbers(3), on_error="continue")
    assert result.status == [RowStatus.COMPUTED, RowStatus.FAILED, RowStatus.COMPUTED]
    assert isinstance(result.errors[1].__cause__, CallTimeoutError)
    assert "tag {'id': 1}" in str(result.errors[1])

    unlimited = function_pod("y", live_output=False)(spins_on_one)
    with Pipeline("limits", MemoryStore()) as pipeline:
        unlimited.pod(numbers(3))
    started = time.perf_counter()
    counts = pipeline.run(timeout=0.3).counts["spins_on_one"]
    assert time.perf_counter() - started < 10
    assert (counts.computed, counts.failed) == (2, 1)
    status = pipeline.status(state="FAILED")
    assert status["error_type"].to_list() == ["CallTimeoutError"]


# --------------------------------------------------------------------------- retries

ATTEMPTS: dict[int, int] = {}


def flaky(a: int) -> int:
    ATTEMPTS[a] = ATTEMPTS.get(a, 0) + 1
    if a == 1 and ATTEMPTS[a] < 3:
        raise ConnectionError(f"attempt {ATTEMPTS[a]} lost the connection")
    if a == 2:
        raise ValueError("a bug, not flakiness")
    return a


@pytest.fixture(autouse=True)
def _forget_attempts() -> None:
    ATTEMPTS.clear()


def test_retries_with_backoff_for_chosen_errors_only() -> None:
    policy = CallPolicy(live=False, retries=2, retry_on=(ConnectionError,), backoff=0.05)
    started = time.perf_counter()
    outcomes = run(LocalExecutor(), flaky, 3, policy)
    took = time.perf_counter() - started
    assert [o.value for o in outcomes] == [0, 1, None]
    assert [o.capture.attempts for o in outcomes] == [1, 3, 1]
    assert ATTEMPTS == {0: 1, 1: 3, 2: 1}  # the ValueError was not retried
    assert took >= 0.05 + 0.1  # waited backoff, then twice as long
    assert "attempt 1 failed with ConnectionError" in outcomes[1].capture.stderr
    assert "retrying in 0.1 s" in outcomes[1].capture.stderr


def test_retries_run_out() -> None:
    policy = CallPolicy(live=False, retries=1, retry_on=(ConnectionError,), backoff=0)
    outcome = run(LocalExecutor(), flaky, 2, policy)[1]
    assert isinstance(outcome.error, ConnectionError)
    assert outcome.capture.attempts == 2


def test_attempts_are_recorded_in_status() -> None:
    retried = function_pod("y", live_output=False, retries=3, retry_on=ConnectionError, backoff=0)(
        flaky
    )
    with Pipeline("retries", MemoryStore()) as pipeline:
        retried.pod(numbers(3))
    pipeline.run()
    status = pipeline.status().sort("id")
    assert status["state"].to_list() == ["SUCCESS", "SUCCESS", "FAILED"]
    assert status["attempts"].to_list() == [1, 3, 1]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"timeout": 0}, "timeout must be positive"),
        ({"retries": -1}, "retries must be 0 or more"),
        ({"retry_on": ("OSError",)}, "retry_on takes exception classes"),
        ({"output_limit": -5}, "output_limit must be None or 0 or more"),
    ],
)
def test_policies_are_checked_when_made(options: dict[str, Any], words: str) -> None:
    with pytest.raises(FunctionDefinitionError, match=words):
        CallPolicy(**options)


# --------------------------------------------------------------------------- captured output


def chatty(a: int) -> int:
    for i in range(2000):
        print(f"line {i:04d} " + "x" * 990)  # 2,000 lines of 1,001 characters: 2 MB
    print("the end", file=sys.stderr)
    return a


def test_captured_output_keeps_a_bounded_head_and_tail() -> None:
    policy = CallPolicy(live=False, output_limit=10_000)
    (outcome,) = run(LocalExecutor(), chatty, 1, policy)
    stdout = outcome.capture.stdout
    assert stdout.startswith("line 0000 ")
    assert stdout.endswith("line 1999 " + "x" * 990 + "\n")
    head, marker, tail = stdout.partition("\n[podline: ")
    assert len(head) == 10_000
    assert len(tail.partition("]\n")[2]) == 10_000
    assert marker
    assert tail.startswith("1,982,000 characters of output dropped here]")
    assert outcome.capture.stderr == "the end\n"  # short output is kept whole
    whole = run(LocalExecutor(), chatty, 1, CallPolicy(live=False, output_limit=None))[0]
    assert len(whole.capture.stdout) == 2000 * 1001


def test_memory_does_not_grow_with_what_functions_print() -> None:
    tracemalloc.start()
    try:
        outcomes = run(LocalExecutor(), chatty, 30, CallPolicy(live=False))  # 60 MB printed
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(len(o.capture.stdout) < 70_000 for o in outcomes)
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_stored_logs_are_bounded(tmp_path: Path) -> None:
    pod = function_pod("y", live_output=False, output_limit=1000)(chatty)
    with Pipeline("chatty", DeltaStore(tmp_path / "store")) as pipeline:
        pod.pod(numbers(2))
    pipeline.run()
    logs = pipeline.logs()
    assert logs.height == 2
    assert all(len(text) < 2100 for text in logs["stdout"].to_list())


# --------------------------------------------------------------------------- dead workers


def aborts_on_57(a: int) -> int:
    if a == 57:
        os.abort()
    return a * 2


@pytest.mark.slow
def test_a_call_that_kills_its_worker_fails_alone(tmp_path: Path) -> None:
    pod = function_pod("y", live_output=False)(aborts_on_57)
    with ProcessExecutor(2) as executor:
        with Pipeline("aborts", DeltaStore(tmp_path / "store")) as pipeline:
            pod.pod(numbers(200))
        counts = pipeline.run(executor=executor).counts["aborts_on_57"]
        assert (counts.computed, counts.failed, counts.rows) == (199, 1, 199)
        status = pipeline.status()
        assert set(status["state"]) == {"SUCCESS", "FAILED"}  # nothing left RUNNING
        failed = status.filter(status["state"] == "FAILED").row(0, named=True)
        assert (failed["id"], failed["error_type"]) == (57, "WorkerCrashedError")
        assert "the worker process running this call died" in failed["error_message"]
        # A re-run retries the failed packet alone.
        again = pipeline.run(executor=executor).counts["aborts_on_57"]
        assert (again.computed, again.cached, again.failed) == (0, 199, 1)
    assert issubclass(WorkerCrashedError, podline.errors.RemoteCallError)
