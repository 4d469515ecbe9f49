"""A DeltaStore keeps its tables small by itself, within the limits set
(``_delta_maintenance``), and a compaction with nothing to do writes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import random
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.internals import after_each_compaction, break_compaction, record_data_file_reads

from podline.errors import StoreError
from podline.stores import DeltaStore, open_store
from podline.stores._delta_local import MERGED_TAG, LocalLog
from podline.stores._delta_maintenance import (
    COMPACT_ROW_GROUP_ROWS,
    merge_size,
    pending,
)
from podline.stores._delta_table import FEW_IDS

from .conftest import records


def _version(store: DeltaStore, path: str) -> int:
    return DeltaTable(store.table_uri(path)).version()


def _data_files(store: DeltaStore, path: str) -> set[str]:
    """The data files of the table at ``path``, relative to it, as delta-rs lists them."""
    uri = store.table_uri(path)
    return {name.removeprefix(uri).lstrip("/") for name in DeltaTable(uri).file_uris()}


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


def test_files_killed_writers_were_staging_go_at_the_retention(tmp_path: Path) -> None:
    """A commit or checkpoint a writer was writing when it was killed is deleted by a
    compaction once older than the retention, like the data files such a writer leaves;
    a younger one (a writer may be at work) and every other file stay."""
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=None)
    for i in range(2):
        store.write("t", records([str(i)], v=[i]))
        store.flush()
    log = Path(store.table_uri("t"), "_delta_log")
    old = time.time() - 3 * 3600
    staged = {
        "_commit_9d0c4c8e-6e55-4d1c-8a5e-2f3b1d7e9a01.json.tmp": old,  # a commit (delta-rs's too)
        ".6f1d2e3c-4b5a-4978-8e6f-0a1b2c3d4e5f.00000000000000000010.checkpoint.parquet.tmp": old,
        ".0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d._last_checkpoint.tmp": old,
        "_commit_1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e.json.tmp": time.time(),  # at work
    }
    others = {"notes.txt": old, ".s3-optimization-0": old}  # not podline's to delete
    for name, modified in {**staged, **others}.items():
        (log / name).write_bytes(b"partial")
        os.utime(log / name, (modified, modified))
    report = store.verify()
    assert {f.detail.removeprefix("_delta_log/") for f in report.leftovers} == set(staged)
    store.compact(retention_hours=2)
    left = {entry.name for entry in log.iterdir()}
    assert left & set(staged) == {"_commit_1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e.json.tmp"}
    assert set(others) <= left
    assert sorted(DeltaTable(store.table_uri("t")).to_pyarrow_table().column("v").to_pylist()) == [
        0,
        1,
    ]
    store.compact(retention_hours=0)
    assert not {entry.name for entry in log.iterdir()} & set(staged)
    assert store.verify().leftovers == ()


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


def test_the_compaction_cap_travels_with_the_config(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", compact_bytes=1_000_000)
    config = store.to_config()
    assert "compact_bytes=1000000" in config
    again = open_store(config)
    assert isinstance(again, DeltaStore)
    assert again.to_config() == config
    assert pickle.loads(pickle.dumps(store)).to_config() == config
    assert "compact_bytes" not in DeltaStore(tmp_path / "store").to_config()
    with pytest.raises(StoreError, match="compact_bytes"):
        DeltaStore(tmp_path / "store", compact_bytes=0)
    with pytest.raises(StoreError, match="compact_bytes"):
        open_store(config.replace("1000000", "big"))


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


# -- the cap on compaction (``compact_bytes``)


def _neighbours(sizes: list[int], target: int) -> list[list[int]]:
    """What delta-rs 1.6 merges for ``target``: runs of neighbouring files (in the order they
    were added) no larger than the target, packed from the newest into bins of at most the
    target; a bin of one file is left out. Files by their index in ``sizes``."""
    bins: list[list[int]] = []
    current: list[int] = []
    for i in reversed(range(len(sizes))):
        fits = sizes[i] <= target and sum(sizes[j] for j in current) + sizes[i] <= target
        if not fits:
            bins.append(current)
            current = []
        if sizes[i] <= target:
            current.append(i)
    return [b for b in [*bins, current] if len(b) > 1]


def _largest_first(sizes: list[int], target: int) -> list[list[int]]:
    """What delta-rs before 1.6 merges for ``target``: every file no larger than it, packed
    largest first into the first bin it fits; a bin of one file is left out."""
    bins: list[list[int]] = []
    for i in sorted((i for i in range(len(sizes)) if sizes[i] <= target), key=lambda i: -sizes[i]):
        fitting = next((b for b in bins if sum(sizes[j] for j in b) + sizes[i] <= target), None)
        if fitting is None:
            bins.append([i])
        else:
            fitting.append(i)
    return [b for b in bins if len(b) > 1]


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 10_000), min_size=2, max_size=40),
    least=st.one_of(st.none(), st.integers(2, 40)),
    cap=st.integers(2, 30_000),
)
def test_the_merge_target_keeps_merges_within_the_cap_and_full_files_out(
    sizes: list[int], least: int | None, cap: int
) -> None:
    target = merge_size(sizes, least, cap)
    bound = min([cap, *(s - 1 for s in sizes if 2 * s > cap)])  # below every full file
    if target is None:
        # Nothing fits: no two files that are not full make at most the cap together.
        fitting = sorted(s for s in sizes if 2 * s <= cap)
        assert len(fitting) < 2 or fitting[0] + fitting[1] > bound
        return
    assert target <= bound <= cap
    assert all(s > target for s in sizes if 2 * s > cap)  # a full file is never read
    for plan in (_neighbours, _largest_first):
        assert all(sum(sizes[i] for i in b) <= cap for b in plan(sizes, target))
    if least is not None and target < bound:
        # A tier: the newest files, at least ``least`` of them, none more than half, merged
        # into one file by delta-rs 1.6 (with neighbours of at most a quarter of them).
        newest = _neighbours(sizes, target)[0]
        assert newest[0] == len(sizes) - 1
        assert len(newest) >= least
        assert 2 * max(sizes[i] for i in newest) <= sum(sizes[i] for i in newest)


def test_a_row_is_rewritten_a_logarithmic_number_of_times() -> None:
    """Flushes of random sizes, compacted whenever ``Maintenance`` would, merged as delta-rs
    1.6 merges: no merge exceeds the cap, none is for nothing, and no row is rewritten more
    often than the cap allows doublings of its first file."""
    rng = random.Random(7)
    cap, compact_files = 50_000, 16
    files: list[tuple[int, int]] = []  # (size, times its rows were rewritten), oldest first
    for _ in range(3_000):
        files.append((rng.randint(10, 100) * rng.choice([1, 1, 1, 10]), 0))
        sizes = [size for size, _ in files]
        if pending(sizes, cap) < compact_files:
            continue
        target = merge_size(sizes, compact_files // 2, cap)
        assert target is not None
        bins = _neighbours(sizes, target)
        assert bins  # a compaction that is due merges something
        merged = {i for b in bins for i in b}
        made = [(sum(sizes[i] for i in b), 1 + max(files[i][1] for i in b)) for b in bins]
        assert all(size <= cap for size, _ in made)
        files = [f for i, f in enumerate(files) if i not in merged] + made
    assert max(times for _, times in files) <= math.log2(cap / 10)
    live = sum(size for size, _ in files)
    assert len(files) <= 4 * live / cap + compact_files  # files under a quarter of the cap


def _optimizes(store: DeltaStore, path: str) -> list[dict[str, dict[str, int]]]:
    history = DeltaTable(store.table_uri(path)).history()
    return [
        {k: json.loads(entry["operationMetrics"][k]) for k in ("filesAdded", "filesRemoved")}
        for entry in history
        if entry["operation"] == "OPTIMIZE"
    ]


def _rows(n: int, start: int, rng: random.Random) -> pa.Table:
    ids = [f"row-{i:07d}" for i in range(start, start + n)]
    return records(ids, v=[rng.getrandbits(60) for _ in ids], s=[str(rng.random()) for _ in ids])


def test_automatic_compaction_keeps_to_the_cap(tmp_path: Path) -> None:
    cap = 60_000
    store = DeltaStore(
        tmp_path / "store",
        flush_seconds=None,
        compact_files=8,
        compact_bytes=cap,
        retention_hours=0,
    )
    rng = random.Random(3)
    written = []
    for _ in range(150):
        rows = _rows(rng.randint(20, 80), sum(t.num_rows for t in written), rng)
        store.write("t", rows)
        store.flush()
        written.append(rows)
    merges = _optimizes(store, "t")
    assert len(merges) >= 5
    # No merge wrote a file over the cap or read one over half of it.
    assert max(m["filesAdded"]["max"] for m in merges) <= cap
    assert max(m["filesRemoved"]["max"] for m in merges) <= cap // 2
    log = LocalLog.load(store.table_uri("t"))
    assert log is not None
    weights = log.merge_weights()  # (sizes, or for merged files their rows' bytes if more)
    assert any(2 * weight > cap for weight in weights.values())  # full files made and kept
    expected = pa.concat_tables(written).sort_by("__record_id")
    by_delta_rs = DeltaTable(store.table_uri("t")).to_pyarrow_table().sort_by("__record_id")
    assert by_delta_rs.select(expected.column_names).cast(expected.schema).equals(expected)
    by_polars = pl.read_delta(store.table_uri("t")).sort("__record_id")
    assert by_polars.to_arrow().select(expected.column_names).cast(expected.schema).equals(expected)
    fresh = DeltaStore(tmp_path / "store").scan("t").sort_by("__record_id")
    assert fresh.select(expected.column_names).cast(expected.schema).equals(expected)


def _merges_in_order(uri: str) -> list[tuple[list[str], list[dict[str, Any]]]]:
    """The table's merges (OPTIMIZE commits) in version order: the paths each removed, and
    the ``add`` actions it made, as the JSON log gives them."""
    merges = []
    for entry in sorted(Path(uri, "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in entry.read_text().splitlines()]
        if any(a.get("commitInfo", {}).get("operation") == "OPTIMIZE" for a in actions):
            removed = [a["remove"]["path"] for a in actions if "remove" in a]
            merges.append((removed, [a["add"] for a in actions if "add" in a]))
    return merges


def test_a_merge_that_compressed_its_rows_is_not_merged_again(tmp_path: Path) -> None:
    # Hashes are flushed uncompressed (lookups read them fast) and merged with Zstandard,
    # which halves them, so a merge of up to the cap comes out under half of it. Weighed by
    # the bytes of its rows it is full all the same: no later merge rewrites it.
    cap = 200_000
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=8, compact_bytes=cap)
    written = []
    for n in range(100):
        numbers = range(n * 300, (n + 1) * 300)
        ids = [f"pod3:{hashlib.sha256(str(i).encode()).hexdigest()}" for i in numbers]
        written.append(records(ids, v=list(numbers)))
        store.write("t", written[-1])
        store.flush()
    uri = store.table_uri("t")
    merges = _merges_in_order(uri)
    assert len(merges) >= 5
    compressed = {
        add["path"]
        for _, adds in merges
        for add in adds
        if 2 * add["size"] <= cap < 2 * int(add["tags"][MERGED_TAG])
    }
    assert compressed  # merges that came out under half the cap, their rows over it
    assert not compressed & {path for removed, _ in merges for path in removed}
    # The weights are read back from the checkpoint delta-rs wrote (past version 100, where
    # a log is read from its checkpoint), as from the commits.
    checkpoints = Path(uri, "_delta_log").glob("*.checkpoint.parquet")
    assert max(int(path.name.split(".")[0]) for path in checkpoints) >= 100
    log = LocalLog.load(uri)
    assert log is not None
    sizes, weights = log.data_files(), log.merge_weights()
    # (Merges since the checkpoint, at most three, cannot account for all of them.)
    assert sum(2 * sizes[name] <= cap < 2 * weight for name, weight in weights.items()) >= 5
    expected = pa.concat_tables(written)
    by_delta_rs = DeltaTable(uri).to_pyarrow_table().sort_by("v")
    assert by_delta_rs.select(expected.column_names).cast(expected.schema).equals(expected)
    fresh = DeltaStore(tmp_path / "store").scan("t")
    assert fresh is not None
    assert fresh.select(expected.column_names).cast(expected.schema).equals(expected)


def test_full_files_neither_count_toward_a_compaction_nor_take_part(tmp_path: Path) -> None:
    cap = 40_000
    rng = random.Random(5)
    with DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=None) as store:
        for n in range(5):  # five full files: each over half the cap
            store.write("t", _rows(1_000, 1_000 * n, rng))
            store.flush()
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=4, compact_bytes=cap)
    full = set(DeltaTable(store.table_uri("t")).file_uris())
    assert all(
        2 * size.as_py() > cap
        for size in DeltaTable(store.table_uri("t")).get_add_actions()["size_bytes"]
    )
    for n in range(3):  # eight files, but three small ones: not due
        store.write("t", _rows(5, 10_000 + 5 * n, rng))
        store.flush()
    assert not _optimizes(store, "t")
    store.write("t", _rows(5, 20_000, rng))  # the fourth small file: due
    store.flush()
    files = set(DeltaTable(store.table_uri("t")).file_uris())
    assert full < files
    assert len(files) == len(full) + 1
    assert store.scan("t").num_rows == 5_020


def test_a_read_during_a_compaction_reads_only_the_merged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between a compaction's commit and the store's id index learning of it, the index is
    # behind the table: a read of ids it does not hold reads the files the compaction wrote
    # (at most the cap), not the whole table.
    cap = 40_000
    rng = random.Random(7)
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=4, compact_bytes=cap)
    for n in range(4):  # four full files, never merged again
        store.write("t", _rows(1_000, 1_000 * n, rng))
        store.flush()
    full = _data_files(store, "t")
    asked = [f"new-{j}" for j in range(FEW_IDS + 1)]
    seen: list[tuple[int, list[str], list[object]]] = []

    def read() -> None:
        files_read.clear()
        found = store.read("t", asked, columns=["v"])
        assert found is not None
        files = list(files_read)
        known = store.read("t", ["row-0010002", "row-0000001"], columns=["v"])
        assert known is not None
        seen.append((found.num_rows, files, known.column("v").to_pylist()))

    files_read = record_data_file_reads(monkeypatch)
    after_each_compaction(monkeypatch, read)
    for n in range(4):  # the fourth small file makes the table due
        store.write("t", _rows(5, 10_000 + 5 * n, rng))
        store.flush()
    ((found, files, known),) = seen
    merged = _data_files(store, "t") - full
    assert len(merged) == 1
    assert (found, files) == (0, sorted(merged))
    # Ids the index holds are read from every file, as always: the same rows as afterwards.
    after = store.read("t", ["row-0010002", "row-0000001"], columns=["v"])
    assert after is not None
    assert known == after.column("v").to_pylist()
    assert len(known) == 2


def test_compaction_writes_bounded_row_groups_in_the_tables_encoding(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=14)
    rng = random.Random(1)
    for n in range(14):  # 70,000 rows merged into one file
        store.write("t", _rows(5_000, 5_000 * n, rng))
        store.flush()
    (merged,) = DeltaTable(store.table_uri("t")).file_uris()
    meta = pq.ParquetFile(merged).metadata
    assert meta.num_rows == 70_000
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    assert max(g.num_rows for g in groups) <= COMPACT_ROW_GROUP_ROWS
    ids = meta.schema.names.index("__record_id")
    for group in groups:  # ids are all distinct: the store writes them without a dictionary
        assert "DICTIONARY" not in str(group.column(ids).encodings)


@pytest.mark.parametrize("least", [4, None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delta_rs_merges_the_files_the_plan_expects(
    tmp_path: Path, seed: int, least: int | None
) -> None:
    """Differential: the files delta-rs's ``optimize`` merges for the target ``merge_size``
    picks are those the model of its planner above (``_neighbours``) predicts."""
    rng = random.Random(seed)
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=None)
    for n in range(14):
        rows = _rows(rng.choice([5, 10, 20, 40, 300, 600]), 0, rng)
        ids = pa.array([f"{n:02d}-{i}" for i in range(rows.num_rows)], pa.large_string())
        store.write("t", rows.set_column(0, "__record_id", ids))
        store.flush()
    table = DeltaTable(store.table_uri("t"))
    added = {}  # flush number -> (file, size)
    for uri, size in zip(table.file_uris(), table.get_add_actions()["size_bytes"], strict=True):
        first = pq.read_table(uri).column("__record_id")[0].as_py()
        added[int(first[:2])] = (uri, size.as_py())
    sizes = [added[n][1] for n in range(14)]
    cap = sorted(sizes)[-3] * 2 - 1  # the two largest files are full
    target = merge_size(sizes, least, cap)
    assert target is not None
    expected = {added[i][0] for b in _neighbours(sizes, target) for i in b}
    table.optimize.compact(target_size=target)
    removed = {uri for uri, _ in added.values()} - set(DeltaTable(store.table_uri("t")).file_uris())
    assert removed == expected
    assert removed
