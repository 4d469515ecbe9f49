"""The ``Executor`` protocol: where function calls run. Executors never change results.

An executor takes one function, the arguments of many calls and a ``CallPolicy``, runs every
call with output capture (see ``capture``), and yields ``(index, outcome)`` for each call **as
it finishes**, in whatever order the calls finish: a caller commits finished work as it comes
(a crash or Ctrl-C then loses only calls that had not finished) and reports progress as calls
end. A call that raises yields an outcome holding the exception; the executor itself raises
only for its own failures. ``in_input_order`` collects the outcomes of a whole execution.

Closing the iterator early (the caller was interrupted, or a run was cancelled) cancels the
calls that have not started. Calls already running in this process cannot be stopped: closing
waits for them (async calls are cancelled), and their outcomes are dropped.

A caller that may have to stop before the next call finishes (a cancelled run) runs the
iterator inside ``stopping(event)``: executors that wait on other processes or machines
(``ProcessExecutor``, ``RayExecutor``) check ``stop_requested()`` while they wait, and raise
``RunCancelledError``, cancelling their calls in flight, once the event is set. A ``Halt``
(a fail-fast execution's first failure) stops them more gently: no call starts, or is sent
to a worker, once it is set, and the calls already started or sent are waited for and
handed over (``draining()``), since they run anyway and their results are worth keeping.

``async def`` functions are awaited; every executor accepts both kinds.
"""

from __future__ import annotations

import inspect
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from podline.executors.capture import CallArguments, CallOutcome, run_captured, run_captured_async
from podline.executors.policy import CallPolicy
from podline.runtime import Beside, paused_gc

__all__ = [
    "DEFAULT_POLICY",
    "Calls",
    "Executor",
    "Finished",
    "Halt",
    "draining",
    "in_input_order",
    "is_async_function",
    "run_sequentially",
    "stop_event",
    "stop_requested",
    "stopping",
    "stream_async",
]

#: Calls run between two chances for the cyclic garbage collector (see ``run_sequentially``).
GC_CHUNK = 4096

#: The policy of calls run without one: output echoed live, kept up to the default limit.
DEFAULT_POLICY = CallPolicy()

#: One finished call: its position among the arguments, and its outcome.
Finished = tuple[int, CallOutcome]
#: What ``Executor.execute`` returns: a generator of finished calls. Closing it early (the
#: caller was interrupted) cancels the calls that have not started.
Calls = Generator[Finished, None, None]

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Runs calls of one function and yields their outcomes as they finish.

    ``max_workers`` says how many calls it runs at once (1 for one after another):
    orchestrators size the pieces of input they hand it from that.
    """

    max_workers: int

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        policy: CallPolicy = DEFAULT_POLICY,
    ) -> Calls:
        """Call ``fn`` once per item of ``arguments`` (a dict of keyword arguments or a tuple
        of positional ones) under ``policy``; yield ``(index, outcome)`` for every call as it
        finishes, in any order (see the module docs)."""
        ...


_stop: ContextVar[threading.Event | None] = ContextVar("podline_stop", default=None)


@contextmanager
def stopping(event: threading.Event | None) -> Iterator[None]:
    """Executors iterated inside this block stop waiting once ``event`` is set."""
    token = _stop.set(event)
    try:
        yield
    finally:
        _stop.reset(token)


def stop_event() -> threading.Event | None:
    """The event the caller iterating this execution stops it with, if any (see ``stopping``).
    Read it where the iteration runs, e.g. at the start of a generator's body."""
    return _stop.get()


def stop_requested() -> bool:
    """Whether the caller iterating this execution asked it to stop (see ``stopping``)."""
    event = _stop.get()
    return event is not None and event.is_set()


class Halt(threading.Event):
    """A stop that lets the calls in flight finish (see the module docs): set by
    ``halt()``, or by ``outer`` (the run's own stop: a cancel, Ctrl-C), which wins: then
    it is a plain stop and the calls in flight are dropped."""

    def __init__(self, outer: threading.Event | None) -> None:
        super().__init__()
        self._outer = outer

    def halt(self) -> None:
        self.set()

    def is_set(self) -> bool:
        return super().is_set() or (self._outer is not None and self._outer.is_set())

    @property
    def drains(self) -> bool:
        """Whether it was halted (not stopped by ``outer``): calls in flight finish."""
        return super().is_set() and not (self._outer is not None and self._outer.is_set())


