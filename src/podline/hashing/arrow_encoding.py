"""Canonical hashing of Arrow data: per-row packet hashes for a whole table in one call.

A row hash is SHA-256 of one byte string per row::

    schema digest (32 bytes) || encode(column) for each column, sorted by column name

The schema digest covers each column's name and *logical* type, so column order and physical
Arrow variants do not count, while names and types do. Logical types (see ``logical_type``):

* every integer width is ``int`` (values as int64; a uint64 above 2**63-1 is an error),
* every float width is ``float`` (values as float64; every NaN is one NaN; ``-0.0`` is not
  ``0.0``),
* ``string``, ``large_string``, ``string_view`` and dictionary-encoded strings are ``str``;
  the binary variants (fixed-size included) are ``bytes``,
* ``list``, ``large_list`` and list views are ``list[T]``; ``fixed_size_list`` is
  ``fixed_list[T;n]``; a ``map`` is ``map[K,V]`` and its entries are hashed in stored order,
* a timestamp of any unit is ``datetime`` (with ``[tz]`` when zoned); ``date32``/``date64`` are
  ``date``; a struct is ``struct{a:T,...}`` with fields sorted by name; a file is ``path``.
* Nullability is not part of the type: ``int`` and ``int | None`` holding the same values hash
  equal, and a null differs from every value.

Value encodings (little-endian): a one-byte marker (1 = value, 0 = null) then

* fixed-width types: int64 / float64 / one byte (bool) / int64 days (date) /
  int64 seconds + uint32 nanoseconds (datetime) / the 32-byte file digest (path);
* ``str``/``bytes``: a uint64 length, then the bytes; a list (and a map): a uint64 count,
  then its items' encodings;
* a struct: its fields' encodings in name order.

A null keeps the fixed-width prefix of its type zero-filled (so a null string is the marker
and a zero length) and has no variable part; a null struct is the marker alone. A file value
naming no readable file (missing, a directory, unreadable) has marker 2 and, as its payload,
the SHA-256 of ``podline:no-readable-file\x1d`` and its path.

Everything runs as Arrow/numpy kernels over whole columns; only map entries and file paths
visit Python per value.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.errors import HashingError
from podline.hashing.digest import HASH_SCHEME, ContentHash, digest_bytes, hex_digests
from podline.hashing.files import file_digest
from podline.schema import FILE_PATH_FIELD

__all__ = ["hash_table", "logical_type", "row_hash_strings", "row_hashes_hex"]

#: Rows encoded per step; bounds the transient memory of a large table.
BATCH_ROWS = 1 << 15


@functools.cache
def _empty() -> pa.Scalar:
    # Built on first use, not at import: pa.scalar of a Python value makes pyarrow import
    # pandas (when installed) to ask whether the value is a pandas object.
    return pa.scalar(b"", pa.large_binary())


_TS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

# A part of a row encoding: a fixed-width uint8 matrix (n, w) or one binary value per row.
Part: TypeAlias = "np.ndarray | pa.LargeBinaryArray"


# --------------------------------------------------------------------------- logical types


def _is_file_struct(t: pa.DataType) -> bool:
    return pa.types.is_struct(t) and t.num_fields == 1 and t.field(0).name == FILE_PATH_FIELD


def logical_type(t: pa.DataType, field: str = "<value>") -> str:
    """The canonical name of an Arrow type's logical type (see module docs)."""
    if pa.types.is_dictionary(t):
        return logical_type(t.value_type, field)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "str"
    if _is_binary(t):
        return "bytes"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return f"datetime[{t.tz}]" if t.tz else "datetime"
    if pa.types.is_map(t):
        k = logical_type(t.key_type, f"{field}.key")
        return f"map[{k},{logical_type(t.item_type, f'{field}.value')}]"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_list[{logical_type(t.value_type, f'{field}[]')};{t.list_size}]"
    if _is_list(t):
        return f"list[{logical_type(t.value_type, f'{field}[]')}]"
    if _is_file_struct(t):
        return "path"
    if pa.types.is_struct(t):
        fields = sorted((t.field(i) for i in range(t.num_fields)), key=lambda f: f.name)
        inner = ",".join(f"{f.name}:{logical_type(f.type, f'{field}.{f.name}')}" for f in fields)
        return f"struct{{{inner}}}"
    raise HashingError(f"column {field!r}: Arrow type {t} has no canonical hash encoding")


