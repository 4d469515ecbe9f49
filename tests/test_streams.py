"""TableStream, the Stream protocol and LazyStream."""

from __future__ import annotations

import threading
import time
from typing import Any

import pyarrow as pa
import pytest

from podline import (
    ContentHash,
    InputValidationError,
    LazyStream,
    Packet,
    ReservedColumnError,
    Schema,
    SchemaError,
    Stream,
    TableStream,
    Tag,
)
from podline.hashing import HASH_SCHEME, row_hash_strings
from podline.stores import MemoryStore
from podline.streams import DelegatingStream

LINEAGE = "0123456789ab"
SYS_SOURCE = f"__tag:source_id::{LINEAGE}"
SYS_RECORD = f"__tag:record_id::{LINEAGE}"


def plain_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "x": pa.array([0.5, 1.5, 2.5], pa.float64()),
            "name": pa.array(["a", "b", "c"], pa.large_string()),
        }
    )


def hidden_table() -> pa.Table:
    """User columns plus system tags, source info for ``x`` only and a meta column, shuffled."""
    return pa.table(
        {
            "__source:x": pa.array(
                ["source::s::#0::x", "source::s::#1::x", None], pa.large_string()
            ),
            "x": [0.5, 1.5, 2.5],
            SYS_RECORD: pa.array(["#0", "#1", "#2"], pa.large_string()),
            "id": [1, 2, 3],
            "__meta:flag": [True, False, True],
            SYS_SOURCE: pa.array(["s", "s", "s"], pa.large_string()),
            "name": ["a", "b", "c"],
        }
    )


@pytest.fixture
def stream() -> TableStream:
    return TableStream(plain_table(), ["id"], label="plain")


@pytest.fixture
def hidden() -> TableStream:
    return TableStream(hidden_table(), ["id"], label="hidden")


# --------------------------------------------------------------------------- schema


def test_keys_and_schema_without_hidden(stream: TableStream) -> None:
    assert stream.keys() == (("id",), ("x", "name"))
    assert stream.keys(system_tags=True) == (("id",), ("x", "name"))
    tags, packets = stream.output_schema()
    assert tags == Schema({"id": int | None})
    assert packets == Schema({"x": float | None, "name": str | None})
    assert stream.output_schema(system_tags=True) == (tags, packets)


def test_keys_and_schema_with_system_tags(hidden: TableStream) -> None:
    assert hidden.keys() == (("id",), ("x", "name"))
    # system tags keep their table order
    assert hidden.keys(system_tags=True) == (("id", SYS_RECORD, SYS_SOURCE), ("x", "name"))
    tags, packets = hidden.output_schema()
    assert list(tags) == ["id"]
    assert list(packets) == ["x", "name"]
    sys_tags, sys_packets = hidden.output_schema(system_tags=True)
    assert list(sys_tags) == ["id", SYS_RECORD, SYS_SOURCE]
    assert sys_tags[SYS_SOURCE] == str | None
    assert sys_packets == packets


def test_tag_columns_in_given_order() -> None:
    table = pa.table({"a": [1], "b": [2], "c": [3]})
    s = TableStream(table, ["c", "a"])
    assert s.keys() == (("c", "a"), ("b",))
    assert s.as_table().column_names == ["c", "a", "b"]


def test_a_string_names_one_column_wherever_columns_are_named() -> None:
    table = pa.table({"id": [1, 2], "v": ["a", "b"], "w": [0.5, 1.5]})
    s = TableStream(table, "id")
    assert s.keys() == (("id",), ("v", "w"))
    assert s.select_packet_columns("v").keys() == (("id",), ("v",))
    assert s.drop_packet_columns("w").keys() == (("id",), ("v",))
    store = MemoryStore()
    store.write("t", table.append_column("__record_id", pa.array(["r1", "r2"])))
    scanned = store.scan("t", columns="v")
    assert scanned is not None
    assert scanned.column_names == ["v"]


def test_no_tag_columns() -> None:
    s = TableStream(pa.table({"v": [1, 2]}))
    assert s.keys() == ((), ("v",))
    assert [dict(t) for t, _ in s] == [{}, {}]


