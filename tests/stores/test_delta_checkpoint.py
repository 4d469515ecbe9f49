"""podline's own Delta checkpoints and expired-log cleanup, against delta-rs's.

Differential: the same table at the same version, checkpointed once by podline
(``LocalLog._checkpoint_if_due``) and once by delta-rs (``DeltaTable.create_checkpoint``),
must give the same Parquet schema, the same actions in the same order of data files, and the
same ``_last_checkpoint`` hint; delta-rs and podline must read the table back from podline's
checkpoint alone as they read it from its commits. A table holding what podline's checkpoint
would not carry is left to delta-rs."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from tests.stores.conftest import records, script_file

from podline.stores import DeltaStore, _delta_checkpoint
from podline.stores._delta_checkpoint import (
    CHECKPOINT_SCHEMA,
    cleanup_expired_logs,
    write_checkpoint,
)
from podline.stores._delta_local import LocalLog, _interval_ms

_DAY_MS = 86_400_000


def _log(uri: str) -> Path:
    return Path(uri, "_delta_log")


def _checkpoint(uri: str, version: int) -> Path:
    return _log(uri) / f"{version:020d}.checkpoint.parquet"


def _canonical(value: Any) -> Any:
    """An action as comparable data: maps (lists of pairs) as sorted dicts."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return {k: _canonical(v) for k, v in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _actions(path: Path) -> tuple[list[Any], list[Any]]:
    """The ``add`` actions of a checkpoint file, in order, and its other actions, sorted."""
    adds, others = [], []
    for row in pq.read_table(path).to_pylist():
        ((kind, value),) = [(k, v) for k, v in row.items() if v is not None]
        (adds if kind == "add" else others).append({kind: _canonical(value)})
    return adds, sorted(others, key=lambda a: json.dumps(a, sort_keys=True))


def _shape(t: pa.DataType) -> Any:
    """A type's names, types and nullability, whatever a map's entries are called."""
    if pa.types.is_map(t):
        return ("map", _shape(t.key_type), (_shape(t.item_type), t.item_field.nullable))
    if pa.types.is_struct(t):
        return ("struct", [(f.name, _shape(f.type), f.nullable) for f in t])
    if pa.types.is_list(t):
        return ("list", _shape(t.value_type), t.value_field.nullable)
    return str(t)


def _schema_shape(schema: pa.Schema) -> Any:
    return [(f.name, _shape(f.type), f.nullable) for f in schema]


def _delta_rs_checkpoint(uri: str, version: int, scratch: Path) -> Path:
    """A copy of the table at ``uri`` in which delta-rs, not podline, checkpointed
    ``version``: the copy's table directory."""
    copy = scratch / "delta-rs"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(uri, copy)
    for made in _log(str(copy)).glob("*.checkpoint.parquet"):
        made.unlink()
    (_log(str(copy)) / "_last_checkpoint").unlink(missing_ok=True)
    DeltaTable(str(copy), version=version).create_checkpoint()
    return copy


def _assert_as_delta_rs_writes_it(uri: str, version: int, scratch: Path) -> None:
    ours = _checkpoint(uri, version)
    theirs_uri = _delta_rs_checkpoint(uri, version, scratch)
    theirs = _checkpoint(str(theirs_uri), version)
    assert _schema_shape(pq.read_schema(ours)) == _schema_shape(pq.read_schema(theirs))
    # The same key-value metadata in the footer (none: no Arrow schema, which costs reads).
    assert pq.ParquetFile(ours).metadata.metadata == pq.ParquetFile(theirs).metadata.metadata
    assert _actions(ours) == _actions(theirs)
    hint = json.loads((_log(uri) / "_last_checkpoint").read_text())
    expected = json.loads((_log(str(theirs_uri)) / "_last_checkpoint").read_text())
    assert hint["sizeInBytes"] == ours.stat().st_size
    del hint["sizeInBytes"], expected["sizeInBytes"]
    assert hint == expected


