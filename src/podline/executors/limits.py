"""Stopping a call that runs past its time limit, in whatever thread runs it.

``time_limit(seconds)`` raises ``CallTimeoutError`` inside the code it wraps once ``seconds``
have passed:

* in the main thread (on POSIX, when nothing else handles ``SIGALRM``) by a real-time timer
  signal, which also interrupts blocking calls that Python retries on signals (``time.sleep``,
  socket reads, most I/O);
* in any other thread (and in the main thread when ``SIGALRM`` is taken) by one watchdog thread
  that raises the error asynchronously in the late thread (``PyThreadState_SetAsyncExc``). That
  takes effect at the thread's next Python instruction: a call blocked in C code that never
  returns to Python (a long numpy kernel, a C extension's loop) is stopped only when it does.

A worker process (``ProcessExecutor``) runs calls in its main thread, so the timer signal
applies there. Async functions are stopped by cancellation instead (``asyncio.wait_for``).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from podline.executors.policy import CallTimeoutError

__all__ = ["time_limit"]

_HAS_ALARM = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``CallTimeoutError`` in the wrapped code once ``seconds`` have passed (see the
    module docs for what can be interrupted); ``None``: no limit."""
    if seconds is None:
        yield
    elif _HAS_ALARM and threading.current_thread() is threading.main_thread() and _alarm_free():
        with _alarm(seconds):
            yield
    else:
        with _WATCHDOG.watch(seconds):
            yield


def _alarm_free() -> bool:
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise CallTimeoutError


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Watchdog:
    """One daemon thread that raises ``CallTimeoutError`` in threads past their deadline.

    Each watched call holds an entry (deadline, ticket, thread id) in a heap; the thread sleeps
    until the earliest deadline. The lock makes "the call ended" and "the deadline fired"
    exclusive: an error raised after the call ended is withdrawn before it can land in code
    that is not the call's.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.heap: list[tuple[float, int, int]] = []
        self.active: dict[int, bool] = {}  # ticket -> whether its error was raised
        self.tickets = itertools.count()
        self.thread: threading.Thread | None = None

    @contextmanager
    def watch(self, seconds: float) -> Iterator[None]:
        ident = threading.get_ident()
        with self.lock:
            ticket = next(self.tickets)
            self.active[ticket] = False
            heapq.heappush(self.heap, (time.monotonic() + seconds, ticket, ident))
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="podline-time-limits", daemon=True
                )
                self.thread.start()
            self.wake.notify()
        try:
            yield
        finally:
            with self.lock:
                if self.active.pop(ticket):
                    _async_raise(ident, None)  # withdraw it if it has not landed yet

    def _run(self) -> None:
        with self.lock:
            while True:
                while self.heap and self.heap[0][1] not in self.active:
                    heapq.heappop(self.heap)  # ended before its deadline
                if not self.heap:
                    self.wake.wait()
                    continue
                deadline, ticket, ident = self.heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self.wake.wait(left)
                    continue
                heapq.heappop(self.heap)
                self.active[ticket] = True
                _async_raise(ident, CallTimeoutError)


def _async_raise(ident: int, error: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(error) if error is not None else None
    )


_WATCHDOG = _Watchdog()