def test_record_batch_input() -> None:
    batch = pa.RecordBatch.from_pydict({"id": [1, 2], "v": ["a", "b"]})
    s = TableStream(batch, ["id"])
    assert len(s) == 2
    assert s.as_table().to_pydict() == {"id": [1, 2], "v": ["a", "b"]}


def test_len(stream: TableStream) -> None:
    assert len(stream) == 3
    assert len(TableStream(plain_table().slice(0, 0), ["id"])) == 0


# --------------------------------------------------------------------------- rows


def test_iter_packets_yields_tag_packet(hidden: TableStream) -> None:
    rows = list(hidden.iter_packets())
    assert len(rows) == 3
    tag, packet = rows[1]
    assert isinstance(tag, Tag)
    assert isinstance(packet, Packet)
    assert dict(tag) == {"id": 2}
    assert dict(packet) == {"x": 1.5, "name": "b"}
    assert tag.system_tags() == {SYS_SOURCE: "s", SYS_RECORD: "#1"}
    assert packet.source_info() == {"x": "source::s::#1::x", "name": None}
    assert tag.schema() == hidden.output_schema()[0]
    assert packet.schema() == hidden.output_schema()[1]
    assert rows[2][1].source_info() == {"x": None, "name": None}


def test_dunder_iter_matches_iter_packets(hidden: TableStream) -> None:
    assert list(hidden) == list(hidden.iter_packets())
    assert [t["id"] for t, _ in hidden] == [1, 2, 3]


def test_iteration_converts_nested_and_file_values(tmp_path: Any) -> None:
    from pathlib import Path

    f = tmp_path / "f.txt"
    f.write_text("hi")
    table = pa.table(
        {
            "id": [1],
            "xs": pa.array([[1, 2]], pa.large_list(pa.int64())),
            "f": pa.array(
                [{"__file_path": str(f)}], pa.struct([("__file_path", pa.large_string())])
            ),
        }
    )
    ((_tag, packet),) = list(TableStream(table, ["id"]))
    assert packet["xs"] == [1, 2]
    assert packet["f"] == Path(f)
    assert isinstance(packet["f"], Path)


def test_packets_hash_like_packet_hashes(hidden: TableStream) -> None:
    expected = [ContentHash.parse(h) for h in hidden.packet_hashes().to_pylist()]
    assert [p.content_hash() for _, p in hidden] == expected
    # computed in one call, independent of hidden columns
    assert (
        hidden.packet_hashes().to_pylist()
        == row_hash_strings(plain_table(), ["x", "name"]).to_pylist()
    )


def test_packet_hashes_before_iteration_are_reused() -> None:
    s = TableStream(plain_table(), ["id"])
    hashes = s.packet_hashes().to_pylist()
    assert [str(p.content_hash()) for _, p in s] == hashes


# --------------------------------------------------------------------------- as_table


def test_as_table_default_hides_hidden_columns(hidden: TableStream) -> None:
    table = hidden.as_table()
    assert table.column_names == ["id", "x", "name"]
    assert table.to_pydict() == {"id": [1, 2, 3], "x": [0.5, 1.5, 2.5], "name": ["a", "b", "c"]}


def test_as_table_system_tags(hidden: TableStream) -> None:
    table = hidden.as_table(system_tags=True)
    assert table.column_names == ["id", "x", "name", SYS_RECORD, SYS_SOURCE]
    assert table.column(SYS_RECORD).to_pylist() == ["#0", "#1", "#2"]


def test_as_table_source_info(hidden: TableStream) -> None:
    table = hidden.as_table(source_info=True)
    assert table.column_names == ["id", "x", "name", "__source:x", "__source:name"]
    assert table.column("__source:x").to_pylist() == ["source::s::#0::x", "source::s::#1::x", None]


def test_missing_source_info_columns_added_as_nulls(stream: TableStream) -> None:
    table = stream.as_table(source_info=True)
    assert table.column_names == ["id", "x", "name", "__source:x", "__source:name"]
    for name in ("__source:x", "__source:name"):
        assert table.schema.field(name).type == pa.large_string()
        assert table.column(name).null_count == 3


