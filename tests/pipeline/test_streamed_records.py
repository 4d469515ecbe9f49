"""``StreamedEntries``: a node's records found as its input arrives, a piece at a time.

The answers must be ``KnownEntries``'s (records read whole) whatever the order of the stored
pieces, the order and chunking of what is asked, new or repeated ids, skipped rows, and the
limit on what is held; and what is held must stay bounded when the order holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import podline
from podline import SKIP, function_pod
from podline.functions import SkipType
from podline.nodes import FunctionNode
from podline.nodes import streamed as streamed_module
from podline.nodes.records import KnownEntries, ProvenanceRecords
from podline.nodes.streamed import StreamedEntries
from podline.pipeline import Pipeline
from podline.stores import Store

ROWS = 40


@function_pod("y", live_output=False)
def thrice(a: int) -> int | SkipType:
    return SKIP if a % 7 == 0 else 3 * a


def _stored(store: Store) -> tuple[ProvenanceRecords, pa.Array]:
    """The records of a run over ``ROWS`` rows (values repeat: results are shared by several
    entries; every seventh value is skipped), and the entry ids of its input in order."""
    rows = [{"id": i, "a": i % 23} for i in range(ROWS)]
    with Pipeline("streamed", store) as pipeline:
        thrice.pod(podline.DictSource(rows, tag_columns=["id"], source_id="src"))
    pipeline.run()
    node = pipeline.thrice
    assert isinstance(node, FunctionNode)
    records = node.records
    assert records is not None
    return records, node.entry_ids(pipeline.DictSource.execute())


def _pieces(table: pa.Table, sizes: list[int], order: list[int]) -> list[pa.Table]:
    """``table`` cut into pieces of ``sizes`` (cycled), in ``order`` (a permutation key)."""
    pieces, start, i = [], 0, 0
    while start < table.num_rows:
        size = sizes[i % len(sizes)]
        pieces.append(table.slice(start, size))
        start, i = start + size, i + 1
    keys = [order[j % len(order)] * 1000 + j for j in range(len(pieces))]
    return [piece for _, piece in sorted(zip(keys, pieces, strict=True), key=lambda p: p[0])]


def _served(records: ProvenanceRecords, record_pieces: list[pa.Table], memo: list) -> None:  # type: ignore[type-arg]
    """Have ``records`` give these pieces (as stored pieces in another order would be)."""

    def stored_records() -> Iterator[pa.Table]:
        yield from record_pieces

    def stored_memo(*, packed: bool) -> Iterator[tuple[pa.Table, bool]]:
        assert packed
        yield from memo

    records.record_pieces = stored_records  # type: ignore[method-assign]
    records.memo_pieces = stored_memo  # type: ignore[method-assign]


def _asked(ids: pa.Array, draw: st.DrawFn) -> list[pa.Array]:
    """Chunks of ids a run might ask for: the input's, in order or not, with ids nothing
    knows and ids asked twice."""
    order = list(range(len(ids)))
    if draw(st.booleans()):
        order = draw(st.permutations(order))
    inserts = draw(st.lists(st.integers(0, len(order)), max_size=3))
    asked: list[str | None] = [ids[i].as_py() for i in order]
    for at in sorted(inserts, reverse=True):
        asked.insert(at, "pod3:" + f"{at:064x}")  # canonical, and stored nowhere
    for at in draw(st.lists(st.integers(0, len(asked) - 1), max_size=2)):
        asked.append(asked[at])  # asked again, later
    size = draw(st.integers(1, 17))
    return [pa.array(asked[i : i + size], pa.large_string()) for i in range(0, len(asked), size)]


def _same(streamed: StreamedEntries, known: KnownEntries, chunk: pa.Array) -> None:
    got, expected = streamed.find(chunk), known.find(chunk)
    assert got.found.tolist() == expected.found.tolist()
    assert got.skipped.tolist() == expected.skipped.tolist()
    assert got.outputs.equals(expected.outputs)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_streamed_lookups_answer_as_the_records_read_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    records, ids = _stored_once(store)
    all_records = pa.concat_tables(list(ProvenanceRecords.record_pieces(records)))
    memo = list(ProvenanceRecords.memo_pieces(records, packed=True))
    all_memo, tokens = pa.concat_tables([piece for piece, _ in memo]), memo[0][1]
    draw = data.draw
    sizes = st.lists(st.integers(1, 13), min_size=1, max_size=4)
    shuffles = st.lists(st.integers(0, 3), min_size=1, max_size=5)
    record_pieces = _pieces(all_records, draw(sizes), draw(shuffles))
    memo_pieces = [(p, tokens) for p in _pieces(all_memo, draw(sizes), draw(shuffles))]
    monkeypatch.setattr(streamed_module, "HELD_ROWS", draw(st.integers(1, 2 * ROWS)))
    monkeypatch.setattr(streamed_module, "KEPT_ROWS", draw(st.integers(0, ROWS)))
    known = ProvenanceRecords.known(records)
    _served(records, record_pieces, memo_pieces)
    streamed = StreamedEntries(records)
    try:
        for chunk in data.draw(st.composite(lambda d: _asked(ids, d))()):
            _same(streamed, known, chunk)
    finally:
        streamed.close()
        monkeypatch.undo()


_STORED: dict[int, tuple[ProvenanceRecords, pa.Array]] = {}


def _stored_once(store: Store) -> tuple[ProvenanceRecords, pa.Array]:
    """``_stored(store)``, once per store (hypothesis calls the test many times)."""
    if id(store) not in _STORED:
        _STORED.clear()
        _STORED[id(store)] = _stored(store)
    records, ids = _STORED[id(store)]
    fresh = ProvenanceRecords(records.store, records.function, None, memo=records.memo)
    return fresh, ids


def test_in_order_a_lookup_holds_a_piece_or_two_of_each_table(store: Store) -> None:
    # A re-run asks in the order the records were written: each piece is let go once served,
    # so no more than the pieces a chunk spans are held, whatever the number of rows.
    records, ids = _stored(store)
    all_records = pa.concat_tables(list(records.record_pieces()))
    memo = list(records.memo_pieces(packed=True))
    all_memo, tokens = pa.concat_tables([piece for piece, _ in memo]), memo[0][1]
    _served(
        records,
        [all_records.slice(i, 4) for i in range(0, ROWS, 4)],
        [(all_memo.slice(i, 4), tokens) for i in range(0, all_memo.num_rows, 4)],
    )
    streamed = StreamedEntries(records)
    held = []
    for start in range(0, ROWS, 4):
        found = streamed.find(ids.slice(start, 4))
        assert found.found.all()
        held.append((streamed._entries._rows, streamed._results._rows))
    assert streamed._known is None  # never read whole
    assert max(entries for entries, _ in held) <= 4
    # The memo holds the results of repeated values until their last use (its rows are
    # distinct results, 23 of them, in the order first computed).
    assert max(results for _, results in held) < all_memo.num_rows
    streamed.close()


def test_rows_out_of_order_beyond_the_limit_are_found_by_reading_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reversed pieces with a limit of one piece: nothing can stream, every answer still right.
    records, ids = _stored(store)
    known = records.known()
    all_records = pa.concat_tables(list(records.record_pieces()))
    pieces = [all_records.slice(i, 5) for i in range(0, ROWS, 5)][::-1]
    memo = list(records.memo_pieces(packed=True))
    read: list[int] = []

    def counted() -> Iterator[pa.Table]:
        for i, piece in enumerate(pieces):
            read.append(i)
            yield piece

    _served(records, [], memo)
    records.record_pieces = counted  # type: ignore[method-assign]
    monkeypatch.setattr(streamed_module, "HELD_ROWS", 5)
    streamed = StreamedEntries(records)
    for start in range(0, ROWS, 8):
        _same(streamed, known, ids.slice(start, 8))
    assert streamed._known is not None
    # Given up within the limit: not every piece was read to find out (the known rows are
    # read again through the store instead).
    assert len(read) <= 1 + 1 + streamed_module._AHEAD + 1 < len(pieces)
    streamed.close()


def test_a_read_ahead_stops_when_closed_or_dropped() -> None:
    def counting(made: list[int]) -> Iterator[int]:
        for i in range(1000):
            made.append(i)
            yield i

    closed: list[int] = []
    ahead = streamed_module.ReadAhead(lambda: counting(closed), depth=2, name="test")
    assert ahead.next() == 0
    ahead.close()
    assert ahead.next() is None
    dropped: list[int] = []
    other = streamed_module.ReadAhead(lambda: counting(dropped), depth=2, name="test")
    assert other.next() == 0
    del other  # collected: its thread stops too
    time.sleep(0.5)
    counts = len(closed), len(dropped)
    time.sleep(0.3)
    assert (len(closed), len(dropped)) == counts
    assert max(counts) < 10  # a few ahead, not the thousand items
