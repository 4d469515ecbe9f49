"""podline merges a plain local table's small files itself (``LocalLog.merge``), keeping rows
in the order they were written, where delta-rs's ``optimize`` writes a merged file's sources
newest first. Every table merged here is read back by delta-rs and polars as well."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.internals import count_id_reads

from podline.stores import DeltaStore, _delta_local, _delta_maintenance
from podline.stores import delta as delta_module
from podline.stores._delta_format import ParquetSettings
from podline.stores._delta_local import LocalLog
from podline.stores._delta_log import CommitConflict, Merge
from podline.stores._delta_maintenance import COMPACT_ROW_GROUP_ROWS, merge_plan, pending
from podline.stores._delta_stats import file_stats, merged_stats

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def _batch(start: int, n: int, rng: random.Random, *, extra: bool = False) -> pa.Table:
    columns: dict[str, pa.Array] = {
        "__record_id": pa.array(
            [f"id-{i:08d}" for i in range(start, start + n)], pa.large_string()
        ),
        "seq": pa.array(range(start, start + n), pa.int64()),
        "s": pa.array(
            [None if rng.random() < 0.2 else "é" * rng.randint(0, 40) + str(i) for i in range(n)],
            pa.large_string(),
        ),
    }
    if extra:
        columns["late"] = pa.array([float(i) for i in range(start, start + n)], pa.float64())
    return pa.table(columns)


def _flushed(
    store: DeltaStore, sizes: list[int], rng: random.Random, late: int | None = None
) -> list[pa.Table]:
    """Batches of ``sizes`` rows written to ``t`` and flushed one by one (a column added from
    batch ``late`` on): what was written, in order."""
    written: list[pa.Table] = []
    for n, size in enumerate(sizes):
        start = sum(t.num_rows for t in written)
        written.append(_batch(start, size, rng, extra=late is not None and n >= late))
        store.write("t", written[-1])
        store.flush()
    return written


def _four_flushes(tmp_path: Path, seed: int) -> tuple[list[pa.Table], str, LocalLog]:
    """A table of four flushes of ten rows, not compacted, and its log as the merge sees it:
    what was written, the table's URI and the log."""
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=None)
    written = _flushed(store, [10] * 4, random.Random(seed))
    store.close()
    uri = store.table_uri("t")
    log = LocalLog.load(uri)
    assert log is not None
    return written, uri, log


def _adds(uri: str) -> list[dict[str, object]]:
    """The table's ``add`` actions as delta-rs lists them, statistics flattened."""
    return pa.table(DeltaTable(uri).get_add_actions(flatten=True)).to_pylist()


def _optimizes(uri: str) -> list[dict[str, object]]:
    return [entry for entry in DeltaTable(uri).history() if entry["operation"] == "OPTIMIZE"]


