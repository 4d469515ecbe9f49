"""A DeltaStore keeps its tables small by itself, within the limits set
(``_delta_maintenance``), and a compaction with nothing to do writes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.internals import break_compaction

from podline.errors import StoreError
from podline.stores import DeltaStore, open_store
from podline.stores._delta_maintenance import merge_size

from .conftest import records


def _version(store: DeltaStore, path: str) -> int:
    return DeltaTable(store.table_uri(path)).version()


def _live_files(store: DeltaStore, path: str) -> int:
    return len(DeltaTable(store.table_uri(path)).file_uris())


def test_a_compaction_with_nothing_to_do_writes_nothing(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=None)
    store.write("one", records(["a"], v=[1]))
    for i in range(3):
        store.write("three", records([str(i)], v=[i]))
        store.flush()
    store.compact(retention_hours=0)  # rewrites 'three', deletes what it replaced
    versions = (_version(store, "one"), _version(store, "three"))
    assert versions == (0, 5)  # 'three': 3 writes, a compaction, a vacuum's two entries
    for hours in (0, 168, None):
        store.compact(retention_hours=hours)
        assert (_version(store, "one"), _version(store, "three")) == versions
    assert sorted(store.scan("three").column("v").to_pylist()) == [0, 1, 2]


def test_tables_are_compacted_by_themselves_within_the_limit(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=4, retention_hours=0)
    counts = []
    for i in range(13):
        store.write("t", records([str(i)], v=[i]))
        store.flush()
        counts.append(_live_files(store, "t"))
    # Compacted to one file by the flush that made four: 1 2 3 1 2 3 1 ...
    assert counts == [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1]
    table = Path(store.table_uri("t"))
    assert len(list(table.glob("*.parquet"))) <= 4  # replaced files deleted (retention 0)
    assert sorted(DeltaTable(str(table)).to_pyarrow_table().column("v").to_pylist()) == list(
        range(13)
    )
    fresh = DeltaStore(tmp_path / "store")
    assert sorted(fresh.scan("t").column("v").to_pylist()) == list(range(13))
    # Write-once still holds across compactions (the id index follows the rewritten files).
    assert store.write("t", records(["3", "13"], v=[0, 13])) == 1


def test_within_the_retention_replaced_files_are_kept(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=3)
    for i in range(3):
        store.write("t", records([str(i)], v=[i]))
        store.flush()
    assert _live_files(store, "t") == 1
    # A reader of an older version still finds its files (for a week, by default).
    old = DeltaTable(store.table_uri("t"), version=1).to_pyarrow_table()
    assert sorted(old.column("v").to_pylist()) == [0, 1]


def test_compaction_by_itself_can_be_turned_off(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=None)
    for i in range(8):
        store.write("t", records([str(i)], v=[i]))
        store.flush()
    assert _live_files(store, "t") == 8


def test_a_failed_compaction_leaves_the_flush_standing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_compaction(monkeypatch, OSError("disk full"))
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=2)
    with caplog.at_level(logging.WARNING, logger="podline.stores.delta"):
        for i in range(3):
            store.write("t", records([str(i)], v=[i]))
            store.flush()
    assert "compacting 't'" in caplog.text
    assert "disk full" in caplog.text
    assert sorted(DeltaStore(tmp_path / "store").scan("t").column("v").to_pylist()) == [0, 1, 2]


def test_maintenance_limits_travel_with_the_config(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", compact_files=None, retention_hours=24)
    config = store.to_config()
    assert "compact_files=none" in config
    assert "retention_hours=24" in config
    again = open_store(config)
    assert isinstance(again, DeltaStore)
    assert again.to_config() == config
    assert "compact_files" not in DeltaStore(tmp_path / "store").to_config()
    with pytest.raises(StoreError, match="compact_files"):
        DeltaStore(tmp_path / "store", compact_files=1)
    with pytest.raises(StoreError, match="retention_hours"):
        DeltaStore(tmp_path / "store", retention_hours=-1)


def test_a_compaction_leaves_files_larger_than_the_small_ones_together(tmp_path: Path) -> None:
    # A table gaining rows at every run: its compacted rows are not rewritten each time.
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=4)
    ids = [f"big-{n}" for n in range(20_000)]
    store.write("t", records(ids, v=list(range(len(ids)))))
    store.flush()
    big = set(DeltaTable(store.table_uri("t")).file_uris())
    for i in range(3):  # the third makes four files: the three small ones are merged
        store.write("t", records([str(i)], v=[i]))
        store.flush()
    files = set(DeltaTable(store.table_uri("t")).file_uris())
    assert len(files) == 2
    assert big <= files
    assert store.scan("t").num_rows == len(ids) + 3


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 10_000), min_size=2, max_size=40), least=st.integers(2, 40))
def test_the_merge_target_makes_delta_rs_merge_the_smallest_files(
    sizes: list[int], least: int
) -> None:
    target = merge_size(sizes, least)
    ordered = sorted(sizes)
    if target is None:  # everything is merged, as delta-rs would by itself
        assert all(ordered[k] <= sum(ordered[:k]) for k in range(least, len(ordered)))
        return
    # delta-rs's plan: files above the target stay; the others are packed, largest first,
    # into bins of at most the target; a bin of one file is left as it is.
    bins: list[list[int]] = []
    for size in sorted((s for s in sizes if s <= target), reverse=True):
        fitting = next((b for b in bins if sum(b) + size <= target), None)
        if fitting is None:
            bins.append([size])
        else:
            fitting.append(size)
    merged = [b for b in bins if len(b) > 1]
    assert len(merged) == 1
    assert sorted(merged[0]) == ordered[: len(merged[0])]
    assert len(merged[0]) >= least
