"""File sources read in chunks, and what their builds establish cached across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from podline import ArrowTableSource, CSVSource, DeltaTableSource, ParquetSource
from podline.errors import SourceError
from podline.sources import files
from podline.sources.hash_cache import CACHE_ENV, cache_directory
from podline.streams import ChunkedTableStream


def _table(n: int, scale: int = 1) -> pa.Table:
    return pa.table({"id": list(range(n)), "x": [i * scale for i in range(n)]})


def _write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, str(path), row_group_size=16)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def _entries(cache: Path) -> list[str]:
    folder = cache / "source-hashes"
    return sorted(os.listdir(folder)) if folder.exists() else []


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of a Parquet file's rows by a source, noted."""
    seen: list[str] = []
    read = files.ParquetSource._read

    def noted(self: files.ParquetSource, path: str, **options: object) -> object:
        seen.append(path)
        return read(self, path, **options)

    monkeypatch.setattr(files.ParquetSource, "_read", noted)
    return seen


def test_a_file_source_reads_its_rows_in_chunks_and_holds_none(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.parquet", _table(100))
    source = ParquetSource(path, ["id"])
    rows = source.chunked_rows()
    assert isinstance(rows, ChunkedTableStream)
    assert [len(c) for c in source.iter_chunks(40)] == [40, 40, 20]
    whole = ArrowTableSource(_table(100), ["id"])
    assert source.as_table(all_info=True).equals(whole.as_table(all_info=True))
    assert source.content_hash() == whole.content_hash()
    os.unlink(path)  # the rows were never kept: reading them now fails, naming the file
    with pytest.raises(SourceError, match=r"t\.parquet"):
        source.as_table()


def test_an_unchanged_file_is_not_read_again_even_in_another_process(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "t.parquet", _table(50))
    script = (
        "import podline, sys; s = podline.ParquetSource(sys.argv[1], ['id']); "
        "print(s.content_hash(), s.source_id)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    assert len(_entries(cache)) == 1
    reads = _reads(monkeypatch)
    source = ParquetSource(path, ["id"])
    assert reads == []  # built from the cache
    assert done.stdout.split() == [str(source.content_hash()), source.source_id]
    assert source.as_table().to_pydict() == _table(50).to_pydict()  # read when asked for
    assert len(reads) == 1


def _rebuild_differs(path: Path, content: bytes, keep_mtime: bool) -> None:
    first = CSVSource(path, ["id"])
    stat = os.stat(path)
    time.sleep(0.01)  # a later ctime even on coarse clocks
    path.write_bytes(content)
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = CSVSource(path, ["id"])
    assert second.content_hash() != first.content_hash()
    assert second.as_table().to_pydict() == pyarrow.csv.read_csv(str(path)).to_pydict()
    with pytest.raises(SourceError, match="changed after the source was built") as e:
        first.as_table()
    assert f"changed: {str(path)!r}" in str(e.value)  # the file at fault, by name


def test_a_changed_file_is_hashed_again(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,x\n1,5\n")
    _rebuild_differs(path, b"id,x\n1,5\n2,6\n", keep_mtime=False)  # size and mtime change


def test_same_size_rewrite_with_restored_mtime_is_detected(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"id,x\n1,5\n")
    _rebuild_differs(path, b"id,x\n1,7\n", keep_mtime=True)  # only the ctime tells


def test_a_corrupt_entry_is_ignored(tmp_path: Path, cache: Path) -> None:
    path = _write(tmp_path / "t.parquet", _table(20))
    first = ParquetSource(path, ["id"])
    (entry,) = _entries(cache)
    (cache / "source-hashes" / entry).write_text("{not json", encoding="utf-8")
    assert ParquetSource(path, ["id"]).content_hash() == first.content_hash()
    assert (cache / "source-hashes" / entry).read_text(encoding="utf-8").startswith("{")


def test_build_options_are_part_of_the_key(tmp_path: Path, cache: Path) -> None:
    path = _write(tmp_path / "t.parquet", _table(20))
    plain = ParquetSource(path, ["id"])
    named = ParquetSource(path, ["id"], source_id="named")
    by_id = ParquetSource(path, ["id"], record_id_column="id")
    assert len({plain.content_hash(), named.content_hash(), by_id.content_hash()}) == 3
    assert len(_entries(cache)) == 3
    assert ParquetSource(path, ["id"], label="other").content_hash() == plain.content_hash()


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_directory() is None
    path = _write(tmp_path / "t.parquet", _table(20))
    reads = _reads(monkeypatch)
    ParquetSource(path, ["id"])
    ParquetSource(path, ["id"])
    assert len(reads) == 6  # three passes a build: types, default source id, content hash


def test_csv_and_delta_sources_match_whole_table_sources(tmp_path: Path, cache: Path) -> None:
    from deltalake import DeltaTable, write_deltalake

    table = pa.table({"id": [1, 2, 3], "x": [0.5, None, 2.0], "s": ["a", "b", None]})
    csv_path = tmp_path / "t.csv"
    pa.csv.write_csv(table, str(csv_path))
    CSVSource(csv_path, ["id"])  # built once: the second build comes from the cache
    from_csv = CSVSource(csv_path, ["id"])
    whole = ArrowTableSource(pa.csv.read_csv(str(csv_path)), ["id"])
    assert from_csv.as_table(all_info=True).equals(whole.as_table(all_info=True))
    assert from_csv.content_hash() == whole.content_hash()
    assert from_csv.output_schema() == whole.output_schema()
    delta = tmp_path / "delta"
    write_deltalake(str(delta), table)
    from_delta = DeltaTableSource(delta, ["id"])
    from_table = ArrowTableSource(DeltaTable(str(delta)).to_pyarrow_table(), ["id"])
    assert from_delta.content_hash() == from_table.content_hash()
    write_deltalake(str(delta), table, mode="append")  # a new version after the build
    with pytest.raises(SourceError, match="changed after the source was built"):
        from_delta.as_table()
    assert len(DeltaTableSource(delta, ["id"])) == 6


def test_an_empty_file_still_gives_its_columns(tmp_path: Path, cache: Path) -> None:
    empty = pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.float64())})
    path = _write(tmp_path / "e.parquet", empty)
    source = ParquetSource(path, ["id"])
    whole = ArrowTableSource(empty, ["id"])
    assert len(source) == 0
    assert source.output_schema() == whole.output_schema()
    assert source.content_hash() == whole.content_hash()
    assert [len(c) for c in source.iter_chunks(10)] == [0]
