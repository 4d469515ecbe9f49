"""A writer that fell behind never loses a flush: log cleanups delete the entries older than a
checkpoint, and a commit must never land below it (issue 15, point 1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from podline.stores import RECORD_ID, DeltaStore
from podline.stores._delta_actions import log_listing
from podline.stores._delta_format import ParquetSettings
from podline.stores._delta_local import LocalLog
from podline.stores._delta_log import CommitConflict

from .conftest import records

_SETTINGS = ParquetSettings("none", frozenset({RECORD_ID}))


def _entry(uri: str, version: int) -> Path:
    return Path(uri, "_delta_log", f"{version:020d}.json")


def _stale_store(root: Path) -> tuple[DeltaStore, str]:
    """Store A, which has committed and read versions 0-2 of table ``t``, whose log entries
    expire at once."""
    a = DeltaStore(root, flush_seconds=None)
    for i in range(3):
        a.write("t", records([f"a{i}"], v=[i]))
        a.flush()
    uri = a.table_uri("t")
    DeltaTable(uri).alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    assert a.scan("t").num_rows == 3  # A's read log is now at version 3 (the alteration)
    return a, uri


def _by_podline(root: Path, uri: str) -> None:
    b = DeltaStore(root, flush_seconds=None)
    for i in range(25):
        b.write("t", records([f"b{i}"], v=[i]))
        b.flush()
    b.close()


def _by_delta_rs(root: Path, uri: str) -> None:
    for i in range(25):  # delta-rs checkpoints every delta.checkpointInterval commits
        write_deltalake(uri, records([f"b{i}"], v=[i]), mode="append")


def _split(checkpoint: Path, parts: int) -> list[Path]:
    """Write ``checkpoint``'s rows again as a multi-part checkpoint of ``parts`` parts."""
    rows = pq.read_table(checkpoint)
    version = checkpoint.name.split(".")[0]
    step = -(-rows.num_rows // parts)
    names = []
    for part in range(parts):
        name = checkpoint.with_name(f"{version}.checkpoint.{part + 1:010d}.{parts:010d}.parquet")
        pq.write_table(rows.slice(part * step, step), name)
        names.append(name)
    return names


def _multi_part_only(root: Path, uri: str) -> None:
    _by_podline(root, uri)
    log = Path(uri, "_delta_log")
    for checkpoint in log.glob("*.checkpoint.parquet"):
        _split(checkpoint, 2)
        checkpoint.unlink()
    Path(log, "_last_checkpoint").unlink(missing_ok=True)  # it names the single file


def _single_and_multi_part(root: Path, uri: str) -> None:
    _by_podline(root, uri)
    log = Path(uri, "_delta_log")
    for checkpoint in log.glob("*.checkpoint.parquet"):
        _split(checkpoint, 3)
        _split(checkpoint, 2)[1].unlink()  # and an incomplete set beside them


@pytest.mark.parametrize(
    "others",
    [_by_podline, _by_delta_rs, _multi_part_only, _single_and_multi_part],
    ids=["podline", "delta-rs", "multi-part", "single-and-multi-part"],
)
def test_a_stale_writer_never_loses_a_flush(
    tmp_path: Path, others: Callable[[Path, str], None]
) -> None:
    a, uri = _stale_store(tmp_path)
    others(tmp_path, uri)  # 25 commits, checkpoints, and the early entries cleaned up
    assert not _entry(uri, 4).exists()
    a.write("t", records(["stale"], v=[-1]))
    a.flush()
    expected = {f"a{i}" for i in range(3)} | {f"b{i}" for i in range(25)} | {"stale"}
    assert set(a.scan("t").column(RECORD_ID).to_pylist()) == expected
    assert set(DeltaStore(tmp_path).scan("t").column(RECORD_ID).to_pylist()) == expected
    assert set(DeltaTable(uri).to_pyarrow_table().column(RECORD_ID).to_pylist()) == expected
    # The commit landed above the newest checkpoint, not in the hole below it.
    assert not _entry(uri, 4).exists()
    report = DeltaStore(tmp_path).verify()
    assert report.ok, report
    assert {f.kind for f in report.leftovers} <= {"unreferenced-file"}
    a.close()


def test_a_commit_that_lands_below_a_checkpoint_is_withdrawn(tmp_path: Path) -> None:
    # The same race inside one commit: the log moves on while the data file is written, so
    # the entry the writer creates names a version that was committed and cleaned up.
    a, uri = _stale_store(tmp_path)
    behind = LocalLog.load(uri)
    assert behind is not None
    _by_podline(tmp_path, uri)
    version = behind.version()
    schema = behind.schema()
    with pytest.raises(CommitConflict, match="below a newer checkpoint"):
        behind.append(records(["lost"], v=[0]).cast(schema), schema, _SETTINGS)
    assert not _entry(uri, version + 1).exists()
    assert behind.version() == version  # nothing was taken for committed
    assert DeltaStore(tmp_path).verify().leftovers == ()  # its data file is gone too
    a.close()


def test_a_reader_that_fell_behind_reads_on_from_the_newest_checkpoint(tmp_path: Path) -> None:
    a, uri = _stale_store(tmp_path)
    log = LocalLog.load(uri)
    assert log is not None
    _by_podline(tmp_path, uri)
    log.update()
    assert log.version() == DeltaTable(uri).version()
    assert sorted(log.data_files()) == sorted(LocalLog.load(uri).data_files())  # type: ignore[union-attr]
    a.close()


@pytest.mark.parametrize(
    ("names", "read"),
    [
        (["1.cp", "1.cp.1.2", "1.cp.2.2"], ["1.cp"]),  # the single file first
        (["1.cp.1.2", "1.cp.2.2"], ["1.cp.1.2", "1.cp.2.2"]),
        (["1.cp.1.3", "1.cp.2.3", "1.cp.1.2"], []),  # parts of two sets, neither complete
        (["1.cp.1.3", "1.cp.2.3", "1.cp.3.3", "1.cp.1.2"], ["1.cp.1.3", "1.cp.2.3", "1.cp.3.3"]),
        (["1.cp.2.2"], []),
    ],
)
def test_only_a_complete_checkpoint_is_read(names: list[str], read: list[str]) -> None:
    def name(short: str) -> str:
        version, _, *part = short.split(".")
        suffix = f".{int(part[0]):010d}.{int(part[1]):010d}" if part else ""
        return f"{int(version):020d}.checkpoint{suffix}.parquet"

    listing = log_listing([*map(name, names), f"{1:020d}.json"])
    assert listing.checkpoint(1) == ((1, [name(n) for n in read]) if read else None)
