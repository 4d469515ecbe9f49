"""Every source type: construction, stamping (system tags, source info), errors and identity."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import podline
from podline import (
    ArrowTableSource,
    CSVSource,
    DataFrameSource,
    DeltaTableSource,
    DictSource,
    DuplicateRecordIdError,
    InputValidationError,
    ListSource,
    Packet,
    ParquetSource,
    ReservedColumnError,
    Schema,
    Source,
    SourceError,
    Stream,
    Tag,
    UnsupportedTypeError,
)
from podline.columns import parse_system_tag, parse_token

ROWS: list[dict[str, Any]] = [
    {"id": 1, "x": 0.5, "name": "a"},
    {"id": 2, "x": 1.5, "name": "b"},
    {"id": 3, "x": 2.5, "name": "c"},
]
SYSTEM_TAG = re.compile(r"^__tag:(source_id|record_id)::([0-9a-f]{12})$")

Factory = Callable[..., Source]


def _arrow(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    pa_csv.write_csv(_arrow(rows), str(path))
    return path


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    pq.write_table(_arrow(rows), str(path))
    return path


def _write_delta(rows: list[dict[str, Any]], path: Path) -> Path:
    from deltalake import write_deltalake

    write_deltalake(str(path), _arrow(rows))
    return path


KINDS = ["dict", "arrow", "polars", "pandas", "csv", "parquet", "delta"]


@pytest.fixture(params=KINDS)
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """``make(rows, tag_columns, **options)`` builds a source of the parametrized kind."""
    kind = request.param
    counter = iter(range(1000))

    def build(rows: list[dict[str, Any]], tag_columns: Any = (), **options: Any) -> Source:
        n = next(counter)
        if kind == "dict":
            return DictSource(rows, tag_columns, **options)
        if kind == "arrow":
            return ArrowTableSource(_arrow(rows), tag_columns, **options)
        if kind == "polars":
            import polars as pl

            return DataFrameSource(pl.DataFrame(rows), tag_columns, **options)
        if kind == "pandas":
            pd = pytest.importorskip("pandas")
            return DataFrameSource(pd.DataFrame(rows), tag_columns, **options)
        if kind == "csv":
            return CSVSource(_write_csv(rows, tmp_path / f"d{n}.csv"), tag_columns, **options)
        if kind == "parquet":
            path = _write_parquet(rows, tmp_path / f"d{n}.parquet")
            return ParquetSource(path, tag_columns, **options)
        path = _write_delta(rows, tmp_path / f"delta{n}")
        return DeltaTableSource(path, tag_columns, **options)

    build.kind = kind  # type: ignore[attr-defined]
    return build


def _system_columns(source: Source) -> tuple[str, str]:
    tags, _ = source.keys()
    all_tags, _ = source.keys(system_tags=True)
    extra = [c for c in all_tags if c not in tags]
    assert len(extra) == 2
    by_kind = {parse_system_tag(c).kind: c for c in extra}
    return by_kind["source_id"], by_kind["record_id"]


# --------------------------------------------------------------------------- common behaviour


def test_a_string_names_one_tag_column(make: Factory) -> None:
    source = make(ROWS, "id")  # not the columns 'i' and 'd'
    assert source.keys() == (("id",), ("x", "name"))
    assert source.content_hash() == make(ROWS, ["id"]).content_hash()
    with pytest.raises(SourceError, match=r"tag column.*'nope' not found"):
        make(ROWS, "nope")


def test_basic_rows_and_schema(make: Factory) -> None:
    source = make(ROWS, ["id"])
    assert isinstance(source, Stream)
    assert len(source) == 3
    assert source.keys() == (("id",), ("x", "name"))
    assert source.output_schema() == (
        Schema({"id": int}),
        Schema({"x": float, "name": str}),
    )
    assert source.as_table().to_pylist() == ROWS
    rows = list(source)
    assert all(isinstance(t, Tag) and isinstance(p, Packet) for t, p in rows)
    assert [t.as_dict() | p.as_dict() for t, p in rows] == ROWS


def test_tag_columns_select_tags(make: Factory) -> None:
    source = make(ROWS, ["name", "id"])
    assert source.keys() == (("name", "id"), ("x",))
    untagged = make(ROWS)
    assert untagged.keys() == ((), ("id", "x", "name"))


def test_system_tag_columns(make: Factory) -> None:
    source = make(ROWS, ["id"])
    sys_cols = _system_columns(source)
    prefix = source.pipeline_hash().hex[:12]
    for column, kind in zip(sys_cols, ("source_id", "record_id"), strict=True):
        match = SYSTEM_TAG.match(column)
        assert match is not None, column
        assert match.group(1) == kind
        assert match.group(2) == prefix
    tags_schema, _ = source.output_schema(system_tags=True)
    assert list(tags_schema) == ["id", *sys_cols]
    assert tags_schema[sys_cols[0]] is str


def test_default_record_ids_and_tokens(make: Factory) -> None:
    source = make(ROWS, ["id"])
    source_col, record_col = _system_columns(source)
    table = source.as_table(system_tags=True, source_info=True)
    assert table.column(source_col).to_pylist() == [source.source_id] * 3
    assert table.column(record_col).to_pylist() == ["#0", "#1", "#2"]
    for column in ("x", "name"):
        tokens = [parse_token(t) for t in table.column(f"__source:{column}").to_pylist()]
        assert [t.kind for t in tokens] == ["source"] * 3
        assert [t.origin for t in tokens] == [source.source_id] * 3
        assert [t.record for t in tokens] == ["#0", "#1", "#2"]
        assert [t.column for t in tokens] == [column] * 3
    assert "__source:id" not in table.column_names  # tags carry no source info


def test_iterated_rows_carry_provenance(make: Factory) -> None:
    source = make(ROWS, ["id"], source_id="src")
    source_col, record_col = _system_columns(source)
    tag, packet = list(source)[2]
    assert tag.system_tags() == {source_col: "src", record_col: "#2"}
    assert packet.source_info() == {"x": "source::src::#2::x", "name": "source::src::#2::name"}


def test_explicit_source_id(make: Factory) -> None:
    source = make(ROWS, ["id"], source_id="my:data")
    assert source.source_id == "my:data"
    source_col, _ = _system_columns(source)
    table = source.as_table(all_info=True)
    assert set(table.column(source_col).to_pylist()) == {"my:data"}
    tokens = [parse_token(t) for t in table.column("__source:x").to_pylist()]
    assert {t.origin for t in tokens} == {"my:data"}  # ':' survives escaping


def test_empty_source_id_rejected(make: Factory) -> None:
    with pytest.raises(SourceError, match="source_id must be a non-empty string"):
        make(ROWS, ["id"], source_id="")


def test_default_source_id_from_content(make: Factory) -> None:
    a = make(ROWS, ["id"])
    b = make(ROWS, ["id"])
    changed = make([*ROWS[:2], {"id": 3, "x": 2.5, "name": "C"}], ["id"])
    assert re.fullmatch(r"[0-9a-f]{16}", a.source_id)
    assert a.source_id == b.source_id
    assert a.source_id != changed.source_id
    assert a.content_hash() == b.content_hash()


def test_default_source_id_same_across_kinds(make: Factory) -> None:
    reference = DictSource(ROWS, ["id"])
    assert make(ROWS, ["id"]).source_id == reference.source_id


def test_record_id_column(make: Factory) -> None:
    rows = [{"key": k, **r} for k, r in zip(["k1", "k:2", "k3"], ROWS, strict=True)]
    source = make(rows, ["id"], record_id_column="key", source_id="S")
    _, record_col = _system_columns(source)
    table = source.as_table(all_info=True)
    assert table.column(record_col).to_pylist() == ["k1", "k:2", "k3"]
    assert [parse_token(t).record for t in table.column("__source:x").to_pylist()] == [
        "k1",
        "k:2",
        "k3",
    ]
    # the record-id column stays an ordinary packet column
    assert source.keys() == (("id",), ("key", "x", "name"))


def test_integer_record_id_column(make: Factory) -> None:
    source = make(ROWS, record_id_column="id")
    _, record_col = _system_columns(source)
    assert source.as_table(system_tags=True).column(record_col).to_pylist() == ["1", "2", "3"]


def test_duplicate_record_ids(make: Factory) -> None:
    rows = [{"key": k, **r} for k, r in zip(["a", "dup", "dup"], ROWS, strict=True)]
    with pytest.raises(DuplicateRecordIdError, match="'dup'") as info:
        make(rows, ["id"], record_id_column="key")
    assert "'a'" not in str(info.value)
    assert isinstance(info.value, SourceError)


def test_null_record_ids(make: Factory) -> None:
    rows = [{"rid": v, **r} for v, r in zip([1, None, 3], ROWS, strict=True)]
    with pytest.raises(SourceError, match="'rid' holds nulls"):
        make(rows, ["id"], record_id_column="rid")


def test_missing_record_id_column(make: Factory) -> None:
    with pytest.raises(SourceError, match="record-id column 'nope' not found"):
        make(ROWS, ["id"], record_id_column="nope")


def test_missing_tag_column(make: Factory) -> None:
    with pytest.raises(SourceError, match=r"tag column\(s\) 'nope' not found"):
        make(ROWS, ["id", "nope"])


def test_no_packet_column(make: Factory) -> None:
    with pytest.raises(SourceError, match="no packet column"):
        make(ROWS, ["id", "x", "name"])


def test_repeated_tag_column(make: Factory) -> None:
    with pytest.raises(SourceError, match="repeat"):
        make(ROWS, ["id", "id"])


def test_reserved_column_rejected(make: Factory) -> None:
    rows = [{**r, "__x": 1} for r in ROWS]
    with pytest.raises(ReservedColumnError, match="'__x'") as info:
        make(rows, ["id"])
    assert info.value.columns == ("__x",)


def test_hidden_looking_column_rejected(make: Factory) -> None:
    rows = [{**r, "__source:x": "forged"} for r in ROWS]
    with pytest.raises(ReservedColumnError, match="__source:x"):
        make(rows, ["id"])


def test_single_underscore_columns_allowed(make: Factory) -> None:
    rows = [{"_id": r["id"], "_x": r["x"]} for r in ROWS]
    source = make(rows, ["_id"])
    assert source.keys() == (("_id",), ("_x",))
    assert source.as_table().column("_x").to_pylist() == [0.5, 1.5, 2.5]


def test_content_hash_changes_with_any_value(make: Factory) -> None:
    base = make(ROWS, ["id"], source_id="fixed")
    hashes = {base.content_hash()}
    for row, column, value in [(0, "x", 0.75), (2, "name", "z"), (1, "id", 20)]:
        rows = [dict(r) for r in ROWS]
        rows[row][column] = value
        changed = make(rows, ["id"], source_id="fixed")
        assert changed.pipeline_hash() == base.pipeline_hash()
        hashes.add(changed.content_hash())
    assert len(hashes) == 4


def test_content_hash_depends_on_source_id_and_tags(make: Factory) -> None:
    a = make(ROWS, ["id"], source_id="one")
    b = make(ROWS, ["id"], source_id="two")
    c = make(ROWS, ["name"], source_id="one")
    assert len({a.content_hash(), b.content_hash(), c.content_hash()}) == 3
    assert a.pipeline_hash() == b.pipeline_hash()
    assert a.pipeline_hash() != c.pipeline_hash()


def test_pipeline_hash_covers_schema_only(make: Factory) -> None:
    a = make(ROWS, ["id"])
    other_data = make([{"id": 9, "x": 9.5, "name": "zz"}], ["id"])
    assert a.pipeline_hash() == other_data.pipeline_hash()
    assert a.content_hash() != other_data.content_hash()
    other_types = make([{**r, "x": f"v{r['x']}"} for r in ROWS], ["id"])
    extra_column = make([{**r, "y": 1} for r in ROWS], ["id"])
    assert len({a.pipeline_hash(), other_types.pipeline_hash(), extra_column.pipeline_hash()}) == 3
    # the system-tag lineage follows the pipeline hash
    assert _system_columns(a) != _system_columns(other_types)
    assert _system_columns(a) == _system_columns(other_data)


def test_content_hash_equal_across_kinds(make: Factory) -> None:
    reference = DictSource(ROWS, ["id"], source_id="shared")
    source = make(ROWS, ["id"], source_id="shared")
    assert source.pipeline_hash() == reference.pipeline_hash()
    assert source.content_hash() == reference.content_hash()
    assert source.packet_hashes().to_pylist() == reference.packet_hashes().to_pylist()
    assert source.as_table(all_info=True).equals(reference.as_table(all_info=True))


def test_label_not_part_of_identity(make: Factory) -> None:
    a = make(ROWS, ["id"], label="first", source_id="s")
    b = make(ROWS, ["id"], label="second", source_id="s")
    assert a.label == "first"
    assert "first" in repr(a)
    assert a.content_hash() == b.content_hash()


# --------------------------------------------------------------------------- DictSource


def test_dict_source_inferred_types() -> None:
    rows = [
        {
            "i": 1,
            "f": 1.0,
            "b": True,
            "s": "x",
            "o": None,
            "l": [1, 2],
            "d": {"k": 1.5},
            "t": dt.datetime(2024, 1, 2, 3, 4, 5),
            "day": dt.date(2024, 1, 2),
        },
        {
            "i": 2,
            "f": 2,
            "b": False,
            "s": "y",
            "o": "v",
            "l": [],
            "d": {},
            "t": dt.datetime(2024, 1, 3),
            "day": dt.date(2024, 1, 3),
        },
    ]
    source = DictSource(rows, ["i"])
    tags, packets = source.output_schema()
    assert tags == Schema({"i": int})
    assert packets == Schema(
        {
            "f": float,
            "b": bool,
            "s": str,
            "o": str | None,
            "l": list[int],
            "d": dict[str, float],
            "t": dt.datetime,
            "day": dt.date,
        }
    )
    _, packet = next(iter(source))
    assert packet["d"] == {"k": 1.5}
    assert packet["t"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert list(source)[1][1]["f"] == 2.0


def test_dict_source_explicit_schema_keeps_nullability() -> None:
    source = DictSource([{"id": 1, "v": 2}], ["id"], schema={"id": int, "v": float | None})
    assert source.output_schema() == (Schema({"id": int}), Schema({"v": float | None}))
    assert source.as_table().schema.field("v").type == pa.float64()
    assert next(iter(source))[1]["v"] == 2.0


def test_dict_source_schema_mismatch() -> None:
    with pytest.raises(SourceError, match="holds None"):
        DictSource([{"id": 1, "v": None}], ["id"], schema={"id": int, "v": int})
    with pytest.raises(SourceError, match="missing"):
        DictSource([{"id": 1}], ["id"], schema={"id": int, "v": int})


def test_dict_source_rows_with_different_keys() -> None:
    with pytest.raises(SourceError, match="row 1 has different keys"):
        DictSource([{"id": 1, "v": 1}, {"id": 2, "w": 1}], ["id"])


def test_dict_source_empty_with_schema() -> None:
    source = DictSource([], ["id"], schema={"id": int, "v": str})
    assert len(source) == 0
    assert list(source) == []
    assert source.output_schema() == (Schema({"id": int}), Schema({"v": str}))
    assert re.fullmatch(r"[0-9a-f]{16}", source.source_id)
    table = source.as_table(all_info=True)
    assert table.num_rows == 0
    assert table.column_names[:2] == ["id", "v"]
    assert len(source.packet_hashes()) == 0


def test_dict_source_empty_without_schema() -> None:
    with pytest.raises(SourceError, match="zero rows"):
        DictSource([])


def test_dict_source_label_in_errors() -> None:
    with pytest.raises(SourceError, match=r"^mine: "):
        DictSource(ROWS, ["nope"], label="mine")


# --------------------------------------------------------------------------- ListSource


def test_list_source_default_index_tag() -> None:
    source = ListSource("v", [10, 20, 30])
    assert source.keys() == (("index",), ("v",))
    assert source.output_schema() == (Schema({"index": int}), Schema({"v": int}))
    assert source.as_table().to_pylist() == [
        {"index": 0, "v": 10},
        {"index": 1, "v": 20},
        {"index": 2, "v": 30},
    ]
    _, record_col = _system_columns(source)
    assert source.as_table(system_tags=True).column(record_col).to_pylist() == ["#0", "#1", "#2"]


def test_list_source_tag_function() -> None:
    source = ListSource(
        "path", ["a.txt", "bb.csv"], tag_function=lambda p: {"stem": p.split(".")[0], "n": len(p)}
    )
    assert source.keys() == (("stem", "n"), ("path",))
    assert source.as_table().to_pylist() == [
        {"stem": "a", "n": 5, "path": "a.txt"},
        {"stem": "bb", "n": 6, "path": "bb.csv"},
    ]


def test_list_source_value_type() -> None:
    source = ListSource("v", [1, 2], value_type=float)
    assert source.output_schema()[1] == Schema({"v": float})
    assert source.as_table().schema.field("v").type == pa.float64()
    assert [p["v"] for _, p in source] == [1.0, 2.0]


def test_list_source_declared_optional_types_are_kept() -> None:
    source = ListSource(
        "v", [1, 2], lambda v: {"k": v}, value_type=int | None, tag_schema={"k": int | None}
    )
    assert source.output_schema() == (Schema({"k": int | None}), Schema({"v": int | None}))


def test_list_source_inferred_nullable() -> None:
    source = ListSource("v", ["a", None])
    assert source.output_schema()[1] == Schema({"v": str | None})


def test_list_source_value_does_not_fit_type() -> None:
    with pytest.raises(SourceError, match="'v'"):
        ListSource("v", ["a"], value_type=int)


def test_list_source_name_clashes_with_tag() -> None:
    with pytest.raises(SourceError, match="'index'"):
        ListSource("index", [1, 2])
    with pytest.raises(SourceError, match="'v'"):
        ListSource("v", [1], tag_function=lambda v: {"v": v})


def test_list_source_reserved_names() -> None:
    with pytest.raises(ReservedColumnError):
        ListSource("__v", [1])
    with pytest.raises(ReservedColumnError):
        ListSource("v", [1], tag_function=lambda v: {"__t": v})


def test_list_source_of_paths(tmp_path: Path) -> None:
    files = []
    for name, text in [("a.txt", "alpha"), ("b.txt", "beta")]:
        f = tmp_path / name
        f.write_text(text)
        files.append(f)
    source = ListSource("file", files, tag_function=lambda p: {"name": p.name})
    assert source.output_schema()[1] == Schema({"file": Path})
    assert [p["file"] for _, p in source] == files
    assert all(isinstance(p["file"], Path) for _, p in source)


def test_list_source_source_id_and_identity() -> None:
    a = ListSource("v", [1, 2], source_id="L")
    assert a.source_id == "L"
    assert a.content_hash() == ListSource("v", [1, 2], source_id="L").content_hash()
    assert a.content_hash() != ListSource("v", [1, 3], source_id="L").content_hash()
    assert a.pipeline_hash() == ListSource("v", [5], source_id="M").pipeline_hash()


# --------------------------------------------------------------------------- ArrowTableSource


def test_arrow_source_record_batch() -> None:
    batch = pa.RecordBatch.from_pylist(ROWS)
    source = ArrowTableSource(batch, ["id"], source_id="s")
    assert source.as_table().to_pylist() == ROWS
    table_source = ArrowTableSource(pa.Table.from_pylist(ROWS), ["id"], source_id="s")
    assert source.content_hash() == table_source.content_hash()


def test_arrow_source_rejects_non_tables() -> None:
    with pytest.raises(SourceError, match="got dict"):
        ArrowTableSource({"a": [1]})  # type: ignore[arg-type]


def test_arrow_source_nullable_inference() -> None:
    table = pa.table({"a": [1, None], "b": [1, 2], "l": [[1, 2], [3]], "ln": [[1, None], None]})
    assert all(f.nullable for f in table.schema)
    source = ArrowTableSource(table)
    assert source.output_schema()[1] == Schema(
        {"a": int | None, "b": int, "l": list[int], "ln": list[int | None] | None}
    )
    fields = source.as_table().schema
    assert fields.field("a").nullable
    assert not fields.field("b").nullable
    assert not fields.field("l").nullable
    assert not fields.field("l").type.value_field.nullable


def test_arrow_source_nullable_inference_in_structs() -> None:
    table = pa.table({"s": [{"p": 1, "q": None}, {"p": 2, "q": "x"}]})
    source = ArrowTableSource(table)
    struct_type = source.as_table().schema.field("s").type
    assert not struct_type.field("p").nullable
    assert struct_type.field("q").nullable
    assert not source.as_table().schema.field("s").nullable


def test_a_null_record_or_tuple_makes_no_field_nullable_whatever_arrow_holds_there(
    tmp_path: Path,
) -> None:
    """A null record's fields, and a null tuple's items, hold no values: polars puts nulls in
    the child arrays there (pyarrow zeros), and Parquet reads a null fixed-size list's items
    back as nulls. Such a column's nested fields were nullable from a polars frame, so that a
    ``tuple[int, str] | None`` parameter did not take what an Arrow table of the same data
    gave; and a Parquet or Delta source, or a GeneratorSource given a schema, failed ("rows do
    not match the schema the source was built with", "nulls in input cannot be viewed as
    non-nullable")."""
    import polars as pl

    pairs = pa.array([(1, "a"), None], pa.struct([("f0", pa.int64()), ("f1", pa.string())]))
    fixed = pa.array([[1.0, 2.0], None], pa.list_(pa.field("item", pa.float64(), False), 2))
    table = pa.table({"k": [0, 1], "pair": pairs, "xy": fixed})
    expected = Schema({"pair": tuple[int, str] | None, "xy": tuple[float, float] | None})
    pq.write_table(table, tmp_path / "t.parquet")
    assert pq.read_table(tmp_path / "t.parquet").column("xy").chunk(0).values.null_count == 2
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert frame.to_arrow().column("pair").chunk(0).field(0).null_count == 1
    sources = [
        ArrowTableSource(table, ["k"]),
        DataFrameSource(frame, ["k"]),
        ParquetSource(tmp_path / "t.parquet", ["k"]),
        podline.GeneratorSource(
            lambda: [pq.read_table(tmp_path / "t.parquet")], ["k"], schema=table.schema
        ),
    ]
    for source in sources:
        assert source.output_schema()[1] == expected, source
        assert source.as_table().select(["pair", "xy"]).to_pylist() == [
            {"pair": {"f0": 1, "f1": "a"}, "xy": [1.0, 2.0]},
            {"pair": None, "xy": None},
        ]
        assert source.content_hash() == sources[0].content_hash()


def test_arrow_source_nullable_schema_mode() -> None:
    table = pa.table({"a": [1, None], "b": [1, 2]})
    source = ArrowTableSource(table, nullable="schema")
    assert source.output_schema()[1] == Schema({"a": int | None, "b": int | None})
    strict = pa.table(
        {"a": [1, 2], "b": [1, 2]},
        schema=pa.schema([pa.field("a", pa.int64(), False), pa.field("b", pa.int64(), True)]),
    )
    assert ArrowTableSource(strict, nullable="schema").output_schema()[1] == Schema(
        {"a": int, "b": int | None}
    )
    assert ArrowTableSource(table).pipeline_hash() != source.pipeline_hash()


def test_arrow_source_canonical_types() -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "x": pa.array([0.5, 1.5], pa.float32()),
            "name": pa.array(["a", "b"], pa.string()),
            "xs": pa.array([[1], [2, 3]], pa.list_(pa.int16())),
        }
    )
    source = ArrowTableSource(table, ["id"], source_id="s")
    schema = source.as_table().schema
    assert schema.field("id").type == pa.int64()
    assert schema.field("x").type == pa.float64()
    assert schema.field("name").type == pa.large_string()
    assert schema.field("xs").type == pa.large_list(pa.field("item", pa.int64(), False))
    assert source.as_table().to_pydict() == {
        "id": [1, 2],
        "x": [0.5, 1.5],
        "name": ["a", "b"],
        "xs": [[1], [2, 3]],
    }
    wide = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "x": pa.array([0.5, 1.5], pa.float64()),
            "name": pa.array(["a", "b"], pa.large_string()),
            "xs": pa.array([[1], [2, 3]], pa.large_list(pa.int64())),
        }
    )
    assert ArrowTableSource(wide, ["id"], source_id="s").content_hash() == source.content_hash()


