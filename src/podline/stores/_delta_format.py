"""How podline lays out, types and writes Delta tables.

This module owns the on-disk format ``DeltaStore`` writes (and other Delta readers see): how
store paths map to table directories, how Delta schema types map to Arrow's and back, the one
piece of podline metadata a table may carry, the Parquet settings of data files and the reading
of them. Reading and appending to a table's log is in ``_delta_local.py``; the store itself
(buffering, commits, concurrency) in ``delta.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from podline.conversion import narrowed
from podline.errors import StoreError
from podline.stores._common import canonical_type
from podline.stores._durable import make_dirs
from podline.stores.base import StorePath

fcntl: ModuleType | None
try:  # advisory file locks exist on POSIX only; elsewhere the optimistic protocol suffices
    import fcntl as _posix_locks

    fcntl = _posix_locks
except ImportError:  # pragma: no cover - Windows
    fcntl = None

if TYPE_CHECKING:  # deltalake is loaded only when delta-rs does the work (see _delta_log)
    from deltalake import WriterProperties

__all__ = [
    "LOCK_FILE",
    "TABLE_SUFFIX",
    "ParquetSettings",
    "UnsupportedTable",
    "arrow_field",
    "check_data_files",
    "decode_segment",
    "delta_field",
    "delta_rows",
    "delta_schema",
    "encode_segment",
    "first_line",
    "parquet_settings",
    "path_schema",
    "read_column",
    "read_parquet",
    "read_row_groups",
    "table_lock",
    "table_paths",
]

TABLE_SUFFIX = ".delta"
#: Taken (flock) by local writers of a table; Delta readers ignore names starting with "_".
LOCK_FILE = "_podline.lock"

#: Field metadata holding the exact Arrow type of a column Delta cannot represent as is.
_TYPE_KEY = b"podline.arrow_type"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_ESCAPED = re.compile(r"(?:~[0-9A-F]{2})+")
_MAX_NAME = 255
#: Terminal colours delta-rs puts around the markers of an error's causes.
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
#: An S3 error reply's code and message, in the XML body delta-rs quotes.
_S3_REPLY = re.compile(r"<Code>(.*?)</Code>(?:.*?<Message>(.*?)</Message>)?", re.DOTALL)


def first_line(exc: BaseException) -> str:
    """The message of ``exc`` for a ``StoreError``, on one line: its first line, followed by
    the causes delta-rs lists below it (one a line, each marked ``↳``), or its type's name.

    An object store's failure reads ``Kernel error -> Generic S3 error`` on its first line;
    what went wrong (``Connection refused``, ``NoSuchBucket``, a timeout, the retries made)
    is in the causes. A Rust backtrace (``RUST_BACKTRACE``) after them is left out."""
    text = _COLOURS.sub("", str(exc)).strip()
    if not text:
        return type(exc).__name__
    lines = text.splitlines()
    parts = [lines[0].strip()]
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("↳"):
            parts.append(stripped.removeprefix("↳").strip())
        elif len(parts) > 1 and parts[-1].startswith("<?xml"):
            parts[-1] += stripped  # a reply's XML body, over several lines
        else:
            break
    for index, part in enumerate(parts):
        reply = _S3_REPLY.search(part) if part.startswith("<") else None
        if reply is not None:
            parts[index] = ": ".join(filter(None, reply.groups()))
    return ": ".join(part for part in parts if part)


# --------------------------------------------------------------------------- layout


def encode_segment(segment: str) -> str:
    """The directory name of a path segment.

    Path ``("a", "b")`` is the table ``a/b.delta``; ``("a", "b", "c")`` is ``a/b/c.delta``,
    beside ``b.delta`` and never inside it, since a full vacuum of a table deletes every file in
    its directory that it does not know. Characters outside ``[A-Za-z0-9._-]``, a leading ``.``
    and the ``.`` of a trailing ``.delta`` are escaped as ``~XX`` (UTF-8 bytes in hex), so names
    are safe on every file system and object store, and reversible.
    """
    out = [
        ch
        if ch in _SAFE and not (ch == "." and i == 0)
        else "".join(f"~{b:02X}" for b in ch.encode())
        for i, ch in enumerate(segment)
    ]
    name = "".join(out)
    if name.lower().endswith(TABLE_SUFFIX):
        cut = len(name) - len(TABLE_SUFFIX)
        name = f"{name[:cut]}~2E{name[cut + 1 :]}"
    if len(name.encode()) > _MAX_NAME:
        raise StoreError(f"path segment {segment!r} is too long for a directory name")
    return name


def decode_segment(name: str) -> str | None:
    """The path segment a directory name encodes, or None if it encodes none."""
    try:
        return _ESCAPED.sub(lambda m: bytes.fromhex(m.group().replace("~", "")).decode(), name)
    except UnicodeDecodeError:
        return None


def table_paths(
    filesystem: pafs.FileSystem, directory: str, path: StorePath
) -> Iterator[StorePath]:
    """The paths of the tables in ``directory`` (the directory of ``path``) and below it."""
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
    except OSError as exc:  # unreachable or refused: never an empty store
        where = directory or "the store root"
        raise StoreError(f"cannot list the tables in {where}: {first_line(exc)}") from exc
    for entry in entries:
        if entry.type != pafs.FileType.Directory:
            continue
        name = entry.base_name
        if name.endswith(TABLE_SUFFIX):
            segment = decode_segment(name[: -len(TABLE_SUFFIX)])
            log = filesystem.get_file_info(f"{entry.path}/_delta_log")
            if segment and log.type == pafs.FileType.Directory:
                yield (*path, segment)
        else:
            segment = decode_segment(name)
            if segment and segment not in (".", ".."):
                yield from table_paths(filesystem, entry.path, (*path, segment))


@contextlib.contextmanager
def table_lock(directory: Path, what: str) -> Iterator[None]:
    """Hold ``LOCK_FILE`` of a local table (``what``: its path, for errors) exclusively.
    Writers of one table take it while they commit, which spares them attempts that would
    lose a race; where ``flock`` does not exist the optimistic protocol alone decides."""
    if fcntl is None:
        yield
        return
    try:
        make_dirs(directory)
        lock = open(directory / LOCK_FILE, "a+b")  # noqa: SIM115 - held across the yield
    except OSError as exc:
        raise StoreError(f"cannot lock the table of {what} at {directory}: {exc}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- types


class UnsupportedTable(Exception):  # noqa: N818 - a condition, not a failure: delta-rs reads it
    """The table uses a feature ``LocalLog`` does not interpret; delta-rs reads it instead."""


def _delta_type(spec: Any) -> pa.DataType:
    """The canonical Arrow type of a Delta schema type (see ``_common.canonical_type``)."""
    if isinstance(spec, str):
        primitive = _PRIMITIVES.get(spec)
        if primitive is not None:
            return primitive
        decimal = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", spec)
        if decimal:
            return pa.decimal128(int(decimal[1]), int(decimal[2]))
        raise UnsupportedTable(f"Delta type {spec!r}")
    kind = spec.get("type")
    if kind == "struct":
        return pa.struct([arrow_field(f) for f in spec["fields"]])
    if kind == "array":
        return pa.large_list(
            pa.field("item", _delta_type(spec["elementType"]), spec["containsNull"])
        )
    if kind == "map":
        key = pa.field("key", _delta_type(spec["keyType"]), nullable=False)
        value = pa.field("value", _delta_type(spec["valueType"]), spec["valueContainsNull"])
        return pa.map_(key, value)
    raise UnsupportedTable(f"Delta type {kind!r}")


_PRIMITIVES = {
    "string": pa.large_string(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "short": pa.int16(),
    "byte": pa.int8(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "binary": pa.large_binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
    "void": pa.null(),
}


def arrow_field(spec: dict[str, Any]) -> pa.Field:
    """The Arrow field (canonical types, Delta metadata kept) of a Delta schema field."""
    metadata = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in spec.get("metadata", {}).items()
    }
    return pa.field(spec["name"], _delta_type(spec["type"]), spec["nullable"], metadata or None)


def _delta_type_spec(t: pa.DataType) -> Any:
    """The Delta schema type of a canonical Arrow type, as delta-rs writes it; raises
    ``UnsupportedTable`` for a type delta-rs converts (or annotates) on the way in."""
    for name, arrow in _PRIMITIVES.items():
        if t == arrow and name not in _CONVERTED:
            return name
    if pa.types.is_decimal128(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_large_list(t):
        item = t.value_field
        return {
            "type": "array",
            "elementType": _delta_type_spec(item.type),
            "containsNull": item.nullable,
        }
    if pa.types.is_struct(t):
        return {
            "type": "struct",
            "fields": [delta_field(t.field(i)) for i in range(t.num_fields)],
        }
    if pa.types.is_map(t):
        return {
            "type": "map",
            "keyType": _delta_type_spec(t.key_type),
            "valueType": _delta_type_spec(t.item_type),
            "valueContainsNull": t.item_field.nullable,
        }
    raise UnsupportedTable(f"Arrow type {t}")


#: Delta types a table created by podline would need more than protocol 1/2 for, or whose
#: Arrow form delta-rs converts: those tables are created by delta-rs.
_CONVERTED = frozenset({"timestamp_ntz", "void"})


def delta_field(f: pa.Field) -> dict[str, Any]:
    """The Delta schema field of an Arrow field, as delta-rs writes it; raises
    ``UnsupportedTable`` for a type delta-rs converts (or annotates) on the way in."""
    if f.metadata:
        raise UnsupportedTable(f"field {f.name!r} carries metadata")
    return {
        "name": f.name,
        "type": _delta_type_spec(f.type),
        "nullable": f.nullable,
        "metadata": {},
    }


def _has_fixed_size_list(t: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(t):
        return True
    return any(_has_fixed_size_list(t.field(i).type) for i in range(t.num_fields))


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as written to Delta: a column whose type holds a fixed-size list (Delta has
    none; it stores a plain list) is written as one with plain lists there, and carries its
    exact Arrow type in its field metadata."""
    fields = []
    for f in schema:
        if _has_fixed_size_list(f.type):
            encoded = base64.b64encode(pa.schema([f]).serialize().to_pybytes())
            fields.append(f.with_type(_listed(f.type)).with_metadata({_TYPE_KEY: encoded}))
        else:
            fields.append(f)
    return pa.schema(fields)


