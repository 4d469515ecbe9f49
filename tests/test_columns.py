"""Tests of podline.columns: the grammar of hidden column names and source-info tokens."""

from __future__ import annotations

import pyarrow as pa
import pytest

from podline.columns import (
    CONTENT_HASH_COLUMN,
    LINEAGE_HEX_CHARS,
    RESERVED_PREFIX,
    ColumnGroups,
    SourceToken,
    check_user_columns,
    extend_lineage,
    is_reserved,
    is_source_info,
    is_system_tag,
    meta_column,
    parse_system_tag,
    parse_token,
    source_info_column,
    source_info_target,
    source_lineage,
    source_tokens,
    split_columns,
    system_tag_columns,
    token,
)
from podline.errors import ReservedColumnError, SchemaError

SOURCE_HASH = "1f2e3d4c5b6a79880011223344556677"
JOIN_HASH_A = "9a8b7c6d5e4f00aabbccddeeff001122"
JOIN_HASH_B = "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------- reserved names


def test_reserved_prefix() -> None:
    assert RESERVED_PREFIX == "__"
    assert is_reserved("__x")
    assert is_reserved("__")
    assert not is_reserved("_x")
    assert not is_reserved("x__")


def test_check_user_columns_accepts_plain_names() -> None:
    check_user_columns(["a", "_b", "c__", "d_e"])
    check_user_columns([])


def test_check_user_columns_lists_reserved_names_sorted() -> None:
    with pytest.raises(ReservedColumnError) as info:
        check_user_columns(["b", "__z", "a", "__y", "__z"])
    assert info.value.columns == ("__y", "__z")
    message = str(info.value)
    assert message.startswith("column name(s) '__y', '__z' start with the reserved prefix '__'")
    assert "'a'" not in message
    assert isinstance(info.value, SchemaError)


# --------------------------------------------------------------------------- system tags


def test_system_tag_columns_and_source_lineage() -> None:
    lineage = source_lineage(SOURCE_HASH)
    assert lineage == SOURCE_HASH[:LINEAGE_HEX_CHARS] == "1f2e3d4c5b6a"
    source_col, record_col = system_tag_columns(lineage)
    assert source_col == "__tag:source_id::1f2e3d4c5b6a"
    assert record_col == "__tag:record_id::1f2e3d4c5b6a"
    assert is_system_tag(source_col)
    assert is_reserved(record_col)

    parsed = parse_system_tag(record_col)
    assert parsed.kind == "record_id"
    assert parsed.lineage == lineage
    assert parsed.source_lineage == lineage
    assert parsed.hops == ()
    assert parse_system_tag(source_col).kind == "source_id"


def test_extend_lineage_twice() -> None:
    _, record_col = system_tag_columns(source_lineage(SOURCE_HASH))
    once = extend_lineage(record_col, JOIN_HASH_A, 1)
    assert once == "__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f:1"
    twice = extend_lineage(once, JOIN_HASH_B, 0)
    assert twice == "__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f:1::0123456789ab:0"

    parsed = parse_system_tag(twice)
    assert parsed.kind == "record_id"
    assert parsed.lineage == "1f2e3d4c5b6a::9a8b7c6d5e4f:1::0123456789ab:0"
    assert parsed.source_lineage == "1f2e3d4c5b6a"
    assert parsed.hops == (("9a8b7c6d5e4f", 1), ("0123456789ab", 0))


def test_extend_lineage_multi_digit_position() -> None:
    source_col, _ = system_tag_columns("aaaaaaaaaaaa")
    extended = extend_lineage(source_col, "b" * 64, 12)
    assert parse_system_tag(extended).hops == (("bbbbbbbbbbbb", 12),)


@pytest.mark.parametrize(
    "name",
    [
        "x",
        "__tag:",
        "__tag:foo::1f2e3d4c5b6a",
        "__tag:record_id::1F2E3D4C5B6A",  # uppercase hex
        "__tag:record_id::1f2e3d",  # too short
        "__tag:record_id::1f2e3d4c5b6a7",  # too long
        "__tag:record_id:1f2e3d4c5b6a",  # single separator
        "__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f",  # hop without position
        "__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f:",
        "__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f:x",
        "__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f:1::",
        "__tag:record_id::1f2e3d4c5b6a ",
    ],
)
def test_parse_system_tag_rejects_malformed(name: str) -> None:
    with pytest.raises(SchemaError, match="is not a well-formed system-tag column name"):
        parse_system_tag(name)


def test_extend_lineage_rejects_malformed_name() -> None:
    with pytest.raises(SchemaError, match="'__tag:bad' is not a well-formed"):
        extend_lineage("__tag:bad", JOIN_HASH_A, 0)


