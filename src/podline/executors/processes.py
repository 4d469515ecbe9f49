"""``ProcessExecutor``: CPU-bound calls spread over worker processes.

The function is shipped with cloudpickle (so lambdas, closures and functions defined in
``__main__`` or a notebook work), once per ``execute`` and unpickled once per worker. Calls go
out in chunks to amortize inter-process overhead, and outcomes come back in input order. An
exception or return value that cannot be pickled is reported as a ``RemoteCallError`` outcome
instead of breaking the pool.

Workers start with the ``forkserver`` method where available (``spawn`` elsewhere): forking a
process that runs Arrow or polars threads is unsafe. The pool is created on first use and kept
until ``close()`` (or the end of a ``with`` block), so its start-up cost is paid once.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import Any

import cloudpickle

from podline.errors import RemoteCallError
from podline.executors.base import run_sequentially
from podline.executors.capture import CallArguments, CallOutcome

__all__ = ["ProcessExecutor"]


class ProcessExecutor:
    """Run calls on a pool of ``max_workers`` processes (default: the CPU count)."""

    def __init__(self, max_workers: int | None = None, *, chunks_per_worker: int = 4) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
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

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        live: bool = True,
    ) -> list[CallOutcome]:
        if not arguments:
            return []
        payload = cloudpickle.dumps(fn)
        size = max(1, -(-len(arguments) // (self.max_workers * self.chunks_per_worker)))
        chunks = [list(arguments[i : i + size]) for i in range(0, len(arguments), size)]
        pool = self._ensure_pool()
        futures = [pool.submit(_run_chunk, payload, chunk, live) for chunk in chunks]
        return [outcome for future in futures for outcome in future.result()]

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


# --------------------------------------------------------------------------- worker side

_loaded: dict[str, Callable[..., Any]] = {}


def _load(payload: bytes) -> Callable[..., Any]:
    key = hashlib.sha256(payload).hexdigest()
    fn = _loaded.get(key)
    if fn is None:
        fn = _loaded[key] = cloudpickle.loads(payload)
    return fn


def _run_chunk(payload: bytes, chunk: list[CallArguments], live: bool) -> list[CallOutcome]:
    outcomes = run_sequentially(_load(payload), chunk, live=live)
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
