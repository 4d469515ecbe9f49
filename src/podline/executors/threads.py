"""``ThreadExecutor``: concurrent calls on threads (sync functions) or one event loop (async).

For I/O-bound work. Sync functions run on a thread pool of ``max_workers``; ``async def``
functions run as tasks on one event loop with at most ``max_workers`` in flight.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from podline.executors.base import is_async_function, run_coroutine
from podline.executors.capture import CallArguments, CallOutcome, run_captured, run_captured_async

__all__ = ["ThreadExecutor"]


class ThreadExecutor:
    """Run calls concurrently on up to ``max_workers`` threads (or tasks, for async functions)."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        live: bool = True,
    ) -> list[CallOutcome]:
        if is_async_function(fn):
            return run_coroutine(self._gather(fn, arguments, live))
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="podline") as pool:
            # map() yields in submission order, which is input order.
            return list(pool.map(lambda args: run_captured(fn, args, live=live), arguments))

    async def _gather(
        self, fn: Callable[..., Any], arguments: Sequence[CallArguments], live: bool
    ) -> list[CallOutcome]:
        limit = asyncio.Semaphore(self.max_workers)

        async def one(args: CallArguments) -> CallOutcome:
            async with limit:
                return await run_captured_async(fn, args, live=live)

        # gather() returns results in the order of its arguments, i.e. input order.
        return list(await asyncio.gather(*(one(args) for args in arguments)))

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self.max_workers})"
