"""IdIndex: exact membership whatever the hashes do."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podline.stores import _index
from podline.stores._index import HeldIds, IdIndex


def test_empty_index_and_empty_probe() -> None:
    index = IdIndex(HeldIds())
    assert len(index) == 0
    assert index.contains(pa.array(["a"])).tolist() == [False]
    index.add(pa.array(["a"]))
    assert index.contains(pa.array([], pa.string())).tolist() == []


def test_string_layouts_and_chunks_agree() -> None:
    index = IdIndex(HeldIds())
    index.add(pa.chunked_array([["a", "b"], ["c"]], pa.string()))
    index.add(pa.array(["d", None], pa.large_string()))
    assert len(index) == 4
    probe = pa.chunked_array([["d", "x"], ["a"]], pa.large_string())
    assert index.contains(probe).tolist() == [True, False, True]


def test_hash_collisions_never_fake_membership(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_index, "id_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64))
    index = IdIndex(HeldIds())
    index.add(pa.array(["a", "b"]))
    assert index.contains(pa.array(["b", "c", "a", "d"])).tolist() == [True, False, True, False]


@given(
    st.lists(st.lists(st.text(max_size=4), max_size=20), max_size=12),
    st.lists(st.text(max_size=4), max_size=30),
)
def test_behaves_like_a_set(batches: list[list[str]], probe: list[str]) -> None:
    index = IdIndex(HeldIds())
    stored: set[str] = set()
    for batch in batches:
        index.add(pa.array(batch, pa.string()))
        stored.update(batch)
    assert index.contains(pa.array(probe, pa.string())).tolist() == [p in stored for p in probe]


class SetSource:
    """An ``IdSource`` confirming against a Python set, as a table would: it keeps the ids
    itself, and notes every candidate it is asked about."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.asked: list[str] = []

    def added(self, ids: pa.Array | pa.ChunkedArray) -> None:
        self.ids.update(ids.to_pylist())

    def holding(self, candidates: pa.Array | pa.ChunkedArray) -> np.ndarray:
        self.asked.extend(candidates.to_pylist())
        return np.array([c in self.ids for c in candidates.to_pylist()], dtype=bool)


def _weak_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A hash with four values (the length modulo four): most ids collide."""
    return np.array([len(s) % 4 for s in ids.to_pylist()], dtype=np.uint64)


@given(
    st.lists(st.lists(st.text(max_size=6), max_size=20), max_size=5),
    st.lists(st.text(max_size=6), max_size=30),
    st.booleans(),
    st.booleans(),
)
def test_a_source_confirms_like_a_set(
    batches: list[list[str]], probe: list[str], weak: bool, packed: bool
) -> None:
    """Membership is exact, and only ids whose hash the index keeps are confirmed: all 64
    bits, or 56 once the base is packed (here from its first merge on)."""
    with pytest.MonkeyPatch.context() as patch:
        if weak:
            patch.setattr(_index, "id_hashes", _weak_hashes)
        if packed:
            patch.setattr(_index, "_PACK_AT", 1)
        source = SetSource()
        index = IdIndex(source)
        stored: set[str] = set()
        for batch in batches:
            index.extend([pa.array(batch[::2], pa.large_string()), pa.array(batch[1::2])])
            stored.update(batch)
        assert len(index) == sum(map(len, batches))
        assert isinstance(index._base, _index._PackedBase) == (packed and len(index) > 0)

        def kept(ids: list[str]) -> set[int]:
            hashes = _index.id_hashes(pa.array(ids, pa.string()))
            return set((hashes >> np.uint64(8 if packed else 0)).tolist())

        # ``may_contain`` confirms nothing: yes exactly when a hash matches (never a false no).
        assert index.may_contain(pa.array(probe, pa.string())) == bool(
            kept(probe) & kept([*stored])
        )
        assert source.asked == []
        assert index.contains(pa.array(probe, pa.string())).tolist() == [p in stored for p in probe]
        # Only ids whose hash the index holds are confirmed: none when no hash matched.
        assert kept(source.asked) <= kept([*stored])
        assert stored or not source.asked


def test_a_batch_matching_no_hash_asks_the_source_nothing() -> None:
    source = SetSource()
    index = IdIndex(source)
    index.add(pa.array([f"id{i}" for i in range(1000)]))
    assert not index.contains(pa.array([f"new{i}" for i in range(1000)])).any()
    assert source.asked == []
    assert index.contains(pa.array(["new", "id7"])).tolist() == [False, True]
    assert source.asked == ["id7"]


def test_many_batches_stay_in_few_runs() -> None:
    """Batches are kept as sorted runs merged by size, not merged into one array each time
    (which rewrote every hash per batch): the runs stay a logarithm of the batches, and
    membership is exact across all of them."""
    index = IdIndex(HeldIds())
    rng = np.random.default_rng(7)
    stored: list[str] = []
    for batch in range(300):
        ids = [f"b{batch}-{i}" for i in range(int(rng.integers(1, 40)))]
        index.add(pa.array(ids))
        stored.extend(ids)
    sizes = [len(index._base), *(len(run) for run in index._runs)]
    assert sum(sizes) == len(index) == len(stored)
    assert all(a >= _index._RATIO * b for a, b in itertools.pairwise(sizes))
    assert len(sizes) <= 1 + int(np.log(len(stored)) / np.log(_index._RATIO)) + 1
    probe = [*stored[::7], *(f"new{i}" for i in range(100))]
    expected = [True] * len(stored[::7]) + [False] * 100
    assert index.contains(pa.array(probe)).tolist() == expected


def test_hashes_agreeing_on_56_bits_are_confirmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A packed base drops a hash's last 8 bits: an id whose hash differs from a stored one
    only there is a candidate, which the source settles."""
    base = np.uint64(0x9E3779B97F4A7C15)
    known = {"a": base, "b": base ^ np.uint64(0xFF), "c": base ^ np.uint64(0x100)}
    monkeypatch.setattr(
        _index, "id_hashes", lambda ids: np.array([known[i] for i in ids.to_pylist()], np.uint64)
    )
    monkeypatch.setattr(_index, "_PACK_AT", 1)
    source = SetSource()
    index = IdIndex(source)
    index.add(pa.array(["a"]))
    assert index.contains(pa.array(["c", "b", "a"])).tolist() == [False, False, True]
    assert sorted(source.asked) == ["a", "b"]  # "c" differs in the 56 bits kept: never asked


def test_a_large_index_is_packed_and_exact() -> None:
    """Past ``_PACK_AT`` hashes the base is packed, about 5 bytes a hash (with room to
    grow), and still answers exactly: every stored id found, no new id even a candidate."""
    source = SetSource()
    index = IdIndex(source)
    stored = [f"record-{i}" for i in range(_index._PACK_AT + 100_000)]
    for start in range(0, len(stored), 40_000):
        index.add(pa.array(stored[start : start + 40_000]))
    base = index._base
    assert isinstance(base, _index._PackedBase)
    assert len(base) + sum(map(len, index._runs)) == len(index) == len(stored)
    assert base._low.itemsize + base._extra.itemsize == 5
    assert index.contains(pa.array(stored[::97])).all()
    source.asked.clear()
    assert not index.contains(pa.array([f"new-{i}" for i in range(100_000)])).any()
    assert source.asked == []
