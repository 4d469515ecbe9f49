"""Reading and appending to a local Delta log without delta-rs (``_delta_local``), checked
against delta-rs itself and against other readers."""

from __future__ import annotations

import datetime as dt
import decimal
import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

from podline.stores import RECORD_ID, DeltaStore, _delta_publish
from podline.stores._delta_format import ParquetSettings, path_schema
from podline.stores._delta_local import LocalLog
from podline.stores._delta_log import CommitConflict, DeltaRsLog, UnsupportedTable

from .conftest import records

_SETTINGS = ParquetSettings("none", frozenset({RECORD_ID}))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _rich(ids: list[str], start: int) -> pa.Table:
    """Rows of many types, nested ones included."""
    n = len(ids)
    values = range(start, start + n)
    return records(
        ids,
        i=pa.array(values, pa.int32()),
        f=[v / 2 for v in values],
        s=[f"s{v}" for v in values],
        b=[v % 2 == 0 for v in values],
        raw=[bytes([v % 256]) for v in values],
        day=[dt.date(2026, 1, 1 + v % 28) for v in values],
        at=pa.array(
            [dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=v) for v in values],
            pa.timestamp("us", tz="UTC"),
        ),
        money=pa.array([decimal.Decimal(v) / 100 for v in values], pa.decimal128(9, 2)),
        xs=[[v, v + 1] for v in values],
        point=[{"x": v, "label": str(v)} for v in values],
        meta=pa.array([[("k", v)] for v in values], pa.map_(pa.large_string(), pa.int64())),
    )


def _commits_by(uri: str) -> list[str]:
    """Who wrote each commit of a table (its commitInfo's client)."""
    clients = []
    for entry in sorted(Path(uri, "_delta_log").glob("*.json")):
        info = json.loads(entry.read_text().splitlines()[0])["commitInfo"]
        clients.append(info["clientVersion"])
    return clients


def _assert_same_as_delta_rs(uri: str, version: int | None = None) -> None:
    own = LocalLog.load(uri, version)
    assert own is not None
    theirs = DeltaRsLog(DeltaTable(uri, version=version))
    assert own.version() == theirs.version()
    assert sorted(own.data_files()) == sorted(theirs.data_files())
    assert path_schema(own.schema()).equals(path_schema(theirs.schema()))


def test_the_log_reads_as_delta_rs_reads_it(root: Path) -> None:
    store = DeltaStore(root, flush_seconds=None)
    for batch in range(12):  # past a checkpoint (every ten commits)
        store.write("t", _rich([f"{batch}-{i}" for i in range(3)], 3 * batch))
        store.flush()
    store.write("t", records(["late"], added=["a new column"]))  # schema evolution
    store.flush()
    uri = store.table_uri("t")
    assert Path(uri, "_delta_log", "00000000000000000009.checkpoint.parquet").exists()
    for version in (0, 5, 9, 11, None):
        _assert_same_as_delta_rs(uri, version)
    store.compact("t", retention_hours=0)  # files removed and added
    _assert_same_as_delta_rs(uri)
    store.write("t", _rich(["after"], 99))
    store.flush()
    _assert_same_as_delta_rs(uri)
    assert store.scan("t").num_rows == 12 * 3 + 2


def test_an_update_reads_only_what_was_committed_since(root: Path) -> None:
    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["a"], v=[1]))
    store.flush()
    log = LocalLog.load(store.table_uri("t"))
    assert log is not None
    assert log.version() == 0
    store.write("t", records(["b"], v=[2]))
    store.flush()
    log.update()
    assert log.version() == 1
    assert len(log.data_files()) == 2
    log.update()  # nothing new
    assert log.version() == 1
    assert LocalLog.load(str(root / "missing.delta")) is None


def test_appends_are_podline_commits_other_readers_read(root: Path) -> None:
    with DeltaStore(root) as store:
        for batch in range(3):
            store.write("t", records([f"{batch}-{i}" for i in range(4)], v=[batch] * 4))
            store.flush()
        uri = store.table_uri("t")
    assert _commits_by(uri) == ["podline"] * 3
    table = DeltaTable(uri)
    assert table.version() == 2
    rows = table.to_pyarrow_table().sort_by(RECORD_ID)
    assert rows.column("v").to_pylist() == [0] * 4 + [1] * 4 + [2] * 4
    assert pl.read_delta(uri).height == 12
    # File statistics: delta-rs skips files by them.
    actions = pa.table(table.get_add_actions(flatten=True)).sort_by("num_records")
    assert actions.column("num_records").to_pylist() == [4, 4, 4]
    assert sorted(actions.column("min.v").to_pylist()) == [0, 1, 2]
    skipped = table.to_pyarrow_dataset().to_table(filter=pa.compute.field("v") == 2)
    assert skipped.num_rows == 4


