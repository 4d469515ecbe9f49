"""Exact lookups of string ids in other string ids, in bulk: ``index_in``, ``is_in``,
``rows_in_order``, ``Positions`` for many lookups in the same ids, ``IdHashes`` for "certainly
none of these" answers in 8 bytes an id, and ``take_rows``, a take that copies only what it
takes.

Record ids, entry ids and content hashes are long strings (``pod3:`` + 64 hex), or packed
into their 32 digest bytes (``hashing.packed``). Arrow's ``index_in``/``is_in`` hash every
such string into a fresh hash table on each call, which dominates a cached pipeline run.
Here both sides are reduced to 64-bit hashes (``id_hashes``: polars hashes strings on every
core; a packed id's first 8 bytes are one already), matched with a hash join (or, when both
sides are large, by sorting, which holds a quarter of the memory), and every match is then
confirmed by comparing the ids themselves, so a hash collision can only cost time, never a
wrong answer. Both sides of a lookup are of one kind: strings or packed ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "IdHashes",
    "Ids",
    "Positions",
    "id_hashes",
    "in_sorted_runs",
    "index_in",
    "is_in",
    "rows_in_order",
    "sorted_hits",
    "take_rows",
    "take_table_rows",
]

Ids: TypeAlias = pa.Array | pa.ChunkedArray

# Any fixed seed will do: these hashes never leave the process.
_SEED = 0x706F646C696E65


#: Strings hashed at a time: polars copies each block into its own memory to hash it, and
#: its allocator keeps freed pages a while, so a whole column at once would cost its size.
_HASH_BLOCK = 1 << 16
#: Packed ids (``hashing.packed``): the 32 bytes of a SHA-256 digest.
_PACKED = pa.binary(32)


def id_hashes(ids: Ids) -> np.ndarray:
    """64-bit hashes of ids, equal for equal ids and rarely for different ones (every match
    is confirmed). Strings are hashed by polars on every core, with one fixed seed, so every
    index of string ids in this process (``Positions`` here, ``stores._index.IdIndex``) can
    compare them; packed ids, digests already, give their first 8 bytes (packed ids are only
    ever compared with packed ids)."""
    chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
    if ids.type == _PACKED:
        parts = [_digest_prefixes(chunk) for chunk in chunks]
    else:
        import polars as pl

        parts = [
            pl.Series(chunk.slice(start, _HASH_BLOCK)).hash(seed=_SEED).to_numpy()
            for chunk in chunks
            for start in range(0, len(chunk), _HASH_BLOCK)
        ]
    if not parts:
        return np.empty(0, dtype=np.uint64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _digest_prefixes(packed: pa.Array) -> np.ndarray:
    """The first 8 bytes of every packed id, as an unsigned 64-bit integer (0 for a null,
    which its confirmation then rules out)."""
    if packed.buffers()[1] is None:  # (all null)
        return np.zeros(len(packed), dtype=np.uint64)
    data = np.frombuffer(packed.buffers()[1], dtype=np.uint64)
    start = packed.offset * 4
    return data[start : start + 4 * len(packed)][::4].copy()


def _plain(ids: Ids, type_: pa.DataType) -> pa.Array:
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return array if array.type == type_ else array.cast(type_)


def index_in(values: Ids, lookup: Ids) -> np.ndarray:
    """For every item of ``values``, the position of an equal string in ``lookup`` (any
    one, if ``lookup`` repeats it), or -1 when there is none. Nulls match nothing."""
    if not len(values) or not len(lookup) or pa.types.is_null(lookup.type):
        return np.full(len(values), -1, dtype=np.int64)
    if _aligned(values, lookup):
        return np.arange(len(values), dtype=np.int64)
    return _confirmed(values, lookup, _hash_matches(id_hashes(values), id_hashes(lookup)))


class Positions:
    """``lookup`` prepared once for many ``index_in`` calls (``positions(values)`` equals
    ``index_in(values, lookup)``).

    ``index_in`` hashes the whole of ``lookup`` on every call: a node probing its known
    entries chunk by chunk would pay for all of them per chunk. This keeps their hashes
    sorted, so a chunk of k ids costs O(k log n).
    """

    __slots__ = ("_lookup", "_order", "_sorted")

    def __init__(self, lookup: Ids) -> None:
        self._lookup = _plain(lookup, lookup.type)  # once, not per call
        hashes = id_hashes(lookup) if len(lookup) else np.empty(0, dtype=np.uint64)
        self._order = np.argsort(hashes, kind="stable")
        self._sorted = hashes[self._order]

    def positions(self, values: Ids) -> np.ndarray:
        """Like ``index_in(values, lookup)``."""
        if not len(values) or not len(self._sorted) or pa.types.is_null(self._lookup.type):
            return np.full(len(values), -1, dtype=np.int64)
        slot = sorted_hits(self._sorted, id_hashes(values))
        matched = np.where(slot >= 0, self._order[slot], -1)
        return _confirmed(values, self._lookup, matched)


def sorted_hits(hashes: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Per hash of ``probe``, the slot of an equal hash in ``hashes`` (sorted ascending), or
    -1: what the sorted-hash indexes here (``Positions``, ``IdHashes``) ask."""
    if not len(hashes):
        return np.full(len(probe), -1, dtype=np.int64)
    # Probes in sorted order walk the sorted hashes forward, cache-friendly: about 5x faster
    # than probing a large index at random.
    by_hash = np.argsort(probe)
    slot = np.empty(len(probe), dtype=np.int64)
    slot[by_hash] = _slots(hashes, probe[by_hash])
    return slot


