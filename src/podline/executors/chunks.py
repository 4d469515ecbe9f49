"""Calls sent elsewhere in chunks: the scheduling shared by ``ProcessExecutor`` and
``RayExecutor``, and the worker side that runs a chunk.

A ``Workers`` object says how chunks reach workers (a process pool, a Ray cluster);
``run_in_chunks`` decides what goes in each chunk. Chunks are sized from the calls' observed
durations: the first hold one call (so durations are soon known), later ones about
``CHUNK_SECONDS`` of work, long enough to amortize the cost of sending a chunk, short enough
that outcomes come back, and can be committed, while the other chunks run. Each chunk's
outcomes are yielded as it returns.

**A chunk whose worker died** (``os.abort()``, a segmentation fault, the out-of-memory killer)
has no outcomes, and any of its calls may have killed it: its calls (and, where workers share
one fate, as in a process pool, those of every chunk in flight) run again one at a time, so
that the next death names its call. That call fails with ``WorkerCrashedError``; every other
call goes on.

Outcomes travel back packed (``pack``/``unpack``): a call that printed, logged or raised
nothing (most calls) is sent as its value and two times, not as objects of its own (and its
fingerprints, when the policy takes them: ``CallPolicy.fingerprint``).
"""

from __future__ import annotations

import hashlib
import math
import pickle
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Sequence
from types import CodeType
from typing import Any, Protocol, TypeVar

import cloudpickle

from podline.errors import RemoteCallError, RunCancelledError, WorkerCrashedError
from podline.executors.base import (
    Calls,
    draining,
    in_input_order,
    run_sequentially,
    stop_requested,
)
from podline.executors.capture import CallArguments, CallOutcome, failed_capture, timed_capture
from podline.executors.policy import CallPolicy

__all__ = [
    "CHUNK_SECONDS",
    "ChunkLostError",
    "Packed",
    "Workers",
    "pack",
    "payload",
    "run_chunk",
    "run_in_chunks",
    "unpack",
]

#: The work a chunk of calls should hold, once call durations are known.
CHUNK_SECONDS = 0.2

#: How long a wait for chunks lasts before a cancelled run or Ctrl-C is noticed.
WAIT_STEP = 0.1

#: The outcomes of a chunk as they travel back: the values of its calls, their start and end
#: times, the whole outcome of each call that told something (by position in the chunk), and
#: the fingerprints of every call (None when the policy takes none).
Packed = tuple[list[Any], list[float], list[float], dict[int, CallOutcome], list[Any] | None]

H = TypeVar("H", bound=Hashable)


class ChunkLostError(Exception):
    """A chunk's worker died: none of its calls has an outcome."""


class Workers(Protocol[H]):
    """Where chunks run. ``H`` is a handle on a chunk in flight."""

    #: Calls the workers run at once.
    max_workers: int
    #: Whether a lost chunk takes every chunk in flight with it (one process pool).
    shared_fate: bool
    #: What a call that killed its worker reads (``WorkerCrashedError``'s message).
    crash_message: str

    def submit(self, chunk: list[CallArguments]) -> H:
        """Send a chunk of calls to the workers; ``ChunkLostError`` if they are found lost
        before it leaves (it never runs)."""
        ...

    def wait(self, pending: Collection[H], timeout: float) -> Collection[H]:
        """Wait until at least one chunk in ``pending`` is done, or ``timeout`` seconds have
        passed; return the done ones."""
        ...

    def outcomes(self, handle: H) -> list[CallOutcome]:
        """A done chunk's outcomes, in chunk order; ``ChunkLostError`` if its worker died."""
        ...

    def cancel(self, pending: Collection[H]) -> None:
        """Stop the chunks in ``pending`` (the caller no longer wants their outcomes)."""
        ...

    def replace(self) -> None:
        """Start afresh after a loss (``shared_fate`` workers only)."""
        ...


def run_in_chunks(
    workers: Workers[Any], arguments: Sequence[CallArguments], *, chunks_per_worker: int
) -> Calls:
    """Run one call per item of ``arguments`` on ``workers`` in chunks (see the module
    docs), yielding ``(index, outcome)`` as chunks return. Closing the iterator early
    cancels the chunks in flight."""
    return _Schedule(workers, arguments, chunks_per_worker).run()