def _check_table(uri: str, expected: pa.Table, root: Path, *, in_order: bool = True) -> None:
    """The table at ``uri`` holds ``expected`` (in ``seq`` order) as podline reads it, in the
    order written unless not ``in_order``, and as delta-rs and polars read it; every file's
    statistics hold."""
    fresh = DeltaStore(root).scan("t")
    assert fresh is not None
    if not in_order:
        fresh = fresh.sort_by("seq")
    assert fresh.column("seq").to_pylist() == expected.column("seq").to_pylist()
    assert fresh.select(expected.column_names).equals(expected)
    by_delta_rs = DeltaTable(uri).to_pyarrow_table().sort_by("seq")
    assert by_delta_rs.select(expected.column_names).cast(expected.schema).equals(expected)
    by_polars = pl.read_delta(uri).sort("seq").to_arrow()
    assert by_polars.select(expected.column_names).cast(expected.schema).equals(expected)
    actions = _adds(uri)
    for action in actions:
        rows = pq.read_table(os.path.join(uri, action["path"]))
        assert action["num_records"] == rows.num_rows
        for name in ("seq", "s"):
            column = rows.column(name)
            assert action[f"null_count.{name}"] == column.null_count
            low, high = action.get(f"min.{name}"), action.get(f"max.{name}")
            if column.null_count < len(column):
                bounds = pc.min_max(column)
                assert low is not None
                assert low <= bounds["min"].as_py()
                assert high is not None
                assert bounds["max"].as_py() <= high
    # delta-rs skips files by those statistics: each row is still found by its value.
    table = DeltaTable(uri)
    values = expected.column("seq").to_pylist()
    for seq in random.Random(0).sample(values, min(3, len(values))):
        found = table.to_pyarrow_table(filters=[("seq", "=", seq)])
        assert found.column("seq").to_pylist() == [seq]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(1, 200), min_size=2, max_size=45),
    limits=st.tuples(st.integers(2, 8), st.sampled_from([4_000, 12_000, 40_000, 64 * 2**20])),
    late=st.one_of(st.none(), st.integers(0, 44)),
    seed=st.integers(0, 2**16),
)
def test_merges_keep_the_rows_in_the_order_they_were_written(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    limits: tuple[int, int],
    late: int | None,
    seed: int,
) -> None:
    compact_files, compact_bytes = limits  # (how many files make a table due, the cap)
    root = tmp_path_factory.mktemp("store")
    rng = random.Random(seed)
    spanned = []  # bins merged across a file left out (``merge_plan``), which moves rows
    plan = _delta_maintenance.merge_plan

    def spy(files: dict[str, int], least: int | None, cap: int) -> list[list[str]]:
        bins = plan(files, least, cap)
        order = list(files)
        spanned.extend(b for b in bins if order.index(b[-1]) - order.index(b[0]) >= len(b))
        return bins

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_delta_maintenance, "merge_plan", spy)
        store = DeltaStore(
            root, flush_seconds=None, compact_files=compact_files, compact_bytes=compact_bytes
        )
        written = _flushed(store, sizes, rng, late)  # a column added midway, at ``late``
        store.close()
    expected = pa.concat_tables(written, promote_options="default")
    uri = store.table_uri("t")
    _check_table(uri, expected, root, in_order=not spanned)
    log = LocalLog.load(uri)
    assert log is not None
    assert pending(list(log.merge_weights().values()), compact_bytes) < compact_files


def test_a_store_merges_its_tables_itself_in_write_order(tmp_path: Path) -> None:
    rng = random.Random(1)
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=4)
    written = _flushed(store, [50] * 30, rng)
    uri = store.table_uri("t")
    merges = _optimizes(uri)
    assert len(merges) >= 5
    assert {entry["clientVersion"] for entry in merges} == {"podline"}
    # Every merged file holds its sources' rows in the order they were written.
    for action in _adds(uri):
        seq = pq.read_table(os.path.join(uri, action["path"])).column("seq").to_pylist()
        assert seq == sorted(seq)
        assert seq == list(range(seq[0], seq[0] + len(seq)))
    _check_table(uri, pa.concat_tables(written), tmp_path)
    # A vacuum past the retention deletes the replaced files, and leaves the table whole.
    DeltaStore(tmp_path).compact(retention_hours=0)
    assert len(list(Path(uri).glob("*.parquet"))) == len(DeltaTable(uri).file_uris())
    _check_table(uri, pa.concat_tables(written), tmp_path)


def test_an_explicit_compaction_keeps_a_large_files_place(tmp_path: Path) -> None:
    rng = random.Random(2)
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=None, compact_bytes=60_000)
    # The large file (over half the cap) stays.
    written = _flushed(store, [20, 20, 20, 3_000, 20, 20, 20], rng)
    uri = store.table_uri("t")
    before = _adds(uri)
    (large,) = [a["path"] for a in before if a["num_records"] == 3_000]
    store.compact()
    after = _adds(uri)
    assert sorted(a["num_records"] for a in after) == [60, 60, 3_000]
    assert large in {a["path"] for a in after}
    _check_table(uri, pa.concat_tables(written), tmp_path)


def test_a_merge_another_writer_beat_leaves_nothing_behind(tmp_path: Path) -> None:
    written, uri, log = _four_flushes(tmp_path, 3)
    assert log.mergeable()
    other = _batch(40, 10, random.Random(4))
    write_deltalake(uri, other, mode="append")  # takes the version the merge would
    files = set(Path(uri).glob("*.parquet"))
    with pytest.raises(CommitConflict):
        log.commit_merge(
            log.write_merge(
                [list(log.data_files())],
                ParquetSettings("zstd", frozenset()),
                COMPACT_ROW_GROUP_ROWS,
            )
        )
    assert set(Path(uri).glob("*.parquet")) == files  # its merged file is gone
    assert not _optimizes(uri)
    fresh = DeltaStore(tmp_path).scan("t").sort_by("seq")
    assert fresh.select(other.column_names).equals(pa.concat_tables([*written, other]))