def _is_binary(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def _schema_digest(schema: pa.Schema) -> bytes:
    described = "\x1f".join(
        f"{name}\x1e{logical_type(schema.field(name).type, name)}" for name in sorted(schema.names)
    )
    return digest_bytes(f"{HASH_SCHEME}:row\x1d{described}".encode())


# --------------------------------------------------------------------------- encoders


def _marker(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones((len(array), 1), dtype=np.uint8)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return valid.astype(np.uint8).reshape(-1, 1)


def _fixed(array: pa.Array, values: np.ndarray) -> list[Part]:
    """Marker plus a fixed-width little-endian payload, zeroed under nulls."""
    values = np.ascontiguousarray(values)
    # An explicit width, as ``reshape(0, -1)`` is ambiguous for an empty (e.g. list child) array.
    width = values.dtype.itemsize * int(np.prod(values.shape[1:], dtype=np.int64))
    payload = values.view(np.uint8).reshape(len(array), width)
    marker = _marker(array)
    if array.null_count:
        payload = payload * marker
    return [marker, payload]


def _numpy(array: pa.Array, dtype: str) -> np.ndarray:
    filled = array.fill_null(0) if array.null_count else array
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=dtype)


def _encode_int(array: pa.Array, field: str) -> list[Part]:
    try:
        as64 = array.cast(pa.int64())
    except pa.ArrowInvalid as exc:
        raise HashingError(f"column {field!r}: integer outside the int64 range: {exc}") from exc
    return _fixed(array, _numpy(as64, "<i8"))


def _encode_float(array: pa.Array) -> list[Part]:
    values = _numpy(array.cast(pa.float64()), "<f8").copy()
    # One NaN bit pattern: Python cannot tell NaN payloads apart without struct. -0.0 keeps
    # its sign, since math.copysign, atan2 and 1/x can tell it from 0.0.
    values[np.isnan(values)] = np.nan
    return _fixed(array, values)


def _encode_bool(array: pa.Array) -> list[Part]:
    return _fixed(array, _numpy(array.cast(pa.uint8()), "u1"))


_MS_PER_DAY = 86_400_000


def _encode_date(array: pa.Array) -> list[Part]:
    if pa.types.is_date64(array.type):
        # The day each value falls in, as Python reads it: Arrow wants date64 values whole
        # days but does not check, and its cast to date32 refuses any other.
        days = np.floor_divide(_numpy(array.cast(pa.int64()), "<i8"), _MS_PER_DAY)
    else:
        days = _numpy(array.cast(pa.int32()), "<i4").astype("<i8")
    return _fixed(array, days)


def _encode_timestamp(array: pa.Array) -> list[Part]:
    per_second = _TS_PER_SECOND[array.type.unit]
    ticks = _numpy(array.cast(pa.int64()), "<i8")
    seconds = np.floor_divide(ticks, per_second)
    nanos = ((ticks - seconds * per_second) * (1_000_000_000 // per_second)).astype("<u4")
    payload = np.empty((len(array), 12), dtype=np.uint8)
    payload[:, :8] = seconds.astype("<i8").view(np.uint8).reshape(-1, 8)
    payload[:, 8:] = nanos.view(np.uint8).reshape(-1, 4)
    return _fixed(array, payload)


def _encode_bytes(array: pa.Array) -> list[Part]:
    if pa.types.is_large_string(array.type):
        as_binary = array.view(pa.large_binary())
    elif pa.types.is_large_binary(array.type):
        as_binary = array
    else:
        as_binary = array.cast(pa.large_binary())
    lengths = _numpy(pc.binary_length(as_binary), "<i8")
    payload = as_binary.fill_null(_empty()) if array.null_count else as_binary
    return [*_fixed(array, lengths), payload]


def _encode_file(array: pa.Array, field: str) -> list[Part]:
    paths = array.field(0).to_pylist()
    valid = array.is_valid().to_pylist()
    digests = np.zeros((len(array), 32), dtype=np.uint8)
    marker = _marker(array).copy()
    for row, (path, ok) in enumerate(zip(paths, valid, strict=True)):
        if ok:
            try:
                digests[row] = np.frombuffer(file_digest(path), dtype=np.uint8)
            except HashingError:
                # No readable file there: a value of its own (marker 2, the digest of its path),
                # apart from every file's content, so rows holding it still have an identity.
                # Function nodes fail such rows without calling (see ``unreadable_files``).
                marker[row] = _NO_FILE
                digests[row] = np.frombuffer(_no_file_digest(path), dtype=np.uint8)
    return [marker, digests]


_NO_FILE = 2


def _no_file_digest(path: str) -> bytes:
    return digest_bytes(b"podline:no-readable-file\x1d" + path.encode())


def _encode_list(array: pa.Array, field: str) -> list[Part]:
    t = array.type
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        array = _list_view_as_large_list(array)
        t = array.type
    if pa.types.is_fixed_size_list(t):
        bounds = (np.arange(len(array) + 1, dtype=np.int64) + array.offset) * t.list_size
    else:
        bounds = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    child = array.values
    return _nested(array, _join(_encode(child, f"{field}[]"), len(child)), bounds)


def _nested(array: pa.Array, items: pa.LargeBinaryArray, bounds: np.ndarray) -> list[Part]:
    """The encoding of a list-like column whose items (already encoded, one binary value per
    item) lie contiguously: row ``i`` holds items ``bounds[i]:bounds[i + 1]``."""
    # Each row's items are contiguous in ``items``: the row's bytes are one slice of its data.
    row_offsets = _binary_offsets(items)[bounds]
    data = items.buffers()[2] or pa.py_buffer(b"")
    payload = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(array), [None, pa.py_buffer(row_offsets), data]
    )
    counts = np.diff(bounds)
    if array.null_count:
        payload = pc.if_else(array.is_valid(), payload, _empty())
    return [*_fixed(array, counts.astype("<i8")), payload]


def _list_view_as_large_list(array: pa.Array) -> pa.LargeListArray:
    """A list view as a large list, built by hand: pyarrow's cast can corrupt the offsets."""
    sizes = _numpy(array.sizes, "<i8")
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(np.where(valid, sizes, 0))]).astype(np.int64)
    return pa.LargeListArray.from_arrays(
        pa.array(offsets, pa.int64()),
        array.flatten(),
        type=pa.large_list(array.type.value_field),
        mask=array.is_null() if array.null_count else None,
    )