def test_arrow_source_dictionary_strings_canonical() -> None:
    table = pa.table({"k": pa.array(["a", "b", "a"]).dictionary_encode(), "v": [1, 2, 3]})
    source = ArrowTableSource(table, ["k"])
    assert source.output_schema()[0] == Schema({"k": str})
    assert source.as_table().column("k").to_pylist() == ["a", "b", "a"]


def test_arrow_source_unsupported_type() -> None:
    table = pa.table({"id": [1], "price": pa.array([decimal.Decimal("1.25")])})
    with pytest.raises(UnsupportedTypeError, match="'price'") as info:
        ArrowTableSource(table, ["id"])
    assert info.value.field == "price"


def test_parquet_source_unsupported_type(tmp_path: Path) -> None:
    table = pa.table({"id": [1], "price": pa.array([decimal.Decimal("1.25")])})
    pq.write_table(table, str(tmp_path / "d.parquet"))
    with pytest.raises(UnsupportedTypeError, match="'price'"):
        ParquetSource(tmp_path / "d.parquet", ["id"])


# --------------------------------------------------------------------------- DataFrameSource


def test_polars_source() -> None:
    import polars as pl

    frame = pl.DataFrame({"id": [1, 2], "v": ["a", None], "xs": [[1.0], [2.0, 3.0]]})
    source = DataFrameSource(frame, ["id"])
    assert source.output_schema() == (
        Schema({"id": int}),
        Schema({"v": str | None, "xs": list[float]}),
    )
    assert source.as_table().to_pylist() == frame.to_dicts()


