"""``ProcessExecutor``: CPU-bound calls spread over worker processes.

The function is shipped with cloudpickle (so lambdas, closures and functions defined in
``__main__`` or a notebook work), once per ``execute`` and unpickled once per worker. Calls go
out in chunks sized from the calls' observed durations (a chunk takes about
``CHUNK_SECONDS``: long enough to amortize the inter-process cost, short enough that outcomes
come back, and can be committed, while the others run), and each chunk's outcomes are yielded
as it returns. An exception or return value that cannot be pickled is reported as a
``RemoteCallError`` outcome instead of breaking the pool.

**A call that kills its worker** (``os.abort()``, a segmentation fault, the out-of-memory
killer) breaks the whole pool: every chunk in flight is lost with it. The pool is replaced and
the calls of those chunks run again one at a time, so the next death names its call: that call
fails with ``WorkerCrashedError`` and every other call goes on.

Workers start with the ``forkserver`` method where available (``spawn`` elsewhere): forking a
process that runs Arrow or polars threads is unsafe. The pool is created on first use and kept
until ``close()`` (or the end of a ``with`` block), so its start-up cost is paid once.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import pickle
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

import cloudpickle

from podline.errors import ExecutorError, RemoteCallError, WorkerCrashedError
from podline.executors.base import DEFAULT_POLICY, Calls, in_input_order, run_sequentially
from podline.executors.capture import CallArguments, CallOutcome, failed_capture
from podline.executors.policy import CallPolicy

__all__ = ["CHUNK_SECONDS", "ProcessExecutor"]

#: The work a chunk of calls should hold, once call durations are known.
CHUNK_SECONDS = 0.2


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
                self.max_workers, mp_context=multiprocessing.get_context(method)
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
        return _Execution(self, cloudpickle.dumps((fn, policy)), arguments).run()

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


class _Execution:
    """One ``execute``: chunks in flight, and the calls a dead worker may have been running
    (``suspects``, run one at a time until each has an outcome)."""

    def __init__(
        self, owner: ProcessExecutor, payload: bytes, arguments: Sequence[CallArguments]
    ) -> None:
        self.owner = owner
        self.payload = payload
        self.arguments = arguments
        self.todo = deque(range(len(arguments)))
        self.suspects: deque[int] = deque()
        #: Per chunk in flight: its calls, when it was sent, and whether it was sent alone.
        self.pending: dict[Future[list[CallOutcome]], tuple[list[int], float, bool]] = {}
        # Chunks start at one call (so durations are soon known) and are never larger than
        # an even share of the calls per worker and chunk.
        workers = owner.max_workers * owner.chunks_per_worker
        self.most = max(1, math.ceil(len(arguments) / workers))
        self.size = 1

    def run(self) -> Calls:
        try:
            while self.todo or self.suspects or self.pending:
                self._submit()
                done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    calls, started, alone = self.pending.pop(future)
                    try:
                        outcomes = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone:  # nothing else ran: this call killed its worker
                            yield calls[0], _crashed(started)
                        else:
                            self.suspects.extend(calls)
                        continue
                    self._observe(outcomes)
                    yield from zip(calls, outcomes, strict=True)
                if broken:
                    # The pool is gone: every chunk still in flight went with it.
                    for calls, _, _ in self.pending.values():
                        self.suspects.extend(calls)
                    self.pending.clear()
                    self.owner._replace_pool()
        finally:
            for future in self.pending:
                future.cancel()

    def _submit(self) -> None:
        pool = self.owner._ensure_pool()
        if self.suspects:
            # One at a time: if a worker dies now, it was this call.
            if not self.pending:
                self._send(pool, [self.suspects.popleft()], alone=True)
            return
        while self.todo and len(self.pending) < 2 * self.owner.max_workers:
            size = min(self.size, len(self.todo))
            self._send(pool, [self.todo.popleft() for _ in range(size)], alone=False)

    def _send(self, pool: ProcessPoolExecutor, calls: list[int], *, alone: bool) -> None:
        chunk = [self.arguments[i] for i in calls]
        future = pool.submit(_run_chunk, self.payload, chunk)
        self.pending[future] = (calls, time.time(), alone)

    def _observe(self, outcomes: list[CallOutcome]) -> None:
        took = sum(o.capture.end - o.capture.start for o in outcomes) / max(1, len(outcomes))
        wanted = CHUNK_SECONDS / took if took > 0 else self.most
        self.size = max(1, min(self.most, int(wanted)))


def _crashed(started: float) -> CallOutcome:
    error = WorkerCrashedError(
        "the worker process running this call died (os.abort(), a segmentation fault or the "
        "out-of-memory killer); the pool was replaced and the other calls went on"
    )
    return CallOutcome(None, error, failed_capture(error, started))


# --------------------------------------------------------------------------- worker side

_loaded: dict[str, tuple[Callable[..., Any], CallPolicy]] = {}


def _load(payload: bytes) -> tuple[Callable[..., Any], CallPolicy]:
    key = hashlib.sha256(payload).hexdigest()
    found = _loaded.get(key)
    if found is None:
        found = _loaded[key] = cloudpickle.loads(payload)
    return found


def _run_chunk(payload: bytes, chunk: list[CallArguments]) -> list[CallOutcome]:
    fn, policy = _load(payload)
    outcomes = in_input_order(run_sequentially(fn, chunk, policy=policy), len(chunk))
    return [_picklable(outcome) for outcome in outcomes]


def _picklable(outcome: CallOutcome) -> CallOutcome:
    """The outcome, with anything that cannot cross the process boundary replaced."""
    try:
        pickle.dumps((outcome.value, outcome.error))
    except Exception as exc:  # any pickling failure: report it instead of losing the call
        what = "exception" if outcome.error is not None else "return value"
        culprit = outcome.error if outcome.error is not None else outcome.value
        error = RemoteCallError(
            f"the call's {what} of type {type(culprit).__qualname__} cannot be sent back "
            f"from the worker process: {exc}; original: {culprit!r}"[:2000]
        )
        return CallOutcome(None, error, outcome.capture)
    return outcome
