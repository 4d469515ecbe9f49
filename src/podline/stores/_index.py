"""``IdIndex``: the in-memory set of record ids a backend checks writes against.

The write-once rule needs "which of these k ids are already stored?" for every batch. Asking
the stored table each time costs a scan of n ids; Arrow's ``is_in`` rebuilds a hash table of
its value set on every call. This index keeps a sorted array of 64-bit hashes instead, so a
batch costs O(k log n) with no per-row Python, and adding a batch costs one O(n) merge.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.matching import Ids, id_hashes

__all__ = ["IdIndex"]


class IdIndex:
    """An exact, growing set of string ids with bulk membership tests.

    Hash matches are confirmed against the ids themselves, so a hash collision can never
    make a new id look stored (it only costs one scan of the stored ids).
    """

    __slots__ = ("_buffer", "_ids", "_size")

    def __init__(self) -> None:
        # Sorted hashes in the first ``_size`` slots of a buffer that grows by doubling, so
        # adding k ids rewrites memory already in use instead of allocating n + k slots (the
        # page faults of a fresh copy cost more than the merge itself).
        self._buffer = np.empty(0, dtype=np.uint64)
        self._size = 0
        self._ids: list[pa.Array] = []

    def __len__(self) -> int:
        return self._size

    @property
    def _hashes(self) -> np.ndarray:
        return self._buffer[: self._size]

    def add(self, ids: Ids) -> None:
        """Add string ids; nulls are ignored (a null id is no record's id)."""
        if ids.null_count:
            ids = ids.drop_null()
        if not len(ids):
            return
        new = id_hashes(ids).sort().to_numpy()  # polars sorts on every core
        size = self._size + len(new)
        if size > len(self._buffer):
            grown = np.empty(max(size, 2 * len(self._buffer)), dtype=np.uint64)
            grown[: self._size] = self._hashes
            self._buffer = grown
        self._buffer[self._size : size] = new
        if self._size:
            # Two sorted runs: the stable sort (timsort) merges them in linear time.
            self._buffer[:size].sort(kind="stable")
        self._size = size
        chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
        # One type for all chunks (``string`` or ``large_string``, whichever came first).
        kind = self._ids[0].type if self._ids else chunks[0].type
        self._ids.extend(chunk if chunk.type == kind else chunk.cast(kind) for chunk in chunks)

    def contains(self, ids: Ids) -> np.ndarray:
        """A boolean mask: which of ``ids`` (strings, no nulls) are in the set."""
        found = np.zeros(len(ids), dtype=bool)
        if not self._size or not len(ids):
            return found
        probe = id_hashes(ids)
        # Probing in sorted order keeps the binary searches cache-friendly.
        sorted_probe = probe.sort().to_numpy()
        slots = np.searchsorted(self._hashes, sorted_probe)
        np.minimum(slots, self._size - 1, out=slots)
        matched = sorted_probe[self._hashes[slots] == sorted_probe]
        if not len(matched):
            return found  # the usual case when writing new records
        found = np.isin(probe.to_numpy(), matched)
        found[found] = self._confirm(ids.filter(pa.array(found)))
        return found

    def _confirm(self, candidates: Ids) -> np.ndarray:
        """Which ``candidates`` (whose hashes matched) are really stored."""
        stored = pa.chunked_array(self._ids)
        hits = stored.filter(pc.is_in(stored, value_set=_array(candidates, stored.type)))
        return pc.is_in(candidates, value_set=_array(hits, candidates.type)).to_numpy(
            zero_copy_only=False
        )


def _array(ids: Ids, type_: pa.DataType) -> pa.Array:
    """``ids`` as one array of ``type_`` (``is_in`` wants a plain array for its value set)."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return array.cast(type_)
