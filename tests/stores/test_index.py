"""IdIndex: exact membership whatever the hashes do."""

from __future__ import annotations

import numpy as np
import polars as pl
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
    monkeypatch.setattr(
        _index, "id_hashes", lambda ids: pl.Series(np.zeros(len(ids), dtype=np.uint64))
    )
    index = IdIndex(HeldIds())
    index.add(pa.array(["a", "b"]))
    assert index.contains(pa.array(["b", "c", "a", "d"])).tolist() == [True, False, True, False]


@given(
    st.lists(st.lists(st.text(max_size=4), max_size=20), max_size=5),
    st.lists(st.text(max_size=4), max_size=30),
)
def test_behaves_like_a_set(batches: list[list[str]], probe: list[str]) -> None:
    index = IdIndex(HeldIds())
    stored: set[str] = set()
    for batch in batches:
        index.add(pa.array(batch, pa.string()))
        stored.update(batch)
    assert index.contains(pa.array(probe, pa.string())).tolist() == [p in stored for p in probe]
