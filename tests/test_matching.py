"""``podline.matching``: bulk id lookups agree with Arrow's exact kernels, collisions included."""

from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from podline import matching
from podline.matching import Positions, index_in, is_in, rows_in_order

ids = st.lists(st.one_of(st.none(), st.text(alphabet="abc", max_size=3)), max_size=30)


def _check(got: np.ndarray, values: list[str | None], lookup: list[str | None]) -> None:
    """``got`` finds exactly the values that are in ``lookup``, each at an equal item."""
    assert len(got) == len(values)
    for value, position in zip(values, got.tolist(), strict=True):
        if value is None or value not in lookup:
            assert position == -1
        else:
            assert lookup[position] == value


@given(values=ids, lookup=ids)
def test_index_in_finds_equal_items(values: list[str | None], lookup: list[str | None]) -> None:
    got = index_in(pa.array(values, pa.large_string()), pa.array(lookup, pa.string()))
    _check(got, values, lookup)
    assert is_in(pa.array(values), pa.array(lookup)).tolist() == (got >= 0).tolist()


@given(values=ids, lookup=ids)
def test_hash_collisions_never_give_wrong_answers(
    values: list[str | None], lookup: list[str | None]
) -> None:
    # Every string hashes alike: every match must be settled by comparing the strings.
    with mock.patch.object(matching, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64)):
        got = index_in(pa.array(values, pa.string()), pa.array(lookup, pa.string()))
    _check(got, values, lookup)


@given(chunks=st.lists(ids, max_size=5), lookup=ids, collide=st.booleans())
def test_positions_answer_like_index_in_chunk_after_chunk(
    chunks: list[list[str | None]], lookup: list[str | None], collide: bool
) -> None:
    # Prepared once, asked many times (a node's known entries, probed chunk by chunk).
    hashes = (lambda ids: np.zeros(len(ids), dtype=np.uint64)) if collide else matching.id_hashes
    with mock.patch.object(matching, "id_hashes", hashes):
        positions = Positions(pa.chunked_array([lookup[:3], lookup[3:]], pa.string()))
        for values in chunks:
            _check(positions.positions(pa.array(values, pa.large_string())), values, lookup)


def test_chunked_inputs() -> None:
    lookup = pa.chunked_array([["x", "y"], ["v", "z"]])
    values = pa.chunked_array([["z"], ["x", "w"]])
    assert index_in(values, lookup).tolist() == [3, 0, -1]
    assert index_in(pa.array([], pa.string()), lookup).tolist() == []
    assert index_in(values, pa.array([], pa.string())).tolist() == [-1, -1, -1]


def test_aligned_inputs_take_the_short_cut_and_stay_exact() -> None:
    lookup = pa.chunked_array([["a", "b"], ["c"]])
    assert index_in(pa.array(["a", "b", "c"], pa.large_string()), lookup).tolist() == [0, 1, 2]
    # Same ends, different middle: not aligned, still exact.
    assert index_in(pa.array(["a", "x", "c"]), lookup).tolist() == [0, -1, 2]
    assert index_in(pa.array(["a", None, "c"]), lookup).tolist() == [0, -1, 2]


@given(values=ids, lookup=ids)
def test_either_side_may_be_the_larger(values: list[str | None], lookup: list[str | None]) -> None:
    # Repeated values, looked up in a longer list, each find an equal item.
    values = values[:3] * 2
    longer = lookup + values[:1] + lookup
    _check(index_in(pa.array(values, pa.string()), pa.array(longer, pa.string())), values, longer)


def test_rows_in_order_follows_the_ids_asked_for() -> None:
    table = pa.table({"id": pa.array(["a", "b", "c"], pa.large_string()), "v": [1, 2, 3]})
    picked = rows_in_order(table, pa.array(["c", "x", "a", "c"], pa.large_string()), "id")
    assert picked.to_pylist() == [{"id": "c", "v": 3}, {"id": "a", "v": 1}, {"id": "c", "v": 3}]
    same = rows_in_order(table, pa.array(["a", "b", "c"], pa.large_string()), "id")
    assert same is table  # already in that order: no copy


def _chunked(items: list[str | None], cuts: list[int]) -> pa.ChunkedArray:
    bounds = sorted({0, len(items), *(c % (len(items) + 1) for c in cuts)})
    return pa.chunked_array(
        [pa.array(items[a:b], pa.large_string()) for a, b in itertools.pairwise(bounds)],
        pa.large_string(),
    )


@given(
    values=ids,
    lookup=ids,
    value_cuts=st.lists(st.integers(0, 30), max_size=4),
    lookup_cuts=st.lists(st.integers(0, 30), max_size=4),
    collide=st.booleans(),
)
def test_matches_are_confirmed_block_by_block_across_chunks(
    values: list[str | None],
    lookup: list[str | None],
    value_cuts: list[int],
    lookup_cuts: list[int],
    collide: bool,
) -> None:
    # Confirmation takes the compared strings chunk by chunk and a few matches at a time
    # (blocks of 3 here), never concatenating a chunked side: answers must not change.
    hashes = (lambda ids: np.zeros(len(ids), dtype=np.uint64)) if collide else matching.id_hashes
    with (
        mock.patch.object(matching, "id_hashes", hashes),
        mock.patch.object(matching, "_CONFIRM_BLOCK", 3),
    ):
        got = index_in(_chunked(values, value_cuts), _chunked(lookup, lookup_cuts))
    _check(got, values, lookup)


@given(
    items=st.lists(st.text(alphabet="abc", max_size=3), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=5),
    data=st.data(),
)
def test_take_from_chunks_equals_a_take_from_the_whole(
    items: list[str], cuts: list[int], data: st.DataObject
) -> None:
    rows = data.draw(st.lists(st.integers(0, len(items) - 1), max_size=40))
    taken = matching.take_rows(_chunked(items, cuts), np.array(rows, dtype=np.int64))
    assert taken.to_pylist() == [items[r] for r in rows]


@given(
    st.lists(st.lists(st.integers(0, 40), max_size=15), max_size=5),
    st.lists(st.integers(0, 40), max_size=30),
)
def test_in_sorted_runs_is_membership_in_any_run(runs: list[list[int]], probe: list[int]) -> None:
    """Small values, so that probes fall before, between, on and after every run's hashes."""
    arrays = [np.sort(np.array(run, dtype=np.uint64)) for run in runs]
    found = matching.in_sorted_runs(arrays, np.array(probe, dtype=np.uint64))
    held = set(itertools.chain.from_iterable(runs))
    assert found.tolist() == [p in held for p in probe]
