"""Parquet directories (and Parquet files read with options) read batch by batch: the same
rows and identity as ``pyarrow.parquet.read_table``, which read them whole before."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from podline import ArrowTableSource, ParquetSource, SourceError


def _write_dataset(root: Path) -> Path:
    """Three hive partitions, one of two files, with nulls and strings."""
    for part, files in (("a", 2), ("b", 1), ("c", 1)):
        folder = root / f"part={part}"
        folder.mkdir(parents=True)
        for f in range(files):
            base = 100 * (ord(part) - 97) + 10 * f
            k = list(range(base, base + 5))
            x = [i * 0.5 if i % 4 else None for i in k]
            table = pa.table({"k": k, "x": x, "s": [f"r{i}" for i in k]})
            pq.write_table(table, str(folder / f"{f}.parquet"))
    return root


def test_a_directory_keeps_the_identity_it_had_when_read_whole(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds")
    source = ParquetSource(root, ["k"])
    # The values podline 96d2c38 (which read a directory whole) gave for this data: stores
    # written then keep their cache hits.
    assert str(source.content_hash()) == (
        "pod3:2b1a7b76e1b271d81a79d5d48057983c8e09f038da1cb6ce7e8a194065ca6f2f"
    )
    assert source.source_id == "b9931e820eb8adc6"
    named = ParquetSource(root, ["k"], source_id="fixed")
    assert str(named.content_hash()) == (
        "pod3:0580c0397a3e2eec9ba79447d75b61ccdc2e496a577dcfda1fe45957f95dd144"
    )
    whole = ArrowTableSource(pq.read_table(root), ["k"])
    assert source.content_hash() == whole.content_hash()
    assert source.as_table(all_info=True).equals(whole.as_table(all_info=True))
    assert source.output_schema()[1]["part"] is str  # the partition column is read


def test_read_options_give_what_read_table_gives(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds")
    options = {"columns": ["k", "x", "part"], "filters": [("part", "!=", "b")]}
    source = ParquetSource(root, ["k"], **options)
    whole = ArrowTableSource(pq.read_table(root, **options), ["k"])  # type: ignore[arg-type]
    assert len(source) == 15
    assert source.content_hash() == whole.content_hash()
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"k": range(100), "x": range(100)}), str(path), row_group_size=8)
    pandas_read = ParquetSource(path, ["k"], use_pandas_metadata=True)  # read whole, as before
    assert pandas_read.content_hash() == ArrowTableSource(pq.read_table(path), ["k"]).content_hash()
    chosen = ParquetSource(path, ["k"], columns=["x", "k"])
    alike = ArrowTableSource(pq.read_table(path, columns=["x", "k"]), ["k"])
    assert chosen.as_table(all_info=True).equals(alike.as_table(all_info=True))


@pytest.mark.parametrize("layout", ["directory", "file", "file with options"])
def test_rows_are_read_a_row_group_at_a_time(tmp_path: Path, layout: str) -> None:
    groups, rows = 80, 10_000
    numbers = pa.array(range(groups * rows), pa.int64())
    table = pa.table({"k": numbers, "a": numbers})
    if layout == "directory":
        path = tmp_path / "many"
        path.mkdir()
        for g in range(groups):
            pq.write_table(table.slice(g * rows, rows), str(path / f"{g:03}.parquet"))
    else:
        path = tmp_path / "one.parquet"
        pq.write_table(table, str(path), row_group_size=rows)
    options = {"columns": ["a", "k"]} if layout == "file with options" else {}
    total = table.nbytes
    del table, numbers
    source = ParquetSource(path, ["k"], source_id="many", **options)  # type: ignore[arg-type]
    base = pa.total_allocated_bytes()
    peak, seen = 0, 0
    for chunk in source.iter_chunks(rows):
        peak = max(peak, pa.total_allocated_bytes() - base)
        seen += len(chunk)
    assert seen == groups * rows
    # Reading whole (or pre-buffering every row group) would hold about all of it.
    assert peak < total / 4, (peak, total)


def test_a_changed_or_added_file_is_refused(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds")
    source = ParquetSource(root, ["k"])
    time.sleep(0.01)  # a later ctime even on coarse clocks
    pq.write_table(pa.table({"k": [0], "x": [1.0], "s": ["z"]}), str(root / "part=b" / "0.parquet"))
    with pytest.raises(SourceError, match="ds: its data changed after the source was built") as e:
        source.as_table()
    assert f"changed: 'part=b/0.parquet' under {str(root)!r}" in str(e.value)
    again = ParquetSource(root, ["k"])
    assert len(again) == 16
    assert again.content_hash() != source.content_hash()
    pq.write_table(pa.table({"k": [7], "x": [1.0], "s": ["y"]}), str(root / "part=c" / "9.parquet"))
    with pytest.raises(SourceError, match="changed after the source was built") as e:
        list(again.iter_packets())
    assert "added: 'part=c/9.parquet'" in str(e.value)