class _Schedule:
    """One execution: chunks in flight, and the calls a dead worker may have been running
    (``suspects``, run one at a time until each has an outcome)."""

    def __init__(
        self, workers: Workers[Any], arguments: Sequence[CallArguments], chunks_per_worker: int
    ) -> None:
        self.workers = workers
        self.arguments = arguments
        n = len(arguments)
        self.todo = deque(range(n))
        self.suspects: deque[int] = deque()
        #: Per chunk in flight: its calls, when it was sent, and whether it was sent alone.
        self.pending: dict[Any, tuple[list[int], float, bool]] = {}
        # Never larger than an even share of the calls per worker and chunk.
        self.most = max(1, math.ceil(n / (workers.max_workers * chunks_per_worker)))
        self.size = 1

    def run(self) -> Calls:
        try:
            # Halted (see ``executors.base.Halt``): no chunk is sent, those sent are waited for.
            while self.pending or ((self.todo or self.suspects) and not stop_requested()):
                if not stop_requested():
                    self._submit()
                lost = False
                for handle in self._wait():
                    calls, started, alone = self.pending.pop(handle)
                    try:
                        outcomes = self.workers.outcomes(handle)
                    except ChunkLostError:
                        lost = True
                        if alone:  # nothing else ran: this call killed its worker
                            yield calls[0], self._crashed(started)
                        else:
                            self.suspects.extend(calls)
                        continue
                    self._observe(outcomes)
                    yield from zip(calls, outcomes, strict=True)
                if lost and self.workers.shared_fate:
                    # Every chunk still in flight went with the lost one.
                    for calls, _, _ in self.pending.values():
                        self.suspects.extend(calls)
                    self.pending.clear()
                    self.workers.replace()
        finally:
            if self.pending:
                self.workers.cancel(list(self.pending))

    def _wait(self) -> Collection[Any]:
        # In short steps: Ctrl-C and a cancelled run get through while chunks run.
        while not (done := self.workers.wait(list(self.pending), WAIT_STEP)):
            if stop_requested() and not draining():
                raise RunCancelledError("the run was cancelled; the calls in flight were stopped")
        return done

    def _submit(self) -> None:
        if self.suspects:
            # One at a time: if a worker dies now, it was this call.
            if not self.pending:
                self._send([self.suspects.popleft()], alone=True)
            return
        while self.todo and len(self.pending) < 2 * self.workers.max_workers:
            size = min(self.size, len(self.todo))
            if not self._send([self.todo.popleft() for _ in range(size)], alone=False):
                return

    def _send(self, calls: list[int], *, alone: bool) -> bool:
        """Send a chunk; False if the workers were found lost before it left (see below)."""
        chunk = [self.arguments[i] for i in calls]
        try:
            handle = self.workers.submit(chunk)
        except ChunkLostError:
            if self.pending:
                # A chunk in flight killed its worker after the last outcome was read. This
                # chunk never ran: its calls wait their turn again, and the chunks in flight
                # report the loss (which replaces the workers).
                self.todo.extendleft(reversed(calls))
                return False
            self.workers.replace()  # nothing in flight would report the loss
            try:
                handle = self.workers.submit(chunk)
            except ChunkLostError:
                raise WorkerCrashedError(
                    "the worker processes were lost before any call could be sent to them,"
                    " twice in a row"
                ) from None
        self.pending[handle] = (calls, time.time(), alone)
        return True

    def _observe(self, outcomes: list[CallOutcome]) -> None:
        took = sum(o.capture.end - o.capture.start for o in outcomes) / max(1, len(outcomes))
        wanted = CHUNK_SECONDS / took if took > 0 else self.most
        self.size = max(1, min(self.most, int(wanted)))

    def _crashed(self, started: float) -> CallOutcome:
        error = WorkerCrashedError(self.workers.crash_message)
        return CallOutcome(None, error, failed_capture(error, started))


# --------------------------------------------------------------------------- worker side


