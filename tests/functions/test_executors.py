"""Executors: identical outcomes in input order, async support, isolated output capture."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from podline.errors import RemoteCallError
from podline.executors import (
    CallOutcome,
    CallPolicy,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    ThreadExecutor,
    in_input_order,
)
from podline.executors.base import stopping
from podline.executors.capture import CallArguments, run_captured

QUIET = CallPolicy(live=False)


def run(
    executor: Executor, fn: Callable[..., Any], arguments: list[CallArguments], *, live: bool
) -> list[CallOutcome]:
    """Every outcome of an execution, in input order."""
    finished = executor.execute(fn, arguments, policy=CallPolicy(live=live))
    return in_input_order(finished, len(arguments))


def square(x: int) -> int:
    # Random sleeps make threads finish out of order; results must not.
    time.sleep(random.random() / 500)
    return x * x


async def square_async(x: int) -> int:
    await asyncio.sleep(random.random() / 500)
    return x * x


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


class UnpicklableError(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.lock = threading.Lock()


def raises_unpicklable(x: int) -> int:
    raise UnpicklableError()


@pytest.fixture(scope="module")
def process_executor() -> Any:
    with ProcessExecutor(max_workers=2) as executor:
        yield executor


def executors(process_executor: ProcessExecutor) -> list[Executor]:
    return [LocalExecutor(), ThreadExecutor(4), process_executor]


ARGS = [{"x": i} for i in range(40)]


def values(outcomes: list[CallOutcome]) -> list[Any]:
    return [o.value for o in outcomes]


def test_executors_satisfy_the_protocol(process_executor: ProcessExecutor) -> None:
    for executor in executors(process_executor):
        assert isinstance(executor, Executor)


@pytest.mark.parametrize("fn", [square, square_async], ids=["sync", "async"])
def test_same_outcomes_in_input_order(process_executor: ProcessExecutor, fn: Any) -> None:
    expected = [i * i for i in range(40)]
    for executor in executors(process_executor):
        outcomes = run(executor, fn, ARGS, live=False)
        assert values(outcomes) == expected, executor
        assert all(o.error is None and o.capture.succeeded for o in outcomes)


def test_failures_are_outcomes_not_exceptions(process_executor: ProcessExecutor) -> None:
    for executor in executors(process_executor):
        outcomes = run(executor, fails_on_three, [{"x": i} for i in range(5)], live=False)
        assert [o.value for o in outcomes] == [0, 1, 2, None, 4]
        failed = outcomes[3]
        assert isinstance(failed.error, ValueError)
        assert failed.capture.error_type == "ValueError"
        assert failed.capture.error_message == "bad input 3"
        assert "Traceback" in (failed.capture.traceback or "")
        assert "fails_on_three" in (failed.capture.traceback or "")


def test_unpicklable_exceptions_come_back_as_remote_errors(
    process_executor: ProcessExecutor,
) -> None:
    (outcome,) = run(process_executor, raises_unpicklable, [{"x": 1}], live=False)
    assert isinstance(outcome.error, RemoteCallError)
    assert "UnpicklableError" in str(outcome.error)


def test_process_executor_ships_closures(process_executor: ProcessExecutor) -> None:
    offset = 10
    outcomes = run(process_executor, lambda x: x + offset, ARGS[:5], live=False)
    assert values(outcomes) == [10, 11, 12, 13, 14]
    assert run(process_executor, square, [], live=False) == []


def test_async_functions_run_concurrently_on_threads() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0.05)
        return x

    start = time.perf_counter()
    outcomes = run(ThreadExecutor(20), slow, [{"x": i} for i in range(20)], live=False)
    elapsed = time.perf_counter() - start
    assert values(outcomes) == list(range(20))
    assert elapsed < 0.5  # 20 x 50 ms sequentially would take a second


def test_async_works_inside_a_running_event_loop() -> None:
    async def main() -> list[Any]:
        return values(run(LocalExecutor(), square_async, ARGS[:3], live=False))

    assert asyncio.run(main()) == [0, 1, 4]


def noisy(x: int) -> int:
    for _ in range(20):
        print(f"out-{x}")
        print(f"err-{x}", file=sys.stderr)
        logging.getLogger("podline.test").warning("log-%s", x)
        time.sleep(random.random() / 2000)
    return x


async def noisy_async(x: int) -> int:
    for _ in range(20):
        print(f"out-{x}")
        logging.getLogger("podline.test").warning("log-%s", x)
        await asyncio.sleep(random.random() / 2000)
    return x


def assert_isolated(outcomes: list[CallOutcome], *, stderr: bool = True) -> None:
    for i, outcome in enumerate(outcomes):
        capture = outcome.capture
        assert capture.stdout == f"out-{i}\n" * 20
        if stderr:
            assert capture.stderr == f"err-{i}\n" * 20
        assert [entry.message for entry in capture.logs] == [f"log-{i}"] * 20
        assert {entry.level for entry in capture.logs} == {"WARNING"}


def test_captures_stay_isolated_across_threads() -> None:
    outcomes = run(ThreadExecutor(8), noisy, [{"x": i} for i in range(16)], live=False)
    assert_isolated(outcomes)


def test_captures_stay_isolated_across_asyncio_tasks() -> None:
    outcomes = run(ThreadExecutor(8), noisy_async, [{"x": i} for i in range(16)], live=False)
    assert_isolated(outcomes, stderr=False)


def test_captures_come_back_from_processes(process_executor: ProcessExecutor) -> None:
    outcomes = run(process_executor, noisy, [{"x": i} for i in range(4)], live=False)
    assert_isolated(outcomes)


def test_timing_is_recorded() -> None:
    def nap() -> None:
        time.sleep(0.02)

    (outcome,) = run(LocalExecutor(), nap, [{}], live=False)
    capture = outcome.capture
    assert capture.end >= capture.start + 0.015
    assert capture.duration == pytest.approx(capture.end - capture.start)


def test_live_output_is_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    def talk() -> int:
        print("hello live")
        return 1

    run(LocalExecutor(), talk, [{}], live=True)
    run(LocalExecutor(), lambda: print("hello quiet"), [{}], live=False)
    out = capsys.readouterr().out
    assert "hello live" in out
    assert "hello quiet" not in out


def test_output_outside_calls_is_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    run_captured(lambda: print("inside"), {}, policy=QUIET)
    print("outside")
    assert capsys.readouterr().out == "outside\n"


def test_invalid_worker_counts() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        ThreadExecutor(0)
    with pytest.raises(ValueError, match="max_workers"):
        ProcessExecutor(0)


def test_unconfigured_logging_still_reaches_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = [h for h in root.handlers if type(h).__name__ != "_LogRouter"]
    for handler in saved:
        root.removeHandler(handler)
    try:
        run_captured(lambda: None, {}, policy=QUIET)  # installs podline's router
        logging.getLogger("podline.test.unconfigured").warning("plain warning")
        assert "plain warning" in capsys.readouterr().err
    finally:
        for handler in saved:
            root.addHandler(handler)


def test_positional_and_keyword_arguments(process_executor: ProcessExecutor) -> None:
    def minus(a: int, b: int) -> int:
        return a - b

    for executor in (LocalExecutor(), ThreadExecutor(2), process_executor):
        outcomes = run(executor, minus, [(5, 2), {"b": 2, "a": 5}], live=False)
        assert values(outcomes) == [3, 3]


def _prints(text: str) -> None:
    print(text, end="")


def _logs() -> None:
    logging.getLogger("podline.test").warning("careful")


def _raises() -> None:
    raise ValueError("")


@pytest.mark.parametrize(
    ("fn", "args", "quiet"),
    [
        (_prints, ("",), True),  # printing nothing tells nothing
        (_prints, ("x",), False),
        (_logs, (), False),
        (_raises, (), False),
        (lambda: None, (), True),
    ],
)
def test_a_capture_is_quiet_unless_the_call_printed_logged_or_raised(
    process_executor: ProcessExecutor, fn: Any, args: tuple[Any, ...], quiet: bool
) -> None:
    local = run_captured(fn, args, policy=QUIET).capture
    assert (local.quiet, local.told) == (quiet, not quiet)
    if fn.__name__ != "<lambda>":  # and the flag survives the trip back from a worker
        (outcome,) = run(process_executor, fn, [args], live=False)
        assert outcome.capture.quiet == quiet


def test_ctrl_c_inside_a_running_loop_cancels_async_calls(
    ctrl_c_in_a_notebook: Callable[..., float],
) -> None:
    """In a notebook, async calls run on a loop beside the kernel's: Ctrl-C must cancel
    them, not leave them running."""
    finished: list[int] = []

    async def nap(x: int) -> int:
        await asyncio.sleep(0.5)
        finished.append(x)
        return x

    async def cell() -> None:
        run(ThreadExecutor(4), nap, [{"x": i} for i in range(8)], live=False)

    assert ctrl_c_in_a_notebook(cell, 0.1) < 0.45
    time.sleep(0.6)
    assert finished == []  # cancelled, not finishing in the background


_FINISHED: list[int] = []


async def _quick_async(i: int) -> int:
    await asyncio.sleep(0.02)
    _FINISHED.append(i)
    return i


def _quick_sync(i: int) -> int:
    time.sleep(0.02)
    _FINISHED.append(i)
    return i


@pytest.mark.parametrize(
    ("executor", "fn"),
    [
        (LocalExecutor(), _quick_sync),
        (LocalExecutor(), _quick_async),
        (ThreadExecutor(4), _quick_sync),
        (ThreadExecutor(4), _quick_async),
    ],
    ids=["local", "local-async", "threads", "threads-async"],
)
def test_a_stopped_execution_hands_over_every_finished_call_and_starts_no_more(
    executor: Any, fn: Callable[[int], int]
) -> None:
    # The caller stops, then is slow to take what comes (a loaded machine): the calls that
    # finished meanwhile must still be handed over, or a cancelled run would drop them.
    _FINISHED.clear()
    stop = threading.Event()
    taken: list[int] = []
    with stopping(stop):
        calls = executor.execute(fn, [(i,) for i in range(200)], policy=QUIET)
        for index, _ in calls:
            taken.append(index)
            if len(taken) == 3:
                stop.set()
                time.sleep(0.3)
    time.sleep(0.1)  # anything still running would finish now
    assert sorted(taken) == sorted(_FINISHED)
    assert len(_FINISHED) < 40  # no call started once the stop was seen


@pytest.mark.parametrize("moment", ["_begin", "_finish"])
def test_ctrl_c_around_a_call_leaves_no_capture_behind(
    moment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C right after the capture became current (before the call) or right after the
    # call returned (before its end): what the caller prints next is not the call's (with
    # live echo off, a capture left current swallowed it).
    from podline.executors import CallPolicy, capture

    real = getattr(capture, moment)

    def interrupted(*args: Any) -> Any:
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(capture, moment, interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_captured(lambda: print("inside"), (), policy=CallPolicy(live=False))
    print("the caller's report")
    assert "the caller's report" in capsys.readouterr().out


def test_router_forwards_what_a_kernel_stream_offers(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Jupyter kernel calls sys.stdout.set_parent(message) before each cell, so that the
    # cell's output is shown under it. Once podline's router stood in for the kernel's stream
    # it had no set_parent: everything printed after a run went to the cell of that run.
    import io
    import sys

    from podline.executors import capture

    class KernelStream(io.StringIO):
        parent: object = None

        def set_parent(self, parent: object) -> None:
            self.parent = parent

    stream = KernelStream()
    monkeypatch.setattr(sys, "stdout", stream)
    capture._install()
    assert sys.stdout is not stream  # the router stands in for it
    sys.stdout.set_parent("cell 2")  # type: ignore[attr-defined]
    assert stream.parent == "cell 2"
    print("shown under cell 2")
    assert stream.getvalue() == "shown under cell 2\n"
    with pytest.raises(AttributeError):
        sys.stdout.no_such_attribute  # type: ignore[attr-defined]
