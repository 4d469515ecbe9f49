"""Batch: rows grouped into list columns, hidden columns included, end to end."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from podline import Packet, Schema, TableStream, Tag
from podline.errors import OperatorError
from podline.hashing import hash_table
from podline.operators import Batch

from .helpers import assert_prediction_matches, full, source

ROWS = [{"id": i, "x": float(i), "name": None if i == 2 else f"n{i}"} for i in range(5)]


@pytest.fixture
def stream():
    return source(ROWS, label="S")


@pytest.mark.parametrize(
    ("size", "drop", "lengths"),
    [(0, False, [5]), (2, False, [2, 2, 1]), (2, True, [2, 2]), (5, True, [5]), (7, True, [])],
)
def test_batch_sizes(stream, size, drop, lengths) -> None:
    batched = Batch(size, drop)(stream)
    assert [len(v) for v in batched.as_table().column("id").to_pylist()] == lengths
    assert_prediction_matches(batched)


def test_every_column_becomes_a_list(stream) -> None:
    batched = Batch(2)(stream)
    tags, packets = batched.output_schema(system_tags=True)
    assert packets == Schema({"x": list[float], "name": list[str | None]})
    assert all(tp == list[str] for name, tp in tags.items() if name != "id")
    table = full(batched)
    assert table.column("id").to_pylist() == [[0, 1], [2, 3], [4]]
    assert table.column("name").to_pylist() == [["n0", "n1"], [None, "n3"], ["n4"]]
    assert table.column("__source:x").to_pylist()[2] == [f"source::{stream.source_id}::#4::x"]
    record = next(c for c in table.column_names if c.startswith("__tag:record_id"))
    assert table.column(record).to_pylist() == [["#0", "#1"], ["#2", "#3"], ["#4"]]


def test_materializes_everywhere(stream) -> None:
    batched = Batch(2)(stream)
    rows = list(batched)
    tag, packet = rows[0]
    assert isinstance(tag, Tag)
    assert isinstance(packet, Packet)
    assert tag["id"] == [0, 1]
    assert packet["x"] == [0.0, 1.0]
    assert packet.source_info()["x"] == [f"source::{stream.source_id}::#{i}::x" for i in (0, 1)]
    assert tag.as_table(system_tags=True).num_rows == 1
    assert packet.as_table(source_info=True).column("__source:x").type == pa.large_list(
        pa.large_string()
    )
    hashes = batched.as_table(content_hash=True).column("__content_hash").to_pylist()
    assert hashes == [str(p.content_hash()) for _, p in rows]
    frame = batched.to_polars(all_info=True)
    assert frame.schema["x"] == pl.List(pl.Float64)
    assert batched.content_hash() != stream.content_hash()


def test_stores_and_reloads_unchanged(stream, tmp_path: Path) -> None:
    table = full(Batch(2)(stream))
    pq.write_table(table, tmp_path / "batched.parquet")
    loaded = pq.read_table(tmp_path / "batched.parquet")
    assert hash_table(loaded) == hash_table(table)
    reloaded = TableStream(loaded, ["id"])
    assert reloaded.output_schema(system_tags=True) == Batch(2)(stream).output_schema(
        system_tags=True
    )


def test_stores_in_delta_lake(stream, tmp_path: Path) -> None:
    deltalake = pytest.importorskip("deltalake")
    table = full(Batch(2)(stream))
    deltalake.write_deltalake(str(tmp_path / "delta"), table)
    loaded = deltalake.DeltaTable(str(tmp_path / "delta")).to_pyarrow_table()
    assert hash_table(loaded) == hash_table(table)


@pytest.mark.parametrize("backend", ["memory", "delta"])
def test_stores_through_podline_stores(stream, tmp_path: Path, backend: str) -> None:
    from podline.stores import RECORD_ID, DeltaStore, MemoryStore

    batched = Batch(2)(stream)
    table = full(batched)
    keyed = table.append_column(RECORD_ID, batched.packet_hashes())
    store = MemoryStore() if backend == "memory" else DeltaStore(tmp_path / "store")
    with store:
        assert store.write("batches", keyed) == table.num_rows
        store.flush()
        loaded = store.scan("batches")
    assert loaded is not None
    assert hash_table(loaded.select(table.column_names)) == hash_table(table)
    reloaded = TableStream(loaded.select(table.column_names), ["id"])
    assert [p.as_dict(source_info=True) for _, p in reloaded] == [
        p.as_dict(source_info=True) for _, p in batched
    ]


def test_batch_of_batches_and_then_flatten(stream) -> None:
    twice = Batch(1)(Batch(2)(stream))
    nested = Schema({"x": list[list[float]], "name": list[list[str | None]]})
    assert twice.output_schema()[1] == nested
    flat = twice.to_polars(system_tags=True, source_info=True).explode(pl.all()).explode(pl.all())
    assert flat.equals(stream.to_polars(system_tags=True, source_info=True))


def test_empty_input_gives_no_batch(stream) -> None:
    empty = source([], schema={"id": int, "x": float}, label="E")
    for size in (0, 3):
        batched = Batch(size)(empty)
        assert len(batched) == 0
        assert batched.output_schema() == (Schema({"id": list[int]}), Schema({"x": list[float]}))
        assert_prediction_matches(batched)


@pytest.mark.parametrize("size", [-1, 1.5, True, "2"])
def test_bad_batch_size(size) -> None:
    with pytest.raises(OperatorError, match=r"Batch: batch_size must be an integer >= 0"):
        Batch(size)


def test_identity_covers_parameters() -> None:
    assert Batch().content_hash() == Batch(0, False).content_hash()
    assert Batch(2).content_hash() != Batch(3).content_hash()
    assert Batch(2).content_hash() != Batch(2, True).content_hash()
    assert repr(Batch(2)) == "Batch(batch_size=2, drop_partial=False)"