def delta_rows(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` (of ``schema``) as written to a Delta table's data files, in
    ``delta_schema(schema)``: fixed-size lists as plain lists. A data file whose Parquet
    schema says fixed-size list where the table's says array is refused by readers that check
    (``pl.read_delta``: "data type mismatch ... Array(Float64, 2) != List(Float64)")."""
    written = delta_schema(schema)
    columns = [narrowed(column, f.type) for column, f in zip(rows.columns, written, strict=True)]
    return pa.Table.from_arrays(columns, schema=written)


def _listed(t: pa.DataType) -> pa.DataType:
    """``t`` with every fixed-size list a large list of the same items."""
    if pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.large_list(t.value_field.with_type(_listed(t.value_type)))
    if pa.types.is_map(t):
        key, item = t.key_field, t.item_field
        return pa.map_(key.with_type(_listed(key.type)), item.with_type(_listed(item.type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_listed(f.type)) for f in t])
    return t


#: Rows looked at to decide a column's encoding (see ``parquet_settings``).
_ENCODING_SAMPLE = 2048


class ParquetSettings(NamedTuple):
    """How a table's data files are written (see ``parquet_settings``)."""

    #: "zstd" (level ``ZSTD_LEVEL``) or "none".
    compression: str
    #: Columns written without a dictionary.
    plain: frozenset[str]

    def for_delta_rs(self, row_group_rows: int | None = None) -> WriterProperties:
        """The settings as delta-rs takes them, with row groups of at most ``row_group_rows``
        (delta-rs's own limit, about a million rows, if None)."""
        from deltalake import ColumnProperties, WriterProperties

        columns = {name: ColumnProperties(dictionary_enabled=False) for name in self.plain}
        zstd = self.compression == "zstd"
        return WriterProperties(
            compression="ZSTD" if zstd else "UNCOMPRESSED",
            compression_level=ZSTD_LEVEL if zstd else None,
            column_properties=columns or None,
            max_row_group_size=row_group_rows,
        )

    def for_pyarrow(self, schema: pa.Schema) -> dict[str, Any]:
        """The settings as ``pyarrow.parquet.write_table`` takes them."""
        dictionary = [name for name in schema.names if name not in self.plain]
        level = ZSTD_LEVEL if self.compression == "zstd" else None
        return {
            "compression": self.compression,
            "compression_level": level,
            "use_dictionary": dictionary,
            **WRITE_CHECKSUMS,
        }


#: Every page podline writes carries a CRC-32 of its bytes, and podline checks it when it reads
#: the page (``parquet_file``): a stored result whose bytes changed on disk (a flipped bit, a
#: stray write) is refused, never served. Other readers ignore the checksums, and files
#: without them (delta-rs's) are read unchecked.
WRITE_CHECKSUMS: dict[str, Any] = {"write_page_checksum": True}
#: The Zstandard level of compressed tables: the fastest (level 3 wrote twice as slowly for
#: files 5% larger).
ZSTD_LEVEL = 1


def parquet_settings(rows: pa.Table) -> ParquetSettings:
    """Parquet settings for writing ``rows``: dictionary encoding only where it pays, and
    compression only where it does not slow down lookups.

    Record ids, content hashes, call tokens, sequence numbers and timestamps hardly ever
    repeat; a Parquet writer tries a dictionary for them anyway before giving up, which made
    writing them several times slower (65,536 provenance records: 68 ms with dictionaries,
    24 ms without, files 18% larger). A column whose sample is mostly distinct is written
    without one (100,000 log rows: 43 ms of CPU instead of 59).

    A table made mostly of distinct strings (hashes: provenance records, memo entries) is
    written uncompressed. Zstandard would keep a ``pod3:`` hash in 33 bytes instead of 73, as
    compactly as its 32-byte digest, but a lookup of 100,000 ids in a table of a million
    then took 192-239 ms of CPU instead of 125-148 (decompressing what it scans), and lookups
    are what cached runs do. Other tables (status and log rows) are written with Zstandard:
    16 bytes a row instead of Snappy's 39, for 0.09 µs more per row written.
    """
    sample = rows.slice(0, _ENCODING_SAMPLE)
    plain = set()
    distinct_text = 0
    for field in rows.schema:
        t = field.type
        if pa.types.is_nested(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
            continue
        values = sample.column(field.name)
        if len(values) and _mostly_distinct(values):
            plain.add(field.name)
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                distinct_text += rows.column(field.name).nbytes
    hashes = 2 * distinct_text > rows.nbytes
    return ParquetSettings("none" if hashes else "zstd", frozenset(plain))


def _mostly_distinct(values: pa.ChunkedArray) -> bool:
    """Whether more than half of ``values`` (not empty) are distinct non-null values. One
    value is, unless null: the answer without a kernel call for the one-row commits a run's
    end makes (a status row, a marker), a few columns each."""
    if len(values) == 1:
        return values.null_count == 0
    return bool(pc.count_distinct(values).as_py() > len(values) // 2)


def path_schema(stored: pa.Schema) -> pa.Schema:
    """The podline schema of a Delta table (``stored``: its schema as its log reads): canonical
    types, exact ones where recorded."""
    fields = []
    for f in stored:
        encoded = (f.metadata or {}).get(_TYPE_KEY)
        if encoded is None:
            t = canonical_type(f.type)
        else:
            t = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded))).field(0).type
        fields.append(pa.field(f.name, t, nullable=f.nullable))
    return pa.schema(fields)


# --------------------------------------------------------------------------- data files


def check_data_files(files: Mapping[str, int], filesystem: pafs.FileSystem, table: str) -> None:
    """Refuse data ``files`` (path in ``filesystem`` -> size in bytes, as the log of
    ``table``, described for messages, gives it) that are missing or of another size.

    A file whose size differs from the log's was changed after its commit (truncated,
    appended to, swapped): delta-rs, which reads a file's footer where the log's size puts
    it, refuses it or reads what the log named; podline refuses it.
    """
    for info, size in zip(filesystem.get_file_info(list(files)), files.values(), strict=True):
        if info.type == pafs.FileType.NotFound:
            raise StoreError(
                f"data file {info.path} of {table} is missing: it was deleted while a commit "
                f"still refers to it"
            )
        if info.size != size:
            raise StoreError(
                f"data file {info.path} of {table} has {info.size} bytes where its log entry "
                f"says {size}: it was changed after it was committed"
            )


def read_parquet(
    files: Mapping[str, int],
    columns: Sequence[str],
    filesystem: pafs.FileSystem,
    table: str,
) -> Iterator[pa.Table]:
    """The rows of each of these Parquet ``files`` (checked by ``check_data_files``), in
    order, with those of ``columns`` the file has (a file written before a column existed
    lacks it), in the written types; a file that cannot be read is a ``StoreError`` naming
    it and its table.

    Files are read one by one rather than as a dataset: Arrow's dataset engine imports
    pandas and costs some 40 MB of memory to load, more than most tables podline reads.
    """
    check_data_files(files, filesystem, table)
    for path in files:
        with parquet_file(filesystem, path, table) as file:
            has = set(file.schema_arrow.names)
            yield file.read(columns=[name for name in columns if name in has])


def read_row_groups(
    files: Mapping[str, int], columns: Sequence[str], filesystem: pafs.FileSystem, table: str
) -> Iterator[pa.Table]:
    """The rows of these Parquet ``files`` as ``read_parquet`` reads them, a row group at a
    time, so that a large file never has to fit in memory whole."""
    check_data_files(files, filesystem, table)
    for path in files:
        with parquet_file(filesystem, path, table) as file:
            has = set(file.schema_arrow.names)
            present = [name for name in columns if name in has]
            for group in range(file.num_row_groups):
                yield file.read_row_group(group, columns=present)


def read_column(
    files: Mapping[str, int], column: str, filesystem: pafs.FileSystem, table: str
) -> Iterator[pa.Array]:
    """The values of ``column`` in these Parquet ``files``, a row group at a time (see
    ``read_row_groups``); files written before the column existed give none."""
    for rows in read_row_groups(files, [column], filesystem, table):
        if rows.num_columns:
            yield rows[column].combine_chunks()


@contextlib.contextmanager
def parquet_file(filesystem: pafs.FileSystem, path: str, table: str) -> Iterator[pq.ParquetFile]:
    """The Parquet file at ``path``, its pages checked against their checksums as they are
    read (``WRITE_CHECKSUMS``); what cannot be read of it, a page whose bytes changed since
    it was written included, is a ``StoreError`` naming it and its ``table``."""
    try:
        with (
            filesystem.open_input_file(path) as source,
            pq.ParquetFile(source, page_checksum_verification=True) as file,
        ):
            yield file
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: a name not UTF-8
        if "checksum verification failed" in str(exc):
            raise StoreError(
                f"data file {path} of {table} changed after it was written: a page's checksum "
                f"does not match its bytes ({exc}), so none of its rows are read. Restore the "
                "file, or delete the table to have its rows written again"
            ) from exc
        raise StoreError(f"data file {path} of {table} cannot be read: {exc}") from exc
