"""Exact lookups of string ids in other string ids, in bulk: ``index_in``, ``is_in`` and
``rows_in_order``.

Record ids, entry ids and content hashes are long strings (``pod3:`` + 64 hex). Arrow's
``index_in``/``is_in`` hash every such string into a fresh hash table on each call, which
dominates a cached pipeline run. Here both sides are reduced to 64-bit hashes (polars hashes
strings on every core), matched with a hash join, and every match is then confirmed by
comparing the strings themselves, so a hash collision can only cost time, never a wrong
answer.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["index_in", "is_in", "rows_in_order"]

Ids: TypeAlias = pa.Array | pa.ChunkedArray

# Any fixed seed will do: these hashes never leave the process.
_SEED = 0x706F646C696E65


def _hashes(ids: Ids) -> np.ndarray:
    return pl.Series(ids).hash(seed=_SEED).to_numpy()


def _plain(ids: Ids, type_: pa.DataType) -> pa.Array:
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return array if array.type == type_ else array.cast(type_)


def index_in(values: Ids, lookup: Ids) -> np.ndarray:
    """For every item of ``values``, the position of an equal string in ``lookup`` (any
    one, if ``lookup`` repeats it), or -1 when there is none. Nulls match nothing."""
    found = np.full(len(values), -1, dtype=np.int64)
    if not len(values) or not len(lookup) or pa.types.is_null(lookup.type):
        return found
    if _aligned(values, lookup):
        return np.arange(len(values), dtype=np.int64)
    matched = _hash_matches(_hashes(values), _hashes(lookup))
    candidate = np.flatnonzero(matched >= 0)
    if not len(candidate):
        return found
    positions = matched[candidate]
    type_ = lookup.type
    wanted = _plain(values, type_).take(pa.array(candidate, pa.int64()))
    same = pc.equal(wanted, _plain(lookup, type_).take(pa.array(positions, pa.int64())))
    confirmed = same.fill_null(False).to_numpy(zero_copy_only=False)
    found[candidate[confirmed]] = positions[confirmed]
    # A hash shared by different strings: settle those few rows the slow, exact way.
    doubtful = candidate[~confirmed & pc.is_valid(wanted).to_numpy(zero_copy_only=False)]
    if len(doubtful):
        exact = pc.index_in(
            _plain(values, type_).take(pa.array(doubtful, pa.int64())),
            value_set=_plain(lookup, type_),
        )
        found[doubtful] = exact.fill_null(-1).to_numpy(zero_copy_only=False)
    return found


def _hash_matches(probe: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Per probe hash, the position of an equal hash in ``stored`` (any one), or -1.

    A polars hash join on the 64-bit hashes: it builds on the smaller side and runs on every
    core, several times faster than sorting either side.
    """
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
    return table.take(pa.array(positions[positions >= 0], pa.int64()))
