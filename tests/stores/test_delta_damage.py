"""Damaged, foreign and hostile Delta tables: podline reads what delta-rs reads, or raises a
``StoreError`` naming the table, the version and the fault (issue 15, points 2, 3 and 7)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from podline.errors import StoreError
from podline.stores import RECORD_ID, DeltaStore

from .conftest import records

Mutation = Callable[[Path, Path], None]


def _table(root: Path, name: str = "t", commits: int = 3) -> Path:
    with DeltaStore(root, flush_seconds=None) as store:
        for i in range(commits):
            store.write(name, records([f"{name}{i}a", f"{name}{i}b"], v=[i, i]))
            store.flush()
        return Path(store.table_uri(name))


def _entry(table: Path, version: int) -> Path:
    return table / "_delta_log" / f"{version:020d}.json"


def _actions(table: Path, version: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _entry(table, version).read_text().splitlines()]


def _rewrite(table: Path, version: int, actions: list[Any]) -> None:
    _entry(table, version).write_text("".join(json.dumps(a) + "\n" for a in actions))


def _added(table: Path, version: int) -> dict[str, Any]:
    return next(a["add"] for a in _actions(table, version) if "add" in a)


def _set_add(table: Path, **fields: Any) -> None:
    """Change fields of the ``add`` action of version 1."""
    actions = _actions(table, 1)
    for action in actions:
        if "add" in action:
            action["add"].update(fields)
    _rewrite(table, 1, actions)


def _set_protocol(table: Path, **fields: Any) -> None:
    actions = _actions(table, 0)
    for action in actions:
        if "protocol" in action:
            action["protocol"] = fields
    _rewrite(table, 0, actions)


def _other_file(root: Path, table: Path) -> Path:
    other = _table(root, "other", commits=1)
    return next(other.glob("*.parquet"))


# What each mutation does to version 1 (or the table's files), and what the error says.
_DAMAGE: dict[str, tuple[Mutation, str]] = {
    # Point 2: paths that leave the table (podline used to read the other table's rows).
    "absolute path": (
        lambda root, t: _set_add(t, path=str(_other_file(root, t))),
        r"data file '/.*' in log entry 1 of the Delta table at .* is not a relative path",
    ),
    "dot-dot path": (
        lambda root, t: _set_add(t, path=f"../other.delta/{_other_file(root, t).name}"),
        "data file '../other.delta/.*' in log entry 1 .* is not a relative path",
    ),
    "encoded dot-dot path": (
        lambda root, t: _set_add(t, path=f"%2E%2E/other.delta/{_other_file(root, t).name}"),
        "data file '%2E%2E/other.delta/.*' in log entry 1 .* is not a relative path",
    ),
    "file URI": (
        lambda root, t: _set_add(t, path=_other_file(root, t).as_uri()),
        "data file 'file:///.*' in log entry 1 .* is not a relative path",
    ),
    # Point 3: what delta-rs refuses.
    "reader protocol 4": (
        lambda root, t: _set_protocol(t, minReaderVersion=4, minWriterVersion=2),
        "Unsupported minimum reader version 4",
    ),
    "reader features at reader protocol 1": (
        lambda root, t: _set_protocol(
            t, minReaderVersion=1, minWriterVersion=2, readerFeatures=["timestampNtz"]
        ),
        "Reader features must not be present",
    ),
    "a line that is not an object": (
        lambda root, t: _rewrite(t, 1, [_actions(t, 1)[0], [_actions(t, 1)[1]]]),
        "line 2 of log entry 1 of the Delta table at .* holds a JSON array, not an action",
    ),
    "a data file larger than its log says": (
        lambda root, t: (t / _added(t, 1)["path"]).open("ab").write(b"0" * 10),
        r"data file part-.* of the Delta table at .*t.delta has \d+ bytes where its log entry",
    ),
    "an empty deletion vector": (  # {} once passed for "no deletion vector" (falsy)
        lambda root, t: _set_add(t, deletionVector={}),
        "deletionVector.*unmasked nulls",
    ),
    "an empty deletion vector in a remove": (  # podline read past it once (found by fuzzing)
        lambda root, t: _rewrite(
            t,
            1,
            [
                *_actions(t, 1),
                {"remove": {"path": "gone.parquet", "dataChange": True, "deletionVector": {}}},
            ],
        ),
        # (podline's message, or delta-rs's where podline hands the table to it)
        r"remove\.deletionVector\.storageType of log entry 1 of .* is None|deletionVector.*nulls",
    ),
    "an add without its size": (
        lambda root, t: _set_add(t, size=None),
        'non-nullable .*"size"',
    ),
    # Point 7: clear errors.
    "a missing data file": (
        lambda root, t: (t / _added(t, 1)["path"]).unlink(),
        "data file part-.* of the Delta table at .*t.delta is missing",
    ),
    "a truncated data file": (
        lambda root, t: _truncate_data(t),
        "data file part-.* of the Delta table at .*t.delta cannot be read: .*magic bytes",
    ),
    "a garbage log entry": (
        lambda root, t: _entry(t, 1).write_bytes(b"\x00{\x00"),
        "line 1 of log entry 1 of the Delta table at .* is not valid JSON",
    ),
    "a log entry that is not UTF-8": (
        lambda root, t: _entry(t, 1).write_bytes(b'{"commitInfo": {"x": "\xe9"}}\n'),
        "log entry 1 of the Delta table at .* is not UTF-8 text",
    ),
    "a truncated log entry": (
        lambda root, t: _entry(t, 1).write_bytes(_entry(t, 1).read_bytes()[:-40]),
        "line 2 of log entry 1 of the Delta table at .* is not valid JSON .*truncated",
    ),
}


def _write_and_flush(store: DeltaStore) -> None:
    store.write("t", records(["new"], v=[9]))
    store.flush()


def _truncate_data(table: Path) -> None:
    data = table / _added(table, 1)["path"]
    data.write_bytes(data.read_bytes()[:100])
    _set_add(table, size=100)  # the log agrees: the file is cut, not changed


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_a_damaged_table_is_a_store_error_naming_the_fault(tmp_path: Path, damage: str) -> None:
    table = _table(tmp_path)
    mutate, message = _DAMAGE[damage]
    mutate(tmp_path, table)
    with pytest.raises(StoreError, match=message):
        DeltaStore(tmp_path).scan("t")
    with pytest.raises(StoreError, match=message):
        list(DeltaStore(tmp_path).scan_batches("t") or ())  # read a row group at a time
    with pytest.raises(StoreError, match=message):
        # An id of the damaged commit: a read of a few ids skips files whose statistics
        # exclude them, and so never sees what damage they hold (as delta-rs does).
        DeltaStore(tmp_path).read("t", ["t0a", "t1a"])
    writer = DeltaStore(tmp_path, flush_seconds=None)
    with pytest.raises(StoreError, match=message):
        _write_and_flush(writer)
    # delta-rs refuses it too (or, for a file appended to, reads the bytes its log names).
    if damage != "a data file larger than its log says":
        with pytest.raises(Exception):  # noqa: B017, PT011 - delta-rs raises bare Exceptions
            DeltaTable(str(table)).to_pyarrow_table()
    report = DeltaStore(tmp_path).verify()
    assert [(f.path, f.kind) for f in report.problems] in (
        [(("t",), "unreadable")],
        [(("t",), "refused")],
    )


def test_a_store_that_read_a_table_refuses_a_damaging_commit_later(tmp_path: Path) -> None:
    # The same checks apply when a store brings a table it has read up to date.
    table = _table(tmp_path)
    store = DeltaStore(tmp_path, flush_seconds=None)
    assert store.scan("t").num_rows == 6
    actions = _actions(table, 2)
    actions[1]["add"]["path"] = "/etc/passwd"
    _rewrite(table, 3, [actions[0], 7, actions[1]])
    with pytest.raises(StoreError, match=r"line 2 of log entry 3 .* holds a JSON number"):
        store.scan("t")


def test_paths_are_percent_decoded_as_the_protocol_says(tmp_path: Path) -> None:
    table = _table(tmp_path)
    added = _added(table, 1)
    (table / added["path"]).rename(table / "a b%.parquet")
    _set_add(table, path="a%20b%25.parquet")
    rows = DeltaStore(tmp_path).scan("t").sort_by(RECORD_ID)
    assert rows.equals(
        DeltaTable(str(table)).to_pyarrow_table().sort_by(RECORD_ID).cast(rows.schema)
    )
    assert rows.num_rows == 6


def test_a_column_mapping_table_is_refused_not_misread(tmp_path: Path) -> None:
    # delta-rs's Arrow dataset reads a column-mapping table's columns as nulls; podline used
    # to return them, and failed a write to it with a KeyError.
    store = DeltaStore(tmp_path, flush_seconds=None)
    uri = store.table_uri("t")
    write_deltalake(uri, records(["a"], v=[1]), configuration={"delta.columnMapping.mode": "name"})
    message = r"cannot open the table of 't': .* uses column mapping \('name' mode\)"
    with pytest.raises(StoreError, match=message):
        store.scan("t")
    with pytest.raises(StoreError, match=message):
        _write_and_flush(store)


@pytest.mark.parametrize("partitioned", [False, True], ids=["podline's", "delta-rs's"])
def test_a_table_that_turns_to_column_mapping_is_refused(tmp_path: Path, partitioned: bool) -> None:
    # A store that has read the table (with its own log reader, or delta-rs's for a
    # partitioned one) meets a commit turning column mapping on.
    store = DeltaStore(tmp_path, flush_seconds=None)
    uri = store.table_uri("t")
    write_deltalake(uri, records(["a"], v=[1]), partition_by=["v"] if partitioned else None)
    assert store.scan("t").num_rows == 1
    metadata = next(a["metaData"] for a in _actions(Path(uri), 0) if "metaData" in a)
    schema = json.loads(metadata["schemaString"])
    for position, field in enumerate(schema["fields"], 1):
        field["metadata"] = {
            "delta.columnMapping.id": position,
            "delta.columnMapping.physicalName": field["name"],
        }
    metadata["schemaString"] = json.dumps(schema)
    metadata["configuration"] = {
        "delta.columnMapping.mode": "name",
        "delta.columnMapping.maxColumnId": str(len(schema["fields"])),
    }
    protocol = {"minReaderVersion": 2, "minWriterVersion": 5}
    _rewrite(Path(uri), 1, [{"protocol": protocol}, {"metaData": metadata}])
    with pytest.raises(StoreError, match=r"version 1\) uses column mapping"):
        store.scan("t")


def test_unknown_actions_and_fields_are_skipped_as_delta_rs_skips_them(tmp_path: Path) -> None:
    table = _table(tmp_path)
    actions = _actions(table, 1)
    actions[1]["add"]["futureField"] = {"x": 1}
    _rewrite(table, 1, [*actions, {"futureAction": {"x": 1}}, {"txn": 5}])
    rows = DeltaStore(tmp_path).scan("t")
    assert rows.num_rows == 6 == DeltaTable(str(table)).to_pyarrow_table().num_rows


def test_an_action_podline_cannot_be_sure_of_goes_to_delta_rs(tmp_path: Path) -> None:
    # A size written as a string: delta-rs reads it as a number; podline lets delta-rs read.
    table = _table(tmp_path)
    _set_add(table, size=str(_added(table, 1)["size"]))
    assert DeltaStore(tmp_path).scan("t").num_rows == 6
    assert DeltaStore(tmp_path).verify().ok


def _flip_a_byte(data: Path, column: str) -> None:
    """Change one byte near the end of ``column``'s stored pages in the data file, in the
    page's data (its header, before it, holds statistics no read uses): a bit gone bad."""
    chunks = pq.ParquetFile(data).metadata.row_group(0)
    chunk = next(
        chunks.column(i)
        for i in range(chunks.num_columns)
        if chunks.column(i).path_in_schema == column
    )
    at = chunk.data_page_offset + chunk.total_compressed_size - 2
    raw = bytearray(data.read_bytes())
    raw[at] ^= 1
    data.write_bytes(bytes(raw))