def test_as_table_content_hash(stream: TableStream) -> None:
    table = stream.as_table(content_hash=True)
    assert table.column_names == ["id", "x", "name", "__content_hash"]
    assert table.column("__content_hash").to_pylist() == stream.packet_hashes().to_pylist()
    custom = stream.as_table(content_hash="row_hash")
    assert custom.column_names == ["id", "x", "name", "row_hash"]
    assert custom.column("row_hash").to_pylist() == stream.packet_hashes().to_pylist()
    assert all(h.startswith(f"{HASH_SCHEME}:") for h in custom.column("row_hash").to_pylist())


@pytest.mark.parametrize("name", ["x", "id", "__source:x", "__meta:flag"])
def test_as_table_content_hash_name_clash(hidden: TableStream, name: str) -> None:
    with pytest.raises(InputValidationError, match=repr(name)):
        hidden.as_table(content_hash=name)


def test_as_table_content_hash_replaces_stored_column() -> None:
    table = plain_table().append_column("__content_hash", pa.array(["h1", "h2", "h3"]))
    s = TableStream(table, ["id"])
    fresh = s.packet_hashes().to_pylist()
    assert s.as_table(content_hash=True).column("__content_hash").to_pylist() == fresh
    all_info = s.as_table(all_info=True)
    assert all_info.column_names.count("__content_hash") == 1
    assert all_info.column("__content_hash").to_pylist() == fresh
    assert s.as_table(content_hash="other").column_names[-1] == "other"


def test_as_table_all_info_round_trip(hidden: TableStream) -> None:
    again = TableStream(hidden.as_table(all_info=True), ["id"])
    assert again.as_table(all_info=True).equals(hidden.as_table(all_info=True))


def test_as_table_all_info(hidden: TableStream) -> None:
    table = hidden.as_table(all_info=True)
    assert table.column_names == [
        "id",
        "x",
        "name",
        SYS_RECORD,
        SYS_SOURCE,
        "__source:x",
        "__source:name",
        "__meta:flag",
        "__content_hash",
    ]
    assert table.column("__meta:flag").to_pylist() == [True, False, True]
    named = hidden.as_table(all_info=True, content_hash="h")
    assert named.column_names[-1] == "h"
    # meta columns only appear with all_info
    assert "__meta:flag" not in hidden.as_table(system_tags=True, source_info=True).column_names


def test_as_table_sort_by_tags() -> None:
    table = pa.table({"g": ["b", "a", None, "a"], "k": [1, 2, 0, 1], "v": [10, 20, 30, 40]})
    s = TableStream(table, ["g", "k"])
    assert s.as_table().column("v").to_pylist() == [10, 20, 30, 40]  # stream order kept
    out = s.as_table(sort_by_tags=True)
    assert out.column("v").to_pylist() == [40, 20, 10, 30]  # nulls last
    assert out.column("g").to_pylist() == ["a", "a", "b", None]


def test_sort_by_tags_keeps_hidden_columns_aligned(hidden: TableStream) -> None:
    reversed_stream = TableStream(hidden_table().take([2, 0, 1]), ["id"])
    out = reversed_stream.as_table(sort_by_tags=True, all_info=True)
    assert out.column("id").to_pylist() == [1, 2, 3]
    assert out.column(SYS_RECORD).to_pylist() == ["#0", "#1", "#2"]
    assert out.column("__source:x").to_pylist()[:2] == ["source::s::#0::x", "source::s::#1::x"]
    assert out.column("__content_hash").to_pylist() == hidden.packet_hashes().to_pylist()


def test_sort_by_tags_with_system_tags_breaks_ties() -> None:
    table = pa.table(
        {
            "g": [1, 1, 1],
            "v": ["c", "a", "b"],
            SYS_RECORD: pa.array(["r2", "r0", "r1"], pa.large_string()),
        }
    )
    s = TableStream(table, ["g"])
    out = s.as_table(sort_by_tags=True, system_tags=True)
    assert out.column("v").to_pylist() == ["a", "b", "c"]