def draining(event: threading.Event | None = None) -> bool:
    """Whether the stop of this execution (``event``, else the one of ``stopping``) asks for
    the calls in flight to finish and be handed over rather than dropped."""
    event = _stop.get() if event is None else event
    return isinstance(event, Halt) and event.drains


def in_input_order(finished: Iterable[Finished], n: int) -> list[CallOutcome]:
    """The outcomes of ``n`` calls from an executor, in input order."""
    outcomes: list[CallOutcome | None] = [None] * n
    for index, outcome in finished:
        outcomes[index] = outcome
    missing = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if missing:
        raise RuntimeError(f"the executor reported no outcome for call(s) {missing[:10]}")
    return cast(list[CallOutcome], outcomes)


def is_async_function(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions (and callables wrapping one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async __call__ counts too
    )


def run_sequentially(
    fn: Callable[..., Any], arguments: Sequence[CallArguments], *, policy: CallPolicy
) -> Calls:
    """Run the calls one after another in this thread (async functions on a helper loop)."""
    if is_async_function(fn):
        yield from stream_async(fn, arguments, policy=policy, concurrency=1)
        return
    stop = stop_event()
    for start in range(0, len(arguments), GC_CHUNK):
        with paused_gc():
            for index in range(start, min(start + GC_CHUNK, len(arguments))):
                if stop is not None and stop.is_set():
                    return  # a stopped run starts no call
                yield index, run_captured(fn, arguments[index], policy=policy)


_DONE = object()
_STOPPED = object()


def _next(results: queue.SimpleQueue[Any], stop: threading.Event | None) -> Any:
    """The next queued item, or ``_STOPPED`` once ``stop`` is set. Waits in short steps: a
    blocking get() would not let Ctrl-C through until an item came. (A separate function on
    purpose: on CPython 3.11 and 3.12, a KeyboardInterrupt raised at a ``continue`` in an
    ``except`` clause of a generator skips the generator's ``finally``, which cancels the
    calls.)"""
    while True:
        if stop is not None and stop.is_set():
            return _STOPPED
        try:
            return results.get(timeout=0.05)
        except queue.Empty:
            continue


def stream_async(
    fn: Callable[..., Any],
    arguments: Sequence[CallArguments],
    *,
    policy: CallPolicy,
    concurrency: int,
) -> Calls:
    """Await the calls of an ``async def`` function on an event loop of their own, in a
    helper thread (so this works inside a running loop, as in Jupyter), at most
    ``concurrency`` at a time, yielding each outcome as it comes. Closing the iterator
    (Ctrl-C in the caller) cancels the calls in flight and waits for them to unwind."""
    import asyncio

    results: queue.SimpleQueue[Any] = queue.SimpleQueue()
    shared = Beside()
    stop = stop_event()

    async def main() -> None:
        shared.loop = asyncio.get_running_loop()
        shared.task = asyncio.current_task()
        shared.ready.set()
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with limit:
                if stop is not None and stop.is_set():
                    return  # a stopped run starts no call, whether or not its caller is waiting
                results.put((index, await run_captured_async(fn, arguments[index], policy=policy)))

        async with asyncio.TaskGroup() as tasks:
            for index in range(len(arguments)):
                tasks.create_task(one(index))

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread below
            shared.error = exc
        finally:
            shared.ready.set()
            results.put(_DONE)

    threading.Thread(target=target, name="podline-async", daemon=True).start()
    finished = cancelled = False
    try:
        drained = False
        while (item := _next(results, None if cancelled or drained else stop)) is not _DONE:
            if item is _STOPPED and draining(stop):
                drained = True  # no call starts any more; the ones awaited finish
            elif item is _STOPPED:
                # A stopped run: cancel the calls in flight, then hand over every call that
                # finished meanwhile (their results are queued) before ending.
                shared.cancel()
                cancelled = True
            else:
                yield item
        finished = True
    finally:
        if not finished:
            shared.cancel()
    if shared.error is not None and not isinstance(shared.error, asyncio.CancelledError):
        raise shared.error