def _read_from_checkpoint_alone(uri: str, version: int, scratch: Path) -> str:
    """A copy of the table at ``uri`` holding only its checkpoint of ``version`` and the
    commits after it, as a log cleanup leaves a table: the copy's directory."""
    copy = scratch / "cleaned"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(uri, copy)
    for at in range(version + 1):
        (_log(str(copy)) / f"{at:020d}.json").unlink()
    return str(copy)


def _flushes(store: DeltaStore, batches: int, rng: random.Random, start: int = 0) -> None:
    for n in range(start, start + batches):
        size = rng.choice([1, 3, 8])
        store.write(
            "t", records([f"{n}-{i}" for i in range(size)], v=[rng.random() for _ in range(size)])
        )
        store.flush()


@pytest.mark.parametrize("seed", [0, 1])
def test_checkpoints_are_the_ones_delta_rs_writes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=4)
    _flushes(store, 20, rng)  # appends and merges (files removed, added with tags)
    store.write("t", records(["late"], v=[0.5], added=["a new column"]))  # the schema evolves
    store.flush()
    _flushes(store, 9, rng, start=20)
    uri = store.table_uri("t")
    store.close()
    versions = sorted(int(p.name[:20]) for p in _log(uri).glob("*.checkpoint.parquet"))
    assert len(versions) >= 3
    assert all((v + 1) % 10 == 0 for v in versions)
    # podline wrote them (pyarrow's Parquet writer; delta-rs's is parquet-rs).
    writers = {pq.ParquetFile(_checkpoint(uri, v)).metadata.created_by[:17] for v in versions}
    assert writers == {"parquet-cpp-arrow"}
    merges = [a for a in DeltaTable(uri).history() if a["operation"] == "OPTIMIZE"]
    assert merges  # files were removed and added
    for version in versions:
        # Each checkpoint as delta-rs writes it at that version (the hint is the newest's).
        if version == versions[-1]:
            _assert_as_delta_rs_writes_it(uri, version, tmp_path)
        ours_adds, ours_others = _actions(_checkpoint(uri, version))
        theirs = _checkpoint(str(_delta_rs_checkpoint(uri, version, tmp_path)), version)
        assert (ours_adds, ours_others) == _actions(theirs)
    alone = _read_from_checkpoint_alone(uri, versions[-1], tmp_path)
    full = DeltaTable(uri)
    cleaned = DeltaTable(alone)
    assert cleaned.version() == full.version()
    assert [Path(u).name for u in cleaned.file_uris()] == [Path(u).name for u in full.file_uris()]
    assert cleaned.to_pyarrow_table().equals(full.to_pyarrow_table())
    log = LocalLog.load(alone)
    assert log is not None
    assert log.data_files() == LocalLog.load(uri).data_files()  # type: ignore[union-attr]
    assert DeltaStore(tmp_path / "store").scan("t").num_rows == full.to_pyarrow_table().num_rows


def test_the_checkpoint_schema_is_delta_rs_s(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "t"), pa.table({"a": [1]}))
    DeltaTable(str(tmp_path / "t")).create_checkpoint()
    theirs = pq.read_schema(_checkpoint(str(tmp_path / "t"), 0))
    assert _schema_shape(CHECKPOINT_SCHEMA) == _schema_shape(theirs)