def test_sort_by_nested_tag_is_deterministic() -> None:
    table = pa.table(
        {
            "k": pa.array([[3, 1], [1, 2], [1], [3, 1], [2]], pa.large_list(pa.int64())),
            "j": [1, 1, 1, 0, 1],
            "v": [1, 2, 3, 4, 5],
        }
    )
    results = []
    for order in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        s = TableStream(table.take(order), ["k", "j"])
        results.append(s.as_table(sort_by_tags=True))
    assert results[0].equals(results[1])
    assert results[0].equals(results[2])
    out = results[0]
    # the sortable tag comes first ...
    assert out.column("j").to_pylist() == [0, 1, 1, 1, 1]
    # ... ties are broken by the hash of the nested tag
    rest = out.slice(1)
    hashes = row_hash_strings(rest, ["k"]).to_pylist()
    assert hashes == sorted(hashes)
    assert sorted(rest.column("v").to_pylist()) == [1, 2, 3, 5]


def test_sort_by_tags_without_tags_keeps_order() -> None:
    s = TableStream(pa.table({"v": [3, 1, 2]}))
    assert s.as_table(sort_by_tags=True).column("v").to_pylist() == [3, 1, 2]


def test_sort_empty_stream() -> None:
    s = TableStream(pa.table({"k": pa.array([], pa.int64()), "v": pa.array([], pa.int64())}), ["k"])
    assert s.as_table(sort_by_tags=True, content_hash=True).num_rows == 0


# --------------------------------------------------------------------------- conversions


def test_to_polars(hidden: TableStream) -> None:
    import polars as pl

    frame = hidden.to_polars()
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["id", "x", "name"]
    assert frame["name"].to_list() == ["a", "b", "c"]
    with_info = hidden.to_polars(system_tags=True, content_hash=True)
    assert with_info.columns == ["id", "x", "name", SYS_RECORD, SYS_SOURCE, "__content_hash"]


def test_to_pandas(hidden: TableStream) -> None:
    pd = pytest.importorskip("pandas")
    frame = hidden.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "x", "name"]
    assert frame["x"].tolist() == [0.5, 1.5, 2.5]
    assert "__source:x" in hidden.to_pandas(source_info=True).columns


def test_repr(hidden: TableStream) -> None:
    text = repr(hidden)
    assert "TableStream 'hidden': 3 rows" in text
    assert "id: int" in text
    assert "x: float" in text
    assert "name: str" in text
    assert "__tag" not in text  # hidden columns stay hidden in the preview


def test_repr_html(hidden: TableStream) -> None:
    page = hidden._repr_html_()
    assert page.startswith("<div>")
    assert "<table" in page
    for column in ("id", "x", "name"):
        assert f">{column}<" in page
    assert "hidden" in page
    assert "3 rows" in page


# --------------------------------------------------------------------------- errors


def test_missing_tag_column_named() -> None:
    with pytest.raises(InputValidationError, match=r"tag column\(s\) 'zz' not found"):
        TableStream(plain_table(), ["id", "zz"])


def test_no_packet_column() -> None:
    with pytest.raises(InputValidationError, match="at least one packet column"):
        TableStream(plain_table(), ["id", "x", "name"])


def test_system_tag_cannot_be_tag_column() -> None:
    with pytest.raises(InputValidationError, match="not found"):
        TableStream(hidden_table(), ["id", SYS_SOURCE])


def test_orphan_source_info_column() -> None:
    table = plain_table().append_column("__source:ghost", pa.array(["t", "t", "t"]))
    with pytest.raises(InputValidationError, match="'__source:ghost'"):
        TableStream(table, ["id"])


def test_source_info_of_a_tag_column_is_orphan() -> None:
    table = plain_table().append_column("__source:id", pa.array(["t", "t", "t"]))
    with pytest.raises(InputValidationError, match="'__source:id'"):
        TableStream(table, ["id"])


def test_unknown_reserved_column() -> None:
    table = plain_table().append_column("__mystery", pa.array([1, 2, 3]))
    with pytest.raises(ReservedColumnError, match="__mystery"):
        TableStream(table, ["id"])


def test_malformed_system_tag_column() -> None:
    table = plain_table().append_column("__tag:source_id::nothex", pa.array(["s"] * 3))
    with pytest.raises(SchemaError, match="nothex"):
        TableStream(table, ["id"])


# --------------------------------------------------------------------------- protocol & identity


def test_stream_protocol(stream: TableStream) -> None:
    assert isinstance(stream, Stream)
    assert not isinstance(plain_table(), Stream)


