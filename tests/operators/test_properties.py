"""Property tests of the operator algebra over random small sources (see tests/conftest.py)."""

from __future__ import annotations

import itertools
from collections import Counter

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podline import ArrowTableSource, Stream
from podline.errors import OperatorError
from podline.operators import (
    Batch,
    DropPacketColumns,
    Join,
    MapPackets,
    MapTags,
    MergeJoin,
    SelectPacketColumns,
    SemiJoin,
)

from .helpers import full, system_tag_names, user_rows

TAG_NAMES = ("a", "b", "c")
TAG_VALUES = st.none() | st.integers(0, 2)


@st.composite
def sources(
    draw: st.DrawFn,
    packets: tuple[str, ...],
    *,
    unique: str | None = None,
    tags: list[str] | None = None,
) -> Stream:
    """A source with the given (or a random subset of the shared) tag names and packets.

    ``unique`` names a packet column filled with distinct values, so rows are distinct.
    """
    if tags is None:
        tags = draw(st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=3))
    n = draw(st.integers(0, 5))
    columns = {
        t: pa.array(draw(st.lists(TAG_VALUES, min_size=n, max_size=n)), pa.int64()) for t in tags
    }
    for name in packets:
        values = (
            list(range(n))
            if name == unique
            else draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
        )
        columns[name] = pa.array(values, pa.int64())
    return ArrowTableSource(pa.table(columns), tags, label="+".join(packets))


@given(
    st.lists(st.sampled_from(["p", "q", "r"]), min_size=2, max_size=3, unique=True).flatmap(
        lambda names: st.tuples(*(sources((n,)) for n in names))
    )
)
def test_join_is_commutative_in_identity_and_rows(inputs: tuple[Stream, ...]) -> None:
    results = [Join()(*order) for order in itertools.permutations(inputs)]
    assert len({r.content_hash() for r in results}) == 1
    assert len({tuple(system_tag_names(r)) for r in results}) == 1
    first = results[0].as_table(all_info=True)
    for other in results[1:]:
        assert other.as_table(all_info=True).equals(first)


same_schema_pairs = st.lists(st.sampled_from(TAG_NAMES), unique=True, max_size=3).flatmap(
    lambda tags: st.tuples(sources(("p", "q"), tags=tags), sources(("p", "q"), tags=tags))
)


@given(st.tuples(sources(("p", "q")), sources(("p", "r"))) | same_schema_pairs)
def test_merge_join_is_commutative(pair: tuple[Stream, Stream]) -> None:
    # Same-schema pairs have equal pipeline hashes: the per-row slot sort keeps rows order-free.
    a, b = pair
    forward, backward = MergeJoin()(a, b), MergeJoin()(b, a)
    assert forward.content_hash() == backward.content_hash()
    assert forward.as_table(all_info=True).equals(backward.as_table(all_info=True))


@given(sources(("p",)), sources(("q",)), sources(("r",)))
def test_join_is_associative_in_rows(a: Stream, b: Stream, c: Stream) -> None:
    flat = Join()(a, b, c)
    left = Join()(Join()(a, b), c)
    right = Join()(a, Join()(b, c))
    assert user_rows(left) == user_rows(flat) == user_rows(right)
    assert left.keys() == flat.keys() == right.keys()


@given(sources(("p", "rid"), unique="rid"), sources(("q",)))
def test_semi_join_is_a_join_projected_to_the_left(left: Stream, right: Stream) -> None:
    kept = SemiJoin()(left, right)
    columns = [*left.keys()[0], *left.keys()[1]]
    projected = Join()(left, right).as_table().select(columns).to_pylist()
    kept_rows = kept.as_table().select(columns).to_pylist()
    assert {tuple(r.items()) for r in kept_rows} == {tuple(r.items()) for r in projected}
    rids = [r["rid"] for r in kept_rows]
    assert rids == sorted(set(rids))  # each left row once, in left order
    assert full(kept).schema == full(left).schema


@given(sources(("p", "q")), st.integers(0, 4), st.booleans())
def test_batch_then_flatten_restores_the_rows(stream: Stream, size: int, drop: bool) -> None:
    batched = Batch(size, drop)(stream)
    n = len(stream)
    kept = n - n % size if drop and size else n
    original = stream.to_polars(system_tags=True, source_info=True).head(kept)
    if len(batched) == 0:
        assert kept == 0
        return
    flat = batched.to_polars(system_tags=True, source_info=True).explode(pl.all())
    assert flat.equals(original)
    assert (
        sum(len(ids) for ids in batched.as_table().column(batched.keys()[1][0]).to_pylist()) == kept
    )


PACKETS = ("p", "q", "r")
subsets = st.sets(st.sampled_from(PACKETS))


@given(sources(PACKETS), subsets, subsets)
def test_select_and_drop_commute(stream: Stream, selected: set[str], dropped: set[str]) -> None:
    def select(s: Stream) -> Stream:
        return SelectPacketColumns(selected, strict=False)(s)

    def drop(s: Stream) -> Stream:
        return DropPacketColumns(dropped, strict=False)(s)

    if not selected - dropped:  # nothing would remain: both orders refuse
        for build in (lambda: drop(select(stream)), lambda: select(drop(stream))):
            with pytest.raises(OperatorError):
                build()
        return
    assert full(drop(select(stream))).equals(full(select(drop(stream))))


@given(sources(PACKETS), subsets, st.permutations(PACKETS))
def test_rename_then_select_is_select_then_rename(
    stream: Stream, selected: set[str], targets: list[str]
) -> None:
    renames = {old: f"{new}_" for old, new in zip(PACKETS, targets, strict=True)}
    if not selected:
        return
    first = SelectPacketColumns({renames[s] for s in selected})(MapPackets(renames)(stream))
    second = MapPackets(renames, strict=False)(SelectPacketColumns(selected)(stream))
    assert full(first).equals(full(second).select(full(first).column_names))


@given(sources(PACKETS), st.permutations(TAG_NAMES))
def test_renaming_tags_back_is_the_identity(stream: Stream, targets: list[str]) -> None:
    tags = stream.keys()[0]
    forward = {t: f"{new}_t" for t, new in zip(tags, targets, strict=False)}
    back = {new: old for old, new in forward.items()}
    restored = MapTags(back)(MapTags(forward)(stream))
    assert full(restored).equals(full(stream))


@given(sources(("p", "q")), sources(("r",)))
def test_dropping_a_packet_commutes_with_join(a: Stream, b: Stream) -> None:
    after = DropPacketColumns("q")(Join()(a, b))
    before = Join()(DropPacketColumns("q")(a), b)
    assert user_rows(after) == user_rows(before)
    assert Counter(after.keys()) == Counter(before.keys())
