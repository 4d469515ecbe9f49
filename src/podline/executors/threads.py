"""``ThreadExecutor``: concurrent calls on threads (sync functions) or one event loop (async).

For I/O-bound work. Sync functions run on a thread pool of ``max_workers``; ``async def``
functions run as tasks on one event loop with at most ``max_workers`` in flight. Outcomes are
yielded as calls finish; closing the iterator early cancels the calls not yet started.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from podline.errors import ExecutorError
from podline.executors.base import (
    DEFAULT_POLICY,
    Calls,
    is_async_function,
    stop_event,
    stream_async,
)
from podline.executors.capture import CallArguments, CallOutcome, run_captured
from podline.executors.policy import CallPolicy

__all__ = ["ThreadExecutor"]

#: How often a wait for calls looks whether the run was stopped, in seconds.
_STOP_POLL = 0.1


class ThreadExecutor:
    """Run calls concurrently on up to ``max_workers`` threads (or tasks, for async functions)."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ExecutorError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        policy: CallPolicy = DEFAULT_POLICY,
    ) -> Calls:
        if is_async_function(fn):
            return stream_async(fn, arguments, policy=policy, concurrency=self.max_workers)
        return self._threads(fn, arguments, policy)

    def _threads(
        self, fn: Callable[..., Any], arguments: Sequence[CallArguments], policy: CallPolicy
    ) -> Calls:
        pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="podline")
        # A bounded window of submitted calls: thousands of futures at once would only cost
        # memory, and closing early then has little to cancel.
        window = 4 * self.max_workers
        pending: dict[Future[CallOutcome], int] = {}
        submitted = 0
        stop = stop_event()
        try:
            while submitted < len(arguments) or pending:
                if stop is not None and stop.is_set():
                    # A stopped run: calls not started are dropped, and the running ones
                    # (a thread cannot be interrupted) are handed over as they finish.
                    submitted = len(arguments)
                    pending = {f: i for f, i in pending.items() if not f.cancel()}
                    if not pending:
                        break
                while submitted < len(arguments) and len(pending) < window:
                    future = pool.submit(run_captured, fn, arguments[submitted], policy=policy)
                    pending[future] = submitted
                    submitted += 1
                done, _ = wait(pending, timeout=_STOP_POLL, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            # Calls not started are cancelled; the caller waits for the running ones (a thread
            # cannot be stopped), so that nothing runs on after it stopped.
            pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self.max_workers})"
