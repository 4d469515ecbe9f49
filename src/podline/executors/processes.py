"""``ProcessExecutor``: CPU-bound calls spread over worker processes.

The function is shipped with cloudpickle (so lambdas, closures and functions defined in
``__main__`` or a notebook work), once per ``execute`` and unpickled once per worker. Calls go
out in chunks sized from the calls' observed durations (``podline.executors.chunks``), and
each chunk's outcomes are yielded as it returns. An exception or return value that cannot be
pickled is reported as a ``RemoteCallError`` outcome instead of breaking the pool.

**A call that kills its worker** (``os.abort()``, a segmentation fault, the out-of-memory
killer) breaks the whole pool: every chunk in flight is lost with it. The pool is replaced and
the calls of those chunks run again one at a time, so the next death names its call: that call
fails with ``WorkerCrashedError`` and every other call goes on.

Workers start with the ``forkserver`` method where available (``spawn`` elsewhere): forking a
process that runs Arrow or polars threads is unsafe. The pool is created on first use and kept
until ``close()`` (or the end of a ``with`` block), so its start-up cost is paid once.

**If this process dies** without closing the pool (SIGKILL), every worker ends within about a
second instead of running on (``podline.executors.lifeline``); the forkserver and the resource
tracker then end too.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from podline.errors import ExecutorError
from podline.executors.base import DEFAULT_POLICY, Calls
from podline.executors.capture import CallArguments, CallOutcome
from podline.executors.chunks import (
    CHUNK_SECONDS,
    ChunkLostError,
    Packed,
    payload,
    run_chunk,
    run_in_chunks,
    unpack,
)
from podline.executors.lifeline import watch_owner
from podline.executors.policy import CallPolicy

__all__ = ["CHUNK_SECONDS", "ProcessExecutor"]


class ProcessExecutor:
    """Run calls on a pool of ``max_workers`` processes (default: the CPU count)."""

    def __init__(self, max_workers: int | None = None, *, chunks_per_worker: int = 4) -> None:
        if max_workers is not None and max_workers < 1:
            raise ExecutorError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.chunks_per_worker = chunks_per_worker
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            self._pool = ProcessPoolExecutor(
                self.max_workers,
                mp_context=multiprocessing.get_context(method),
                initializer=watch_owner,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _replace_pool(self) -> None:
        broken, self._pool = self._pool, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        policy: CallPolicy = DEFAULT_POLICY,
    ) -> Calls:
        pool = _Pool(self, payload(fn, policy))
        return run_in_chunks(pool, arguments, chunks_per_worker=self.chunks_per_worker)

    def close(self) -> None:
        """Shut the worker pool down (a later ``execute`` starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"


class _Pool:
    """The executor's process pool as ``Workers`` for one execution's chunks."""

    shared_fate = True
    crash_message = (
        "the worker process running this call died (os.abort(), a segmentation fault or the "
        "out-of-memory killer); the pool was replaced and the other calls went on"
    )

    def __init__(self, owner: ProcessExecutor, payload: bytes) -> None:
        self.owner = owner
        self.payload = payload
        self.max_workers = owner.max_workers

    def submit(self, chunk: list[CallArguments]) -> Future[Packed]:
        try:
            return self.owner._ensure_pool().submit(run_chunk, self.payload, chunk)
        except BrokenProcessPool:  # a worker died since the last outcome was read
            raise ChunkLostError from None

    def wait(
        self, pending: Collection[Future[Packed]], timeout: float
    ) -> Collection[Future[Packed]]:
        done, _ = wait(pending, timeout, return_when=FIRST_COMPLETED)
        return done

    def outcomes(self, handle: Future[Packed]) -> list[CallOutcome]:
        try:
            return unpack(handle.result())
        except BrokenProcessPool:
            raise ChunkLostError from None

    def cancel(self, pending: Collection[Future[Packed]]) -> None:
        for future in pending:
            future.cancel()

    def replace(self) -> None:
        self.owner._replace_pool()
