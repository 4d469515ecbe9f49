"""Streams never held whole: ``ChunkedTableStream``, ``SpillBuffer`` and ``TableHasher``."""

from __future__ import annotations

import os
import tempfile

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podline import DictSource
from podline.errors import HashingError
from podline.hashing import TableHasher, hash_table
from podline.streams import ChunkedTableStream, SpillBuffer, TableStream, stream_chunks


def _rows(n: int) -> TableStream:
    source = DictSource([{"id": i, "x": i / 2, "s": f"v{i}"} for i in range(n)], ["id"])
    return TableStream(source.as_table(system_tags=True, source_info=True), ["id"])


def _spill_files() -> set[str]:
    folder = tempfile.gettempdir()
    return {name for name in os.listdir(folder) if name.startswith("podline-spill-")}


def test_spill_buffer_keeps_small_outputs_in_memory() -> None:
    rows = _rows(10)
    buffer = SpillBuffer()
    for chunk in rows.iter_chunks(3):
        buffer.add(chunk)
    result = buffer.result(rows)
    assert not isinstance(result, ChunkedTableStream)
    assert result.as_table(all_info=True).equals(rows.as_table(all_info=True))


def test_spill_buffer_writes_large_outputs_to_an_unlinked_file() -> None:
    rows = _rows(1000)
    before = _spill_files()
    buffer = SpillBuffer(limit=1)  # every chunk goes to disk
    for chunk in rows.iter_chunks(64):
        buffer.add(chunk)
    result = buffer.result(rows)
    assert isinstance(result, ChunkedTableStream)
    # The file is open for reading but no longer has a name: a kill leaves nothing behind.
    assert _spill_files() == before
    assert len(result) == 1000
    assert result.as_table(all_info=True).equals(rows.as_table(all_info=True))
    assert result.packet_hashes().equals(rows.packet_hashes())
    assert list(result) == list(rows)
    pieces = list(result.iter_chunks(100))
    assert max(len(p) for p in pieces) <= 100
    assert sum(len(p) for p in pieces) == 1000
    assert result.content_hash() == rows.content_hash()


def test_an_empty_spill_buffer_gives_the_template() -> None:
    rows = _rows(3)
    empty = TableStream(rows.as_table(system_tags=True, source_info=True).slice(0, 0), ["id"])
    assert SpillBuffer().result(empty) is empty


def test_stream_chunks_never_asks_a_chunked_stream_for_its_whole_table() -> None:
    rows = _rows(50)
    table = rows.as_table(system_tags=True, source_info=True)

    class Unwhole(ChunkedTableStream):
        def as_table(self, **options: object) -> pa.Table:
            raise AssertionError("the whole table was asked for")

    chunked = Unwhole(table.schema, ["id"], lambda: table.to_batches(7), 50)
    pieces = list(stream_chunks(chunked, 16))
    assert [len(p) for p in pieces] == [16, 16, 16, 2]  # small chunks joined, large ones cut
    assert pa.concat_tables(p.as_table(all_info=True) for p in pieces).equals(
        rows.as_table(all_info=True)
    )


@given(
    values=st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=40),
    cut=st.integers(1, 9),
)
def test_table_hasher_gives_hash_table_chunk_by_chunk(values: list[int | None], cut: int) -> None:
    table = pa.table({"v": pa.array(values, pa.int64()), "s": [str(v) for v in values]})
    hasher = TableHasher(table.schema, table.num_rows)
    for batch in table.to_batches(cut):
        hasher.update(batch)
    assert hasher.digest() == hash_table(table)


def test_table_hasher_checks_the_row_count() -> None:
    table = pa.table({"v": [1, 2, 3]})
    hasher = TableHasher(table.schema, 4)
    hasher.update(table)
    with pytest.raises(HashingError, match="announced as 4 rows gave 3"):
        hasher.digest()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"source_info": True},
        {"system_tags": True},
        {"content_hash": True},
        {"content_hash": "h", "system_tags": True},
        {"all_info": True},
        {"sort_by_tags": True},
    ],
)
def test_a_chunked_table_is_read_a_chunk_at_a_time_without_the_columns_not_asked_for(
    options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading a spilled node output as a table keeps only the columns asked for of each
    # chunk: its source info (a token a row) is never held for the whole stream.
    rows = _rows(50)
    table = rows.as_table(system_tags=True, source_info=True)
    shuffled = table.take(pa.array(list(range(49, -1, -1))))
    whole_tables: list[int] = []

    def batches() -> list[pa.RecordBatch]:
        whole_tables.append(1)
        return shuffled.to_batches(7)

    chunked = ChunkedTableStream(shuffled.schema, ["id"], batches, 50)
    expected = TableStream(shuffled, ["id"]).as_table(**options)  # type: ignore[arg-type]
    joined: list[set[str]] = []
    concat = pa.concat_tables

    def spied(tables: list[pa.Table], *args: object, **kwargs: object) -> pa.Table:
        tables = list(tables)
        joined.append({name for t in tables for name in t.column_names})
        return concat(tables, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pa, "concat_tables", spied)
    got = chunked.as_table(**options)
    monkeypatch.undo()
    if not (options.get("source_info") or options.get("all_info") or options.get("sort_by_tags")):
        info = {n for n in shuffled.column_names if n.startswith("__source:")}
        assert info
        assert not any(info & names for names in joined)
    assert got.equals(expected)
    assert whole_tables == [1]
    if not options:
        assert got.column_names == ["id", "x", "s"]
        assert all(len(chunk) <= 7 for chunk in got.column("x").chunks)


def test_a_spilled_table_read_back_holds_only_the_columns_asked_for() -> None:
    # A batch read from a spill file is one buffer: the columns asked for are copied out of
    # it, so the source info and system tags read with them are let go, batch by batch.
    source = DictSource([{"id": i, "s": "x" * 200 + str(i)} for i in range(4_000)], ["id"])
    rows = TableStream(source.as_table(system_tags=True, source_info=True), ["id"])
    buffer = SpillBuffer(limit=1)
    for chunk in rows.iter_chunks(500):
        buffer.add(chunk)
    result = buffer.result(rows)
    assert isinstance(result, ChunkedTableStream)
    before = pa.total_allocated_bytes()
    ids = result.as_table().select(["id"])
    held = pa.total_allocated_bytes() - before
    assert ids.column("id").to_pylist() == list(range(4_000))
    whole = rows.as_table(system_tags=True, source_info=True).nbytes
    assert held < whole / 4  # the packets' strings went with their batches
    assert held >= ids.nbytes