def _encode_map(array: pa.MapArray, field: str) -> list[Part]:
    # Entries in their stored order: a Python function iterating the dict sees that order,
    # so two orders are two values (equal dicts in another order cost a recomputation, never
    # a wrong result).
    entries = array.values
    keys = _encode(entries.field(0), f"{field}.key")
    items = _encode(entries.field(1), f"{field}.value")
    bounds = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    return _nested(array, _join([*keys, *items], len(entries)), bounds)


def _encode_struct(array: pa.StructArray, field: str) -> list[Part]:
    t = array.type
    names = sorted(t.field(i).name for i in range(t.num_fields))
    parts: list[Part] = [_marker(array)]
    children: list[Part] = []
    for name in names:
        children.extend(_encode(array.field(name), f"{field}.{name}"))
    if array.null_count and children:
        joined = _join(children, len(array))
        children = [pc.if_else(array.is_valid(), joined, _empty())]
    return parts + children


def _encode(array: pa.Array, field: str) -> list[Part]:
    """The canonical encoding of every value of ``array``, as parts to concatenate per row."""
    t = array.type
    if pa.types.is_dictionary(t):
        return _encode(array.dictionary_decode(), field)
    if pa.types.is_null(t):
        return [np.zeros((len(array), 1), dtype=np.uint8)]
    if pa.types.is_boolean(t):
        return _encode_bool(array)
    if pa.types.is_integer(t):
        return _encode_int(array, field)
    if pa.types.is_floating(t):
        return _encode_float(array)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _encode_bytes(array.cast(pa.large_string()))
    if _is_binary(t):
        return _encode_bytes(array)
    if pa.types.is_date(t):
        return _encode_date(array)
    if pa.types.is_timestamp(t):
        return _encode_timestamp(array)
    if pa.types.is_map(t):
        return _encode_map(array, field)
    if pa.types.is_fixed_size_list(t) or _is_list(t):
        return _encode_list(array, field)
    if _is_file_struct(t):
        return _encode_file(array, field)
    if pa.types.is_struct(t):
        return _encode_struct(array, field)
    raise HashingError(f"column {field!r}: Arrow type {t} has no canonical hash encoding")


def _join(parts: Sequence[Part], n: int) -> pa.LargeBinaryArray:
    """Concatenate the parts row by row into one binary value per row."""
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, np.ndarray) and merged and isinstance(merged[-1], np.ndarray):
            merged[-1] = np.hstack([merged[-1], part])
        else:
            merged.append(part)
    arrays = [_as_binary(p) if isinstance(p, np.ndarray) else p for p in merged]
    if not arrays:
        return pa.array([b""] * n, pa.large_binary())
    if len(arrays) == 1:
        return arrays[0]
    return pc.binary_join_element_wise(*arrays, _empty())


