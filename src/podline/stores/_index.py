"""``IdIndex``: the in-memory set of record ids a backend checks writes against.

The write-once rule needs "which of these k ids are already stored?" for every batch. Asking
the stored table each time costs a scan of n ids; Arrow's ``is_in`` rebuilds a hash table of
its value set on every call. This index keeps sorted runs of 64-bit hashes instead, so a
batch costs O(k log n) with no per-row Python, and adding a batch merges it with runs of
about its size (a hash is rewritten a number of times that grows with the logarithm of the
set, not with the number of batches).

A hash match is only a candidate: the index confirms it against the ids themselves, so a hash
collision never makes a new id look stored. Where those ids are is the index's ``IdSource``,
given at construction:

- ``HeldIds`` keeps a reference to every batch of ids added, for sets whose rows are in
  memory anyway (a ``DeltaStore``'s buffered batches, a ``MemoryStore``'s tables): the index
  then costs its 8 bytes per id and nothing more.
- A committed Delta table's index (``_delta_table.TableIds``) keeps nothing but the hashes and
  reads the table's id column, one piece at a time, for a batch where some hash matched: ids
  that stay in memory only to confirm matches would cost some 70 bytes each (300 MB at a
  million records). A batch of new ids, the usual write, matches no hash and reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import pyarrow as pa

from podline.matching import Ids, id_hashes, in_sorted_runs, is_in

__all__ = ["HeldIds", "IdIndex", "IdSource"]

#: Each run of an ``IdIndex`` is at least this many times the size of the next: probes search
#: about log(n) / log(_RATIO) runs, and a hash is merged about _RATIO times per run.
_RATIO = 8


class IdSource(Protocol):
    """Where the ids of an ``IdIndex`` are, to confirm its hash matches."""

    def added(self, ids: Ids) -> None:
        """The index took these ids (strings, no nulls)."""
        ...

    def holding(self, candidates: Ids) -> np.ndarray:
        """A boolean mask: which of ``candidates`` (strings, no nulls; their hashes matched)
        are in the set."""
        ...


class HeldIds:
    """The ids themselves, kept by reference: for sets whose rows are in memory anyway."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: list[pa.Array] = []

    def added(self, ids: Ids) -> None:
        chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
        # One type for all chunks (``string`` or ``large_string``, whichever came first).
        kind = self._ids[0].type if self._ids else chunks[0].type
        self._ids.extend(chunk if chunk.type == kind else chunk.cast(kind) for chunk in chunks)

    def holding(self, candidates: Ids) -> np.ndarray:
        if not self._ids:
            return np.zeros(len(candidates), dtype=bool)
        return is_in(candidates, pa.chunked_array(self._ids))


class IdIndex:
    """An exact, growing set of string ids with bulk membership tests.

    Hash matches are confirmed against ``source`` (see the module docs), so a hash collision
    can never make a new id look stored; it only costs that source a look.
    """

    __slots__ = ("_base", "_buffer", "_runs", "_size", "_source")

    def __init__(self, source: IdSource) -> None:
        # Sorted runs of hashes: the largest (the base) in the first ``_base`` slots of a
        # buffer that grows by doubling, then ``_runs``, each at least ``_RATIO`` times the
        # size of the next (the base too), so there are few of them (a logarithm of the
        # batches added) and a hash is merged into a larger run a bounded number of times.
        # One sorted array merged with every batch rewrote all of it per batch: 10M ids added
        # in 1,000 batches (10,000-row flushes) took 12.6-12.8 s of CPU against 1.0-1.1 s
        # now (``bench_stores``). The base is merged into in place: the page faults of a
        # fresh copy cost more than the merge itself, and a copy would hold the base twice at
        # its largest.
        self._buffer = np.empty(0, dtype=np.uint64)
        self._base = 0
        self._runs: list[np.ndarray] = []
        self._size = 0
        self._source = source

    def __len__(self) -> int:
        return self._size

    def add(self, ids: Ids) -> None:
        """Add string ids; nulls are ignored (a null id is no record's id)."""
        self.extend([ids])

    def extend(self, batches: Iterable[Ids]) -> None:
        """Add batches of string ids (nulls ignored), each let go of once hashed, so that
        the strings of one batch at a time are in memory; the hashes are merged in once."""
        parts = []
        for batch in batches:
            ids = batch.drop_null() if batch.null_count else batch
            if len(ids):
                parts.append(id_hashes(ids))
                self._source.added(ids)
        if not parts:
            return
        new = np.sort(np.concatenate(parts))
        self._size += len(new)
        while self._runs and len(self._runs[-1]) < _RATIO * len(new):
            new = np.concatenate((self._runs.pop(), new))
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            new.sort(kind="stable")
        if self._base < _RATIO * len(new):
            self._into_base(new)
        else:
            self._runs.append(new)

    def _into_base(self, run: np.ndarray) -> None:
        size = self._base + len(run)
        if size > len(self._buffer):
            grown = np.empty(max(size, 2 * len(self._buffer)), dtype=np.uint64)
            grown[: self._base] = self._buffer[: self._base]
            self._buffer = grown
        self._buffer[self._base : size] = run
        self._buffer[:size].sort(kind="stable")
        self._base = size

    def _matched(self, ids: Ids) -> np.ndarray:
        """Per item of ``ids``: whether some run holds its hash (a candidate)."""
        return in_sorted_runs((self._buffer[: self._base], *self._runs), id_hashes(ids))

    def may_contain(self, ids: Ids) -> bool:
        """Whether some of ``ids`` (strings, no nulls) may be in the set: some hash matches.
        Nothing is confirmed, so nothing is read: a collision may say yes, a stored id never
        says no (for callers that read the ids' rows anyway, exactly, when it says yes)."""
        if not self._size or not len(ids):
            return False
        return bool(self._matched(ids).any())

    def contains(self, ids: Ids) -> np.ndarray:
        """A boolean mask: which of ``ids`` (strings, no nulls) are in the set."""
        if not self._size or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        found = self._matched(ids)
        if found.any():  # (the usual write of new records matches nothing)
            found[found] = self._source.holding(ids.filter(pa.array(found)))
        return found
