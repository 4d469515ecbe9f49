"""The ``Executor`` protocol: where function calls run. Executors never change results.

An executor takes one function and the keyword arguments of many calls, runs every call with
output capture (see ``capture``), and returns one ``CallOutcome`` per call **in input order**,
whatever order the calls completed in. A call that raises yields an outcome holding the
exception; the executor itself raises only for its own failures.

``async def`` functions are awaited; every executor accepts both kinds.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from podline.executors.capture import CallArguments, CallOutcome, run_captured, run_captured_async

__all__ = ["Executor", "is_async_function", "paused_gc", "run_coroutine", "run_sequentially"]

#: Calls run between two chances for the cyclic garbage collector (see ``run_sequentially``).
GC_CHUNK = 4096

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Runs calls of one function and returns their outcomes in input order."""

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        live: bool = True,
    ) -> list[CallOutcome]:
        """Call ``fn`` once per item of ``arguments`` (a dict of keyword arguments or a tuple
        of positional ones); ``live`` echoes captured output as it happens."""
        ...


def is_async_function(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions (and callables wrapping one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an async __call__ counts too
    )


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop.

    In Jupyter (or any caller already inside an event loop) ``asyncio.run`` refuses to nest,
    so the coroutine runs on a fresh loop in a helper thread instead. Either way, Ctrl-C in
    the caller cancels the coroutine, waits for it to unwind, and is then raised.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # asyncio.run turns Ctrl-C into a cancellation of the coroutine, then re-raises it.
        return asyncio.run(coroutine)
    shared = _Beside()

    async def main() -> T:
        shared.loop = asyncio.get_running_loop()
        shared.task = asyncio.current_task()
        shared.ready.set()
        return await coroutine

    def target() -> None:
        try:
            shared.result = asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread below
            shared.error = exc
        finally:
            shared.ready.set()
            shared.done.set()

    threading.Thread(target=target, name="podline-async", daemon=True).start()
    # An Event, not Thread.join: a join interrupted by Ctrl-C can take the thread for
    # finished while it still runs (CPython's bpo-45274 handling), so no later join waits.
    try:
        while not shared.done.wait(0.1):
            pass
    except KeyboardInterrupt:
        shared.ready.wait()
        if shared.loop is not None and shared.task is not None:
            with suppress(RuntimeError):  # the loop may have just finished
                shared.loop.call_soon_threadsafe(shared.task.cancel)
        shared.done.wait()
        raise
    if shared.error is not None:
        raise shared.error
    return cast(T, shared.result)


class _Beside:
    """What the helper thread of ``run_coroutine`` shares with its caller."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.done = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for one bounded batch of calls.

    A batch allocates a few small acyclic objects per call (argument dicts, outcomes,
    captures) that stay alive until the batch ends; left on, the collector rescans them again
    and again and doubles the per-call cost. Reference counting still frees everything; the
    collector runs again as soon as the batch is over. Callers keep batches bounded.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_sequentially(
    fn: Callable[..., Any], arguments: Sequence[CallArguments], *, live: bool
) -> list[CallOutcome]:
    """Run the calls one after another in this thread (awaiting them if ``fn`` is async)."""
    if is_async_function(fn):
        return run_coroutine(_one_by_one(fn, arguments, live))
    outcomes: list[CallOutcome] = []
    for start in range(0, len(arguments), GC_CHUNK):
        with paused_gc():
            chunk = arguments[start : start + GC_CHUNK]
            outcomes.extend(run_captured(fn, args, live=live) for args in chunk)
    return outcomes


async def _one_by_one(
    fn: Callable[..., Any], arguments: Sequence[CallArguments], live: bool
) -> list[CallOutcome]:
    return [await run_captured_async(fn, args, live=live) for args in arguments]