def _merge_all(log: LocalLog) -> Merge:
    """A merge of all of the table's files, written on ``log``'s version, not committed."""
    return log.write_merge(
        [list(log.data_files())], ParquetSettings("zstd", frozenset()), COMPACT_ROW_GROUP_ROWS
    )


def test_a_merge_written_before_appends_is_committed_after_them(tmp_path: Path) -> None:
    written, uri, log = _four_flushes(tmp_path, 6)
    merge = _merge_all(log)
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=None)
    rng = random.Random(7)
    for start in (40, 50):  # two appends meanwhile
        written.append(_batch(start, 10, rng))
        store.write("t", written[-1])
        store.flush()
    store.close()
    latest = LocalLog.load(uri)
    assert latest is not None
    assert latest.version() == log.version() + 2
    latest.commit_merge(merge)
    assert latest.version() == log.version() + 3
    (optimize,) = _optimizes(uri)
    assert optimize["readVersion"] == log.version() + 2
    # The merged file stands where its sources stood: before the rows appended meanwhile.
    assert len(_adds(uri)) == 3
    _check_table(uri, pa.concat_tables(written), tmp_path)


def test_a_merge_whose_files_another_writer_replaced_is_discarded(tmp_path: Path) -> None:
    written, uri, log = _four_flushes(tmp_path, 8)
    merge = _merge_all(log)
    DeltaStore(tmp_path).compact()  # merges the same files first
    files = set(Path(uri).glob("*.parquet"))
    latest = LocalLog.load(uri)
    assert latest is not None
    with pytest.raises(CommitConflict, match="4 of its files are gone"):
        latest.commit_merge(merge)
    assert set(Path(uri).glob("*.parquet")) == files - set(merge.files)
    assert not any(path.exists() for path in merge.files)
    assert len(_optimizes(uri)) == 1
    _check_table(uri, pa.concat_tables(written), tmp_path)


def test_a_merge_written_before_a_schema_change_is_discarded(tmp_path: Path) -> None:
    written, uri, log = _four_flushes(tmp_path, 9)
    merge = _merge_all(log)
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=None)
    late = _batch(40, 10, random.Random(9), extra=True)  # adds a column
    store.write("t", late)
    store.close()
    latest = LocalLog.load(uri)
    assert latest is not None
    with pytest.raises(CommitConflict, match="its schema changed"):
        latest.commit_merge(merge)
    assert not any(path.exists() for path in merge.files)
    assert not _optimizes(uri)
    fresh = DeltaStore(tmp_path).scan("t")
    assert fresh is not None
    assert fresh.column("seq").to_pylist() == list(range(50))
    assert (
        fresh.select(["seq", "s"])
        .slice(0, 40)
        .equals(pa.concat_tables(written).select(["seq", "s"]))
    )


def _wait_for_version(uri: str, version: int) -> None:
    """Wait (at most 30 s) until the table at ``uri`` has reached ``version``."""
    deadline = time.monotonic() + 30
    while True:
        log = LocalLog.load(uri)
        if log is not None and log.version() >= version:
            assert log.version() == version
            return
        assert time.monotonic() < deadline, f"version {version} of {uri} never came"
        time.sleep(0.01)


def test_flushes_go_on_while_a_store_merges_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flush that leaves a table due hands the merge to a thread of its own: while the
    # merge is written, later flushes commit; the merge then commits after them.
    written_merge = threading.Event()
    go_on = threading.Event()
    real = delta_module.merge_small_files

    def held(*args: Any, **kwargs: Any) -> Any:
        merge = real(*args, **kwargs)
        written_merge.set()
        assert go_on.wait(30)
        return merge

    monkeypatch.setattr(delta_module, "merge_small_files", held)
    rng = random.Random(10)
    # Every ten rows written are committed by the store's committer thread.
    store = DeltaStore(tmp_path, flush_rows=10, flush_seconds=None, compact_files=4)
    uri = store.table_uri("t")
    written: list[pa.Table] = []
    for n in range(6):  # the fourth commit leaves the table due; two more while it merges
        written.append(_batch(10 * n, 10, rng))
        store.write("t", written[-1])
        _wait_for_version(uri, n)
        if n == 3:
            assert written_merge.wait(30)
    assert not _optimizes(uri)
    go_on.set()
    store.flush()  # waits for the merge
    (optimize,) = _optimizes(uri)
    assert optimize["readVersion"] == 5
    # The store's index of ids took in the merge: it reads no ids to go on.
    id_reads = count_id_reads(monkeypatch)
    written.append(_batch(60, 5, rng))
    assert store.write("t", written[-1]) == 5
    store.flush()
    assert id_reads == []
    assert store.write("t", written[1]) == 0  # rows it holds stay write-once
    store.close()
    _check_table(uri, pa.concat_tables(written), tmp_path)
    assert DeltaStore(tmp_path).verify().ok


