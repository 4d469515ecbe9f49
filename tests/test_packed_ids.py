"""Packed hash ids (``podline.hashing.packed``): exact, one to one, and only for the
canonical form; and the lookups of ``podline.matching`` over them."""

from __future__ import annotations

import hashlib
import re
from unittest import mock

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from podline import matching
from podline.functions.memo import call_ids
from podline.hashing import row_hash_strings
from podline.hashing.packed import PACKED, call_hex, pack, packs_of

_CANONICAL = re.compile(r"pod3:[0-9a-f]{64}")


def _canonical(seed: int) -> str:
    return "pod3:" + hashlib.sha256(str(seed).encode()).hexdigest()


# Ids near the canonical form, which must not pack (or must pack only when canonical):
# upper-case digits, another scheme, a digit too many or too few, non-hex letters, spaces.
_near = st.builds(
    lambda seed, how: how(_canonical(seed)),
    st.integers(0, 50),
    st.sampled_from(
        [
            lambda s: s,
            lambda s: s.upper(),
            lambda s: s[:5] + s[5:].upper(),
            lambda s: s[:6] + s[6].upper() + s[7:],
            lambda s: "pod1:" + s[5:],
            lambda s: s + "0",
            lambda s: s[:-1],
            lambda s: s[:-1] + "g",
            lambda s: s[:-2] + " 0",
            lambda s: "POD3:" + s[5:],
        ]
    ),
)
_ids = st.lists(st.one_of(_near, st.none(), st.text(max_size=70)), max_size=40)


def _array(values: list[str | None], large: bool, splits: list[int]) -> pa.Array:
    type_ = pa.large_string() if large else pa.string()
    whole = pa.array(["x", *values], type_).slice(1)  # a non-zero offset too
    if not splits:
        return whole
    bounds = sorted({min(s, len(values)) for s in splits})
    pieces = [
        whole.slice(a, b - a) for a, b in zip([0, *bounds], [*bounds, len(values)], strict=True)
    ]
    return pa.chunked_array(pieces, type_)


@given(
    values=_ids,
    large=st.booleans(),
    splits=st.lists(st.integers(0, 40), max_size=3),
)
def test_packing_is_one_to_one_and_only_for_canonical_ids(
    values: list[str | None], large: bool, splits: list[int]
) -> None:
    packed = pack(_array(values, large, splits))
    assert packed.type == PACKED
    out = packed.to_pylist()
    for value, digest in zip(values, out, strict=True):
        canonical = value is not None and _CANONICAL.fullmatch(value) is not None
        assert (digest is not None) == canonical
        if canonical:
            assert value is not None
            assert digest == bytes.fromhex(value[5:])
    # Two ids pack alike exactly when they are the same string.
    for a, pa_ in zip(values, out, strict=True):
        for b, pb in zip(values, out, strict=True):
            if pa_ is not None and pb is not None:
                assert (pa_ == pb) == (a == b)


def test_packing_keeps_the_chunking() -> None:
    ids = row_hash_strings(pa.table({"k": list(range(1000))}), ["k"])
    packed = pack(pa.chunked_array([ids.slice(0, 300), ids.slice(300)]))
    assert [len(c) for c in packed.chunks] == [300, 700]
    assert packed.null_count == 0
    assert packed.nbytes == 32 * 1000  # against 77 bytes an id as strings
    assert [d.hex() for d in packed.to_pylist()] == [s[5:] for s in ids.to_pylist()]


def test_a_packed_id_gives_the_call_id_of_the_string() -> None:
    ids = row_hash_strings(pa.table({"k": list(range(200))}), ["k"])
    packed = pack(pa.chunked_array([ids.slice(0, 50), ids.slice(50)]))
    assert call_hex(packed).equals(call_ids(ids))
    assert call_hex(packed.chunk(1).slice(10, 5)).equals(call_ids(ids.slice(60, 5)))
    assert call_hex(pa.chunked_array([], PACKED)).to_pylist() == []


@given(
    stored=st.lists(st.integers(0, 30), max_size=30),
    probe=st.lists(st.integers(0, 40), max_size=30),
    collide=st.booleans(),
    sort=st.booleans(),
)
def test_lookups_of_packed_ids_answer_as_lookups_of_strings(
    stored: list[int], probe: list[int], collide: bool, sort: bool
) -> None:
    # Every hash the same (collide) or the lookup sorting instead of joining (sort): the
    # answers are still those of the strings.
    strings = pa.array([_canonical(i) for i in stored], pa.large_string())
    asked = pa.array([_canonical(i) for i in probe], pa.large_string())
    hashes = (lambda ids: np.zeros(len(ids), np.uint64)) if collide else matching.id_hashes
    with (
        mock.patch.object(matching, "id_hashes", hashes),
        mock.patch.object(matching, "_SORT_ROWS", 1 if sort else matching._SORT_ROWS),
    ):
        found = matching.index_in(pack(asked), pack(strings))
        expected = matching.index_in(asked, strings)
        positions = matching.Positions(pack(strings)).positions(pack(asked))
    as_strings = [strings[int(i)].as_py() if i >= 0 else None for i in expected]
    assert [strings[int(i)].as_py() if i >= 0 else None for i in found] == as_strings
    assert [strings[int(i)].as_py() if i >= 0 else None for i in positions] == as_strings


@given(
    stored=st.lists(st.integers(0, 1 << 40), max_size=40),
    probe=st.lists(st.integers(0, 1 << 40), max_size=40),
)
def test_sorting_finds_what_the_hash_join_finds(stored: list[int], probe: list[int]) -> None:
    # Small ranges of hashes make repeats; any matching position will do.
    keys = np.array(stored, dtype=np.uint64) % 16
    probes = np.array(probe, dtype=np.uint64) % 20
    joined = matching._hash_matches(probes, keys)
    with mock.patch.object(matching, "_SORT_ROWS", 0):
        sorted_ = matching._hash_matches(probes, keys)
    assert ((joined >= 0) == (sorted_ >= 0)).all()
    hit = sorted_ >= 0
    assert (keys[sorted_[hit]] == probes[hit]).all()


@given(
    seeds=st.lists(st.integers(0, 50), max_size=20),
    other=_ids,
    large=st.booleans(),
    splits=st.lists(st.integers(0, 40), max_size=3),
)
def test_packs_of_tells_whether_ids_are_the_packed_ones(
    seeds: list[int], other: list[str | None], large: bool, splits: list[int]
) -> None:
    # The aligned check of a cached run: the packed ids against the same ids, against
    # ids spelled otherwise (upper case, another scheme) and against any other list.
    values = [_canonical(seed) for seed in seeds]
    packed = pack(_array(values, large, splits[:1]))
    assert packs_of(packed, _array(values, not large, splits[1:]))
    assert packs_of(packed, _array(other, large, splits)) == (other == values)
    spelled = [value[:5] + value[5:].upper() for value in values]
    assert packs_of(packed, _array(spelled, large, [])) == (spelled == values)
