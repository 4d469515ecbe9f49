"""How podline lays out and annotates Delta tables, and reads their record ids.

This module owns the on-disk format ``DeltaStore`` writes (and other Delta readers see): how
store paths map to table directories, the one piece of podline metadata a table may carry, and
the reading of a table's id column that keeps a store's write-once index current. The store
itself (buffering, commits, concurrency) is in ``delta.py``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import ColumnProperties, DeltaTable, WriterProperties
from pyarrow import fs as pafs

from podline.errors import StoreError
from podline.stores._common import canonical_type
from podline.stores._index import IdIndex
from podline.stores.base import StorePath

__all__ = [
    "LOCK_FILE",
    "TABLE_SUFFIX",
    "CommittedIds",
    "decode_segment",
    "delta_schema",
    "encode_segment",
    "path_schema",
    "read_parquet",
    "table_paths",
    "writer_properties",
]

TABLE_SUFFIX = ".delta"
#: Taken (flock) by local writers of a table; Delta readers ignore names starting with "_".
LOCK_FILE = "_podline.lock"

#: Field metadata holding the exact Arrow type of a column Delta cannot represent as is.
_TYPE_KEY = b"podline.arrow_type"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_ESCAPED = re.compile(r"(?:~[0-9A-F]{2})+")
_MAX_NAME = 255


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
    except OSError:
        return
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


# --------------------------------------------------------------------------- types


def _has_fixed_size_list(t: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(t):
        return True
    return any(_has_fixed_size_list(t.field(i).type) for i in range(t.num_fields))


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as written to Delta: a column whose type holds a fixed-size list (Delta has
    none; it stores a plain list) carries its exact Arrow type in its field metadata."""
    fields = []
    for f in schema:
        if _has_fixed_size_list(f.type):
            encoded = base64.b64encode(pa.schema([f]).serialize().to_pybytes())
            fields.append(f.with_metadata({_TYPE_KEY: encoded}))
        else:
            fields.append(f)
    return pa.schema(fields)


#: Rows looked at to decide a column's encoding (see ``writer_properties``).
_ENCODING_SAMPLE = 2048


def writer_properties(rows: pa.Table) -> WriterProperties:
    """Parquet settings for writing ``rows``: dictionary encoding only where it pays, and
    compression only where it does.

    Record ids, content hashes, call tokens, sequence numbers and timestamps hardly ever
    repeat; a Parquet writer tries a dictionary for them anyway before giving up, which made
    writing them several times slower (65,536 provenance records: 68 ms with dictionaries,
    24 ms without, files 18% larger). A column whose sample is mostly distinct is written
    without one (100,000 log rows: 43 ms of CPU instead of 59).

    Distinct strings are mostly hashes, which do not compress: a table made mostly of them
    (provenance records, memo entries) is written uncompressed, as Snappy cost 40% more CPU
    there for files 16% smaller. Other tables (status and log rows) are written with Snappy,
    which costs no more CPU and makes them a third of the size.
    """
    sample = rows.slice(0, _ENCODING_SAMPLE)
    plain = {}
    distinct_text = 0
    for field in rows.schema:
        t = field.type
        if pa.types.is_nested(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
            continue
        values = sample.column(field.name)
        if len(values) and pc.count_distinct(values).as_py() > len(values) // 2:
            plain[field.name] = ColumnProperties(dictionary_enabled=False)
            if pa.types.is_string(t) or pa.types.is_large_string(t):
                distinct_text += rows.column(field.name).nbytes
    compressed = 2 * distinct_text <= rows.nbytes
    return WriterProperties(
        compression="SNAPPY" if compressed else "UNCOMPRESSED", column_properties=plain or None
    )


def path_schema(table: DeltaTable) -> pa.Schema:
    """The podline schema of a Delta table: canonical types, exact ones where recorded."""
    fields = []
    for f in pa.schema(table.schema().to_arrow()):
        encoded = (f.metadata or {}).get(_TYPE_KEY)
        if encoded is None:
            t = canonical_type(f.type)
        else:
            t = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded))).field(0).type
        fields.append(pa.field(f.name, t, nullable=f.nullable))
    return pa.schema(fields)


# --------------------------------------------------------------------------- record ids


def read_parquet(
    paths: Sequence[str], columns: Sequence[str], filesystem: pafs.FileSystem | None = None
) -> Iterator[pa.Table]:
    """The rows of each of these Parquet files, in order, with those of ``columns`` the
    file has (a file written before a column existed lacks it), in the written types.

    Files are read one by one rather than as a dataset: Arrow's dataset engine imports
    pandas and costs some 40 MB of memory to load, more than most tables podline reads.
    """
    for path in paths:
        source = path if filesystem is None else filesystem.open_input_file(path)
        with pq.ParquetFile(source) as file:
            has = set(file.schema_arrow.names)
            yield file.read(columns=[name for name in columns if name in has])


def _read_ids(
    table: DeltaTable, uris: list[str], column: str, local_root: str | None
) -> pa.ChunkedArray:
    """The ``column`` values of the given data files of ``table``, as ``large_string``.

    For a local table (``local_root``, its directory) the files are read through Arrow's own
    file system, which reads a column about twice as fast as the one delta-rs provides.
    """
    root = table.table_uri
    prefixes = (root, urlsplit(root).path)  # local file URIs come without their scheme
    paths = []
    for uri in uris:
        prefix = next((p for p in prefixes if uri.startswith(p)), None)
        if prefix is None:
            raise StoreError(f"data file {uri} lies outside its table {root}")
        paths.append(unquote(uri[len(prefix) :]))
    filesystem = (
        table.to_pyarrow_dataset().filesystem
        if local_root is None
        else pafs.SubTreeFileSystem(local_root, pafs.LocalFileSystem())
    )
    parts = read_parquet(paths, [column], filesystem)
    ids = [chunk for part in parts for chunk in part[column].cast(pa.large_string()).chunks]
    return pa.chunked_array(ids, pa.large_string())


class CommittedIds:
    """The ids of one column of a Delta table as of ``version``, kept current by reading only
    the files added since (a full reload only when files were removed)."""

    __slots__ = ("files", "index", "version")

    def __init__(self) -> None:
        self.version = -1
        self.files: frozenset[str] = frozenset()
        self.index = IdIndex()

    def sync(self, table: DeltaTable | None, column: str, local_root: str | None) -> bool:
        """Catch up with ``table``; True if ids were added."""
        if table is None or table.version() == self.version:
            return False
        files = frozenset(table.file_uris())
        if not self.files <= files:
            # Files were removed (compaction by another writer, or a delete): start over.
            self.index = IdIndex()
            self.files = frozenset()
        new = sorted(files - self.files)
        added = False
        if new and column in pa.schema(table.schema().to_arrow()).names:
            before = len(self.index)
            self.index.add(_read_ids(table, new, column, local_root))
            added = len(self.index) > before
        self.version = table.version()
        self.files = files
        return added

    def record(self, table: DeltaTable, base_version: int, ids: pa.ChunkedArray) -> None:
        """Account for our own commit, made on ``base_version``, without reading it back."""
        if self.version != base_version:
            return  # not in step; the next sync reads the new files
        self.index.add(ids)
        self.version = table.version()
        self.files = frozenset(table.file_uris())

    def rewritten(self, table: DeltaTable, base_version: int) -> None:
        """Account for our own compaction on ``base_version``: same ids, other files."""
        if self.version == base_version and table.version() == base_version + 1:
            self.version = table.version()
            self.files = frozenset(table.file_uris())
