"""``podline.matching``: bulk id lookups agree with Arrow's exact kernels, collisions included."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from podline import matching
from podline.matching import index_in, is_in

ids = st.lists(st.one_of(st.none(), st.text(alphabet="abc", max_size=3)), max_size=30)


def _expected(values: list[str | None], lookup: list[str | None]) -> np.ndarray:
    found = pc.index_in(pa.array(values, pa.string()), value_set=pa.array(lookup, pa.string()))
    expected = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    # Nulls match nothing here, while Arrow matches a null to a null.
    expected[[v is None for v in values]] = -1
    return expected


@given(values=ids, lookup=ids)
def test_index_in_agrees_with_arrow(values: list[str | None], lookup: list[str | None]) -> None:
    got = index_in(pa.array(values, pa.large_string()), pa.array(lookup, pa.string()))
    assert got.tolist() == _expected(values, lookup).tolist()
    assert is_in(pa.array(values), pa.array(lookup)).tolist() == (got >= 0).tolist()


@given(values=ids, lookup=ids)
def test_hash_collisions_never_give_wrong_answers(
    values: list[str | None], lookup: list[str | None]
) -> None:
    # Every string hashes alike: every match must be settled by comparing the strings.
    with mock.patch.object(matching, "_hashes", lambda ids: np.zeros(len(ids), dtype=np.uint64)):
        got = index_in(pa.array(values, pa.string()), pa.array(lookup, pa.string()))
    assert got.tolist() == _expected(values, lookup).tolist()


def test_chunked_inputs_and_first_occurrence() -> None:
    lookup = pa.chunked_array([["x", "y"], ["x", "z"]])
    values = pa.chunked_array([["z"], ["x", "w"]])
    assert index_in(values, lookup).tolist() == [3, 0, -1]
    assert index_in(pa.array([], pa.string()), lookup).tolist() == []
    assert index_in(values, pa.array([], pa.string())).tolist() == [-1, -1, -1]