def test_a_merge_is_checkpointed_and_read_back_from_the_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(4)
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=3)
    written = _flushed(store, [7] * 25, rng)  # checkpoints every ten versions, merges among them
    uri = store.table_uri("t")
    assert list(Path(uri, "_delta_log").glob("*.checkpoint.parquet"))
    log = LocalLog.load(uri)
    assert log is not None
    assert set(log.data_files()) == {  # the same files as delta-rs lists
        a["path"] for a in _adds(uri)
    }
    _check_table(uri, pa.concat_tables(written), tmp_path)


# -- the plan and the statistics


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 10_000), min_size=2, max_size=40),
    least=st.one_of(st.none(), st.integers(2, 40)),
    cap=st.integers(2, 30_000),
)
def test_the_plan_merges_within_the_cap_and_leaves_full_files(
    sizes: list[int], least: int | None, cap: int
) -> None:
    files = {f"f{i}": size for i, size in enumerate(sizes)}
    bins = merge_plan(files, least, cap)
    merged = [name for b in bins for name in b]
    assert len(merged) == len(set(merged))
    order = list(files)
    for b in bins:
        assert len(b) >= 2
        assert sum(files[name] for name in b) <= cap
        assert all(2 * files[name] <= cap for name in b)  # a full file is never read
        assert [order.index(name) for name in b] == sorted(order.index(name) for name in b)
    if pending(sizes, cap) >= 2:
        assert bins  # a table with files to merge merges some


@given(st.lists(st.lists(st.one_of(st.none(), _TEXT), min_size=1, max_size=20), min_size=1))
def test_merged_statistics_bound_every_row_as_the_files_statistics_do(
    parts: list[list[str | None]],
) -> None:
    rng = random.Random(len(parts))
    tables = []
    for values in parts:
        moments = [
            dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=rng.getrandbits(40))
            for _ in values
        ]
        tables.append(
            pa.table(
                {
                    "s": pa.array(values, pa.large_string()),
                    "n": pa.array([rng.randint(-5, 5) for _ in values], pa.int64()),
                    "t": pa.array(moments, pa.timestamp("us", "UTC")),
                    "z": pa.array([{"a": 1} for _ in values]),
                }
            )
        )
    whole = file_stats(pa.concat_tables(tables))
    merged = merged_stats([file_stats(t) for t in tables])
    assert merged["numRecords"] == whole["numRecords"]
    assert merged["nullCount"] == whole["nullCount"]
    # A part whose strings cannot all be bounded leaves the merge unbounded (every reader reads
    # it), even where the whole could be; the reverse never happens.
    assert "minValues" in whole or "minValues" not in merged
    if "minValues" in merged:
        assert merged["minValues"] == whole["minValues"]  # lower bounds are exact
        for name in ("n", "t", "z"):
            assert merged["maxValues"][name] == whole["maxValues"][name]
        if "s" in whole["maxValues"]:
            # A string's upper bound may be higher than the rows' own, never lower.
            assert merged["maxValues"]["s"] >= whole["maxValues"]["s"]
    assert json.loads(json.dumps(merged)) == merged  # as the log writes and reads it


def test_an_interrupt_after_a_merge_is_published_leaves_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once the entry is linked the merge is committed: an interrupt from then on must not
    # delete the files it names (readers would find the table broken).
    written, uri, log = _four_flushes(tmp_path, 5)

    def interrupted(path: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_delta_local, "sync_dir", interrupted)
    with pytest.raises(KeyboardInterrupt):
        log.commit_merge(
            log.write_merge([list(log.data_files())], ParquetSettings("zstd", frozenset()), 1_000)
        )
    monkeypatch.undo()
    assert len(_optimizes(uri)) == 1
    assert all(os.path.exists(os.path.join(uri, a["path"])) for a in _adds(uri))
    _check_table(uri, pa.concat_tables(written), tmp_path)