def _binary_offsets(array: pa.LargeBinaryArray) -> np.ndarray:
    """The absolute int64 offsets of a (possibly sliced) large-binary array."""
    raw = np.frombuffer(array.buffers()[1], dtype=np.int64)
    return raw[array.offset : array.offset + len(array) + 1]


def _as_binary(matrix: np.ndarray) -> pa.LargeBinaryArray:
    n, width = matrix.shape
    if width == 0:
        return pa.array([b""] * n, pa.large_binary())
    flat = np.ascontiguousarray(matrix, dtype=np.uint8)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(flat)]
    )


# --------------------------------------------------------------------------- public API


def _select(table: pa.Table | pa.RecordBatch, columns: Sequence[str] | None) -> pa.Table:
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if columns is not None:
        missing = sorted(set(columns) - set(table.column_names))
        if missing:
            raise HashingError(f"cannot hash missing column(s) {', '.join(map(repr, missing))}")
        table = table.select(list(columns))
    return table


def row_hashes_hex(
    table: pa.Table | pa.RecordBatch, columns: Sequence[str] | None = None
) -> pa.Array:
    """The hex SHA-256 row hash of every row of ``table`` (restricted to ``columns``).

    One call hashes all rows; the result is a ``large_string`` array aligned with the rows.
    """
    table = _select(table, columns)
    schema_digest = np.frombuffer(_schema_digest(table.schema), dtype=np.uint8)
    if table.num_rows == 0:
        return pa.array([], pa.large_string())
    names = sorted(table.column_names)
    chunks: list[pa.Array] = []
    for batch in table.select(names).to_batches(max_chunksize=BATCH_ROWS):
        n = batch.num_rows
        if n == 0:
            continue
        parts: list[Part] = [np.broadcast_to(schema_digest, (n, schema_digest.size))]
        for name in names:
            parts.extend(_encode(batch.column(name), name))
        chunks.append(hex_digests(_join(parts, n)))
    return pa.concat_arrays(chunks)


def row_hash_strings(
    table: pa.Table | pa.RecordBatch, columns: Sequence[str] | None = None
) -> pa.Array:
    """Row hashes in ``ContentHash`` string form (``pod3:<hex>``), one per row."""
    hexes = row_hashes_hex(table, columns)
    prefix = pa.scalar(f"{HASH_SCHEME}:", pa.large_string())
    return pc.binary_join_element_wise(prefix, hexes, pa.scalar("", pa.large_string()))


def hash_table(
    table: pa.Table | pa.RecordBatch, columns: Sequence[str] | None = None
) -> ContentHash:
    """The content hash of a whole table: its schema and its rows, in order."""
    table = _select(table, columns)
    header = f"{HASH_SCHEME}:table\x1d{table.num_rows}\x1d".encode() + _schema_digest(table.schema)
    if table.num_rows == 0:
        return ContentHash.of(header)
    hexes = row_hashes_hex(table).cast(pa.large_binary())
    bounds = _binary_offsets(hexes)
    body = memoryview(hexes.buffers()[2])[bounds[0] : bounds[-1]]
    return ContentHash.of(header + bytes(body))


class TableHasher:
    """``hash_table`` of a table given chunk by chunk, in row order: the same hash, without
    the table ever being whole. ``num_rows`` (the total) and the schema must be known first,
    as the hash begins with them; ``digest()`` checks that the chunks had that many rows."""

    def __init__(self, schema: pa.Schema, num_rows: int) -> None:
        self._expected = num_rows
        self._rows = 0
        header = f"{HASH_SCHEME}:table\x1d{num_rows}\x1d".encode() + _schema_digest(schema)
        self._hasher = hashlib.sha256(header)

    def update(self, chunk: pa.Table | pa.RecordBatch) -> None:
        if not chunk.num_rows:
            return
        self._rows += chunk.num_rows
        hexes = row_hashes_hex(chunk).cast(pa.large_binary())
        bounds = _binary_offsets(hexes)
        self._hasher.update(memoryview(hexes.buffers()[2])[bounds[0] : bounds[-1]])

    def digest(self) -> ContentHash:
        if self._rows != self._expected:
            raise HashingError(
                f"a table announced as {self._expected} rows gave {self._rows} rows to hash"
            )
        return ContentHash(HASH_SCHEME, self._hasher.digest())