# --------------------------------------------------------------------------- source info, meta


def test_source_info_column_and_target() -> None:
    col = source_info_column("image")
    assert col == "__source:image"
    assert is_source_info(col)
    assert is_reserved(col)
    assert source_info_target(col) == "image"
    assert source_info_target(source_info_column("a:b::c")) == "a:b::c"
    with pytest.raises(SchemaError, match="'image' is not a source-info column"):
        source_info_target("image")


def test_meta_column() -> None:
    assert meta_column("flag") == "__meta:flag"
    assert is_reserved(meta_column("flag"))


def test_split_columns() -> None:
    source_col, record_col = system_tag_columns("1f2e3d4c5b6a")
    names = [
        "b",
        source_info_column("b"),
        source_col,
        meta_column("x"),
        "a",
        CONTENT_HASH_COLUMN,
        record_col,
        source_info_column("a"),
    ]
    groups = split_columns(names)
    assert groups == ColumnGroups(
        data=("b", "a"),
        system_tags=(source_col, record_col),
        source_info=("__source:b", "__source:a"),
        meta=("__meta:x", "__content_hash"),
    )
    assert split_columns([]) == ColumnGroups((), (), (), ())


def test_split_columns_unknown_reserved_names() -> None:
    with pytest.raises(ReservedColumnError) as info:
        split_columns(["a", "__zeta", "__source:a", "__alpha"])
    assert info.value.columns == ("__alpha", "__zeta")
    assert "'__alpha', '__zeta'" in str(info.value)


def test_split_columns_malformed_system_tag() -> None:
    with pytest.raises(SchemaError, match="not a well-formed system-tag column name"):
        split_columns(["a", "__tag:record_id::nothex"])


# --------------------------------------------------------------------------- tokens


def test_token_format() -> None:
    assert token("source", "src", "r1", "col") == "source::src::r1::col"
    assert token("call", "fn", "c1", "out") == "call::fn::c1::out"


@pytest.mark.parametrize(
    ("origin", "record", "column"),
    [
        ("src", "r1", "col"),
        ("a:b", "c::d", ":"),
        ("%", "%25", "%3A"),
        ("50%:x", "::", "%%::%%"),
        ("", "", ""),
        ("ünï", "ß", "列"),
    ],
)
@pytest.mark.parametrize("kind", ["source", "call"])
def test_token_round_trip(kind: str, origin: str, record: str, column: str) -> None:
    text = token(kind, origin, record, column)  # type: ignore[arg-type]
    assert len(text.split("::")) == 4
    parsed = parse_token(text)
    assert parsed == SourceToken(kind, origin, record, column)  # type: ignore[arg-type]
    assert str(parsed) == text


def test_tokens_with_different_components_differ() -> None:
    assert token("source", "a:b", "c", "d") != token("source", "a", "b:c", "d")
    assert token("source", "a%3Ab", "c", "d") != token("source", "a:b", "c", "d")


@pytest.mark.parametrize(
    "text",
    [
        "source::a::b",
        "source::a::b::c::d",
        "other::a::b::c",
        "",
        "source:a:b:c",
    ],
)
def test_parse_token_rejects_malformed(text: str) -> None:
    with pytest.raises(SchemaError, match="is not a well-formed source-info token"):
        parse_token(text)


def test_source_tokens_match_scalar_tokens() -> None:
    record_ids = ["r1", "a:b", "50%", "%3A", "::", "", "ünï"]
    array = pa.array(record_ids, pa.string())
    tokens = source_tokens("src:1%", array, "col:x")
    assert len(tokens) == len(record_ids)
    assert pa.types.is_string(tokens.type) or pa.types.is_large_string(tokens.type)
    expected = [token("source", "src:1%", rid, "col:x") for rid in record_ids]
    assert tokens.to_pylist() == expected
    assert [parse_token(t).record for t in tokens.to_pylist()] == record_ids


def test_source_tokens_from_other_array_types() -> None:
    ints = source_tokens("s", pa.array([1, 22], pa.int64()), "c")
    assert ints.to_pylist() == ["source::s::1::c", "source::s::22::c"]
    large = source_tokens("s", pa.array(["a:b"], pa.large_string()), "c")
    assert large.to_pylist() == [token("source", "s", "a:b", "c")]
    sliced = source_tokens("s", pa.array(["x", "y:z", "w"]).slice(1), "c")
    assert sliced.to_pylist() == [token("source", "s", "y:z", "c"), token("source", "s", "w", "c")]
