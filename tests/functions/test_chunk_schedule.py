"""``run_in_chunks`` against a pool whose worker dies at a chosen moment (a ``Workers``
implementation that plays a process pool's shared fate deterministically).

The race it pins down: a worker dies after the scheduler read the last outcome and before it
sends the next chunk, so the send itself finds the pool broken. The calls of that chunk never
ran: they must run later, and only the call that killed its worker may fail.
"""

from __future__ import annotations

from collections.abc import Collection

from podline.errors import WorkerCrashedError
from podline.executors.base import DEFAULT_POLICY, run_sequentially
from podline.executors.capture import CallArguments, CallOutcome
from podline.executors.chunks import ChunkLostError, run_in_chunks

KILLER = 7


def double(a: int) -> int:
    return a * 2


class DyingPool:
    """Two workers sharing one fate. A chunk holding ``KILLER`` kills its worker: when
    another chunk is in flight beside it, that other chunk finishes first and the pool breaks
    while the scheduler reads its outcome, so the next send finds the pool broken."""

    shared_fate = True
    crash_message = "the worker died"
    max_workers = 2

    def __init__(self) -> None:
        self.chunks: dict[int, list[CallArguments]] = {}
        self.broken = False
        self.dead: set[int] = set()  # chunks lost with the pool
        self.refused = 0

    def submit(self, chunk: list[CallArguments]) -> int:
        if self.broken:
            self.refused += 1
            raise ChunkLostError
        handle = len(self.chunks)
        self.chunks[handle] = chunk
        return handle

    def wait(self, pending: Collection[int], timeout: float) -> Collection[int]:
        deadly = {h for h in pending if any(a[0] == KILLER for a in self.chunks[h])}
        if deadly and not self.broken:
            self.broken = True
            healthy = sorted(set(pending) - deadly)
            if healthy:  # finished just before the worker died
                self.dead.update(set(pending) - {healthy[0]})
                return healthy[:1]
        if self.broken:
            self.dead.update(pending)
        return list(pending)

    def outcomes(self, handle: int) -> list[CallOutcome]:
        if handle in self.dead:
            raise ChunkLostError
        return [o for _, o in run_sequentially(double, self.chunks[handle], policy=DEFAULT_POLICY)]

    def cancel(self, pending: Collection[int]) -> None:
        pass

    def replace(self) -> None:
        self.broken = False
        self.dead.clear()


def test_a_send_that_finds_the_pool_broken_loses_no_call_and_blames_only_the_killer() -> None:
    pool = DyingPool()
    arguments: list[CallArguments] = [(i,) for i in range(20)]
    outcomes = dict(run_in_chunks(pool, arguments, chunks_per_worker=4))
    assert pool.refused >= 1  # the race happened: a send found the pool broken
    assert sorted(outcomes) == list(range(20))
    failed = {i for i, o in outcomes.items() if o.error is not None}
    assert failed == {KILLER}
    assert isinstance(outcomes[KILLER].error, WorkerCrashedError)
    assert {i: o.value for i, o in outcomes.items() if i != KILLER} == {
        i: i * 2 for i in range(20) if i != KILLER
    }