@pytest.mark.parametrize("merged", [False, True], ids=["flushed", "merged"])
def test_a_value_changed_on_disk_is_refused_not_served(tmp_path: Path, merged: bool) -> None:
    """Every page podline writes carries a checksum it checks on reading: a stored value whose
    bytes changed is a ``StoreError`` naming the file, on every read path, never a wrong row
    (delta-rs, which does not check, reads the changed value)."""
    ids = [f"pod3:{i:064x}" for i in range(40)]
    with DeltaStore(tmp_path, flush_seconds=None, compact_files=4 if merged else None) as store:
        for part in range(4 if merged else 1):
            chunk = ids[part * 10 : (part + 1) * 10] if merged else ids
            store.write("t", records(chunk, v=list(range(len(chunk)))))
            store.flush()
        table = Path(store.table_uri("t"))
    # One file: the flush's, or the one podline's merge wrote of the four flushes'.
    (data,) = {Path(uri) for uri in DeltaTable(str(table)).file_uris()}
    _flip_a_byte(data, RECORD_ID)
    if not merged:  # (stored uncompressed: delta-rs reads a changed id, and serves it)
        assert DeltaTable(str(table)).to_pyarrow_table()[RECORD_ID].to_pylist() != ids
    fresh = DeltaStore(tmp_path)
    for read in (
        lambda: fresh.scan("t"),
        lambda: fresh.read("t", [ids[3]]),
        lambda: list(fresh.scan_batches("t") or ()),
    ):
        with pytest.raises(StoreError) as raised:
            read()
        assert str(raised.value).startswith(f"data file {data.name} of the Delta table at ")
        assert "changed after it was written: a page's checksum does not match its bytes" in (
            str(raised.value)
        )
    # delta-rs refuses a compressed page it cannot decompress too.
    kind = "unreadable" if merged else "refused"
    assert [(f.path, f.kind) for f in fresh.verify().problems] == [(("t",), kind)]