def test_a_checkpoint_loads_no_delta_rs(tmp_path: Path) -> None:
    # A run that commits the tenth version of a table (its run records, every tenth run)
    # used to import deltalake and open the table in it: 32-37 ms of CPU in a fresh process.
    script = script_file(
        tmp_path,
        "job",
        f"""
        import sys
        import pyarrow as pa
        from podline.stores import DeltaStore

        store = DeltaStore({str(tmp_path / "store")!r}, flush_seconds=None)
        for i in range(12):
            store.append("t", pa.table({{"__record_id": [f"r{{i}}"], "v": [i]}}))
            store.flush()
        store.close()
        print("deltalake" in sys.modules)
        """,
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    assert _checkpoint(DeltaStore(tmp_path / "store").table_uri("t"), 9).exists()


def _aged(log: Path, versions: range, days: float) -> None:
    """Make the log entries of ``versions`` (commits and checkpoints) ``days`` old."""
    then = time.time() - days * 86_400
    for entry in log.iterdir():
        if entry.name[:20].isdigit() and int(entry.name[:20]) in versions:
            os.utime(entry, (then, then))


@pytest.mark.parametrize(
    ("aged", "days"),
    [(range(25), 40), (range(12), 40), (range(25), 10), (range(5, 15), 40)],
)
def test_the_cleanup_deletes_what_delta_rs_s_deletes(
    tmp_path: Path, aged: range, days: float
) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None, compact_files=None)
    _flushes(store, 25, random.Random(3))
    uri = store.table_uri("t")
    store.close()
    _aged(_log(uri), aged, days)
    theirs = tmp_path / "theirs"
    shutil.copytree(uri, theirs, copy_function=shutil.copy2)  # (keeps the times)
    cutoff = time.time_ns() // 1_000_000 - 30 * _DAY_MS
    ours = cleanup_expired_logs(_log(uri), 24, cutoff)
    DeltaTable(str(theirs)).cleanup_metadata()
    assert sorted(os.listdir(_log(uri))) == sorted(os.listdir(_log(str(theirs))))
    assert ours == 25 + 2 - len([n for n in os.listdir(_log(uri)) if n[:20].isdigit()])


def test_expired_entries_are_cleaned_up_after_a_checkpoint(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 12, random.Random(5))
    uri = store.table_uri("t")
    _aged(_log(uri), range(12), 40)
    _flushes(store, 8, random.Random(6), start=12)  # version 19 checkpoints, then cleans up
    store.close()
    names = sorted(n for n in os.listdir(_log(uri)) if n.endswith(".json"))
    assert names[0] == f"{9:020d}.json"  # before the checkpoint at 9: expired, deleted
    assert (
        DeltaTable(uri).to_pyarrow_table().num_rows
        == DeltaStore(tmp_path / "store").scan("t").num_rows
    )


def test_a_table_that_keeps_its_log_is_not_cleaned_up(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 2, random.Random(16))
    uri = store.table_uri("t")
    DeltaTable(uri).alter.set_table_properties({"delta.enableExpiredLogCleanup": "false"})
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 10, random.Random(17), start=2)
    _aged(_log(uri), range(12), 40)
    _flushes(store, 8, random.Random(18), start=12)  # version 19 checkpoints, keeps the rest
    store.close()
    assert pq.ParquetFile(_checkpoint(uri, 19)).metadata.created_by.startswith("parquet-cpp")
    assert (_log(uri) / f"{0:020d}.json").exists()


def test_a_table_holding_app_transactions_is_checkpointed_by_delta_rs(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 2, random.Random(7))
    uri = store.table_uri("t")
    # Another writer's commit with an application transaction (exactly-once streaming).
    write_deltalake(
        uri,
        DeltaTable(uri).to_pyarrow_table().slice(0, 0),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction("app", 3)]),
    )
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 9, random.Random(8), start=2)
    store.close()
    rows = pq.read_table(_checkpoint(uri, 9)).column("txn").drop_null().to_pylist()
    assert [(t["appId"], t["version"]) for t in rows] == [("app", 3)]
    assert DeltaTable(uri).transaction_version("app") == 3


