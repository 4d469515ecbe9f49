"""End to end: the same data through files and sources, and file-backed packets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from podline import (
    ContentHash,
    CSVSource,
    DictSource,
    ListSource,
    Packet,
    ParquetSource,
    TableStream,
    hash_file,
)
from podline.columns import parse_token
from podline.errors import SourceError

ROWS = [
    {"sample": "s1", "day": 1, "reading": 0.25, "ok": True},
    {"sample": "s2", "day": 1, "reading": 1.75, "ok": False},
    {"sample": "s1", "day": 2, "reading": -4.5, "ok": True},
    {"sample": "s3", "day": 3, "reading": 10.0, "ok": True},
]


def test_csv_and_parquet_of_same_data(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(ROWS)
    csv_path = tmp_path / "readings.csv"
    parquet_path = tmp_path / "readings.parquet"
    pa_csv.write_csv(table, str(csv_path))
    pq.write_table(table, str(parquet_path))

    tags = ["sample", "day"]
    from_csv = CSVSource(csv_path, tags, source_id="readings")
    from_parquet = ParquetSource(parquet_path, tags, source_id="readings")
    from_dicts = DictSource(ROWS, tags, source_id="readings")

    # Same rows, same types, same hidden columns.
    assert from_csv.output_schema() == from_parquet.output_schema() == from_dicts.output_schema()
    full = from_csv.as_table(all_info=True, sort_by_tags=True)
    assert full.equals(from_parquet.as_table(all_info=True, sort_by_tags=True))
    assert full.equals(from_dicts.as_table(all_info=True, sort_by_tags=True))
    assert from_csv.as_table().to_pylist() == ROWS

    # Iteration agrees across sources, row by row, provenance included.
    csv_rows = list(from_csv)
    parquet_rows = list(from_parquet)
    assert len(csv_rows) == len(parquet_rows) == len(ROWS)
    for (ct, cp), (pt, pp), row in zip(csv_rows, parquet_rows, ROWS, strict=True):
        assert ct == pt
        assert cp == pp
        assert ct.as_dict(system_tags=True) == pt.as_dict(system_tags=True)
        assert cp.as_dict(source_info=True) == pp.as_dict(source_info=True)
        assert ct.as_dict() | cp.as_dict() == row
        assert cp.content_hash() == pp.content_hash()
        token = parse_token(cp.source_info()["reading"])
        assert (token.kind, token.origin, token.column) == ("source", "readings", "reading")

    # Hashes: rows, whole sources, pipelines.
    assert from_csv.packet_hashes().equals(from_parquet.packet_hashes())
    assert [str(p.content_hash()) for _, p in csv_rows] == from_csv.packet_hashes().to_pylist()
    assert from_csv.content_hash() == from_parquet.content_hash() == from_dicts.content_hash()
    assert from_csv.pipeline_hash() == from_parquet.pipeline_hash()

    # A table stream rebuilt from the full table keeps rows and hashes.
    rebuilt = TableStream(from_csv.as_table(system_tags=True, source_info=True), tags)
    assert rebuilt.as_table(all_info=True).equals(from_csv.as_table(all_info=True))
    assert list(rebuilt) == csv_rows
    assert [t.system_tags() for t, _ in rebuilt] == [t.system_tags() for t, _ in csv_rows]

    # One changed value in the Parquet file: only that row's packet hash moves.
    before = from_parquet.packet_hashes().to_pylist()
    changed = [dict(r) for r in ROWS]
    changed[2]["reading"] = -4.0
    pq.write_table(pa.Table.from_pylist(changed), str(parquet_path))
    edited = ParquetSource(parquet_path, tags, source_id="readings")
    after = edited.packet_hashes().to_pylist()
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, True, False, True]
    assert edited.content_hash() != from_parquet.content_hash()
    assert edited.pipeline_hash() == from_parquet.pipeline_hash()
    # A file source reads its file when its rows are read: the source built before the
    # change refuses to serve the new rows under the old identity.
    with pytest.raises(SourceError, match="changed after the source was built"):
        from_parquet.as_table()


def test_list_source_of_files_follows_file_content(tmp_path: Path) -> None:
    names = ["a.txt", "b.txt", "c.txt"]
    files = []
    for name in names:
        path = tmp_path / name
        path.write_text(f"contents of {name}\n")
        files.append(path)

    def build() -> ListSource:
        return ListSource("file", files, tag_function=lambda p: {"name": p.name})

    first = build()
    rows = list(first)
    assert [t["name"] for t, _ in rows] == names
    assert [p["file"] for _, p in rows] == files
    hashes = first.packet_hashes().to_pylist()
    assert len(set(hashes)) == 3
    # A packet built by hand hashes like the row.
    assert Packet({"file": files[0]}).content_hash() == ContentHash.parse(hashes[0])

    # Same content -> same hashes; the path is a handle, its content is the identity.
    assert build().packet_hashes().to_pylist() == hashes
    copy = tmp_path / "copy-of-a.txt"
    copy.write_bytes(files[0].read_bytes())
    assert Packet({"file": copy}).content_hash() == ContentHash.parse(hashes[0])

    # Edit one file and rebuild: only that row's packet hash changes.
    old_file_hash = hash_file(files[1])
    files[1].write_text("edited, and longer than before\n")
    assert hash_file(files[1]) != old_file_hash
    second = build()
    new_hashes = second.packet_hashes().to_pylist()
    assert new_hashes[0] == hashes[0]
    assert new_hashes[1] != hashes[1]
    assert new_hashes[2] == hashes[2]
    assert [str(p.content_hash()) for _, p in second] == new_hashes

    # The source's identity follows the content; its pipeline identity does not.
    assert second.content_hash() != first.content_hash()
    assert second.source_id != first.source_id
    assert second.pipeline_hash() == first.pipeline_hash()
