"""``StoreStatistics``: how often a store was used, by operation and path.

Every store built on ``ScopedStore`` counts the calls its views make (``write``, ``append``,
``read``, ``scan``, ``delete`` per path; ``flush`` for the whole store), which answers the
questions a slow or surprising run raises: did the cached run read each table once, or once per
batch? did anything write at all? ``store.statistics()`` returns a snapshot; subtracting an
earlier one gives what happened in between::

    before = store.statistics()
    pipeline.run()
    used = store.statistics() - before
    used.count("scan")                      # scans anywhere in the store
    used.count("scan", "memo")              # scans at or below memo/
    used.paths("write")                     # the paths written, sorted

Counting costs one locked dictionary update per call (calls are per batch, not per row).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from podline.errors import StoreError
from podline.stores.base import PathLike, StorePath, normalize_path

__all__ = ["OPERATIONS", "StoreStatistics", "UsageCounter"]

#: The operations counted.
OPERATIONS = ("write", "append", "read", "scan", "delete", "flush")


@dataclass(frozen=True)
class StoreStatistics:
    """Calls counted by ``(operation, path)``; paths are relative to the view asked."""

    calls: Mapping[tuple[str, StorePath], int] = field(default_factory=dict)

    def count(self, operation: str, path: PathLike = ()) -> int:
        """How many ``operation`` calls reached ``path`` or a path below it."""
        _check(operation)
        prefix = normalize_path(path)
        return sum(
            n
            for (op, at), n in self.calls.items()
            if op == operation and at[: len(prefix)] == prefix
        )

    def paths(self, operation: str) -> list[StorePath]:
        """The paths ``operation`` reached, sorted."""
        _check(operation)
        return sorted({at for op, at in self.calls if op == operation})

    def __sub__(self, earlier: StoreStatistics) -> StoreStatistics:
        """What was counted after ``earlier``, a snapshot of the same store."""
        left = Counter(self.calls)
        left.subtract(earlier.calls)
        return StoreStatistics({key: n for key, n in left.items() if n})


class UsageCounter:
    """The live counts of one store, shared by its views."""

    __slots__ = ("_calls", "_lock")

    def __init__(self) -> None:
        self._calls: Counter[tuple[str, StorePath]] = Counter()
        self._lock = threading.Lock()

    def add(self, operation: str, path: StorePath) -> None:
        with self._lock:
            self._calls[operation, path] += 1

    def snapshot(self, prefix: StorePath) -> StoreStatistics:
        """The counts at or below ``prefix``, with paths made relative to it."""
        cut = len(prefix)
        with self._lock:
            items = list(self._calls.items())
        return StoreStatistics(
            {(op, at[cut:]): n for (op, at), n in items if at[:cut] == prefix or op == "flush"}
        )


def _check(operation: str) -> None:
    if operation not in OPERATIONS:
        raise StoreError(f"no operation {operation!r} is counted; counted are {OPERATIONS}")
