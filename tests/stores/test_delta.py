"""DeltaStore specifics: layout, other readers, buffering, flush errors, compaction."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.internals import (
    count_id_reads,
    count_table_reads,
    real_commit,
    record_data_file_reads,
    release_idle_indexes_from,
    replace_commits,
    without_file_locks,
)

from podline import matching
from podline.conversion import table_from_rows
from podline.errors import StoreError
from podline.stores import RECORD_ID, DeltaStore, _index, open_store
from podline.stores._delta_format import (
    decode_segment,
    delta_schema,
    encode_segment,
    parquet_settings,
)
from podline.stores._delta_table import FEW_IDS

from .conftest import records


def _committed(store: DeltaStore, path: str) -> pa.Table | None:
    """What a reader without podline sees at ``path``."""
    uri = store.table_uri(path)
    if not DeltaTable.is_deltatable(uri):
        return None
    return DeltaTable(uri).to_pyarrow_table()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


# --------------------------------------------------------------------------- layout, readers


def test_tables_are_plain_delta_tables(root: Path) -> None:
    with DeltaStore(root) as store:
        store.write("results/fn", records(["a", "b"], x=[1.5, 2.5], tag=["p", "q"]))
    uri = root / "results" / "fn.delta"
    assert DeltaStore(root).table_uri("results/fn") == uri.as_posix()
    table = DeltaTable(str(uri)).to_pyarrow_table().sort_by(RECORD_ID)
    assert table.column_names == [RECORD_ID, "x", "tag"]
    assert table.column("x").to_pylist() == [1.5, 2.5]
    frame = pl.read_delta(str(uri)).sort(RECORD_ID)
    assert frame["tag"].to_list() == ["p", "q"]


@pytest.mark.parametrize(
    "segment", ["plain", "with space", "ünï", ".hidden", "x.delta", "X.DELTA", "~7E", "a.b-c_d"]
)
def test_segments_map_to_safe_directory_names(root: Path, segment: str) -> None:
    name = encode_segment(segment)
    assert "/" not in name
    assert not name.startswith(".")
    assert not name.lower().endswith(".delta")
    assert decode_segment(name) == segment
    with DeltaStore(root) as store:
        store.write(("ns", segment), records(["a"], v=[1]))
    assert DeltaStore(root).list() == [("ns", segment)]


def test_a_table_and_its_sub_paths_live_side_by_side(root: Path) -> None:
    with DeltaStore(root, flush_rows=1) as store:
        for i in range(3):
            store.write("a", records([f"a{i}"], v=[i]))
        store.write("a/b", records(["b"], v=[9]))
        store.compact(retention_hours=0)
        assert store.list() == [("a",), ("a", "b")]
        assert store.read("a/b", ["b"]).column("v").to_pylist() == [9]
        assert store.scan("a").num_rows == 3


def test_an_added_tuple_column_reads_back_as_tuples(root: Path) -> None:
    schema = {RECORD_ID: str, "v": int, "pair": tuple[int, int]}
    with DeltaStore(root) as store:
        store.write("t", table_from_rows([{RECORD_ID: "a", "v": 1}]))
        store.flush()
        store.write("t", table_from_rows([{RECORD_ID: "b", "v": 2, "pair": (1, 2)}], schema))
    got = DeltaStore(root).read("t", ["a", "b"])
    assert got.schema.field("pair").type == pa.list_(pa.field("item", pa.int64(), False), 2)
    assert got.column("pair").to_pylist() == [None, [1, 2]]


class _Box(TypedDict):
    corner: tuple[float, float]


def test_tuple_columns_are_plain_lists_to_other_readers(root: Path) -> None:
    """Delta has no fixed-size list: a tuple column is an array in the table's schema, and
    its data files must say so too. They held Arrow fixed-size lists, which ``pl.read_delta``
    refused ("data type mismatch for column pair: incoming: Array(Int64, 2) != target:
    List(Int64)"). podline still reads them back as tuples, from the field metadata."""
    schema = {RECORD_ID: str, "pair": tuple[int, int] | None, "box": _Box}
    rows = [
        {RECORD_ID: "a", "pair": (1, 2), "box": {"corner": (0.0, -0.0)}},
        {RECORD_ID: "b", "pair": None, "box": {"corner": (1.5, 2.5)}},
    ]
    with DeltaStore(root) as store:
        store.write("t", table_from_rows(rows, schema))
    uri = DeltaStore(root).table_uri("t")
    frame = pl.read_delta(uri).sort(RECORD_ID)
    assert frame["pair"].to_list() == [[1, 2], None]
    assert frame["box"].to_list() == [{"corner": [0.0, -0.0]}, {"corner": [1.5, 2.5]}]
    assert DeltaTable(uri).to_pyarrow_table().sort_by(RECORD_ID).column("pair").to_pylist() == [
        [1, 2],
        None,
    ]
    got = DeltaStore(root).read("t", ["a", "b"])
    assert got.schema == table_from_rows(rows, schema).schema
    assert got.to_pylist() == table_from_rows(rows, schema).to_pylist()


def test_a_tuple_table_written_as_fixed_size_lists_still_reads_and_grows(root: Path) -> None:
    """Data files of tuple columns written before 2026-12-08 hold Arrow fixed-size lists."""
    schema = {RECORD_ID: str, "pair": tuple[int, int] | None}
    old = table_from_rows(
        [{RECORD_ID: "a", "pair": (1, 2)}, {RECORD_ID: "b", "pair": None}], schema
    )
    annotated = delta_schema(old.schema)
    as_before = pa.schema(  # the exact type in the data, as podline wrote it then
        [f.with_type(old.schema.field(f.name).type) for f in annotated]
    )
    write_deltalake(
        DeltaStore(root).table_uri("t"), pa.Table.from_arrays(old.columns, schema=as_before)
    )
    with DeltaStore(root) as store:
        store.write("t", table_from_rows([{RECORD_ID: "c", "pair": (3, 4)}], schema))
    got = DeltaStore(root).read("t", ["a", "b", "c"])
    assert got.schema.field("pair").type == old.schema.field("pair").type
    assert got.column("pair").to_pylist() == [[1, 2], None, [3, 4]]


def test_first_write_keeps_an_existing_table(root: Path) -> None:
    uri = DeltaStore(root).table_uri("t")
    write_deltalake(uri, records(["old"], v=[1]))
    with DeltaStore(root) as store:
        assert store.exists("t")
        assert store.write("t", records(["old", "new"], v=[10, 2])) == 1
    got = _committed(DeltaStore(root), "t")
    assert got is not None
    assert sorted(got.column(RECORD_ID).to_pylist()) == ["new", "old"]
    assert got.filter(pa.compute.equal(got[RECORD_ID], "old")).column("v").to_pylist() == [1]


def test_a_second_store_object_on_the_same_root(root: Path) -> None:
    first = DeltaStore(root, flush_seconds=None)
    second = DeltaStore(root, flush_seconds=None)
    first.write("t", records(["a", "b", "c"], v=[1, 2, 3]))
    assert second.write("t", records(["c", "d"], v=[30, 4])) == 2
    second.flush()
    first.flush()  # "c" was committed by the other store meanwhile: dropped here
    table = DeltaTable(first.table_uri("t")).to_pyarrow_table()
    assert sorted(table.column(RECORD_ID).to_pylist()) == ["a", "b", "c", "d"]
    assert first.read("t", ["c"]).column("v").to_pylist() == [30]


def test_write_count_sees_other_writers_only_after_a_flush(root: Path) -> None:
    first = DeltaStore(root, flush_seconds=None)
    second = DeltaStore(root, flush_seconds=None)
    first.write("t", records(["a"], v=[1]))
    first.flush()
    second.write("t", records(["b"], v=[2]))
    first.write("t", records(["c"], v=[3]))
    second.flush()
    # Buffered rows another writer committed meanwhile are not shown twice.
    assert first.write("t", records(["b"], v=[20])) == 1
    assert first.read("t", ["b"]).column("v").to_pylist() == [2]
    assert first.scan("t").num_rows == 3
    first.flush()
    assert DeltaTable(first.table_uri("t")).to_pyarrow_table().num_rows == 3


# --------------------------------------------------------------------------- flushing


def test_flush_by_row_count(root: Path, eventually: Callable[..., bool]) -> None:
    store = DeltaStore(root, flush_rows=10, flush_seconds=None)
    store.write("t", records([f"a{i}" for i in range(6)], v=list(range(6))))
    store.write("u", records(["u"], v=[0]))
    assert _committed(store, "t") is None
    store.write("t", records([f"b{i}" for i in range(4)], v=list(range(4))))
    # The bound hands the buffer to a background commit: the writer does not wait for it.
    assert eventually(lambda: _committed(store, "t") is not None)
    committed = _committed(store, "t")
    assert committed is not None
    assert committed.num_rows == 10
    assert eventually(lambda: _committed(store, "u") is not None)  # the bound is store-wide
    store.write("t", records(["c"], v=[0]))
    assert _committed(store, "t").num_rows == 10
    store.close()
    assert _committed(store, "t").num_rows == 11


def test_flush_by_time(root: Path) -> None:
    store = DeltaStore(root, flush_seconds=0.2)
    store.write("t", records(["a"], v=[1]))
    assert _committed(store, "t") is None
    deadline = time.monotonic() + 10
    while _committed(store, "t") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _committed(store, "t") is not None
    store.close()


def _failing_write(*args: Any, **kwargs: Any) -> None:
    raise OSError("disk on fire")


def test_flush_errors_are_raised_and_keep_the_rows(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DeltaStore(root, flush_seconds=None)
    store.write("some/path", records(["a"], v=[1]))
    with monkeypatch.context() as patch:
        replace_commits(patch, _failing_write)
        with pytest.raises(StoreError, match=r"'some/path'.*disk on fire"):
            store.flush()
        with pytest.raises(StoreError, match="disk on fire"):
            store.close()
    assert store.read("some/path", ["a"]).num_rows == 1
    store.flush()
    assert _committed(store, "some/path").num_rows == 1


def test_timed_flush_errors_surface_on_the_next_call(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DeltaStore(root, flush_seconds=0.05)
    attempts: list[object] = []

    def failing(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        _failing_write()

    replace_commits(monkeypatch, failing)
    store.write("t", records(["a"], v=[1]))
    deadline = time.monotonic() + 10
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    # The timer still holds the store's lock while it records the error; write waits for it.
    with pytest.raises(StoreError, match=r"background flush.*disk on fire"):
        store.write("t", records(["b"], v=[2]))
    monkeypatch.undo()
    store.close()
    assert _committed(store, "t").num_rows == 1


def test_invalid_flush_settings(root: Path) -> None:
    with pytest.raises(StoreError, match="flush_rows"):
        DeltaStore(root, flush_rows=0)
    with pytest.raises(StoreError, match="flush_seconds"):
        DeltaStore(root, flush_seconds=0)


# --------------------------------------------------------------------------- compaction


def test_compact_merges_files_and_keeps_rows(root: Path) -> None:
    store = DeltaStore(root, flush_rows=5, flush_seconds=None)
    for i in range(8):
        store.write("t", records([f"{i}-{j}" for j in range(5)], batch=[i] * 5))
        store.flush()  # one commit, one file each
    table = DeltaTable(store.table_uri("t"))
    assert len(table.file_uris()) == 8
    on_disk = len(list(Path(store.table_uri("t")).glob("*.parquet")))
    store.compact(retention_hours=0)
    table = DeltaTable(store.table_uri("t"))
    assert len(table.file_uris()) == 1
    assert len(list(Path(store.table_uri("t")).glob("*.parquet"))) < on_disk
    assert table.to_pyarrow_table().num_rows == 40
    # The id index follows the compaction: rewrites stay no-ops, new ids are added.
    assert store.write("t", records(["0-0", "new"], batch=[0, 9])) == 1
    store.flush()
    assert DeltaTable(store.table_uri("t")).to_pyarrow_table().num_rows == 41


def test_compaction_by_another_store_is_noticed(root: Path) -> None:
    writer = DeltaStore(root, flush_rows=2, flush_seconds=None)
    for i in range(3):
        writer.write("t", records([f"a{i}", f"b{i}"], v=[i, i]))
    DeltaStore(root).compact("t", retention_hours=0)
    assert writer.write("t", records(["a0", "c"], v=[0, 1])) == 1
    writer.flush()
    assert DeltaTable(writer.table_uri("t")).to_pyarrow_table().num_rows == 7


def _colliding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every id hashes alike, in the store's id indexes and in the lookups confirming their
    matches: write-once rests on comparing the ids read back from the table alone."""

    def same(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        return np.zeros(len(ids), np.uint64)

    monkeypatch.setattr(_index, "id_hashes", same)
    monkeypatch.setattr(matching, "id_hashes", same)


def test_colliding_ids_after_the_store_compacts(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _colliding(monkeypatch)
    store = DeltaStore(root, flush_seconds=None, compact_files=4)
    for i in range(6):  # compacted by itself after the fourth flush, once more after the sixth
        assert store.write("t", records([f"a{i}", f"b{i}"], v=[i, i])) == 2
        store.flush()
    store.compact(retention_hours=0)  # the files it replaced are deleted too
    assert len(DeltaTable(store.table_uri("t")).file_uris()) == 1
    assert store.write("t", records(["b5", "new", "a0"], v=[9, 6, 9])) == 1
    store.flush()
    rows = DeltaTable(store.table_uri("t")).to_pyarrow_table()
    assert sorted(rows.column(RECORD_ID).to_pylist()) == sorted(
        [f"{c}{i}" for c in "ab" for i in range(6)] + ["new"]
    )
    assert store.read("t", ["new"]).column("v").to_pylist() == [6]


def test_colliding_ids_after_another_store_compacts(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _colliding(monkeypatch)
    writer = DeltaStore(root, flush_seconds=None)
    for i in range(3):
        writer.write("t", records([f"a{i}", f"b{i}"], v=[i, i]))
        writer.flush()
    # Another store rewrites the files the writer's index was read from, and deletes them:
    # matches are confirmed against the table as it is now.
    DeltaStore(root).compact("t", retention_hours=0)
    assert writer.write("t", records(["c", "a1"], v=[5, 5])) == 1
    assert writer.write("t", records(["b2", "d"], v=[5, 6])) == 1
    writer.flush()
    rows = pl.from_arrow(DeltaTable(writer.table_uri("t")).to_pyarrow_table())
    assert isinstance(rows, pl.DataFrame)
    assert sorted(rows[RECORD_ID].to_list()) == ["a0", "a1", "a2", "b0", "b1", "b2", "c", "d"]
    assert rows.filter(pl.col(RECORD_ID) == "a1")["v"].to_list() == [1]


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([1, 5, 1024, 1025, 3000]), min_size=1, max_size=3),
    picks=st.lists(st.integers(0, 6000), max_size=8),
    columns=st.sampled_from([None, ["v"], ["w", "v"]]),
)
def test_reads_by_id_agree_with_delta_rs_in_small_files_and_large(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    picks: list[int],
    columns: list[str] | None,
) -> None:
    # Files of a few rows are read whole by a lookup, larger ones column by column and row
    # group by row group: both give what delta-rs reads, in the order of the ids asked for.
    root = tmp_path_factory.mktemp("reads")
    store = DeltaStore(root, flush_seconds=None)
    start = 0
    for size in sizes:  # a file per commit
        ids = [f"r{i}" for i in range(start, start + size)]
        store.write("t", records(ids, v=list(range(start, start + size)), w=ids))
        store.flush()
        start += size
    wanted = list(dict.fromkeys(f"r{i}" for i in picks))
    found = store.read("t", pa.array(wanted, pa.large_string()), columns=columns)
    stored = pl.from_arrow(DeltaTable(store.table_uri("t")).to_pyarrow_table())
    assert isinstance(stored, pl.DataFrame)
    by_id = {row[RECORD_ID]: row for row in stored.iter_rows(named=True)}
    names = columns or stored.columns
    expected = [{c: by_id[i][c] for c in names} for i in wanted if i in by_id]
    assert found is not None
    assert found.column_names == names
    assert found.to_pylist() == expected
    store.close()


def test_the_committed_index_keeps_no_id_strings(root: Path) -> None:
    # 100,000 ids of 64 characters: 7 MB of Arrow memory while they are written. Once they
    # are committed, the index keeps their hashes (numpy, 8 bytes each) and no string.
    def write() -> None:
        ids = [f"{i:064x}" for i in range(100_000)]
        assert store.write("t", records(ids, v=list(range(100_000)))) == 100_000
        store.flush()

    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["first"], v=[0]))
    store.flush()
    before = pa.total_allocated_bytes()
    write()
    assert pa.total_allocated_bytes() - before < 1_000_000
    # The index holds the ids all the same.
    assert store.write("t", records([f"{7:064x}", "new"], v=[1, 2])) == 1
    store.close()


# --------------------------------------------------------------------------- configs


def test_configs(root: Path) -> None:
    store = DeltaStore(root, flush_rows=50, flush_seconds=None)
    assert store.to_config() == f"{root.as_uri()}?flush_rows=50&flush_seconds=none"
    reopened = open_store(store.to_config())
    assert isinstance(reopened, DeltaStore)
    assert reopened.root == store.root
    assert open_store(str(root)).to_config() == root.as_uri()
    assert open_store(root).to_config() == root.as_uri()
    remote = DeltaStore(
        "s3://bucket/dir/",
        storage_options={"AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "hidden"},
    )
    config = remote.at("a b").to_config()
    assert config == "s3://bucket/dir?AWS_REGION=eu-west-1#a%20b"
    again = open_store(config)
    assert isinstance(again, DeltaStore)
    assert again.root == "s3://bucket/dir"
    assert again.prefix == ("a b",)
    with pytest.raises(StoreError, match="flush_rows"):
        open_store(f"{root.as_uri()}?flush_rows=many")


# --------------------------------------------------------------------------- commit races


def _racing(
    monkeypatch: pytest.MonkeyPatch, other: DeltaStore, path: str, table: pa.Table
) -> list[str]:
    """Make ``other`` commit ``table`` just before the next commit attempt of any store.

    File locks are off, as on object stores, so only the optimistic protocol stands between
    the two writers. Returns the kinds of the commits attempted ("create" or "append").
    """
    without_file_locks(monkeypatch)
    real = real_commit()
    modes: list[str] = []

    def commit(self: Any, state: Any, at: Any, log: Any, *args: Any) -> Any:
        modes.append("create" if log is None else "append")
        if len(modes) == 1:
            replace_commits(monkeypatch, real)
            other.write(path, table)
            other.flush()
            replace_commits(monkeypatch, commit)
        return real(self, state, at, log, *args)

    replace_commits(monkeypatch, commit)
    return modes


@pytest.mark.parametrize("existing", [False, True], ids=["creating", "appending"])
def test_a_commit_racing_another_writer_is_retried(
    root: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    store = DeltaStore(root, flush_seconds=None)
    if existing:
        store.write("t", records(["seed"], v=[0]))
        store.flush()
    store.write("t", records(["a", "b", "c"], v=[1, 2, 3]))
    other = DeltaStore(root, flush_seconds=None)
    modes = _racing(monkeypatch, other, "t", records(["b", "z"], v=[20, 26]))
    store.flush()
    assert modes == ["append", "append"] if existing else ["create", "append"]
    table = DeltaTable(store.table_uri("t")).to_pyarrow_table()
    ids = table.column(RECORD_ID).to_pylist()
    assert sorted(ids) == sorted({"a", "b", "c", "z", *(["seed"] if existing else [])})
    assert store.read("t", ["b"]).column("v").to_pylist() == [20]


def test_writes_and_reads_go_on_while_a_background_commit_runs(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committing, release = threading.Event(), threading.Event()
    real = real_commit()

    def slow_commit(*args: Any) -> Any:
        committing.set()
        assert release.wait(10)
        return real(*args)

    replace_commits(monkeypatch, slow_commit)
    store = DeltaStore(root, flush_rows=4, flush_seconds=None)
    assert store.write("t", records(["a", "b", "c", "d"], v=[1, 2, 3, 4])) == 4
    assert committing.wait(10)  # the committer has the four records in hand
    # Meanwhile: ids being committed still count (write-once), new ones buffer, reads see
    # both, and nothing is committed yet.
    assert store.write("t", records(["a", "e"], v=[9, 5])) == 1
    found = store.read("t", ["e", "a", "zz"])
    assert found is not None
    assert found.column("v").to_pylist() == [5, 1]
    assert _committed(store, "t") is None
    release.set()
    store.flush()  # waits for the background commit, then commits "e"
    final = _committed(store, "t")
    assert final is not None
    assert sorted(final.column("__record_id").to_pylist()) == ["a", "b", "c", "d", "e"]
    assert sorted(final.column("v").to_pylist()) == [1, 2, 3, 4, 5]
    store.close()


# --------------------------------------------------------------------------- reads


def test_a_read_of_ids_the_store_never_committed_reads_no_files(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_table_reads(monkeypatch)
    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["a", "b"], v=[1, 2]))
    store.flush()
    # The store's id index knows every committed id: looking up new ones reads nothing.
    assert store.read("t", ["x", "y"]).num_rows == 0
    assert len(calls) == 0
    assert store.read("t", ["b", "x"]).column("v").to_pylist() == [2]
    assert len(calls) == 1
    # Once another writer commits, the index is behind the table: the files are read.
    other = DeltaStore(root, flush_seconds=None)
    other.write("t", records(["x"], v=[24]))
    other.flush()
    assert store.read("t", ["x"]).column("v").to_pylist() == [24]
    assert len(calls) == 2


def _data_files(store: DeltaStore, path: str) -> set[str]:
    """The data files of the table at ``path``, relative to it, as delta-rs lists them."""
    uri = store.table_uri(path)
    return {name.removeprefix(uri).lstrip("/") for name in DeltaTable(uri).file_uris()}


@pytest.mark.parametrize("many", [False, True], ids=["few ids", "many ids"])
def test_a_read_while_a_commit_is_not_yet_indexed_reads_only_that_commit(
    root: Path, monkeypatch: pytest.MonkeyPatch, many: bool
) -> None:
    # The flushing thread publishes a commit, then records its ids in the store's id index;
    # a read in between found the index behind the table and read every file, whole for
    # many ids (a run's memo lookups, 16,384 ids): the peaks of a first run that grew with
    # its tables (issue #23). Only the commit's own file can hold an id the index lacks.
    store = DeltaStore(root, flush_seconds=None)
    for i in range(4):
        store.write("t", records([f"a{i}", f"b{i}"], v=[i, 10 + i]))
        store.flush()
    before = _data_files(store, "t")
    asked = ["c1", *(f"new{j}" for j in range(FEW_IDS + 1 if many else 2))]
    seen: dict[str, Any] = {}
    real = real_commit()

    def commit_then_read(*args: Any) -> Any:
        log = real(*args)  # published; the index does not know it yet
        seen["read"] = store.read("t", asked)
        seen["files"] = list(files_read)
        seen["known"] = store.read("t", ["a1", "c1", "a3"])  # ids the index has: every file
        return log

    store.write("t", records(["c0", "c1"], v=[20, 21]))
    files_read = record_data_file_reads(monkeypatch)
    replace_commits(monkeypatch, commit_then_read)
    store.flush()
    assert seen["read"].column(RECORD_ID).to_pylist() == ["c1"]  # once, not twice
    assert seen["read"].column("v").to_pylist() == [21]
    assert seen["files"] == sorted(_data_files(store, "t") - before)  # the new file alone
    assert seen["known"].column("v").to_pylist() == [1, 21, 3]
    assert store.read("t", asked).column("v").to_pylist() == [21]


def test_a_read_after_another_writer_committed_reads_only_its_files(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DeltaStore(root, flush_seconds=None)
    for i in range(3):
        store.write("t", records([f"a{i}"], v=[i]))
        store.flush()
    before = _data_files(store, "t")
    other = DeltaStore(root, flush_seconds=None)
    other.write("t", records(["x"], v=[24]))
    other.flush()
    files_read = record_data_file_reads(monkeypatch)
    asked = ["x", *(f"new{j}" for j in range(FEW_IDS + 1))]
    assert store.read("t", asked).column("v").to_pylist() == [24]
    assert files_read == sorted(_data_files(store, "t") - before)


def test_a_read_of_stored_ids_reads_the_rows_without_confirming_them_first(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hash match in the store's id index used to be confirmed by reading the table's id
    # column, and the rows were then read all the same: one read is enough.
    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["a", "b"], v=[1, 2]))
    store.flush()
    id_reads = count_id_reads(monkeypatch)
    assert store.read("t", ["x", "b"]).column("v").to_pylist() == [2]
    assert id_reads == []


def test_local_reads_do_not_load_the_dataset_engine(root: Path) -> None:
    # Arrow's dataset engine imports pandas when it is installed: some 40 MB for reads that
    # plain Parquet files serve. Checked in a fresh interpreter, as other tests load it.
    script = f"""
import sys
from podline.stores import DeltaStore
from podline.conversion import table_from_rows
store = DeltaStore({str(root)!r}, flush_seconds=None)
store.write("t", table_from_rows([{{"__record_id": "a", "k": "x", "v": 1}},
                                  {{"__record_id": "b", "k": "y", "v": 2}}]))
store.flush()
store.write("t", table_from_rows([{{"__record_id": "c", "k": "x", "v": 3, "w": 1.5}}]))
store.flush()
reopened = DeltaStore({str(root)!r})
assert reopened.read("t", ["c", "a"]).column("v").to_pylist() == [3, 1]
scanned = reopened.scan("t", where={{"k": "x"}})
assert sorted(scanned.column("v").to_pylist()) == [1, 3]
assert reopened.scan("t", where={{"w": None}}).num_rows == 2
print(sorted(m for m in ("pyarrow.dataset", "pyarrow._dataset") if m in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_partitioned_table_from_another_writer_is_read_and_filtered(root: Path) -> None:
    # Tables podline did not write (here partitioned) are read through delta-rs's dataset,
    # with the where-filter pushed down as an expression.
    store = DeltaStore(root, flush_seconds=None)
    rows = records(["a", "b", "c"], v=[1, 2, 1])
    write_deltalake(store.table_uri("t"), rows, partition_by=["v"])
    scanned = store.scan("t", where={"v": 1})
    assert scanned is not None
    assert sorted(scanned.column(RECORD_ID).to_pylist()) == ["a", "c"]
    assert store.read("t", ["c", "b"]).column("v").to_pylist() == [1, 2]


def test_appending_to_a_table_reads_none_of_its_ids(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DeltaStore(root) as store:
        for run in range(3):
            store.append("log", records([f"{run}-{i}" for i in range(5)], v=list(range(5))))
            store.flush()
    reads = count_id_reads(monkeypatch)
    # A new process appending to the table: the write-once check, which would read every
    # earlier id, is skipped (its cost would grow with every run).
    store = DeltaStore(root)
    assert store.append("log", records(["3-0"], v=[0])) == 1
    store.flush()
    assert reads == []
    assert store.scan("log").num_rows == 16
    # A checked write reads them, as the write-once rule requires: once to index them, and
    # once more to confirm the id whose hash the index holds ("0-0") is stored.
    assert store.write("log", records(["0-0", "new"], v=[9, 9])) == 1
    assert len(reads) == 2
    store.close()


@pytest.mark.parametrize("others", [199, 200])
def test_an_idle_tables_index_is_let_go_and_rebuilt_when_written_again(
    root: Path, monkeypatch: pytest.MonkeyPatch, others: int
) -> None:
    # A sync run writes its nodes one after another: the id index of a table the store has
    # stopped writing (here 200 hashes) goes once the store has committed as many rows to
    # other tables since, and a later write rebuilds it from the table's id column.
    release_idle_indexes_from(monkeypatch, 100)
    store = DeltaStore(root, flush_seconds=None)
    store.write("x", records([f"x{i}" for i in range(200)], v=list(range(200))))
    store.flush()
    store.write("y", records([f"y{i}" for i in range(others)], v=list(range(others))))
    store.flush()
    reads = count_id_reads(monkeypatch)
    again = [*(f"x{i}" for i in range(150, 200)), *(f"new{i}" for i in range(50))]
    assert store.write("x", records(again, v=list(range(100)))) == 50
    x = store.table_uri("x")
    # Kept (199 rows since): one read, to confirm the 50 stored ids whose hashes it holds.
    # Let go (200): one more before it, the index rebuilt from the table.
    assert reads == [x] * (1 if others < 200 else 2)
    store.flush()
    table = DeltaTable(x).to_pyarrow_table()
    assert sorted(table.column(RECORD_ID).to_pylist()) == sorted(
        [*(f"x{i}" for i in range(200)), *(f"new{i}" for i in range(50))]
    )
    store.close()


def test_a_table_whose_writes_commit_nothing_keeps_its_index(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writes of stored ids commit nothing but use the index all the same: it must not be let
    # go (and rebuilt from the whole table at the next write) however much other tables
    # commit meanwhile.
    release_idle_indexes_from(monkeypatch, 100)
    store = DeltaStore(root, flush_seconds=None)
    store.write("x", records([f"x{i}" for i in range(200)], v=list(range(200))))
    store.flush()
    reads = count_id_reads(monkeypatch)
    for round_ in range(5):
        ids = [f"y{round_}-{i}" for i in range(150)]
        store.write("y", records(ids, v=list(range(150))))
        store.flush()
        assert store.write("x", records(["x0", "x1"], v=[0, 1])) == 0
    # One read per write of "x": confirming its two stored ids, never a rebuild.
    assert reads == [store.table_uri("x")] * 5
    store.close()


def test_small_idle_indexes_are_kept(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DeltaStore(root, flush_seconds=None)
    store.write("x", records([f"x{i}" for i in range(200)], v=list(range(200))))
    store.flush()
    store.write("y", records([f"y{i}" for i in range(1000)], v=list(range(1000))))
    store.flush()
    reads = count_id_reads(monkeypatch)
    assert store.write("x", records(["new"], v=[0])) == 1
    assert reads == []
    store.close()


def test_created_tables_checkpoint_every_ten_commits(root: Path) -> None:
    with DeltaStore(root, flush_seconds=None) as store:
        for i in range(12):
            store.write("t", records([f"r{i}"], v=[i]))
            store.flush()
    table = DeltaTable(DeltaStore(root).table_uri("t"))
    assert table.metadata().configuration["delta.checkpointInterval"] == "10"
    log = Path(DeltaStore(root).table_uri("t"), "_delta_log")
    assert (log / "00000000000000000009.checkpoint.parquet").exists()


def _column_chunks(store: DeltaStore, path: str) -> dict[str, Any]:
    (file,) = Path(store.table_uri(path)).glob("*.parquet")
    group = pq.ParquetFile(file).metadata.row_group(0)
    return {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}


def test_parquet_settings_follow_what_the_columns_hold(root: Path) -> None:
    n = 4096
    hashes = [f"pod1:{i:064x}" for i in range(n)]
    with DeltaStore(root) as store:
        # Mostly distinct hashes, which do not compress: no dictionary, no compression.
        store.write("hashes", records(hashes, seq=list(range(n))))
        # Status-like rows: short unique ids and a sequence, constants, a few states.
        ids = [f"4f9eb0f5a0e0d1c2-{i:012x}" for i in range(n)]
        states = ["SUCCESS", "CACHED"] * (n // 2)
        run = ["0b7d3f0e-5c1a-4e8b-9f2d-6a1c3e5b7d9f"] * n
        node = [f"pod1:{'ab' * 32}"] * n
        store.append("rows", records(ids, run=run, node=node, state=states, seq=list(range(n))))
    hashed = _column_chunks(store, "hashes")
    assert {c.compression for c in hashed.values()} == {"UNCOMPRESSED"}
    assert "RLE_DICTIONARY" not in hashed[RECORD_ID].encodings
    assert "RLE_DICTIONARY" not in hashed["seq"].encodings
    rows = _column_chunks(store, "rows")
    assert {c.compression for c in rows.values()} == {"ZSTD"}
    assert "RLE_DICTIONARY" in rows["run"].encodings
    assert "RLE_DICTIONARY" in rows["state"].encodings
    assert "RLE_DICTIONARY" not in rows["seq"].encodings


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=True),
            st.text(max_size=8),
            st.binary(max_size=8),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_one_row_settings_are_those_count_distinct_gives(values: list[Any]) -> None:
    # A one-row commit decides "mostly distinct" without a kernel call: the same decision.
    row = pa.table({f"c{i}": pa.array([v]) for i, v in enumerate(values)})
    plain = {
        f.name
        for f in row.schema
        if not pa.types.is_null(f.type) and pc.count_distinct(row[f.name]).as_py() > 0
    }
    assert parquet_settings(row).plain == frozenset(plain)


def test_a_write_without_a_column_an_earlier_commit_added_is_committed(root: Path) -> None:
    # The earlier commit added ``w`` through the committing side only; the next batch,
    # checked against the schema reads last saw, must still be committed with ``w`` (null).
    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["a"], v=[1]))
    store.flush()
    store.write("t", records(["b"], v=[2], w=["x"]))
    store.flush()
    store.write("t", records(["c"], v=[3]))
    store.flush()
    rows = _committed(store, "t")
    assert rows is not None
    assert sorted(rows.to_pylist(), key=lambda row: row[RECORD_ID]) == [
        {RECORD_ID: "a", "v": 1, "w": None},
        {RECORD_ID: "b", "v": 2, "w": "x"},
        {RECORD_ID: "c", "v": 3, "w": None},
    ]


def test_scan_batches_read_a_row_group_at_a_time_as_of_the_call(root: Path) -> None:
    # A local table is read a Parquet row group at a time (a reader of a large table never
    # holds it whole), and the pieces are those of the version read when asked: rows
    # committed while they are read do not appear in them.
    store = DeltaStore(root)
    for n in range(3):
        store.write("t", records([f"{n}-{i}" for i in range(5)], v=list(range(5))))
        store.flush()
    found = store.scan_batches("t", columns=[RECORD_ID, "v"])
    assert found is not None
    first = next(found)
    assert first.num_rows == 5  # one file's row group, not the table
    store.write("t", records(["late"], v=[9]))
    store.flush()
    rest = list(found)
    assert [part.num_rows for part in rest] == [5, 5]
    ids = pa.concat_tables([first, *rest]).column(RECORD_ID).to_pylist()
    assert ids == store.scan("t").column(RECORD_ID).to_pylist()[:15]
    assert "late" not in ids
    # What delta-rs reads is the same rows.
    assert sorted([*ids, "late"]) == sorted(
        DeltaTable(store.table_uri("t")).to_pyarrow_table()[RECORD_ID].to_pylist()
    )


def test_a_small_table_is_read_whole_even_for_a_few_ids(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A few ids from a small table (a specification, a marker) are picked from the whole
    # table, with no look at the files' statistics; a large one is still pruned by them.
    from podline.stores import _delta_table

    store = DeltaStore(root)
    for n in range(3):
        store.write("t", records([f"{n}-{i}" for i in range(5)], v=list(range(5))))
        store.flush()
    pruned: list[int] = []
    lookup = _delta_table._lookup

    def spy(*args: Any, **kwargs: Any) -> Any:
        pruned.append(1)
        return lookup(*args, **kwargs)

    monkeypatch.setattr(_delta_table, "_lookup", spy)
    fresh = DeltaStore(root)
    assert fresh.read("t", ["2-1", "0-3"]).column("v").to_pylist() == [1, 3]
    assert fresh.scan("t", where={"v": 4}).num_rows == 3
    assert pruned == []
    monkeypatch.setattr(_delta_table, "SMALL_TABLE_BYTES", 0)
    assert DeltaStore(root).read("t", ["2-1", "0-3"]).column("v").to_pylist() == [1, 3]
    assert pruned == [1]
