"""Tag and Packet: read-only typed one-row mappings with hidden columns and a content hash."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pytest

from podline import (
    ContentHash,
    DictSource,
    InputValidationError,
    Packet,
    ReservedColumnError,
    Schema,
    TableStream,
    Tag,
)
from podline.columns import source_info_column
from podline.hashing import HASH_SCHEME

SYS_SOURCE = "__tag:source_id::0123456789ab"
SYS_RECORD = "__tag:record_id::0123456789ab"


@pytest.fixture
def packet() -> Packet:
    return Packet(
        {"x": 1.5, "name": "a", "n": 3},
        source_info={"x": "source::s::#0::x", "name": "source::s::#0::name"},
    )


@pytest.fixture
def tag() -> Tag:
    return Tag({"id": 7, "site": "lab"}, system_tags={SYS_SOURCE: "s", SYS_RECORD: "#0"})


# --------------------------------------------------------------------------- mapping access


def test_packet_mapping_access(packet: Packet) -> None:
    assert packet["x"] == 1.5
    assert packet["name"] == "a"
    assert packet.get("n") == 3
    assert packet.get("missing") is None
    assert packet.get("missing", "dflt") == "dflt"
    assert "x" in packet
    assert "missing" not in packet
    assert len(packet) == 3
    assert list(packet) == ["x", "name", "n"]
    assert dict(packet) == {"x": 1.5, "name": "a", "n": 3}
    assert list(packet.values()) == [1.5, "a", 3]
    assert list(packet.items()) == [("x", 1.5), ("name", "a"), ("n", 3)]
    assert isinstance(packet, Mapping)


def test_hidden_columns_are_not_mapping_keys(packet: Packet, tag: Tag) -> None:
    assert source_info_column("x") not in packet
    assert SYS_SOURCE not in tag
    assert len(tag) == 2
    assert dict(tag) == {"id": 7, "site": "lab"}
    with pytest.raises(KeyError):
        tag[SYS_SOURCE]


def test_keys_follow_schema_order_not_value_order() -> None:
    packet = Packet({"b": 1, "a": "x"}, {"a": str, "b": int})
    assert packet.keys() == ("a", "b")
    assert list(packet) == ["a", "b"]
    assert list(packet.as_dict()) == ["a", "b"]
    assert packet.as_table().column_names == ["a", "b"]


def test_keyerror_lists_available_columns(packet: Packet) -> None:
    with pytest.raises(KeyError) as info:
        packet["nope"]
    message = str(info.value)
    assert "'nope'" in message
    assert "Packet" in message
    for name in ("'n'", "'name'", "'x'"):
        assert name in message


def test_tag_keyerror_names_tag(tag: Tag) -> None:
    with pytest.raises(KeyError, match=r"Tag has no column 'zzz'.*'id', 'site'"):
        tag["zzz"]


# --------------------------------------------------------------------------- schema and tables


def test_inferred_schema(packet: Packet) -> None:
    assert packet.schema() == Schema({"x": float, "name": str, "n": int})
    assert isinstance(packet.schema(), Schema)


def test_explicit_schema_as_mapping_or_schema() -> None:
    a = Packet({"x": 1, "y": None}, {"x": int, "y": str | None})
    b = Packet({"x": 1, "y": None}, Schema({"x": int, "y": str | None}))
    assert a.schema() == b.schema() == Schema({"x": int, "y": str | None})
    assert a == b


def test_as_table_is_typed_one_row(packet: Packet) -> None:
    table = packet.as_table()
    assert table.num_rows == 1
    assert table.column_names == ["x", "name", "n"]
    assert table.schema.field("x").type == pa.float64()
    assert table.schema.field("name").type == pa.large_string()
    assert table.schema.field("n").type == pa.int64()
    assert not table.schema.field("n").nullable
    assert table.to_pylist() == [{"x": 1.5, "name": "a", "n": 3}]


def test_as_table_optional_and_nested_types() -> None:
    packet = Packet(
        {"v": None, "xs": [1, 2]},
        {"v": float | None, "xs": list[int]},
    )
    table = packet.as_table()
    assert table.schema.field("v").nullable
    assert table.schema.field("v").type == pa.float64()
    assert table.schema.field("xs").type == pa.large_list(pa.field("item", pa.int64(), False))
    assert table.to_pylist() == [{"v": None, "xs": [1, 2]}]


def test_schema_mismatch_error() -> None:
    with pytest.raises(InputValidationError, match=r"missing 'y', extra 'x'"):
        Packet({"x": 1}, {"y": int})
    with pytest.raises(InputValidationError, match=r"Tag values do not match its schema"):
        Tag({"a": 1, "b": 2}, {"a": int})


def test_reserved_names_rejected() -> None:
    with pytest.raises(ReservedColumnError, match="__x"):
        Packet({"__x": 1, "ok": 2})
    with pytest.raises(ReservedColumnError, match="__tag"):
        Tag({"__tag:source_id::0123456789ab": "s"})


def test_single_underscore_allowed() -> None:
    packet = Packet({"_private": 1})
    assert packet["_private"] == 1


# --------------------------------------------------------------------------- hidden columns


def test_tag_system_tags_only_when_asked(tag: Tag) -> None:
    assert tag.keys() == ("id", "site")
    assert tag.keys(system_tags=True) == ("id", "site", SYS_SOURCE, SYS_RECORD)
    assert tag.as_dict() == {"id": 7, "site": "lab"}
    assert tag.as_dict(system_tags=True) == {
        "id": 7,
        "site": "lab",
        SYS_SOURCE: "s",
        SYS_RECORD: "#0",
    }
    assert tag.as_table().column_names == ["id", "site"]
    full = tag.as_table(system_tags=True)
    assert full.column_names == ["id", "site", SYS_SOURCE, SYS_RECORD]
    assert full.to_pylist() == [{"id": 7, "site": "lab", SYS_SOURCE: "s", SYS_RECORD: "#0"}]
    assert full.schema.field(SYS_SOURCE).type == pa.large_string()


def test_tag_table_types_match_stream_table() -> None:
    source = DictSource([{"id": 1, "x": 0.5}], ["id"])
    tag, packet = next(iter(source))
    stream_table = source.as_table(system_tags=True, source_info=True)
    tag_table = tag.as_table(system_tags=True)
    packet_table = packet.as_table(source_info=True)
    for table in (tag_table, packet_table):
        for field in table.schema:
            assert field.type == stream_table.schema.field(field.name).type, field.name
            assert (
                table.column(field.name).to_pylist() == stream_table.column(field.name).to_pylist()
            )


def test_tag_system_tags_returns_copy(tag: Tag) -> None:
    tags = tag.system_tags()
    assert tags == {SYS_SOURCE: "s", SYS_RECORD: "#0"}
    tags[SYS_SOURCE] = "changed"
    tags["extra"] = 1
    assert tag.system_tags() == {SYS_SOURCE: "s", SYS_RECORD: "#0"}


def test_packet_source_info_only_when_asked(packet: Packet) -> None:
    assert packet.keys() == ("x", "name", "n")
    assert packet.as_dict() == {"x": 1.5, "name": "a", "n": 3}
    assert packet.as_dict(source_info=True) == {
        "x": 1.5,
        "name": "a",
        "n": 3,
        "__source:x": "source::s::#0::x",
        "__source:name": "source::s::#0::name",
        "__source:n": None,
    }
    assert packet.as_table().column_names == ["x", "name", "n"]
    full = packet.as_table(source_info=True)
    assert full.column_names == ["x", "name", "n", "__source:x", "__source:name", "__source:n"]
    assert full.schema.field("__source:n").type == pa.large_string()
    assert full.to_pylist()[0]["__source:x"] == "source::s::#0::x"
    assert full.to_pylist()[0]["__source:n"] is None


def test_source_info_covers_every_column_and_is_a_copy(packet: Packet) -> None:
    info = packet.source_info()
    assert info == {"x": "source::s::#0::x", "name": "source::s::#0::name", "n": None}
    info["x"] = "tampered"
    assert packet.source_info()["x"] == "source::s::#0::x"


def test_source_info_for_unknown_column_rejected() -> None:
    with pytest.raises(InputValidationError, match="'zz'"):
        Packet({"x": 1}, source_info={"zz": "source::s::#0::zz"})


def test_tag_without_system_tags() -> None:
    tag = Tag({"id": 1})
    assert tag.system_tags() == {}
    assert tag.keys(system_tags=True) == ("id",)
    assert tag.as_table(system_tags=True).column_names == ["id"]


# --------------------------------------------------------------------------- immutability


def test_no_item_assignment(packet: Packet, tag: Tag) -> None:
    with pytest.raises(TypeError):
        packet["x"] = 2.0  # type: ignore[index]
    with pytest.raises(TypeError):
        del packet["x"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        tag["id"] = 2  # type: ignore[index]
    assert packet["x"] == 1.5
    assert tag["id"] == 7


def test_no_new_attributes(packet: Packet) -> None:
    with pytest.raises(AttributeError):
        packet.extra = 1  # type: ignore[attr-defined]


def test_input_dict_is_copied() -> None:
    values = {"x": 1}
    packet = Packet(values)
    values["x"] = 99
    assert packet["x"] == 1
    as_dict = packet.as_dict()
    as_dict["x"] = 5
    assert packet["x"] == 1


# --------------------------------------------------------------------------- equality and hash


def test_equality_and_hash() -> None:
    a = Packet({"x": 1, "y": "a"})
    b = Packet({"y": "a", "x": 1})
    c = Packet({"x": 2, "y": "a"})
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_equality_ignores_hidden_columns() -> None:
    a = Packet({"x": 1}, source_info={"x": "source::a::#0::x"})
    b = Packet({"x": 1}, source_info={"x": "source::b::#9::x"})
    assert a == b
    assert hash(a) == hash(b)
    t1 = Tag({"id": 1}, system_tags={SYS_SOURCE: "a"})
    t2 = Tag({"id": 1}, system_tags={SYS_SOURCE: "b"})
    assert t1 == t2


def test_equality_depends_on_schema_and_type() -> None:
    assert Packet({"x": 1}) != Packet({"x": 1}, {"x": int | None})
    assert Packet({"x": 1}) != Tag({"x": 1})
    assert Packet({"x": 1}) != {"x": 1}


# --------------------------------------------------------------------------- content hash


def test_content_hash_is_of_the_current_scheme(packet: Packet) -> None:
    h = packet.content_hash()
    assert isinstance(h, ContentHash)
    assert h.scheme == HASH_SCHEME
    assert len(h.digest) == 32
    assert packet.content_hash() == h


def test_content_hash_depends_on_values_names_and_types() -> None:
    base = Packet({"x": 1}).content_hash()
    assert Packet({"x": 2}).content_hash() != base
    assert Packet({"y": 1}).content_hash() != base
    assert Packet({"x": 1.0}).content_hash() != base
    assert Packet({"x": "1"}).content_hash() != base


def test_content_hash_ignores_column_order_and_nullability() -> None:
    a = Packet({"x": 1, "y": "a"}, {"x": int, "y": str})
    b = Packet({"y": "a", "x": 1}, {"y": str | None, "x": int})
    assert a.content_hash() == b.content_hash()


def test_content_hash_ignores_hidden_columns() -> None:
    plain = Packet({"x": 1})
    with_info = Packet({"x": 1}, source_info={"x": "source::abc::#3::x"})
    assert plain.content_hash() == with_info.content_hash()
    t_plain = Tag({"id": 1})
    t_sys = Tag({"id": 1}, system_tags={SYS_SOURCE: "abc", SYS_RECORD: "#3"})
    assert t_plain.content_hash() == t_sys.content_hash()


def test_content_hash_matches_row_hash_in_table_stream() -> None:
    # A stream with non-canonical physical types (int32, string): same logical row hash.
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "x": pa.array([0.5, 1.5], pa.float64()),
            "label": pa.array(["a", "b"], pa.string()),
        }
    )
    stream = TableStream(table, ["id"])
    hashes = stream.packet_hashes().to_pylist()
    assert Packet({"x": 0.5, "label": "a"}).content_hash() == ContentHash.parse(hashes[0])
    assert Packet({"label": "b", "x": 1.5}).content_hash() == ContentHash.parse(hashes[1])
    assert Packet({"x": 0.5, "label": "b"}).content_hash() != ContentHash.parse(hashes[0])


def test_content_hash_matches_row_hash_in_source() -> None:
    rows = [
        {"id": 1, "xs": [1, 2], "m": {"a": 1.0}, "s": None},
        {"id": 2, "xs": [], "m": {}, "s": "v"},
    ]
    source = DictSource(rows, ["id"])
    hashes = [ContentHash.parse(h) for h in source.packet_hashes().to_pylist()]
    _, packet_schema = source.output_schema()
    for row, expected in zip(rows, hashes, strict=True):
        values = {k: v for k, v in row.items() if k != "id"}
        assert Packet(values, packet_schema).content_hash() == expected
    iterated = [p.content_hash() for _, p in source]
    assert iterated == hashes


def test_tag_content_hash_matches_tag_columns_row_hash() -> None:
    source = DictSource([{"id": 1, "g": "a", "x": 0.0}], ["id", "g"])
    tag, _ = next(iter(source))
    from podline.hashing import row_hash_strings

    expected = row_hash_strings(source.as_table(), ["id", "g"])[0].as_py()
    assert str(tag.content_hash()) == expected
    assert str(Tag({"g": "a", "id": 1}).content_hash()) == expected


def test_precomputed_content_hash_is_used() -> None:
    fake = "pod1:" + "ab" * 32
    packet = Packet({"x": 1}, content_hash=fake)
    assert packet.content_hash() == ContentHash.parse(fake)
    assert packet.content_hash() != Packet({"x": 1}).content_hash()
    assert hash(packet) == hash(int.from_bytes(bytes.fromhex("ab" * 8), "little"))
    given = ContentHash.parse("pod1:" + "cd" * 32)
    assert Tag({"id": 1}, content_hash=given).content_hash() is given


def test_repr(packet: Packet, tag: Tag) -> None:
    assert repr(packet) == "Packet(x=1.5, name='a', n=3)"
    assert repr(tag) == "Tag(id=7, site='lab')"


def test_values_are_checked_against_an_explicit_schema() -> None:
    with pytest.raises(InputValidationError, match="'x'"):
        Packet({"x": "a"}, {"x": int})
    with pytest.raises(InputValidationError, match="holds None"):
        Tag({"k": None}, {"k": int})
    # Streams build rows from typed tables and skip the check; values are then trusted.
    trusted = Packet({"x": "a"}, {"x": int}, validate=False)
    assert trusted["x"] == "a"
