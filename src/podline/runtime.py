"""Process-level helpers any layer may use: pausing the cyclic garbage collector for a bounded
batch of work, holding Ctrl-C back while finished work is being stored, running a coroutine
to completion from synchronous code (even inside a running event loop), and process-wide
thread pools."""

from __future__ import annotations

import functools
import gc
import os
import signal
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "Beside",
    "deferred_interrupts",
    "paused_gc",
    "run_coroutine",
    "thread_pool",
    "wait_all",
]

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop.

    In Jupyter (or any caller already inside an event loop) ``asyncio.run`` refuses to nest,
    so the coroutine runs on a fresh loop in a helper thread instead. Either way, Ctrl-C in
    the caller cancels the coroutine, waits for it to unwind, and is then raised.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # asyncio.run turns Ctrl-C into a cancellation of the coroutine, then re-raises it.
        return asyncio.run(coroutine)
    shared = Beside()

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
        shared.cancel()
        shared.done.wait()
        raise
    if shared.error is not None:
        raise shared.error
    return cast(T, shared.result)


class Beside:
    """What a helper thread running a coroutine shares with its caller."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.done = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def cancel(self) -> None:
        """Cancel the coroutine (once it started) from the caller's thread."""
        self.ready.wait()
        if self.loop is not None and self.task is not None:
            with suppress(RuntimeError):  # the loop may have just finished
                self.loop.call_soon_threadsafe(self.task.cancel)


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


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C back until the block ends, then raise it.

    Bookkeeping that stores finished work (typing results, writing them to a store, firing
    the hooks about them) must not stop halfway: a ``KeyboardInterrupt`` raised in the middle
    would lose the work, or leave a store's buffers half updated. A second Ctrl-C while the
    first is held raises at once, so a user is never stuck. Only the main thread receives
    signals, and only Python's own handler is replaced; elsewhere this does nothing.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt


@functools.cache
def thread_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The process's pool of ``workers`` threads named ``name``, made on first use. Once the
    interpreter exits, its ``submit`` raises RuntimeError: callers then do the work inline."""
    return ThreadPoolExecutor(workers, thread_name_prefix=name)


# A forked child has none of its parent's threads: it makes pools of its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=thread_pool.cache_clear)


def wait_all(futures: list[Future[Any]]) -> None:
    """Return once every future is done, even if Ctrl-C interrupts the wait (it is raised
    after): work handed to other threads is never left running behind the caller's back."""
    try:
        wait(futures)
    except BaseException:
        wait(futures)
        raise
