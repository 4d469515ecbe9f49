"""Differential fuzzing of podline's Delta log reader against delta-rs (issue 15, point 3).

hypothesis damages the logs and data files of real tables (truncation, garbage, values of the
wrong type, unknown actions and features, paths leaving the table, swapped, foreign and
missing files, deleted entries); whatever it does, a new store's read equals delta-rs's, or
podline raises a ``StoreError``. Where both read the table, a write through podline keeps
every row delta-rs read, and delta-rs reads the written row too. ``verify()`` reports no
difference. An append, which reads only what appending needs (not the data files a
checkpoint lists), raises a ``StoreError`` or keeps every row delta-rs read and adds its own;
it never makes a table delta-rs refuses readable. The quick variant runs in CI; the ``slow``
one tries ten times as many logs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podline.errors import StoreError
from podline.stores import RECORD_ID, DeltaStore

from .conftest import records

_BASES = ("short", "checkpointed", "compacted")
_FIELDS = (
    "path",
    "size",
    "modificationTime",
    "dataChange",
    "partitionValues",
    "stats",
    "tags",
    "deletionVector",
    "deletionTimestamp",
    "minReaderVersion",
    "minWriterVersion",
    "readerFeatures",
    "writerFeatures",
    "schemaString",
    "configuration",
    "partitionColumns",
    "format",
    "id",
)
_FEATURES = (
    "timestampNtz",
    "deletionVectors",
    "columnMapping",
    "v2Checkpoint",
    "typeWidening",
    "vacuumProtocolCheck",
    "appendOnly",
    "invariants",
    "bogus",
)
_PATHS = ("absolute", "dotdot", "encoded-dotdot", "uri", "encoded", "empty", "subdir", "log")

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)
_VALUE = _JSON | st.sampled_from(["", "../x", "/abs", "1", 0, -1, 2**63, True, {}, []])
_INDEX = st.integers(0, 40)
_FRACTION = st.floats(0, 1)

_MUTATION = st.one_of(
    st.tuples(st.just("truncate entry"), _INDEX, _FRACTION),
    st.tuples(st.just("garbage in entry"), _INDEX, _FRACTION, st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("replace line"), _INDEX, _INDEX, _JSON),
    st.tuples(st.just("set field"), _INDEX, _INDEX, st.sampled_from(_FIELDS), _VALUE),
    st.tuples(st.just("drop field"), _INDEX, _INDEX, st.sampled_from(_FIELDS)),
    st.tuples(
        st.just("add action"),
        _INDEX,
        st.sampled_from(["add", "remove", "metaData", "protocol", "cdc", "txn", "bogus"]),
        _VALUE,
    ),
    st.tuples(
        st.just("protocol"),
        st.integers(0, 5),
        st.integers(0, 8),
        st.none() | st.lists(st.sampled_from(_FEATURES), max_size=3),
        st.none() | st.lists(st.sampled_from(_FEATURES), max_size=3),
    ),
    st.tuples(st.just("path"), _INDEX, st.sampled_from(_PATHS)),
    st.tuples(st.just("size"), _INDEX, st.integers(-3, 3)),
    st.tuples(st.just("delete entry"), _INDEX),
    st.tuples(st.just("truncate file"), _INDEX, _FRACTION),
    st.tuples(st.just("append to file"), _INDEX, st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("garbage in file"), _INDEX, _FRACTION, st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("swap files"), _INDEX, _INDEX),
    st.tuples(st.just("delete file"), _INDEX),
    st.tuples(st.just("foreign file"), _INDEX),
    st.tuples(st.just("damage checkpoint"), _FRACTION, st.binary(max_size=6)),
)


# --------------------------------------------------------------------------- base tables


def _build(root: Path, base: str) -> None:
    store = DeltaStore(root, flush_seconds=None)
    commits = 12 if base == "checkpointed" else 4
    for n in range(commits):
        extra = {"note": [f"n{n}"] * 3} if n >= 2 and base == "short" else {}
        ids = [f"{n}-{i}" for i in range(3)]
        store.write("t", records(ids, v=[n] * 3, xs=[[n, i] for i in range(3)], **extra))
        store.flush()
        if base == "compacted" and n == 2:
            store.compact("t", retention_hours=10_000)
    store.close()
    if base == "checkpointed":  # as delta-rs's log cleanup leaves it
        for version in range(9):
            Path(store.table_uri("t"), "_delta_log", f"{version:020d}.json").unlink()


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    built = {}
    for base in _BASES:
        root = tmp_path_factory.mktemp(base)
        _build(root, base)
        built[base] = root
    return built


# --------------------------------------------------------------------------- mutations


def _pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


def _entries(table: Path) -> list[Path]:
    return sorted((table / "_delta_log").glob("*.json"))


def _data(table: Path) -> list[Path]:
    return sorted(table.glob("*.parquet"))


def _edit_lines(entry: Path | None, edit: Callable[[list[Any]], None]) -> None:
    """Apply ``edit`` to the parsed lines of ``entry`` (a line that does not parse is kept
    as its text), then write them back as JSON lines."""
    if entry is None:
        return
    lines: list[Any] = []
    for text in entry.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            lines.append(_Raw(text))
    edit(lines)
    entry.write_text("".join(_dump(line) + "\n" for line in lines))


class _Raw(str):
    """A line kept as it was."""


def _dump(line: Any) -> str:
    return str(line) if isinstance(line, _Raw) else json.dumps(line)


def _action(lines: list[Any], index: int) -> dict[str, Any] | None:
    line = _pick(lines, index)
    if isinstance(line, dict) and line and isinstance(next(iter(line.values())), dict):
        return next(iter(line.values()))  # type: ignore[no-any-return]
    return None


def _set_field(lines: list[Any], index: int, name: str, value: Any) -> None:
    action = _action(lines, index)
    if action is not None:
        action[name] = value


def _drop_field(lines: list[Any], index: int, name: str) -> None:
    action = _action(lines, index)
    if action is not None:
        action.pop(name, None)


def _set_protocol(table: Path, reader: int, writer: int, readers: Any, writers: Any) -> None:
    protocol: dict[str, Any] = {"minReaderVersion": reader, "minWriterVersion": writer}
    if readers is not None:
        protocol["readerFeatures"] = readers
    if writers is not None:
        protocol["writerFeatures"] = writers
    _edit_lines(_pick(_entries(table), -1), lambda lines: lines.append({"protocol": protocol}))


def _set_path(table: Path, index: int, kind: str, other: Path) -> None:
    adds = [e for e in _entries(table) if '"add"' in e.read_text(errors="replace")]
    entry = _pick(adds, index)
    if entry is None:
        return

    def edit(lines: list[Any]) -> None:
        for line in lines:
            if isinstance(line, dict) and isinstance(line.get("add"), dict):
                name = str(line["add"].get("path"))
                line["add"]["path"] = _hostile_path(kind, name, table, other)
                return

    _edit_lines(entry, edit)


def _hostile_path(kind: str, name: str, table: Path, other: Path) -> str:
    foreign = _data(other)[0]
    if kind == "subdir":  # a real file, moved into a directory of the table
        (table / "sub").mkdir(exist_ok=True)
        if name and "/" not in name and (table / name).is_file():
            (table / name).rename(table / "sub" / name)
        return f"sub%2F{name}"
    return {
        "absolute": str(foreign),
        "dotdot": f"../../{other.parent.name}/{other.name}/{foreign.name}",
        "encoded-dotdot": f"%2E%2E/%2E%2E/{other.parent.name}/{other.name}/{foreign.name}",
        "uri": foreign.as_uri(),
        "encoded": name.replace("-", "%2D"),
        "empty": "",
        "log": "_delta_log/" + _entries(table)[0].name,
    }[kind]


def _overwrite(file: Path | None, fraction: float, garbage: bytes) -> None:
    if file is None:
        return
    content = bytearray(file.read_bytes())
    at = int(fraction * len(content))
    content[at : at + len(garbage)] = garbage
    file.write_bytes(bytes(content))


def _swap(a: Path | None, b: Path | None) -> None:
    if a is None or b is None:
        return
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)


def _mutate(table: Path, mutation: tuple[Any, ...], other: Path) -> None:
    kind, *args = mutation
    entries, data = _entries(table), _data(table)
    if kind == "truncate entry":
        entry = _pick(entries, args[0])
        if entry is not None:
            entry.write_bytes(entry.read_bytes()[: int(args[1] * entry.stat().st_size)])
    elif kind == "garbage in entry":
        _overwrite(_pick(entries, args[0]), args[1], args[2])
    elif kind == "replace line":
        index, value = args[1], args[2]
        _edit_lines(
            _pick(entries, args[0]),
            lambda lines: lines.__setitem__(index % len(lines), value) if lines else None,
        )
    elif kind == "set field":
        _edit_lines(_pick(entries, args[0]), lambda lines: _set_field(lines, *args[1:]))
    elif kind == "drop field":
        _edit_lines(_pick(entries, args[0]), lambda lines: _drop_field(lines, *args[1:]))
    elif kind == "add action":
        _edit_lines(_pick(entries, args[0]), lambda lines: lines.append({args[1]: args[2]}))
    elif kind == "protocol":
        _set_protocol(table, *args)
    elif kind == "path":
        _set_path(table, args[0], args[1], other)
    elif kind == "size":
        _edit_lines(_pick(entries, args[0]), lambda lines: _shift_sizes(lines, args[1]))
    elif kind == "delete entry":
        _unlink(_pick(entries, args[0]))
    else:
        _mutate_files(kind, args, data, table, other)


def _shift_sizes(lines: list[Any], delta: int) -> None:
    for line in lines:
        if isinstance(line, dict) and isinstance(line.get("add"), dict):
            size = line["add"].get("size")
            if isinstance(size, int):
                line["add"]["size"] = size + delta


def _unlink(file: Path | None) -> None:
    if file is not None:
        file.unlink()


def _mutate_files(kind: str, args: list[Any], data: list[Path], table: Path, other: Path) -> None:
    if kind == "truncate file":
        file = _pick(data, args[0])
        if file is not None:
            file.write_bytes(file.read_bytes()[: int(args[1] * file.stat().st_size)])
    elif kind == "append to file":
        file = _pick(data, args[0])
        if file is not None:
            with file.open("ab") as out:
                out.write(args[1])
    elif kind == "garbage in file":
        _overwrite(_pick(data, args[0]), args[1], args[2])
    elif kind == "swap files":
        _swap(_pick(data, args[0]), _pick(data, args[1]))
    elif kind == "delete file":
        _unlink(_pick(data, args[0]))
    elif kind == "foreign file":
        file = _pick(data, args[0])
        if file is not None:
            shutil.copyfile(_data(other)[0], file)
    else:
        _damage_checkpoint(table, args[0], args[1])


def _damage_checkpoint(table: Path, fraction: float, garbage: bytes) -> None:
    """Truncate the first checkpoint, or write ``garbage`` into its pages.

    Not into the page indexes and footer after the pages: there a byte may change metadata
    that pyarrow, podline's Parquet reader, does not read while delta-rs's Rust reader checks
    it, and podline reads the intact actions of a checkpoint delta-rs refuses (a difference
    docs/stores.md owns up to).
    """
    checkpoint = _pick(sorted((table / "_delta_log").glob("*.checkpoint*.parquet")), 0)
    if checkpoint is None:
        return
    size = checkpoint.stat().st_size
    if not garbage:
        checkpoint.write_bytes(checkpoint.read_bytes()[: int(fraction * size)])
        return
    try:
        metadata = pq.ParquetFile(checkpoint).metadata
    except (OSError, ValueError):  # truncated already: nobody reads it
        pages = size
    else:
        chunks = [metadata.row_group(0).column(i) for i in range(metadata.num_columns)]
        pages = max(c.data_page_offset + c.total_compressed_size for c in chunks)
    _overwrite(checkpoint, fraction * pages / max(size, 1), garbage)


# --------------------------------------------------------------------------- the property


def _outcome(read: Callable[[], pa.Table | None]) -> pa.Table | BaseException | None:
    try:
        return read()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # delta-rs raises bare Exceptions, and panics as BaseException
        return exc


def _rows(table: pa.Table) -> list[str]:
    """The rows of a table as comparable text, sorted (readers promise no order). Strings
    are compared as bytes: garbage in a data file may decode as strings that are not UTF-8,
    which both readers return as they are."""
    binary = [
        pa.field(f.name, pa.large_binary()) if pa.types.is_large_string(f.type) else f
        for f in table.schema
    ]
    rows = table.cast(pa.schema(binary)).to_pylist()
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)


def _concat(pieces: Iterator[pa.Table] | None) -> pa.Table | None:
    return None if pieces is None else pa.concat_tables(list(pieces))


def _check(root: Path, uri: str) -> None:
    theirs = _outcome(lambda: DeltaTable(uri).to_pyarrow_table())
    ours = _outcome(lambda: DeltaStore(root).scan("t"))
    pieces = _outcome(lambda: _concat(DeltaStore(root).scan_batches("t")))
    if isinstance(ours, BaseException):
        assert isinstance(ours, StoreError), f"podline raised {type(ours).__name__}: {ours}"
        assert isinstance(pieces, StoreError), f"read in pieces: {pieces!r}"
    elif ours is None:  # no table there (every entry deleted)
        assert isinstance(theirs, TableNotFoundError), theirs
        assert pieces is None
    else:
        assert not isinstance(theirs, BaseException), (
            f"podline read what delta-rs refuses: {theirs}"
        )
        assert theirs is not None
        assert _rows(ours) == _rows(theirs.cast(ours.schema))
        assert isinstance(pieces, pa.Table), f"read in pieces: {pieces!r}"
        assert pieces.equals(ours)  # a row group at a time, in the same order
        # (Damage to the schema may rename the id column: both read the table without it.)
        if RECORD_ID in ours.column_names:
            _check_read_by_id(root, ours)
        _check_write(root, uri, theirs.cast(ours.schema))
    report = DeltaStore(root).verify()
    assert not [f for f in report.problems if f.kind in ("differs", "misread")], report


def _check_read_by_id(root: Path, ours: pa.Table) -> None:
    """A read by id returns the rows of the table ``ours`` (podline's scan) holding them."""
    # (Garbage in a data file may decode as values, a null id among them.)
    ids = ours.column(RECORD_ID).drop_null()[:2].combine_chunks()
    by_id = _outcome(lambda: DeltaStore(root).read("t", ids))
    assert not isinstance(by_id, BaseException), by_id
    assert by_id is not None
    # (A damaged table may hold an id twice; a read by id then returns one of its rows.)
    holding = ours.filter(pa.compute.is_in(ours[RECORD_ID], ids))
    assert set(_rows(by_id)) <= set(_rows(holding))
    assert pa.compute.all(pa.compute.is_in(ids, by_id[RECORD_ID]), min_count=0).as_py()


def _check_write(root: Path, uri: str, before: pa.Table) -> None:
    """A write through podline to a table both read keeps what delta-rs read (``before``),
    or fails with a ``StoreError``."""
    store = DeltaStore(root, flush_seconds=None)
    written = _outcome(lambda: _write(store))
    if isinstance(written, BaseException):
        assert isinstance(written, StoreError), f"podline raised {type(written).__name__}"
        return
    after = DeltaTable(uri).to_pyarrow_table()
    ours = DeltaStore(root).scan("t")
    assert ours is not None
    rows = _rows(after.cast(ours.schema))
    assert _rows(ours) == rows
    # (Compared on the columns read before: a write that adds a column, as to a table whose
    # schema lost the id column's name, makes the files' own values of it readable.)
    kept = _rows(after.cast(ours.schema).select(before.column_names))
    assert set(_rows(before)) <= set(kept)
    assert pa.compute.any(pa.compute.equal(after[RECORD_ID], "fuzz-new")).as_py()


def _write(store: DeltaStore) -> None:
    store.write("t", records(["fuzz-new"], v=[-1], xs=[[0, 0]]))
    store.flush()


def _check_append(root: Path, uri: str) -> None:
    """An append by a new store (which opens the table for appending only) raises a
    ``StoreError``, or keeps what delta-rs read and adds its row; a table delta-rs refused
    stays refused."""
    before = _outcome(lambda: DeltaTable(uri).to_pyarrow_table())
    store = DeltaStore(root, flush_seconds=None)
    appended = _outcome(lambda: _append(store))
    if isinstance(appended, BaseException):
        assert isinstance(appended, StoreError), f"podline raised {type(appended).__name__}"
        return
    after = _outcome(lambda: DeltaTable(uri).to_pyarrow_table())
    if isinstance(before, TableNotFoundError):
        return  # no table was there: the append made one
    if isinstance(before, BaseException):
        assert isinstance(after, BaseException), "an append made a refused table readable"
        return
    assert not isinstance(after, BaseException), f"delta-rs refuses the table now: {after}"
    assert set(_rows(before)) <= set(_rows(after.select(before.column_names).cast(before.schema)))
    assert pa.compute.any(pa.compute.equal(after[RECORD_ID], "fuzz-appended")).as_py()


def _append(store: DeltaStore) -> None:
    store.append("t", records(["fuzz-appended"], v=[-2], xs=[[0, 1]]))
    store.flush()


def _run(
    bases: dict[str, Path], scratch: Path, base: str, mutations: list[tuple[Any, ...]]
) -> None:
    root = scratch / "store"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(bases[base], root)
    table = root / "t.delta"
    other = bases["short" if base != "short" else "compacted"] / "t.delta"
    for mutation in mutations:
        _mutate(table, mutation, other)
    appending = scratch / "appending"
    shutil.rmtree(appending, ignore_errors=True)
    shutil.copytree(root, appending)
    _check(root, str(table))
    _check_append(appending, str(appending / "t.delta"))


_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def _fuzz(examples: int, most: int) -> Callable[..., None]:
    """The fuzz test: ``examples`` damaged tables, each with up to ``most`` mutations."""

    @settings(max_examples=examples, **_SETTINGS)  # type: ignore[arg-type]
    @given(base=st.sampled_from(_BASES), mutations=st.lists(_MUTATION, min_size=1, max_size=most))
    def fuzz(
        bases: dict[str, Path], tmp_path: Path, base: str, mutations: list[tuple[Any, ...]]
    ) -> None:
        _run(bases, tmp_path, base, mutations)

    return fuzz


test_damaged_tables_read_as_delta_rs_reads_them_or_raise = _fuzz(60, 3)
test_many_damaged_tables_read_as_delta_rs_reads_them_or_raise = pytest.mark.slow(_fuzz(600, 4))