def in_sorted_runs(runs: Iterable[np.ndarray], ordered: np.ndarray) -> np.ndarray:
    """Per hash of ``ordered`` (sorted ascending): whether one of ``runs`` (each sorted
    ascending) holds it (``stores._index.IdIndex``, which sorts its probes once)."""
    hit = np.zeros(len(ordered), dtype=bool)
    for run in runs:
        if len(run):
            hit |= _slots(run, ordered) >= 0
    return hit


def _slots(hashes: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """Per hash of ``ordered`` (sorted), its slot in ``hashes`` (sorted, not empty), or -1."""
    at = np.minimum(np.searchsorted(hashes, ordered), len(hashes) - 1)
    return np.where(hashes[at] == ordered, at, -1)


class IdHashes:
    """The 64-bit hashes of a set of ids, without the ids (8 bytes an id), for answering
    "certainly none of these": ``may_hold`` is False for an id whose hash is absent; True may
    be a collision, which a caller settles another way."""

    __slots__ = ("_sorted",)

    def __init__(self, ids: Ids) -> None:
        self._sorted = np.sort(id_hashes(ids))

    @classmethod
    def of_hashes(cls, hashes: np.ndarray) -> IdHashes:
        """The set whose ids have these ``id_hashes`` (gathered a piece at a time, say),
        handed over: sorted in place, not copied."""
        hashes.sort()
        made = cls.__new__(cls)
        made._sorted = hashes
        return made

    def may_hold(self, values: Ids) -> np.ndarray:
        """Per item of ``values``: whether its hash is one of the set's."""
        if not len(values):
            return np.zeros(0, dtype=bool)
        return sorted_hits(self._sorted, id_hashes(values)) >= 0


#: Matches are confirmed this many at a time: the strings compared are copies, so a lookup of
#: millions of ids would otherwise hold two more copies of them at once.
_CONFIRM_BLOCK = 1 << 18


def _confirmed(values: Ids, lookup: Ids, matched: np.ndarray) -> np.ndarray:
    """``index_in``'s answer from ``matched``, the position in ``lookup`` of an item with
    the same 64-bit hash per item of ``values`` (or -1): each match is confirmed by comparing
    the strings, and the rare rows whose hash another string shares are settled exactly."""
    found = np.full(len(values), -1, dtype=np.int64)
    candidates = np.flatnonzero(matched >= 0)
    type_ = lookup.type
    for start in range(0, len(candidates), _CONFIRM_BLOCK):
        candidate = candidates[start : start + _CONFIRM_BLOCK]
        positions = matched[candidate]
        wanted = take_rows(values, candidate).cast(type_)
        same = pc.equal(wanted, take_rows(lookup, positions))
        confirmed = same.fill_null(False).to_numpy(zero_copy_only=False)
        found[candidate[confirmed]] = positions[confirmed]
        # A hash shared by different strings: settle those few rows the slow, exact way.
        doubtful = ~confirmed & pc.is_valid(wanted).to_numpy(zero_copy_only=False)
        if doubtful.any():
            exact = pc.index_in(wanted.filter(pa.array(doubtful)), value_set=_plain(lookup, type_))
            found[candidate[doubtful]] = exact.fill_null(-1).to_numpy(zero_copy_only=False)
    return found


def take_rows(ids: Ids, rows: np.ndarray) -> pa.Array:
    """``ids[rows]`` (any column, not only ids) as one array. Arrow's take from a chunked
    array first concatenates its chunks, a copy of all of them, whatever the number of rows
    taken; here each chunk gives its own rows."""
    indices = pa.array(rows, pa.int64())
    if not len(rows):
        return pa.array([], ids.type)
    if isinstance(ids, pa.ChunkedArray):
        if ids.num_chunks == 1:
            ids = ids.chunk(0)
        elif 2 * len(rows) >= len(ids):
            # Half the rows or more: the copy costs no more than the result, and Arrow's one
            # take is several times faster than taking chunk by chunk.
            return ids.take(indices).combine_chunks()
    if isinstance(ids, pa.Array):
        return ids.take(indices)
    bounds = np.cumsum([0, *(len(chunk) for chunk in ids.chunks)])
    chunk_of = np.searchsorted(bounds, rows, side="right") - 1
    order = np.argsort(chunk_of, kind="stable")
    by_chunk, chunks = rows[order], chunk_of[order]
    starts = np.flatnonzero(np.r_[True, np.diff(chunks) != 0])
    ends = np.r_[starts[1:], len(rows)]
    parts = [
        ids.chunk(int(chunks[a])).take(pa.array(by_chunk[a:b] - bounds[chunks[a]], pa.int64()))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    taken = pa.concat_arrays(parts) if parts else pa.array([], ids.type)
    back = np.empty(len(rows), dtype=np.int64)
    back[order] = np.arange(len(rows))
    return taken.take(pa.array(back, pa.int64()))


#: From this many rows on each side, ``_hash_matches`` sorts instead of joining.
_SORT_ROWS = 1 << 18


def _hash_matches(probe: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Per probe hash, the position of an equal hash in ``stored`` (any one), or -1.

    A polars hash join on the 64-bit hashes: it builds on the smaller side and runs on every
    core, several times faster than sorting either side. When both sides are large (a node
    resolving all its records against its whole memo), the join's hash tables cost about
    160 bytes a row, so ``stored`` is sorted and probed instead (about 40 bytes a row, all
    freed at once).
    """
    if min(len(probe), len(stored)) >= max(_SORT_ROWS, 1):
        order = np.argsort(stored)
        slot = sorted_hits(stored[order], probe)
        return np.where(slot >= 0, order[np.maximum(slot, 0)], -1)
    import polars as pl

    probes = pl.DataFrame({"hash": probe, "row": np.arange(len(probe), dtype=np.int64)})
    index = pl.DataFrame({"hash": stored, "at": np.arange(len(stored), dtype=np.int64)})
    pairs = probes.join(index, on="hash", how="inner")
    matched = np.full(len(probe), -1, dtype=np.int64)
    matched[pairs["row"].to_numpy()] = pairs["at"].to_numpy()
    return matched


def _aligned(values: Ids, lookup: Ids) -> bool:
    """Whether ``values`` is ``lookup``, item for item: common (a cached run reads back what
    it wrote in the same order), and one comparison costs far less than a lookup."""
    if len(values) != len(lookup) or values.null_count or lookup.null_count:
        return False
    # The ends first: unaligned inputs nearly always differ there already.
    # (Indexing, not ``take``: a take from chunked arrays may first concatenate them.)
    if any(values[i].as_py() != lookup[i].as_py() for i in (0, -1)):
        return False
    return bool(pc.all(pc.equal(values.cast(lookup.type), lookup)).as_py())


def is_in(values: Ids, lookup: Ids) -> np.ndarray:
    """A boolean mask: which items of ``values`` equal some string of ``lookup``."""
    return index_in(values, lookup) >= 0


def rows_in_order(table: pa.Table, ids: Ids, id_column: str) -> pa.Table:
    """The rows of ``table`` (distinct ids in ``id_column``) in the order of ``ids``; ids
    absent are left out, and a repeated id gives its row again."""
    positions = index_in(ids, table[id_column])
    if len(positions) == table.num_rows and np.array_equal(positions, np.arange(len(positions))):
        return table  # already in that order (a cached run reading back what it wrote)
    return take_table_rows(table, positions[positions >= 0])


def take_table_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The rows ``rows`` of ``table``, each column taken by ``take_rows`` (``Table.take``
    concatenates every column first)."""
    columns = [take_rows(column, rows) for column in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema)