def _checkpointed(root: Path) -> Path:
    """A table podline wrote in 12 commits: a checkpoint at version 9, its hint naming it."""
    table = _table(root, commits=12)
    assert json.loads((table / "_delta_log" / "_last_checkpoint").read_text())["version"] == 9
    return table


def _log_file(table: Path, name: str) -> Path:
    return table / "_delta_log" / name


def _append(store: DeltaStore) -> None:
    store.write("t", records(["new"], v=[99]))
    store.flush()


_CHECKPOINT = f"{9:020d}.checkpoint.parquet"
CHECKPOINT_DAMAGE: dict[str, Mutation] = {
    "checkpoint truncated": lambda t, _: os.truncate(_log_file(t, _CHECKPOINT), 40),
    "checkpoint emptied": lambda t, _: _log_file(t, _CHECKPOINT).write_bytes(b""),
    "checkpoint deleted": lambda t, _: _log_file(t, _CHECKPOINT).unlink(),
    "checkpoint and hint deleted": lambda t, _: (
        _log_file(t, _CHECKPOINT).unlink(),
        _log_file(t, "_last_checkpoint").unlink(),
    ),
    "hint garbage": lambda t, _: _log_file(t, "_last_checkpoint").write_text("garbage"),
    "hint deleted": lambda t, _: _log_file(t, "_last_checkpoint").unlink(),
    "hint names an older version": lambda t, _: _log_file(t, "_last_checkpoint").write_text(
        '{"version":4,"size":6}'
    ),
    "hint names a missing checkpoint": lambda t, _: _log_file(t, "_last_checkpoint").write_text(
        '{"version":11,"size":12}'
    ),
    "a garbage checkpoint after it": lambda t, _: _log_file(
        t, f"{11:020d}.checkpoint.parquet"
    ).write_bytes(b"not a checkpoint"),
}


@pytest.mark.parametrize("damage", sorted(CHECKPOINT_DAMAGE))
def test_a_checkpoint_or_hint_damaged_is_read_as_delta_rs_reads_it_or_refused(
    tmp_path: Path, damage: str
) -> None:
    """podline starts from the checkpoint delta-rs starts from (the latest one, from the
    hint's version on), even where every commit before it is there: where delta-rs refuses
    the table, podline raises instead of replaying the commits (a fault test found podline
    reading, and appending to, tables delta-rs and polars refused)."""
    table = _checkpointed(tmp_path)
    CHECKPOINT_DAMAGE[damage](table, tmp_path)
    try:
        theirs: pa.Table | None = DeltaTable(str(table)).to_pyarrow_table()
    except Exception:  # delta-rs raises bare exceptions
        theirs = None
    store = DeltaStore(tmp_path)
    if theirs is None:
        named = re.escape(str(table))
        with pytest.raises(StoreError, match=named):
            store.scan("t")
        with pytest.raises(StoreError, match=named):
            _append(store)
        return
    ours = store.scan("t")
    assert ours is not None
    assert sorted(ours[RECORD_ID].to_pylist()) == sorted(theirs[RECORD_ID].to_pylist())