def test_a_polars_column_arrow_cannot_read_is_named() -> None:
    # polars reads integers beyond int64 as Int128, which pyarrow cannot import: the error
    # was pyarrow's "unsupported format string: '_pli128'", naming nothing.
    import polars as pl

    frame = pl.DataFrame(
        {"id": [1, 2], "v": [1.0, 2.0], "big": pl.Series([1, 2**100], dtype=pl.Int128)}
    )
    with pytest.raises(SourceError, match=r"column 'big' is a polars Int128.*pl\.String"):
        DataFrameSource(frame, ["id"])


def test_a_file_value_podline_cannot_hash_names_the_file_and_column(tmp_path: Path) -> None:
    # A uint64 beyond int64 in a Parquet file was a bare HashingError naming no file.
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"k": [1, 2], "big": pa.array([1, 2**64 - 1], pa.uint64())}), path)
    with pytest.raises(SourceError, match=r"ids\.parquet.*column 'big'.*int64") as caught:
        ParquetSource(path, ["k"])
    assert isinstance(caught.value.__cause__, podline.errors.HashingError)


def test_pandas_source_excludes_index() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"id": [1, 2], "v": ["a", "b"]}, index=[10, 20])
    source = DataFrameSource(frame, ["id"])
    assert source.keys() == (("id",), ("v",))
    assert source.as_table().to_pydict() == {"id": [1, 2], "v": ["a", "b"]}