def payload(fn: Callable[..., Any], policy: CallPolicy) -> bytes:
    """What workers need to run calls of ``fn``: it and ``policy``, cloudpickled, with the
    file ``fn`` was defined in. (cloudpickle ships a function defined in ``__main__``, or
    not reachable by its name, by value under the file name ``<dynamic-code>``; put back, it
    lets a worker's tracebacks show the source lines, as local ones do.)"""
    code = getattr(fn, "__code__", None)
    return cloudpickle.dumps((fn, policy, code.co_filename if code is not None else None))


_loaded: dict[str, tuple[Callable[..., Any], CallPolicy]] = {}


def _load(shipped: bytes) -> tuple[Callable[..., Any], CallPolicy]:
    """The function and policy of a payload, unpickled once per worker."""
    key = hashlib.sha256(shipped).hexdigest()
    found = _loaded.get(key)
    if found is None:
        fn, policy, filename = cloudpickle.loads(shipped)
        code = getattr(fn, "__code__", None)
        if filename is not None and isinstance(code, CodeType):
            fn.__code__ = _filed(code, filename)
        found = _loaded[key] = (fn, policy)
    return found


def _filed(code: CodeType, filename: str) -> CodeType:
    """``code`` (and the code nested in it) as compiled from ``filename``."""
    if code.co_filename != "<dynamic-code>":
        return code
    nested = tuple(_filed(c, filename) if isinstance(c, CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=nested)


def run_chunk(shipped: bytes, chunk: list[CallArguments]) -> Packed:
    """Run a chunk of calls of the function in ``shipped`` (see ``payload``), one after
    another, in a worker; their outcomes packed to travel back."""
    fn, policy = _load(shipped)
    outcomes = in_input_order(run_sequentially(fn, chunk, policy=policy), len(chunk))
    return pack(outcomes, fingerprinted=policy.fingerprint is not None)


def pack(outcomes: list[CallOutcome], *, fingerprinted: bool = False) -> Packed:
    """Outcomes as they travel back (see ``Packed``), each sure to unpickle on the other side;
    with their ``fingerprints`` if ``fingerprinted``."""
    values: list[Any] = []
    told: dict[int, CallOutcome] = {}
    for position, outcome in enumerate(outcomes):
        capture = outcome.capture
        if capture.told or capture.attempts != 1:
            told[position] = _picklable(outcome)
            values.append(None)
        else:
            values.append(outcome.value)
    try:
        pickle.dumps(values)
    except Exception:  # find the culprits: the others still travel as they are
        for position, value in enumerate(values):
            if position not in told and not _pickles(value):
                told[position] = _picklable(outcomes[position])
                values[position] = None
    starts = [o.capture.start for o in outcomes]
    ends = [o.capture.end for o in outcomes]
    prints = [o.fingerprints for o in outcomes] if fingerprinted else None
    return values, starts, ends, told, prints


def unpack(packed: Packed) -> list[CallOutcome]:
    """The outcomes of a chunk, in chunk order, from what ``pack`` sent."""
    values, starts, ends, told, prints = packed
    if prints is not None:
        return [
            told.get(i) or CallOutcome(value, None, timed_capture(starts[i], ends[i]), prints[i])
            for i, value in enumerate(values)
        ]
    return [
        told.get(i) or CallOutcome(value, None, timed_capture(starts[i], ends[i]))
        for i, value in enumerate(values)
    ]


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # any pickling failure
        return False
    return True


def _picklable(outcome: CallOutcome) -> CallOutcome:
    """The outcome, with anything that cannot cross to the driver replaced."""
    if _pickles((outcome.value, outcome.error)):
        return outcome
    what = "exception" if outcome.error is not None else "return value"
    culprit = outcome.error if outcome.error is not None else outcome.value
    try:
        pickle.dumps(culprit)
        reason = "it does not pickle"
    except Exception as exc:  # the reason it does not pickle
        reason = str(exc)
    error = RemoteCallError(
        f"the call's {what} of type {type(culprit).__qualname__} cannot be sent back "
        f"from the worker process: {reason}; original: {culprit!r}"[:2000]
    )
    return CallOutcome(None, error, outcome.capture)  # (no value: nothing to fingerprint)
