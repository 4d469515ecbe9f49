"""What keeps a store fast as it ages (issue 15, point 8), checked against a plain reading of
the log and against delta-rs: listing a long log by its sorted names, an append that leaves a
checkpoint's data files unread, an update that does not list the log again right after
opening it; and a store run by a growing source, whose tables and files stay bounded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.internals import count_checkpoint_reads, count_log_listings

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import RECORD_ID, DeltaStore
from podline.stores import _delta_actions as actions
from podline.stores._delta_format import path_schema
from podline.stores._delta_local import LocalLog

from .conftest import records
from .test_delta_stale import _split

# --------------------------------------------------------------------------- listing


def _reference(names: list[str]) -> tuple[set[int], dict[int, list[str]]]:
    """The commits and complete checkpoints among ``names``, every name parsed: the plain
    reading the sorted listing must agree with."""
    commits: set[int] = set()
    groups: dict[tuple[int, bool, int], dict[int, str]] = {}
    for name in names:
        if m := actions._COMMIT.fullmatch(name):
            commits.add(int(m[1]))
        elif m := actions._CHECKPOINT.fullmatch(name):
            multi = m[3] is not None
            key = (int(m[1]), multi, int(m[3]) if multi else 1)
            groups.setdefault(key, {})[int(m[2]) if multi else 1] = name
    checkpoints: dict[int, list[str]] = {}
    for (at, _, count), parts in sorted(groups.items()):
        if at not in checkpoints and parts.keys() == set(range(1, count + 1)):
            checkpoints[at] = [parts[p] for p in sorted(parts)]
    return commits, checkpoints


_VERSION = st.integers(0, 30)
_NAME = st.one_of(
    _VERSION.map(lambda v: f"{v:020d}.json"),
    _VERSION.map(lambda v: f"{v:020d}.checkpoint.parquet"),
    st.tuples(_VERSION, st.integers(1, 3), st.integers(1, 3)).map(
        lambda t: f"{t[0]:020d}.checkpoint.{t[1]:010d}.{t[2]:010d}.parquet"
    ),
    _VERSION.map(lambda v: f"{v:020d}.crc"),
    _VERSION.map(lambda v: f"{v:020d}.json.tmp"),
    _VERSION.map(lambda v: f"{v}.json"),
    _VERSION.map(lambda v: f".{v:020d}.json.tmp"),
    st.sampled_from(["_last_checkpoint", "_commit_x.json.tmp", "99999999999999999999.json"]),
    st.text(max_size=24),
)


@settings(max_examples=300, deadline=None)
@given(names=st.lists(_NAME, max_size=40, unique=True))
def test_a_sorted_listing_finds_what_parsing_every_name_finds(names: list[str]) -> None:
    commits, checkpoints = _reference(names)
    listing = actions.log_listing(names)
    assert listing.latest() == max(commits | checkpoints.keys(), default=-1)
    for version in range(-1, 33):
        assert listing.has_commit(version) == (version in commits)
        newest = max((at for at in checkpoints if at <= version), default=None)
        expected = None if newest is None else (newest, checkpoints[newest])
        assert listing.checkpoint(version) == expected


# --------------------------------------------------------------------------- appending


def _grow(root: Path, commits: int, **columns: Any) -> str:
    """Table ``t`` after ``commits`` commits of two rows, its entries before the newest
    checkpoint (if any) deleted as a log cleanup deletes them, so readers start from it."""
    store = DeltaStore(root, flush_seconds=None)
    for n in range(commits):
        store.write("t", records([f"{n}-a", f"{n}-b"], v=[n, n], **columns))
        store.flush()
    store.close()
    uri = store.table_uri("t")
    hint = Path(uri, "_delta_log", "_last_checkpoint")
    for version in range(json.loads(hint.read_text())["version"] if hint.exists() else 0):
        Path(uri, "_delta_log", f"{version:020d}.json").unlink()
    return uri


def _compacted(root: Path) -> str:
    uri = _grow(root, 12)
    DeltaStore(root).compact("t", retention_hours=10_000)  # removes after the checkpoint
    return uri


def _evolved(root: Path) -> str:
    uri = _grow(root, 12)
    store = DeltaStore(root, flush_seconds=None)
    store.write("t", records(["late"], v=[0], added=["a new column"]))  # metadata after it
    store.close()
    return uri


def _multi_part(root: Path) -> str:
    uri = _grow(root, 23)
    for checkpoint in Path(uri, "_delta_log").glob("*.checkpoint.parquet"):
        _split(checkpoint, 3)
        checkpoint.unlink()
    Path(uri, "_delta_log", "_last_checkpoint").unlink()  # it names the single file
    return uri


_TABLES = {
    "checkpointed": lambda root: _grow(root, 23),
    "compacted": _compacted,
    "evolved": _evolved,
    "multi-part": _multi_part,
    "short": lambda root: _grow(root, 12),
}


@pytest.mark.parametrize("table", sorted(_TABLES))
def test_an_append_opens_a_table_as_delta_rs_reads_it_without_its_files(
    tmp_path: Path, table: str
) -> None:
    uri = _TABLES[table](tmp_path)
    lazy = LocalLog.load(uri, files=False)
    full = LocalLog.load(uri)
    assert lazy is not None
    assert full is not None
    theirs = DeltaTable(uri)
    assert lazy.version() == theirs.version() == full.version()
    assert path_schema(lazy.schema()).equals(path_schema(pa.schema(theirs.schema().to_arrow())))
    assert lazy.metadata["configuration"] == theirs.metadata().configuration
    protocol = theirs.protocol()
    assert lazy.protocol["minReaderVersion"] == protocol.min_reader_version
    assert lazy.protocol["minWriterVersion"] == protocol.min_writer_version
    # What maintenance counts, and what a read reads once it needs the files.
    assert lazy.file_count() == full.file_count() == len(theirs.file_uris())
    assert list(lazy.data_files().items()) == list(full.data_files().items())


def test_a_store_that_only_appends_reads_no_data_files_of_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _grow(tmp_path, 23)
    read = count_checkpoint_reads(monkeypatch)
    store = DeltaStore(tmp_path, flush_seconds=None)
    store.append("t", records(["new-a", "new-b"], v=[-1, -1]))
    store.flush()
    assert read == []
    # The same store then reads, and writes once: the files are read when needed.
    assert store.scan("t").num_rows == 2 * 23 + 2
    assert len(read) == 1
    assert store.write("t", records(["new-a", "0-a", "newer"], v=[0, 0, 0])) == 1
    store.close()
    ids = DeltaTable(uri).to_pyarrow_table().column(RECORD_ID).to_pylist()
    assert sorted(ids) == sorted(
        [f"{n}-{s}" for n in range(23) for s in "ab"] + ["new-a", "new-b", "newer"]
    )


def test_an_appending_store_compacts_when_a_reading_one_would(tmp_path: Path) -> None:
    uri = _grow(tmp_path, 21)  # 21 files, read from the checkpoint at version 19
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=23)
    store.append("t", records(["x"], v=[0]))
    store.flush()
    assert len(DeltaTable(uri).file_uris()) == 22
    store.append("t", records(["y"], v=[0]))
    store.flush()
    assert len(DeltaTable(uri).file_uris()) == 1
    store.close()


# --------------------------------------------------------------------------- updating


def test_a_flush_right_after_opening_lists_the_log_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _grow(tmp_path, 15)
    listed = count_log_listings(monkeypatch)
    store = DeltaStore(tmp_path, flush_seconds=None)
    store.append("t", records(["new"], v=[0]))
    store.flush()
    store.close()
    assert listed == [str(Path(uri, "_delta_log"))]


def test_a_reader_notices_a_cleanup_its_clock_could_not_show(tmp_path: Path) -> None:
    # The log directory's time is as it was when the reader listed it (as a change within
    # the same clock tick leaves it), yet a writer committed, checkpointed and cleaned up
    # the entries the reader would read next: _last_checkpoint tells.
    uri = _grow(tmp_path, 3)
    log_dir = Path(uri, "_delta_log")
    reader = LocalLog.load(uri)
    assert reader is not None
    seen = os.stat(log_dir).st_mtime_ns
    reader._listed, reader._quiet = seen, -1  # listed within a clock tick of that time
    writer = DeltaStore(tmp_path, flush_seconds=None)
    for n in range(25):
        writer.write("t", records([f"w{n}"], v=[n]))
        writer.flush()
    writer.close()
    for version in range(reader.version() + 1, 20):  # a cleanup with a short retention
        Path(log_dir, f"{version:020d}.json").unlink()
    os.utime(log_dir, ns=(seen, seen))
    reader.update()
    assert reader.version() == DeltaTable(uri).version()
    assert sorted(reader.data_files()) == sorted(LocalLog.load(uri).data_files())  # type: ignore[union-attr]


# --------------------------------------------------------------------------- a store's age


@function_pod("y", live_output=False)
def _double(x: int) -> int:
    return 2 * x


def _tables(store: DeltaStore) -> list[tuple[str, ...]]:
    return sorted(store.list())


def test_a_store_run_by_a_growing_source_stays_bounded(tmp_path: Path) -> None:
    """Twelve runs, each with one more source row: no new table after the first run (records
    of every input version share the node's table), every table's live files within
    ``compact_files``, and a compaction of the aged store writes nothing."""
    store = DeltaStore(tmp_path, flush_seconds=None, compact_files=4, retention_hours=0)
    counts = []
    for run in range(12):
        rows = [{"id": i, "x": i} for i in range(run + 2)]
        with Pipeline("aging", store) as pipeline:
            _double.pod(podline.DictSource(rows, tag_columns=["id"], label="numbers"))
        pipeline.run()
        counts.append(len(_tables(store)))
    assert counts == [counts[0]] * 12
    scope = store.at("pipelines", "aging")
    assert len(scope.at("logs").list()) == 1
    # The status table, and its markers' beside it (podline/observability/compact.py).
    assert len(scope.at("status").list()) == 2
    for path in _tables(store):
        assert len(DeltaTable(store.table_uri(path)).file_uris()) < 4, path
    store.compact()  # whatever is left to do
    versions = {p: DeltaTable(store.table_uri(p)).version() for p in _tables(store)}
    store.compact()
    assert {p: DeltaTable(store.table_uri(p)).version() for p in _tables(store)} == versions
    store.close()