def test_pandas_path_object_column(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for f in files:
        f.write_text(f.name)
    frame = pd.DataFrame({"id": [1, 2], "file": files})
    source = DataFrameSource(frame, ["id"])
    assert source.output_schema() == (Schema({"id": int}), Schema({"file": Path}))
    assert [p["file"] for _, p in source] == files
    same = ListSource("file", files, tag_function=lambda p: {"id": files.index(p) + 1})
    assert source.packet_hashes().to_pylist() == same.packet_hashes().to_pylist()


def test_dataframe_source_rejects_other_objects() -> None:
    with pytest.raises(SourceError, match="expected a polars or pandas DataFrame"):
        DataFrameSource([{"a": 1}])


def test_dataframe_source_points_arrow_tables_to_arrow_table_source() -> None:
    table = pa.table({"id": [1], "v": ["a"]})
    for data in (table, table.to_batches()[0]):
        with pytest.raises(SourceError, match=r"use ArrowTableSource\(table, tag_columns\)"):
            DataFrameSource(data, "id")


# --------------------------------------------------------------------------- file sources


def test_csv_source_label_and_path(tmp_path: Path) -> None:
    path = _write_csv(ROWS, tmp_path / "data.csv")
    source = CSVSource(path, ["id"])
    assert source.label == "data.csv"
    assert source.path == str(path)
    assert source.as_table().to_pylist() == ROWS
    assert CSVSource(str(path), ["id"], label="nice").label == "nice"


def test_csv_source_read_options(tmp_path: Path) -> None:
    path = _write_csv(ROWS, tmp_path / "data.csv")
    options = pa_csv.ConvertOptions(column_types={"id": pa.string()})
    source = CSVSource(path, ["id"], convert_options=options)
    assert source.output_schema()[0] == Schema({"id": str})
    assert source.as_table().column("id").to_pylist() == ["1", "2", "3"]


def test_a_csv_file_with_a_header_only_is_an_empty_stream(tmp_path: Path) -> None:
    """Its columns have no value to take a type from: they are of Arrow's null type, which
    holds nulls only, and a pod whose parameter takes a value says how to give the type."""
    path = tmp_path / "empty.csv"
    path.write_text("k,x\n")
    source = CSVSource(path, ["k"])
    assert len(source) == 0
    assert source.output_schema() == (Schema({"k": type(None)}), Schema({"x": type(None)}))

    @podline.function_pod("y")
    def double(x: float) -> float:
        return 2 * x

    with pytest.raises(InputValidationError) as raised:
        double.pod(source)
    assert str(raised.value) == (
        "double cannot be applied to empty.csv: mistyped column(s): 'x' is None, parameter "
        "'x' takes float (the source found no value in it to take a type from: give the "
        "source the column's type, e.g. CSVSource(..., "
        "convert_options=pyarrow.csv.ConvertOptions(column_types=...)))"
    )
    typed = CSVSource(
        path,
        ["k"],
        convert_options=pa_csv.ConvertOptions(column_types={"k": pa.int64(), "x": pa.float64()}),
    )
    assert double.pod(typed).as_table().num_rows == 0


def test_parquet_source_label(tmp_path: Path) -> None:
    path = _write_parquet(ROWS, tmp_path / "data.parquet")
    source = ParquetSource(path, ["id"])
    assert source.label == "data.parquet"
    assert source.as_table().to_pylist() == ROWS


@pytest.mark.parametrize("cls", [CSVSource, ParquetSource, DeltaTableSource])
def test_missing_file(cls: type[Source], tmp_path: Path) -> None:
    path = tmp_path / "does-not-exist"
    with pytest.raises(SourceError, match=re.escape(repr(str(path)))) as info:
        cls(path)  # type: ignore[call-arg]
    assert info.value.__cause__ is not None


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(SourceError, match="cannot read Parquet file") as info:
        ParquetSource(path)
    assert str(path) in str(info.value)


def test_unreadable_csv_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=re.escape(str(tmp_path))):
        CSVSource(tmp_path)