def test_identity_content_vs_pipeline() -> None:
    a = TableStream(plain_table(), ["id"])
    same = TableStream(plain_table(), ["id"])
    changed = TableStream(plain_table().set_column(1, "x", pa.array([0.5, 1.5, 9.0])), ["id"])
    assert a.content_hash() == same.content_hash()
    assert a.pipeline_hash() == same.pipeline_hash()
    assert a.content_hash() != changed.content_hash()
    assert a.pipeline_hash() == changed.pipeline_hash()
    assert a.content_hash() != a.pipeline_hash()


def test_pipeline_hash_changes_with_schema() -> None:
    a = TableStream(plain_table(), ["id"])
    retagged = TableStream(plain_table(), ["name"])
    retyped = TableStream(plain_table().set_column(1, "x", pa.array(["0.5", "1.5", "2.5"])), ["id"])
    renamed = TableStream(plain_table().rename_columns(["id", "y", "name"]), ["id"])
    hashes = {s.pipeline_hash() for s in (a, retagged, retyped, renamed)}
    assert len(hashes) == 4
    assert a.content_hash() != retagged.content_hash()


def test_identity_is_order_sensitive_in_rows() -> None:
    a = TableStream(plain_table(), ["id"])
    b = TableStream(plain_table().take([2, 1, 0]), ["id"])
    assert a.content_hash() != b.content_hash()
    assert a.pipeline_hash() == b.pipeline_hash()


# --------------------------------------------------------------------------- LazyStream


class CountingStream(LazyStream):
    """A lazy stream whose identity is its parameter ``n``; ``_compute`` counts its calls."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        super().__init__(label="counting")
        self.n = n
        self.delay = delay
        self.calls = 0
        self._count_lock = threading.Lock()

    def _compute(self) -> TableStream:
        with self._count_lock:
            self.calls += 1
        time.sleep(self.delay)
        table = pa.table({"i": list(range(self.n)), "sq": [i * i for i in range(self.n)]})
        return TableStream(table, ["i"], label=self.label)

    def identity_structure(self) -> Any:
        return {"n": self.n}


def test_lazy_not_computed_at_construction() -> None:
    s = CountingStream(3)
    assert s.calls == 0
    assert not s.is_computed
    assert s.label == "counting"


def test_lazy_hashing_does_not_compute() -> None:
    s = CountingStream(3)
    h = s.content_hash()
    p = s.pipeline_hash()
    assert isinstance(h, ContentHash)
    assert isinstance(p, ContentHash)
    assert s.calls == 0
    assert not s.is_computed
    assert CountingStream(3).content_hash() == h
    assert CountingStream(4).content_hash() != h


def test_lazy_computes_once_across_uses() -> None:
    s = CountingStream(3)
    assert len(s) == 3
    assert s.calls == 1
    assert s.is_computed
    assert s.keys() == (("i",), ("sq",))
    assert s.output_schema()[1] == Schema({"sq": int | None})
    assert [p["sq"] for _, p in s] == [0, 1, 4]
    assert [p["sq"] for _, p in s.iter_packets()] == [0, 1, 4]
    assert s.as_table(content_hash=True).column_names == ["i", "sq", "__content_hash"]
    assert len(s.packet_hashes()) == 3
    assert s.to_polars().shape == (3, 2)
    assert "counting" in repr(s)
    assert s.calls == 1


def test_lazy_is_a_stream() -> None:
    s = CountingStream(2)
    assert isinstance(s, Stream)
    assert s.calls == 0


def test_lazy_concurrent_first_use_computes_once() -> None:
    s = CountingStream(5, delay=0.05)
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    results: list[int] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            barrier.wait()
            results.append(len(s))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [5] * threads_n
    assert s.calls == 1


def test_lazy_without_compute_raises() -> None:
    class Incomplete(LazyStream):
        def identity_structure(self) -> Any:
            return "x"

    with pytest.raises(NotImplementedError, match="Incomplete"):
        len(Incomplete())


def test_delegating_without_stream_raises() -> None:
    class Bare(DelegatingStream):
        label = "bare"

    with pytest.raises(NotImplementedError, match="Bare"):
        Bare().keys()