def test_a_table_keeping_removed_files_is_checkpointed_by_delta_rs(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path, flush_seconds=None)
    uri = store.table_uri("t")
    # Created by delta-rs: removed files are kept a week, and its checkpoints list them.
    write_deltalake(uri, records(["a"], v=[0.0]), configuration={"delta.checkpointInterval": "10"})
    write_deltalake(uri, records(["b"], v=[1.0]), mode="overwrite")
    for n in range(8):
        store.append("t", records([f"{n}"], v=[float(n)]))
        store.flush()
    store.close()
    clients = [c.get("clientVersion", "") for c in DeltaTable(uri).history()]
    assert clients[0] == "podline"  # podline committed version 9, not delta-rs
    removes = pq.read_table(_checkpoint(uri, 9)).column("remove").drop_null().to_pylist()
    assert len(removes) == 1


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("interval 30 days", 30 * _DAY_MS),
        ("interval 0 seconds", 0),
        ("interval 1 week", 7 * _DAY_MS),
        ("interval 1500 microseconds", 1),
        ("interval 2 hours extra", 7_200_000),
        ("interval 2 years", None),
        ("INTERVAL 2 days", None),
        ("interval -1 days", None),
        ("interval two days", None),
        ("interval 2", None),
        ("2 days", None),
        (None, None),
    ],
)
def test_intervals_read_as_delta_rs_reads_them(text: str | None, ms: int | None) -> None:
    assert _interval_ms(text) == ms


def test_a_checkpoint_that_fails_leaves_the_commit_and_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = _delta_checkpoint.pq.write_table

    def disk_full(table: pa.Table, where: Any, **kwargs: Any) -> None:
        if ".checkpoint." not in str(where):  # data files are written as before
            return real(table, where, **kwargs)
        real(table.slice(0, 1), where, **kwargs)  # part of it written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_delta_checkpoint.pq, "write_table", disk_full)
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 10, random.Random(9))  # version 9: its checkpoint fails
    uri = store.table_uri("t")
    assert "checkpoint of" in caplog.text
    assert "No space left on device" in caplog.text
    assert sorted(n for n in os.listdir(_log(uri)) if not n.endswith(".json")) == []
    assert DeltaTable(uri).version() == 9  # the commit stands
    monkeypatch.undo()
    _flushes(store, 10, random.Random(10), start=10)  # the next one is written
    store.close()
    assert _checkpoint(uri, 19).exists()
    assert json.loads((_log(uri) / "_last_checkpoint").read_text())["version"] == 19
    rows = DeltaTable(_read_from_checkpoint_alone(uri, 19, tmp_path)).to_pyarrow_table()
    assert rows.num_rows == DeltaStore(tmp_path / "store").scan("t").num_rows


def test_a_writer_that_fell_behind_leaves_a_newer_hint(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 20, random.Random(11))
    uri = store.table_uri("t")
    store.close()
    behind = LocalLog.load(uri, version=9)
    assert behind is not None
    # The checkpoint of version 9 written again, after the one of version 19.
    write_checkpoint(
        _log(uri), 9, behind.protocol, behind.metadata, [a.action for a in behind._replay_order()]
    )
    assert json.loads((_log(uri) / "_last_checkpoint").read_text())["version"] == 19
    (_log(uri) / "_last_checkpoint").write_text("{damaged")
    write_checkpoint(
        _log(uri), 9, behind.protocol, behind.metadata, [a.action for a in behind._replay_order()]
    )
    assert json.loads((_log(uri) / "_last_checkpoint").read_text())["version"] == 9
    assert DeltaTable(uri).version() == 19


@pytest.mark.parametrize(
    "setting",
    [
        # Statistics as a struct column too: delta-rs's checkpoint then has ``stats_parsed``.
        {"delta.checkpoint.writeStatsAsStruct": "true"},
        # A retention delta-rs stores as given but cannot parse (it reads its default).
        {"delta.logRetentionDuration": "interval 2 years"},
    ],
)
def test_a_table_with_a_setting_podline_does_not_write_for_is_checkpointed_by_delta_rs(
    tmp_path: Path, setting: dict[str, str]
) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 2, random.Random(12))
    uri = store.table_uri("t")
    DeltaTable(uri).alter.set_table_properties(setting)
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    _flushes(store, 7, random.Random(13), start=2)
    store.close()
    assert DeltaTable(uri).history()[0]["clientVersion"] == "podline"  # it committed version 9
    assert pq.ParquetFile(_checkpoint(uri, 9)).metadata.created_by.startswith("parquet-rs")
    if "delta.checkpoint.writeStatsAsStruct" in setting:
        assert "stats_parsed" in pq.read_schema(_checkpoint(uri, 9)).field("add").type.names