def test_delta_source_versions(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    path = tmp_path / "table"
    write_deltalake(str(path), _arrow(ROWS[:2]))
    write_deltalake(str(path), _arrow(ROWS[2:]), mode="append")
    latest = DeltaTableSource(path, ["id"])
    old = DeltaTableSource(path, ["id"], version=0)
    assert latest.label == "table"
    assert sorted(latest.as_table().to_pylist(), key=lambda r: r["id"]) == ROWS
    assert old.as_table().to_pylist() == ROWS[:2]
    assert old.content_hash() != latest.content_hash()
    assert old.pipeline_hash() == latest.pipeline_hash()
    with pytest.raises(SourceError, match="cannot read Delta table"):
        DeltaTableSource(path, version=7)


# --------------------------------------------------------------------------- cross-type identity


def test_same_typed_data_same_identity_everywhere(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "x": 0.25, "name": "a", "flag": True},
        {"id": 2, "x": -3.0, "name": "b", "flag": False},
    ]
    sources = [
        DictSource(rows, ["id"], source_id="S"),
        ArrowTableSource(pa.Table.from_pylist(rows), ["id"], source_id="S"),
        CSVSource(_write_csv(rows, tmp_path / "t.csv"), ["id"], source_id="S"),
        ParquetSource(_write_parquet(rows, tmp_path / "t.parquet"), ["id"], source_id="S"),
    ]
    assert len({s.content_hash() for s in sources}) == 1
    assert len({s.pipeline_hash() for s in sources}) == 1
    assert len({s.identity_kind() for s in sources}) == 1
    reference = sources[0].as_table(all_info=True)
    for source in sources[1:]:
        assert source.as_table(all_info=True).equals(reference)


def test_nested_map_and_tuple_types_same_across_kinds() -> None:
    rows = [{"id": 1, "m": {"a": 1.0}, "pair": (1, 2)}]
    from_dicts = DictSource(rows, ["id"], source_id="S")
    table = pa.table(
        {
            "id": [1],
            "m": pa.array([[("a", 1.0)]], pa.map_(pa.string(), pa.float64())),
            "pair": pa.array([[1, 2]], pa.list_(pa.int64(), 2)),
        }
    )
    from_arrow = ArrowTableSource(table, ["id"], source_id="S")
    assert from_arrow.output_schema() == from_dicts.output_schema()
    assert from_arrow.pipeline_hash() == from_dicts.pipeline_hash()
