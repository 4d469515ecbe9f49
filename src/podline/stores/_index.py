"""``IdIndex``: the in-memory set of record ids a backend checks writes against.

The write-once rule needs "which of these k ids are already stored?" for every batch. Asking
the stored table each time costs a scan of n ids; Arrow's ``is_in`` rebuilds a hash table of
its value set on every call. This index keeps sorted runs of 64-bit hashes instead, so a
batch costs O(k log n) with no per-row Python, and adding a batch merges it with runs of
about its size (a hash is rewritten a number of times that grows with the logarithm of the
set, not with the number of batches). The largest run of a large index keeps 56 bits of each
hash in 5 bytes (``_PackedBase``), the others 8.

A hash match is only a candidate: the index confirms it against the ids themselves, so a hash
collision never makes a new id look stored. Where those ids are is the index's ``IdSource``,
given at construction:

- ``HeldIds`` keeps a reference to every batch of ids added, for sets whose rows are in
  memory anyway (a ``DeltaStore``'s buffered batches, a ``MemoryStore``'s tables): the index
  then costs its 5 to 8 bytes per id and nothing more.
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

    __slots__ = ("_base", "_runs", "_size", "_source")

    def __init__(self, source: IdSource) -> None:
        # Sorted runs of hashes: the largest (the base), then ``_runs``, each at least
        # ``_RATIO`` times the size of the next (the base too), so there are few of them (a
        # logarithm of the batches added) and a hash is merged into a larger run a bounded
        # number of times. One sorted array merged with every batch rewrote all of it per
        # batch: 10M ids added in 1,000 batches (10,000-row flushes) took 12.6-12.8 s of CPU
        # against 1.0-1.1 s with runs (``bench_stores``).
        self._base: _PlainBase | _PackedBase = _PlainBase()
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
        if len(self._base) < _RATIO * len(new):
            self._base = self._base.merge(new)
        else:
            self._runs.append(new)

    def _matched(self, ids: Ids) -> np.ndarray:
        """Per item of ``ids``: whether some run holds its hash (a candidate)."""
        hashes = id_hashes(ids)
        # Probes in hash order walk each run forward (see ``matching.sorted_hits``).
        by_hash = np.argsort(hashes)
        ordered = hashes[by_hash]
        hit = self._base.holds(ordered) | in_sorted_runs(self._runs, ordered)
        found = np.empty(len(hit), dtype=bool)
        found[by_hash] = hit
        return found

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


class _PlainBase:
    """The base of a small index: its 64-bit hashes, sorted, merged into in place (the page
    faults of a fresh copy cost more than the merge itself, and a copy would hold the base
    twice at its largest) in a buffer that grows by doubling."""

    __slots__ = ("_buffer", "_size")

    def __init__(self) -> None:
        self._buffer = np.empty(0, dtype=np.uint64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def merge(self, run: np.ndarray) -> _PlainBase | _PackedBase:
        """The base with the sorted hashes of ``run`` merged in: this one, or a packed one
        once it holds ``_PACK_AT`` hashes."""
        size = self._size + len(run)
        if size >= _PACK_AT:
            merged = np.concatenate((self._buffer[: self._size], run))
            merged.sort(kind="stable")
            return _PackedBase(merged)
        if size > len(self._buffer):
            self._buffer = _grown(self._buffer, self._size, max(size, 2 * len(self._buffer)))
        self._buffer[self._size : size] = run
        self._buffer[:size].sort(kind="stable")
        self._size = size
        return self

    def holds(self, ordered: np.ndarray) -> np.ndarray:
        """Per hash of ``ordered`` (sorted ascending): whether the base holds it."""
        return in_sorted_runs([self._buffer[: self._size]], ordered)


#: A base of this many hashes or more is packed (``_PackedBase``); below, its bucket table
#: (512 KiB) would outweigh what packing saves.
_PACK_AT = 1 << 18
#: A packed hash's bucket: its top 16 bits.
_BUCKET_SHIFT = np.uint64(48)
_BUCKETS = 1 << 16
#: Buckets merged at a time by ``_PackedBase.merge`` (what a merge holds beside the base is
#: the hashes of this many buckets, unpacked).
_MERGE_BUCKETS = 1 << 10


class _PackedBase:
    """The base of a large index, 5 bytes a hash instead of 8: 56 bits of each hash are kept,
    the top 16 as the bucket it falls in (``_starts``: where each bucket begins), the next 32
    in ``_low`` and the 8 after those in ``_extra``, both in hash order.

    Dropping a hash's last 8 bits only makes more of them candidates: two ids' hashes agree on
    56 bits about once in 7 * 10**16 pairs, so 10 million probes of 10 million ids make
    about 0.001 false candidates, which the index's source confirms like any other match.
    At 10M ids, each of a first run's four indexes (records and memo of two nodes) holds
    50 MB instead of 80.
    """

    __slots__ = ("_extra", "_low", "_size", "_starts")

    def __init__(self, hashes: np.ndarray) -> None:
        """``hashes``: sorted ascending."""
        self._size = len(hashes)
        self._starts = _bucket_starts(hashes)
        # Room to grow, as a plain base has: merges into a base come at least an eighth of
        # its size at a time (``_RATIO``), so a buffer sized to fit would be copied at most
        # merges; untouched room costs no memory.
        room = 2 * self._size
        self._low = np.empty(room, dtype=np.uint32)
        self._extra = np.empty(room, dtype=np.uint8)
        self._low[: self._size] = hashes >> np.uint64(16)
        self._extra[: self._size] = hashes >> np.uint64(8)

    def __len__(self) -> int:
        return self._size

    def merge(self, run: np.ndarray) -> _PackedBase:
        """This base with the sorted hashes of ``run`` merged in, in place.

        Bucket by bucket from the top: each group of buckets is read (unpacked), merged with
        the run's hashes of those buckets and written back from where its buckets start now,
        at or after where they started before, so no bucket still to be read is overwritten.
        """
        size = self._size + len(run)
        if size > len(self._low):
            self._low = _grown(self._low, self._size, max(size, 2 * len(self._low)))
            self._extra = _grown(self._extra, self._size, len(self._low))
        run_starts = _bucket_starts(run)
        starts = self._starts + run_starts
        for top in range(_BUCKETS, 0, -_MERGE_BUCKETS):
            bottom = top - _MERGE_BUCKETS
            merged = np.concatenate(
                (self._unpacked(bottom, top), run[run_starts[bottom] : run_starts[top]])
            )
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            at = slice(starts[bottom], starts[top])
            self._low[at] = merged >> np.uint64(16)
            self._extra[at] = merged >> np.uint64(8)
        self._starts = starts
        self._size = size
        return self

    def _unpacked(self, bottom: int, top: int) -> np.ndarray:
        """The hashes of buckets ``bottom`` to ``top`` (excluded), their last 8 bits zero."""
        first, last = self._starts[bottom], self._starts[top]
        buckets = np.repeat(
            np.arange(bottom, top, dtype=np.uint64), np.diff(self._starts[bottom : top + 1])
        )
        hashes = buckets << _BUCKET_SHIFT
        hashes |= self._low[first:last].astype(np.uint64) << np.uint64(16)
        hashes |= self._extra[first:last].astype(np.uint64) << np.uint64(8)
        return hashes

    def holds(self, ordered: np.ndarray) -> np.ndarray:
        """Per hash of ``ordered`` (sorted ascending): whether the base holds one that agrees
        with it on 56 bits. A binary search of each probe's bucket, all probes at once."""
        low = (ordered >> np.uint64(16)).astype(np.uint32)
        extra = (ordered >> np.uint64(8)).astype(np.uint8)
        bucket = (ordered >> _BUCKET_SHIFT).astype(np.intp)
        first = self._starts[bucket]
        end = self._starts[bucket + 1]
        count = end - first
        last = self._size - 1
        # ``first`` becomes the first slot of the bucket not below the probe in (low, extra)
        # order (a lower bound), in about log2(largest bucket) steps; the probe is held if
        # that slot equals it.
        while (active := count > 0).any():
            step = count >> 1
            middle = np.minimum(first + step, last)
            stored_low = self._low[middle]
            below = (stored_low < low) | ((stored_low == low) & (self._extra[middle] < extra))
            right = active & below
            first = np.where(right, middle + 1, first)
            count = np.where(right, count - step - 1, step)
        at = np.minimum(first, last)
        return (first < end) & (self._low[at] == low) & (self._extra[at] == extra)


def _bucket_starts(hashes: np.ndarray) -> np.ndarray:
    """Where each bucket begins in ``hashes`` (sorted), and their count last."""
    counts = np.bincount((hashes >> _BUCKET_SHIFT).astype(np.intp), minlength=_BUCKETS)
    starts = np.zeros(_BUCKETS + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts


def _grown(buffer: np.ndarray, used: int, room: int) -> np.ndarray:
    grown = np.empty(room, dtype=buffer.dtype)
    grown[:used] = buffer[:used]
    return grown