def test_a_table_podline_creates_is_the_table_delta_rs_would_create(root: Path) -> None:
    rows = _rich(["a", "b"], 0)
    with DeltaStore(root) as store:
        store.write("ours", rows)
    write_deltalake(str(root / "theirs.delta"), rows)
    ours, theirs = DeltaTable(store.table_uri("ours")), DeltaTable(str(root / "theirs.delta"))
    assert _commits_by(store.table_uri("ours")) == ["podline"]
    assert ours.protocol() == theirs.protocol()
    assert ours.metadata().configuration == {
        "delta.checkpointInterval": "10",
        "delta.deletedFileRetentionDuration": "interval 0 seconds",
    }
    assert ours.schema() == theirs.schema()
    assert ours.to_pyarrow_table().equals(theirs.to_pyarrow_table())


def test_an_append_to_a_version_another_writer_took_fails_cleanly(root: Path) -> None:
    store = DeltaStore(root)
    store.write("t", records(["a"], v=[1]))
    store.flush()
    uri = store.table_uri("t")
    first, second = LocalLog.load(uri), LocalLog.load(uri)
    assert first is not None
    assert second is not None
    schema = first.schema()
    first.append(records(["b"], v=[2]).cast(schema), schema, _SETTINGS)
    with pytest.raises(CommitConflict, match="version 1"):
        second.append(records(["c"], v=[3]).cast(schema), schema, _SETTINGS)
    # The loser's data file is gone and no temporary file is left.
    assert len(list(Path(uri).glob("*.parquet"))) == 2
    assert sorted(p.name for p in Path(uri, "_delta_log").iterdir()) == [
        "00000000000000000000.json",
        "00000000000000000001.json",
    ]
    assert sorted(DeltaTable(uri).to_pyarrow_table().column(RECORD_ID).to_pylist()) == ["a", "b"]


def test_tables_with_features_podline_does_not_read_go_through_delta_rs(root: Path) -> None:
    store = DeltaStore(root, flush_seconds=None)
    uri = store.table_uri("t")
    write_deltalake(uri, records(["a"], v=[1]), partition_by=["v"])
    with pytest.raises(UnsupportedTable, match="partitioned"):
        LocalLog.load(uri)
    assert store.write("t", records(["a", "b"], v=[9, 2])) == 1
    store.flush()
    assert _commits_by(uri)[1].startswith("delta-rs")
    assert sorted(store.scan("t").column("v").to_pylist()) == [1, 2]
    # Deletion vectors (reader protocol 3) are delta-rs's to interpret, too.
    vectors = store.table_uri("dv")
    write_deltalake(
        vectors, records(["a"], v=[1]), configuration={"delta.enableDeletionVectors": "true"}
    )
    with pytest.raises(UnsupportedTable, match="reader protocol 3"):
        LocalLog.load(vectors)


def test_columns_with_exact_types_are_appended_by_delta_rs(root: Path) -> None:
    # A fixed-size list is stored as a plain list plus its exact type in the field's
    # metadata; delta-rs writes that conversion.
    vectors = pa.array([[1.0, 2.0]], pa.list_(pa.float64(), 2))
    with DeltaStore(root) as store:
        store.write("t", records(["a"], vector=vectors))
        store.flush()
        store.write("t", records(["b"], vector=vectors))
        store.flush()
        assert store.read("t", ["b"]).schema.field("vector").type == vectors.type
    assert [c.split("-")[0] for c in _commits_by(store.table_uri("t"))] == ["delta", "delta"]


_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 5)),
        st.tuples(st.just("column"), st.integers(1, 3)),
        st.just(("compact", 0)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=12, deadline=None)
@given(steps=_STEPS)
def test_any_history_reads_as_delta_rs_reads_it(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]]
) -> None:
    root = tmp_path_factory.mktemp("history")
    store = DeltaStore(root, flush_seconds=None)
    columns: list[str] = []
    for n, (step, size) in enumerate(steps):
        if step == "compact":
            store.compact("t", retention_hours=0)
            continue
        if step == "column":
            columns.append(f"c{n}")
        ids = [f"{n}-{i}" for i in range(size)]
        store.write("t", records(ids, v=list(range(size)), **{c: [n] * size for c in columns}))
        store.flush()
    uri = store.table_uri("t")
    if not Path(uri).exists():  # only compactions: no table
        return
    _assert_same_as_delta_rs(uri)
    expected = DeltaTable(uri).to_pyarrow_table().sort_by(RECORD_ID)
    assert store.scan("t").sort_by(RECORD_ID).equals(expected.cast(store.scan("t").schema))


def test_a_log_whose_early_commits_were_cleaned_up_is_read_from_its_checkpoint(
    root: Path,
) -> None:
    store = DeltaStore(root, flush_seconds=None)
    for batch in range(12):
        store.write("t", _rich([f"{batch}-{i}" for i in range(2)], 2 * batch))
        store.flush()
    uri = store.table_uri("t")
    # What delta-rs's log cleanup leaves: the checkpoint, and the commits from it on.
    for version in range(9):
        Path(uri, "_delta_log", f"{version:020d}.json").unlink()
    _assert_same_as_delta_rs(uri)
    assert DeltaStore(root).scan("t").num_rows == 24
    with pytest.raises(UnsupportedTable, match="commit 0 is missing"):
        LocalLog.load(uri, version=3)


def test_a_pipeline_on_a_local_store_never_loads_delta_rs(tmp_path: Path) -> None:
    # deltalake costs some 40 ms and 16-33 MB of mapped code to load; a run on plain local
    # tables (created, appended to, read) has no use for it. A fresh interpreter, as other
    # tests load it.
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import podline
            from podline import function_pod
            from podline.pipeline import Pipeline
            from podline.stores import DeltaStore

            @function_pod("total", live_output=False)
            def add(a: int, b: int) -> int:
                return a + b

            rows = [{{"k": i, "a": i, "b": 2 * i}} for i in range(20)]
            for run in range(2):
                store = DeltaStore({str(tmp_path / "store")!r})
                with Pipeline("p", store) as pipeline:
                    add.pod(podline.DictSource(rows, tag_columns=["k"], source_id="s"))
                counts = pipeline.run().counts["add"]
                assert (counts.computed, counts.cached) == ((20, 0) if run == 0 else (0, 20))
                assert pipeline.add.as_table().num_rows == 20
                store.close()
            print("deltalake" in sys.modules)
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_checkpoints_clean_up_expired_log_entries_as_delta_rs_commits_do(root: Path) -> None:
    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["first"], v=[0]))
    store.flush()
    uri = store.table_uri("t")
    # delta-rs changes the table's properties (a commit podline's log reader replays).
    DeltaTable(uri).alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    for i in range(20):
        store.write("t", records([f"r{i}"], v=[i]))
        store.flush()
    log = Path(uri, "_delta_log")
    assert not (log / "00000000000000000000.json").exists()  # expired, cleaned up
    assert (log / "00000000000000000019.checkpoint.parquet").exists()
    _assert_same_as_delta_rs(uri)
    assert DeltaStore(root).scan("t").num_rows == 21


def test_without_hard_links_delta_rs_commits(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FAT and some network shares have no hard links, and no other way to create a log entry
    # only if absent: there delta-rs, which knows them, makes every commit but the first
    # (a new table's log is a directory renamed into place, which needs no link).
    def no_links(source: object, target: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_delta_publish.os, "link", no_links)
    with DeltaStore(root, flush_seconds=None) as store:
        for batch in range(3):
            store.write("t", records([f"{batch}"], v=[batch]))
            store.flush()
        assert sorted(store.scan("t").column("v").to_pylist()) == [0, 1, 2]
        uri = store.table_uri("t")
    first, *others = _commits_by(uri)
    assert first == "podline"
    assert len(others) == 2
    assert all(client.startswith("delta-rs") for client in others)
    assert len(list(Path(uri).glob("*.parquet"))) == 3  # no file of a failed attempt is left
    assert not list(Path(uri, "_delta_log").glob("*.tmp"))
